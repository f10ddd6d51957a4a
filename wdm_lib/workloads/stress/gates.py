"""Gates: k6-style thresholds that pass or fail a stress run. Pure: `parse` reads an expression
(before any load, so a typo costs nothing), `judge` measures it on the run's raw rows.

    [NAME:]METRIC OP VALUE        p99<500ms   fail_rate<1%   checkout:rps>100   response_p(99.9)<=2s

METRIC is one of
    pN, p(N)            the Nth percentile of the service time (from the actual send), exact
    response_pN         the same of the response time from the intended start (open loop: corrected
                        for coordinated omission; equal to the service time in a closed loop)
    med, avg, max       of the service time
    fail_rate           share of requests that did not answer 2xx (refused or unknown)
    unknown_rate        share of requests without a verdict (5xx, timeout, no connection)
    rps                 requests per second over the run
    requests, ok        how many requests were made, how many answered 2xx
NAME restricts it to one request: the Locust name (`/orders/checkout/[order_id]`) or the task's
short name (`checkout`). Times default to ms (`s`, `us` also read); rates read `1%` or `0.01`.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass

from wdm_lib.errors import WorkbenchError
from wdm_lib.analysis import exact_percentile
from wdm_lib.history import OK, UNKNOWN

OPERATORS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
             "==": operator.eq, "!=": operator.ne}
TIME_UNITS = {"ms": 1.0, "": 1.0, "s": 1000.0, "us": 0.001, "µs": 0.001}
RATE_UNITS = {"%": 0.01, "": 1.0}
COUNT_UNITS = {"": 1.0}
# the metrics besides percentiles, with the units each reads
SIMPLE = {"med": TIME_UNITS, "avg": TIME_UNITS, "max": TIME_UNITS, "fail_rate": RATE_UNITS,
          "unknown_rate": RATE_UNITS, "rps": COUNT_UNITS, "requests": COUNT_UNITS, "ok": COUNT_UNITS}
_PERCENTILE = re.compile(r"^(?P<response>response_)?p(?:\((?P<a>\d+(?:\.\d+)?)\)|(?P<b>\d+(?:\.\d+)?))$")
_GATE = re.compile(r"^\s*(?:(?P<name>.+?)\s*:\s*)?(?P<metric>[a-z_]+(?:\(\d+(?:\.\d+)?\)|\d+(?:\.\d+)?)?)"
                   r"\s*(?P<op><=|>=|==|!=|<|>)\s*(?P<value>\d+(?:\.\d+)?|\.\d+)\s*(?P<unit>ms|us|µs|s|%)?\s*$")
EXPECTED = ("expected [NAME:]METRIC OP VALUE such as 'p99<500ms', 'fail_rate<1%' or 'checkout:rps>100' "
            "(metrics pN, response_pN, med, avg, max, fail_rate, unknown_rate, rps, requests, ok)")


@dataclass(frozen=True)
class Gate:
    expression: str
    name: str | None      # None: every request
    metric: str           # "p", "response_p" or one of SIMPLE
    percentile: float | None
    op: str
    limit: float          # in the metric's own unit: ms, a fraction, requests/s or a count

    @property
    def label(self) -> str:
        metric = f"{self.metric}{self.percentile:g}" if self.percentile is not None else self.metric
        return f"{self.name}:{metric}" if self.name else metric


def parse(expression: str, names: dict[str, str] | None = None) -> Gate:
    """One gate; `names` maps the tasks' short names to their Locust names."""
    m = _GATE.match(str(expression))
    if not m:
        raise WorkbenchError(f"--threshold {expression!r} is not a gate; {EXPECTED}.")
    metric, unit = m["metric"], m["unit"] or ""
    p = _PERCENTILE.match(metric)
    if p:
        percentile = float(p["a"] or p["b"])
        if not 0 < percentile <= 100:
            raise WorkbenchError(f"--threshold {expression!r} asks for percentile {percentile:g}; "
                                 f"expected one above 0 and at most 100.")
        metric, units = ("response_p" if p["response"] else "p"), TIME_UNITS
    elif metric in SIMPLE:
        percentile, units = None, SIMPLE[metric]
    else:
        raise WorkbenchError(f"--threshold {expression!r} names no metric {metric!r}; {EXPECTED}.")
    if unit not in units:
        raise WorkbenchError(f"--threshold {expression!r} gives {metric} in {unit!r}; expected "
                             f"{' or '.join(repr(u) for u in units if u) or 'a plain number'}.")
    name = m["name"]
    if name is not None and names:
        if name not in names and name not in names.values():
            raise WorkbenchError(f"--threshold {expression!r} names no request {name!r}; expected one of "
                                 f"{', '.join(names)} (or its Locust name, such as {next(iter(names.values()))}).")
        name = names.get(name, name)
    return Gate(str(expression).strip(), name, metric, percentile, m["op"], float(m["value"]) * units[unit])


def parse_all(expressions: list[str] | tuple[str, ...] | str | None, names: dict[str, str] | None = None
              ) -> list[Gate]:
    if expressions is None:
        return []
    if isinstance(expressions, str):
        expressions = [expressions]
    return [parse(e, names) for e in expressions]


# A run in which no request succeeded measured nothing: it fails, whatever thresholds were asked
# for (the latency of refusals alone would pass any p99 limit). Judged after the user's gates.
DEFAULT = "ok>0"
DEFAULT_FAILED = ("no request succeeded, so the run measured nothing; this usually means the target was "
                  "never batch-initialised with these sizes (wdm stress init, or --init) or urls.json "
                  "points somewhere else")


def measure(gate: Gate, requests, duration_s: float) -> float | None:
    """The gate's metric over the raw rows (a load_requests frame); None when nothing was measured."""
    rows = requests if gate.name is None else requests[requests["name"] == gate.name]
    n = len(rows)
    if gate.metric == "requests":
        return float(n)
    if gate.metric == "ok":
        return float((rows["outcome"] == OK).sum())
    if gate.metric == "rps":
        return n / duration_s if duration_s > 0 else None
    if n == 0:
        return None
    if gate.metric == "fail_rate":
        return float((rows["outcome"] != OK).sum()) / n
    if gate.metric == "unknown_rate":
        return float((rows["outcome"] == UNKNOWN).sum()) / n
    column = "response_ms" if gate.metric == "response_p" else "latency_ms"
    values = rows[column].to_numpy(dtype="float64")
    if gate.metric in ("p", "response_p"):
        return float(exact_percentile(values, gate.percentile))
    if gate.metric == "med":
        return float(exact_percentile(values, 50))
    return float(values.mean() if gate.metric == "avg" else values.max())


def judge(gates: list[Gate], requests, duration_s: float, ok_without_rows: int | None = None) -> list[dict]:
    """Each gate with its measured value and whether it held, then the default one (some request
    succeeded). A gate over nothing measured fails: a limit nobody measured is not a limit met.
    `requests` is None for a run without raw rows: the user's gates measured nothing then, and
    the default gate reads Locust's count of successes (`ok_without_rows`)."""
    out = []
    for gate, default in [*((g, False) for g in gates), (parse(DEFAULT), True)]:
        if requests is not None:
            value = measure(gate, requests, duration_s)
        else:
            value = float(ok_without_rows) if default and ok_without_rows is not None else None
        passed = value is not None and OPERATORS[gate.op](value, gate.limit)
        result = {"gate": gate.expression, "metric": gate.label, "measured": value,
                  "shown": show(gate, value), "passed": bool(passed), "default": default}
        if not passed:
            result["why"] = (DEFAULT_FAILED if default else
                             f"nothing was measured for {gate.label}" if value is None else
                             f"{gate.label} was {show(gate, value)}, expected {gate.op} {show(gate, gate.limit)}")
        out.append(result)
    return out


def show(gate: Gate, value: float | None) -> str:
    if value is None:
        return "-"
    if gate.metric in ("p", "response_p", "med", "avg", "max"):
        return f"{value:.1f} ms"
    if gate.metric in ("fail_rate", "unknown_rate"):
        return f"{value * 100:.2f}%"
    if gate.metric == "rps":
        return f"{value:.1f}/s"
    return f"{value:g}"


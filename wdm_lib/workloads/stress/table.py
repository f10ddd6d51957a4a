"""The few lines a terminal shows at the end of a stress run. Pure."""

from __future__ import annotations

from wdm_lib.faults.measures import fault_lines


def _ms(v) -> str:
    return "-" if v is None else f"{v:.1f}"


def _latency(label: str, lat: dict) -> str:
    return f"{label} p50 {_ms(lat['p50'])}  p95 {_ms(lat['p95'])}  p99 {_ms(lat['p99'])}  max {_ms(lat['max'])}"


def render_table(summary: dict) -> str:
    o, loc = summary["outcomes"], summary.get("locust") or {}
    lines = [f"verdict: {summary.get('verdict', '-').upper()}   (run {summary['run_id']})",
             f"requests: {summary['requests']}  ok {o['ok']}  refused {o['fail']}  unknown {o['unknown']}"
             f"  | {summary['throughput_rps']:.1f} req/s over {summary['duration_s']:.1f} s",
             _latency("service time ms (exact):   ", summary["latency_ms"])]
    rate = summary.get("rate")
    if rate is not None:
        lines.append(_latency("from intended start ms:    ", summary["response_ms"]))
        achieved = "-" if rate["achieved_rps"] is None else f"{rate['achieved_rps']:.1f}"
        lines.append(f"rate: {achieved} of {rate['target_rps']:g} req/s asked, {rate['users']} users each "
                     f"paced every {rate['pacing_s']:.3g} s")
    lines.append(f"latency ms (Locust):        p50 {_ms(loc.get('median_ms'))}  p95 {_ms(loc.get('p95_ms'))}  "
                 f"p99 {_ms(loc.get('p99_ms'))}  ({loc.get('requests', 0)} requests, {loc.get('failures', 0)} failures)")
    for step in summary.get("steps") or []:
        lines.append(f"step {step['users']:>6} users: {step['throughput_rps']:>9.1f} req/s  p99 {_ms(step['p99_ms'])} ms")
    for g in summary.get("gates") or []:
        mark = "PASS" if g["passed"] else "FAIL"
        lines.append(f"gate {mark}  {g['gate']:<28} measured {g['shown']}" + ("" if g["passed"] else f"  ({g['why']})"))
    for d in summary.get("degraded") or []:
        lines.append(f"DEGRADED: {d['sentence']}")
    lines += fault_lines(summary.get("faults") or [])
    if rate is not None and rate["warning"]:
        lines.append(f"warning: {rate['warning']}")
    if summary["requests"] and o["ok"] and o["fail"] > summary["requests"] / 2:
        lines.append(f"note: {o['fail']} of {summary['requests']} requests were refused (4xx); was the target "
                     f"batch-initialised with these sizes (wdm stress init, or --init)?")
    if o["unknown"]:
        lines.append(f"note: {o['unknown']} requests got no verdict (5xx, timeout or no connection).")
    v = summary.get("verify")
    if v is not None:
        lines.append(f"verify: {'VALID' if v['valid'] else 'VIOLATED'}  credit spent {v['credit_spent']} vs price x "
                     f"stock sold {v['stock_value_sold']}; checkouts in the shop {v['checkouts_in_shop']:g}, recorded "
                     f"{v['checkouts_ok']} ok + {v['checkouts_unknown']} unknown  ({v['reads']:,} reads in {v['read_s']:.1f} s)")
        lines += [f"  {a['name']}: {a['count']} (magnitude {a['magnitude']}) {', '.join(a['examples'][:5])}"
                  for a in v["anomalies"]]
        lines += [f"note: {n}" for n in v["notes"]]
    return "\n".join(lines)

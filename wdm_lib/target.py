"""The system under test for one run: the one a urls.json names, or the embedded reference shop
started for the run and stopped after it (the default, so a fresh machine needs nothing else)."""

from __future__ import annotations

import asyncio
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterator

from wdm_lib.config import Target, load_urls, parse_urls
from wdm_lib.errors import TargetDied, WorkbenchError

EMBEDDED = "embedded reference shop"


@contextmanager
def open_target(urls: str | Path | None = None, anomaly: str | None = None, services: bool = False
                ) -> Iterator[Target]:
    """The system a urls file names, or the embedded reference shop started for the run: one process,
    or with `services` (or an anomaly only the three-service shop has) a gateway and three services."""
    from wdm_lib.reference.anomalies import ANOMALIES, SERVICES_ANOMALIES

    if urls is not None:
        if anomaly:
            raise WorkbenchError(f"--anomaly {anomaly} applies only to the embedded reference shop; "
                                 f"expected either --urls or --anomaly, not both.")
        yield load_urls(urls)
        return
    if anomaly is not None and anomaly not in ANOMALIES and anomaly not in SERVICES_ANOMALIES:
        raise WorkbenchError(f"--anomaly {anomaly!r} is not known; expected one of "
                             f"{', '.join(sorted({**ANOMALIES, **SERVICES_ANOMALIES}))}.")
    if services and anomaly is not None and anomaly not in SERVICES_ANOMALIES:
        raise WorkbenchError(f"--anomaly {anomaly} is a bug of the single-process shop, but the fault schedule acts "
                             f"on one service, which needs the three-service shop; expected one of "
                             f"{', '.join(sorted(SERVICES_ANOMALIES))} there, or a schedule acting on the shop.")
    services = services or anomaly in SERVICES_ANOMALIES
    if services:
        from wdm_lib.reference.services import ReferenceServices as Shop
    else:
        from wdm_lib.reference.process import ReferenceShopProcess as Shop
    with Shop(anomaly=anomaly) as shop:
        yield replace(parse_urls(shop.urls(), EMBEDDED), shop=shop)


def actions_on(target: Target) -> tuple[str, ...] | None:
    """What a fault schedule's built-in actions may name on this target (None: none, it is not ours)."""
    if target.shop is None:
        return None
    return ("shop",) + tuple(s for s in target.shop.SERVICES if s != "shop")


def schedule_names_a_service(faults: str | Path | None, urls: str | Path | None) -> bool:
    """Whether a fault schedule acts on one service of the embedded shop (kill stock, pause payment),
    so the run needs the three-service shop. The schedule is read here only to see; it is checked
    against the target once that is up."""
    if faults is None or urls is not None:
        return False
    from wdm_lib.faults.schedule import load_schedule
    from wdm_lib.reference.services import ReferenceServices

    every = ("shop",) + ReferenceServices.SERVICES
    return any(f.action is not None and f.action[1] != "shop" for f in load_schedule(faults, every, None))


async def watch_shop(target: Target, down_on_purpose: Callable[[str], bool] = lambda service: False,
                     every_s: float = 0.2) -> None:
    """Return never; raise TargetDied as soon as a process of the embedded shop has exited that the
    fault schedule did not stop on purpose. A run against a dead shop would record refused
    connections for as long as it lasts, and then blame the wrong thing."""
    shop = target.shop
    if shop is None:
        await asyncio.Event().wait()
    while True:
        for service in shop.SERVICES:
            code = shop.exit_code(service)
            if code is not None and not down_on_purpose(service):
                what = "the embedded reference shop" + ("" if service == "shop" else f"'s {service} service")
                how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
                raise TargetDied(f"{what} {how} during the run; expected it to keep running (only a "
                                 f"fault schedule's built-in actions stop it on purpose). Everything recorded "
                                 f"up to then is kept.")
        await asyncio.sleep(every_s)


def describe(target: Target, anomaly: str | None = None) -> dict:
    """How a manifest names the target."""
    return {"source": target.source, "anomaly": anomaly, **target.as_urls()}

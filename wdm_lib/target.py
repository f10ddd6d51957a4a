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
def open_target(urls: str | Path | None = None, anomaly: str | None = None) -> Iterator[Target]:
    from wdm_lib.reference.anomalies import ANOMALIES

    if anomaly is not None and anomaly not in ANOMALIES:
        raise WorkbenchError(f"--anomaly {anomaly!r} is not known; expected one of {', '.join(sorted(ANOMALIES))}.")
    if urls is not None:
        if anomaly:
            raise WorkbenchError(f"--anomaly {anomaly} applies only to the embedded reference shop; "
                                 f"expected either --urls or --anomaly, not both.")
        yield load_urls(urls)
        return
    from wdm_lib.reference.process import ReferenceShopProcess

    with ReferenceShopProcess(anomaly=anomaly) as shop:
        yield replace(parse_urls(shop.urls(), EMBEDDED), shop=shop)


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

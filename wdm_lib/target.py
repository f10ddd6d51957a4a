"""The system under test for one run: the one a urls.json names, or the embedded reference shop
started for the run and stopped after it (the default, so a fresh machine needs nothing else)."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from wdm_lib.config import Target, load_urls, parse_urls
from wdm_lib.errors import WorkbenchError

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
        yield parse_urls(shop.urls(), EMBEDDED)


def describe(target: Target, anomaly: str | None = None) -> dict:
    """How a manifest names the target."""
    return {"source": target.source, "anomaly": anomaly, **target.as_urls()}

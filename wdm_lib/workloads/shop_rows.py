"""What a reply means, how long it may be, and the columns of a raw request row: the one definition
both sides read.

Standalone on purpose (no imports beyond the standard library, none at all in fact): the locustfile
imports it from its own folder (Locust puts that folder on sys.path), so a Kubernetes pod on the
stock Locust image needs only these two files (deploy/k8s ships both in one ConfigMap), while the
rest of wdm_lib imports it as `wdm_lib.workloads.shop_rows` without importing Locust and its gevent
patches.
"""

# API.md's verdict of one reply: 2xx happened, 4xx did not, anything else (5xx, a timeout, a reset)
# may or may not have happened.
OK, FAIL, UNKNOWN = "ok", "fail", "unknown"
OUTCOMES = (OK, FAIL, UNKNOWN)

# Every reply API.md allows is a few hundred bytes (an order with thousands of items stays far below
# this); a longer one (decoded), whatever its status, is the target breaking the contract, and an
# endless one must not be read for ever: both clients read it no further and end the run, naming the URL.
MAX_BODY = 1 << 20
# The log line with which the locustfile ends a test for such a reason, followed by its one
# sentence: `wdm stress run` reads it from Locust's log, as anyone can from a pod's.
STOPPED = "wdm stopped the run: "

# One row per request in requests-*.csv. intended_ns is when the schedule wanted the request sent
# (the actual send, start_ns, in a closed loop; the pacing schedule's tick in an open loop), so the
# response time from the intended start can be corrected for coordinated omission.
RAW_COLUMNS = ("start_ns", "intended_ns", "name", "method", "status", "latency_us", "outcome")
# The load's clock: the wall time (ns, one integer) at which the load started (Locust's test start on
# its master or only process), written beside the raw rows. A fault schedule's times count from it,
# and step i of a step load is [start + i * step_time, start + (i + 1) * step_time): not Locust's
# launch, which a busy machine takes seconds to get from to a first request, nor the first request,
# which a generator that starts late sends seconds into the first step.
LOAD_STARTED = "load-started.txt"


# API.md: a 2xx happened, a 4xx did not; anything else (5xx, 3xx, no reply) is unknown.
OK_STATUSES, FAIL_STATUSES = range(200, 300), range(400, 500)


def outcome(status: int) -> str:
    """The outcome of a reply with this HTTP status (0: no reply at all)."""
    if status in OK_STATUSES:
        return OK
    if status in FAIL_STATUSES:
        return FAIL
    return UNKNOWN

"""A free TCP port on this machine, for the processes the workbench starts (shop services, the
Locust master of a `--processes` run): fixed ports collide as soon as two runs share a machine."""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now; the caller binds it soon after (a small race, far
    smaller than every run sharing one fixed port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]

"""urls.json -> Target: where the three services of the system under test live."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from wdm_lib.errors import ConfigError

if TYPE_CHECKING:
    from wdm_lib.reference.supervisor import Shop

URL_KEYS = ("ORDER_URL", "PAYMENT_URL", "STOCK_URL")


@dataclass(frozen=True)
class Target:
    """The base URL of each service (no trailing slash) and where they came from."""

    order_url: str
    payment_url: str
    stock_url: str
    source: str  # the urls.json path, or "embedded reference shop"
    # The embedded shop's process, for built-in fault actions and for noticing its death; None for
    # a system a urls file names (the workbench cannot see its processes).
    shop: Shop | None = field(default=None, compare=False, repr=False)

    def as_urls(self) -> dict[str, str]:
        return {"ORDER_URL": self.order_url, "PAYMENT_URL": self.payment_url, "STOCK_URL": self.stock_url}


def parse_urls(data: object, source: str) -> Target:
    """Validate the decoded contents of a urls.json; `source` names the file in error sentences."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a JSON object with {', '.join(URL_KEYS)}, "
                          f"found {type(data).__name__}.")
    missing = [k for k in URL_KEYS if k not in data]
    if missing:
        raise ConfigError(f"{source}: missing {', '.join(missing)}; expected all of {', '.join(URL_KEYS)}.")
    urls = {}
    for key in URL_KEYS:
        value = data[key]
        problem = base_url_problem(value)
        if problem:
            raise ConfigError(f"{source}: {key} is {redact(repr(value))}: {problem}; expected an http(s) URL "
                              f"such as 'http://127.0.0.1:8000'.")
        urls[key] = value.rstrip("/")
    return Target(urls["ORDER_URL"], urls["PAYMENT_URL"], urls["STOCK_URL"], source)


def base_url_problem(value: object) -> str | None:
    """What keeps a value from being a service's base URL, or None: every path of the API is
    appended to it, so it has a host, a valid port, and no query or fragment to append after."""
    if not isinstance(value, str):
        return "not a string"
    if value != value.strip() or any(c.isspace() or ord(c) < 32 for c in value):
        return "it holds white space or control characters"
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https"):
        return "not http or https"
    if not parsed.hostname:
        return "no host"
    try:
        port = parsed.port
    except ValueError:
        return "the port is not a number from 1 to 65535"
    if port == 0:
        return "the port is not a number from 1 to 65535"
    if parsed.query or parsed.fragment or parsed.params or value.rstrip("/").endswith(("?", "#", ";")):
        return "a base URL has no query or fragment (the API's paths are appended to it)"
    return None


# user:password@ in a URL: kept for the requests (aiohttp sends it as basic authentication), never
# in anything written or printed.
_USERINFO = re.compile(r"(?i)\b(https?://)[^/@\s'\"]+@")


def redact(text: str) -> str:
    """Text with the credentials of every URL in it replaced by ***."""
    if "://" not in text:  # no URL: a plain search is some twenty times faster than the pattern's
        return text
    return _USERINFO.sub(r"\1***@", text)


def find_urls_file(path: str | Path | None = None) -> Path:
    """The urls.json to use: the given path (a relative one from the working folder), else
    ./urls.json. Never a file beside the package: an installed workbench serves every folder alike."""
    path = Path(path if path is not None else "urls.json").expanduser()
    file = path if path.is_absolute() else Path.cwd() / path
    if file.is_file():
        return file
    raise ConfigError(f"{path}: no such file (looked in {file.parent}); "
                      f"expected a JSON file naming {', '.join(URL_KEYS)}.")


def load_urls(path: str | Path | None = None) -> Target:
    file = find_urls_file(path)
    try:
        data = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{file}: cannot be read ({e.__class__.__name__}: {e}).") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{file}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}).") from None
    return parse_urls(data, str(file))

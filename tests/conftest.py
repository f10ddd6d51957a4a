import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the tests' own helpers (shop_proxy)


@pytest.fixture
def write_urls(tmp_path):
    """urls.json for a base URL (or a dict of the three), in a temporary folder."""
    def write(where, name="urls.json") -> Path:
        urls = where if isinstance(where, dict) else {k: where for k in ("ORDER_URL", "PAYMENT_URL", "STOCK_URL")}
        path = tmp_path / name
        path.write_text(json.dumps(urls))
        return path
    return write

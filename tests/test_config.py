import json
import re

import pytest

from wdm_lib.config import find_urls_file, load_urls, parse_urls
from wdm_lib.errors import ConfigError

GOOD = {"ORDER_URL": "http://127.0.0.1:8000/", "PAYMENT_URL": "https://shop.example:8443",
        "STOCK_URL": "http://localhost:8001"}


def test_a_good_file_gives_a_target_without_trailing_slashes(write_urls):
    target = load_urls(write_urls(GOOD))
    assert target.order_url == "http://127.0.0.1:8000"
    assert target.payment_url == "https://shop.example:8443"
    assert target.stock_url == "http://localhost:8001"


@pytest.mark.parametrize("content, fault", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    (json.dumps({"ORDER_URL": "http://a"}), "missing PAYMENT_URL, STOCK_URL"),
    (json.dumps({**GOOD, "STOCK_URL": "localhost:8000"}), "STOCK_URL is 'localhost:8000': not http or https; expected an http(s) URL"),
    (json.dumps({**GOOD, "ORDER_URL": 8000}), "ORDER_URL is 8000"),
    (json.dumps({**GOOD, "PAYMENT_URL": "ftp://x"}), "PAYMENT_URL is 'ftp://x'"),
])
def test_a_bad_file_ends_in_one_sentence_naming_file_and_fault(tmp_path, content, fault):
    path = tmp_path / "team07.json"
    path.write_text(content)
    with pytest.raises(ConfigError) as e:
        load_urls(path)
    message = str(e.value)
    assert str(path) in message and fault in message
    assert "\n" not in message


def test_a_missing_file_names_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="nope.json: no such file"):
        find_urls_file("nope.json")


def test_relative_paths_are_looked_up_in_the_working_folder_only(tmp_path, monkeypatch, write_urls):
    path = write_urls(GOOD, "mine.json")
    monkeypatch.chdir(tmp_path)
    assert find_urls_file("mine.json") == path
    # Without a path: ./urls.json, never the one beside the package's source (the checkout has one).
    with pytest.raises(ConfigError, match=re.escape(f"urls.json: no such file (looked in {tmp_path})")):
        find_urls_file(None)
    write_urls(GOOD)
    assert find_urls_file(None) == tmp_path / "urls.json"


def test_parse_urls_is_pure_and_names_its_source():
    with pytest.raises(ConfigError, match="^teams/x.json: missing"):
        parse_urls({}, "teams/x.json")

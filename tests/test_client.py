"""The client's outcome classification and contract checks, against the reference shop and a
proxy that breaks the API."""

import asyncio
import socket
import time
from contextlib import asynccontextmanager

import pytest
from aiohttp import web

from shop_proxy import Misbehaviour, ShopProxy
from wdm_lib.client import MAX_BODY, ShopClient, require_ok
from wdm_lib.history import FAIL, OK, UNKNOWN, Op, unknown_cause
from wdm_lib.config import parse_urls
from wdm_lib.errors import ContractError, TargetUnreachable


def target(urls: dict):
    return parse_urls(urls, "test")


def run(coro):
    return asyncio.run(coro)


@asynccontextmanager
async def serving(handler):
    """A one-handler server on loopback for the running loop; yields its urls."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield {k: base for k in ("ORDER_URL", "PAYMENT_URL", "STOCK_URL")}
    finally:
        await runner.cleanup()


def create_item_against(handler) -> None:
    """Create an item against a server of one handler: what the client makes of its reply."""
    async def go():
        async with serving(handler) as urls:
            async with ShopClient(target(urls), timeout_s=5) as c:
                await c.create_item(1)
    run(go())


def test_outcomes_follow_the_status_codes(shop):
    async def go():
        async with ShopClient(target(shop.urls()), timeout_s=5) as c:
            item = await c.create_item(3)
            assert item.outcome == OK and item.status == 200 and isinstance(item.body["item_id"], str)
            found = await c.find_item(item.body["item_id"])
            assert found.body == {"stock": 0, "price": 3}
            refused = await c.subtract_stock(item.body["item_id"], 1)
            assert refused.outcome == FAIL and 400 <= refused.status < 500 and refused.error
            assert refused.latency_s > 0
    run(go())


def test_5xx_is_unknown_and_a_refused_connection_is_a_definite_failure(shop, refused_port):
    with ShopProxy(shop.base_url, Misbehaviour(checkout_503_every=1)) as proxy:
        async def go():
            async with ShopClient(target(proxy.urls()), timeout_s=5) as c:
                reply = await c.checkout("0")
                assert reply.outcome == UNKNOWN and reply.status == 503
        run(go())
    port = refused_port

    async def refused():
        async with ShopClient(target({k: f"http://127.0.0.1:{port}" for k in
                                      ("ORDER_URL", "PAYMENT_URL", "STOCK_URL")}), timeout_s=5) as c:
            reply = await c.checkout("0")
            assert reply.outcome == FAIL and reply.status is None and reply.unreachable
            assert reply.error.startswith("cannot connect")
    run(refused())


def test_a_timeout_is_unknown(shop):
    with ShopProxy(shop.base_url, Misbehaviour(checkout_delay_s=1.0)) as proxy:
        async def go():
            async with ShopClient(target(proxy.urls()), timeout_s=0.2) as c:
                reply = await c.checkout("0")
                assert reply.outcome == UNKNOWN and reply.status is None
                assert "no reply within 0.2 s" in reply.error
        run(go())


def test_a_2xx_body_that_breaks_the_contract_names_endpoint_status_and_body(shop):
    with ShopProxy(shop.base_url, Misbehaviour(garbage_path="/stock/item/create")) as proxy:
        async def go():
            async with ShopClient(target(proxy.urls()), timeout_s=5) as c:
                await c.create_item(1)
        with pytest.raises(ContractError) as e:
            run(go())
    message = str(e.value)
    assert "POST http://127.0.0.1" in message and "/stock/item/create/1" in message
    # An HTML page is said in its words, not dumped (see the tests of pages below).
    assert "answered 200 with an HTML page (oops)" in message and "item_id" in message


def test_queueing_behind_the_connection_limit_does_not_count_against_the_timeout(shop):
    # Three checkouts of 1 s each, one connection: the last waits 2 s for its slot, yet none of
    # them exceeds a 2.5 s timeout, because the clock starts when the request is sent. (Seconds,
    # not fractions: a loaded machine must not make a request time out that was meant to fit.)
    with ShopProxy(shop.base_url, Misbehaviour(checkout_delay_s=1.0)) as proxy:
        async def go():
            async with ShopClient(target(proxy.urls()), timeout_s=2.5, connections=1) as c:
                return await asyncio.gather(*(c.checkout("nope") for _ in range(3)))
        replies = run(go())
    assert [r.outcome for r in replies] == [FAIL, FAIL, FAIL]
    assert all(r.latency_s < 2.5 for r in replies)


# --- hostile replies ----------------------------------------------------------------------------

@pytest.mark.parametrize("path, status, call", [
    ("/stock/item/create", 200, lambda c: c.create_item(1)),       # a body we parse
    ("/orders/checkout", 200, lambda c: c.checkout("0")),          # a text body we do not read
    ("/orders/checkout", 404, lambda c: c.checkout("0")),          # a refusal
    ("/orders/checkout", 500, lambda c: c.checkout("0")),          # an error
])
def test_an_endless_body_is_read_no_further_than_the_cap(shop, path, status, call):
    with ShopProxy(shop.base_url, Misbehaviour(endless_body_path=path, endless_body_status=status)) as proxy:
        async def go():
            async with ShopClient(target(proxy.urls()), timeout_s=30) as c:
                await call(c)
        with pytest.raises(ContractError) as e:
            run(go())
        sent = proxy.endless_bytes_sent
    message = str(e.value)
    assert f"{proxy.base_url}{path}/" in message and f"answered {status}" in message
    assert "more than 1 MiB" in message and "API.md expects" in message
    # What the target managed to send is the cap plus what socket buffers hold, not what it wanted to.
    assert sent < 32 * MAX_BODY, sent


def test_the_cap_is_a_mebibyte_exactly():
    async def reply(request):
        return web.Response(body=b"x" * int(request.match_info["tail"].rsplit("/", 1)[1]))

    async def go():
        async with serving(reply) as urls, ShopClient(target(urls), timeout_s=30) as c:
            assert (await c.checkout(str(MAX_BODY))).outcome == OK
            await c.checkout(str(MAX_BODY + 1))
    with pytest.raises(ContractError) as e:
        run(go())
    assert f"/orders/checkout/{MAX_BODY + 1} answered 200 with a body of more than 1 MiB" in str(e.value)


def test_a_reply_still_arriving_is_not_called_no_reply(shop):
    # The body never ends, so the timeout always fires; 3 s, not 1, so that the status line has
    # surely come by then, however loaded the machine.
    with ShopProxy(shop.base_url, Misbehaviour(trickle_body_path="/orders/checkout")) as proxy:
        async def go():
            async with ShopClient(target(proxy.urls()), timeout_s=3) as c:
                return await c.checkout("0")
        reply = run(go())
    assert reply.outcome == UNKNOWN and reply.status is None
    assert reply.error == "reply incomplete within 3 s (HTTP 200 came, its body was still arriving)"
    assert unknown_cause(Op(0, "checkout", error=reply.error)) == "timeout"


def test_ids_reach_the_target_as_one_segment_exactly_as_sent():
    seen = []

    async def record(request):
        seen.append(request.raw_path)
        return web.json_response({"stock": 1, "price": 1})

    async def go():
        async with serving(record) as urls, ShopClient(target(urls), timeout_s=5) as c:
            for item_id in ("a/b", "a#b", "a?b", "a%41b", "a%2Fb", "..", ".", "a b", "ü"):
                await c.find_item(item_id)
            await c.add_item("../o", "i/..", 2)
    run(go())
    assert seen == ["/stock/find/a%2Fb", "/stock/find/a%23b", "/stock/find/a%3Fb", "/stock/find/a%2541b",
                    "/stock/find/a%252Fb", "/stock/find/..", "/stock/find/.", "/stock/find/a%20b",
                    "/stock/find/%C3%BC", "/orders/addItem/..%2Fo/i%2F../2"]


def test_a_target_that_accepts_and_never_answers_is_told_apart_on_the_first_request():
    with socket.socket() as hole:  # listening, so connections are accepted by the kernel; never read
        hole.bind(("127.0.0.1", 0))
        hole.listen(16)
        base = f"http://127.0.0.1:{hole.getsockname()[1]}"

        async def go():
            async with ShopClient(target({k: base for k in ("ORDER_URL", "PAYMENT_URL", "STOCK_URL")}),
                                  timeout_s=60) as c:
                with c.first_reply_within(1):
                    await c.create_item(1)
        started = time.monotonic()
        with pytest.raises(TargetUnreachable) as e:
            run(go())
    assert time.monotonic() - started < 30  # the first-reply deadline, not the 60 s timeout
    assert f"{base}/stock/item/create/1: the target accepted the connection but sent nothing within 1 s" \
        in str(e.value)


def test_a_slow_first_reply_is_waited_for(shop):
    with ShopProxy(shop.base_url, Misbehaviour(checkout_delay_s=1.0)) as proxy:
        async def go():
            async with ShopClient(target(proxy.urls()), timeout_s=60) as c:
                with c.first_reply_within(10):
                    return await c.checkout("nope")
        reply = run(go())
    assert reply.outcome == FAIL and reply.status == 404


def test_a_reset_during_set_up_is_not_advised_a_longer_timeout():
    async def hang_up(request):
        request.transport.close()  # the connection dropped before any reply
        await asyncio.sleep(1)

    async def go():
        async with serving(hang_up) as urls:
            async with ShopClient(target(urls), timeout_s=5) as c:
                require_ok(await c.create_item(1), "creating an item")
    with pytest.raises(TargetUnreachable) as e:
        run(go())
    assert "connection was dropped before a reply came" in str(e.value) and "--timeout" not in str(e.value)


def test_a_reply_still_arriving_at_set_up_asks_for_the_whole_reply():
    async def trickle(request):
        resp = web.StreamResponse(status=200)
        await resp.prepare(request)
        for _ in range(40):
            await resp.write(b" ")
            await asyncio.sleep(0.05)
        return resp

    async def go():
        async with serving(trickle) as urls:
            async with ShopClient(target(urls), timeout_s=0.5) as c:
                require_ok(await c.create_item(1), "creating an item")
    with pytest.raises(TargetUnreachable) as e:
        run(go())
    assert "HTTP 200 came" in str(e.value) and "expected the whole reply within --timeout" in str(e.value)
    assert "no reply" not in str(e.value)


def test_a_number_too_long_for_python_is_named_not_called_not_json():
    async def huge(request):
        return web.Response(text='{"item_id": ' + "9" * 5001 + "}", content_type="application/json")

    with pytest.raises(ContractError) as e:
        create_item_against(huge)
    assert "not JSON" not in str(e.value) and "JSON holding a value" in str(e.value)


def test_the_client_asks_only_for_encodings_it_decodes_and_decodes_them():
    import gzip
    import zlib

    asked = []

    async def compressed(request):
        asked.append(request.headers.get("Accept-Encoding"))
        body = b'{"item_id": "7"}'
        how = request.path.rsplit("/", 1)[-1]
        encoded = {"1": gzip.compress(body), "2": zlib.compress(body),
                   "3": zlib.compress(body)[2:-4]}[how]  # 3: deflate sent raw, without its zlib header
        return web.Response(body=encoded, headers={"Content-Encoding": "gzip" if how == "1" else "deflate",
                                                   "Content-Type": "application/json"})

    async def go():
        async with serving(compressed) as urls:
            async with ShopClient(target(urls), timeout_s=5) as c:
                return [await c.create_item(price) for price in (1, 2, 3)]
    replies = run(go())
    assert [r.body["item_id"] for r in replies] == ["7", "7", "7"]
    assert set(asked) == {"gzip, deflate"}


def test_a_compression_bomb_is_read_no_further_than_the_cap_decoded():
    import gzip

    bomb = gzip.compress(b"0" * (64 * MAX_BODY))  # 64 MiB of zeros in some 64 KiB

    async def bombing(request):
        return web.Response(body=bomb, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})

    import tracemalloc

    tracemalloc.start()
    try:
        with pytest.raises(ContractError, match="more than 1 MiB"):
            create_item_against(bombing)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * MAX_BODY, f"{peak / MAX_BODY:.0f} MiB held while reading a 64 MiB bomb"


def test_an_encoding_the_client_did_not_ask_for_is_one_sentence():
    async def brotli(request):
        return web.Response(body=b"\x0b\x02\x80{}\x03", headers={"Content-Encoding": "br"})

    with pytest.raises(ContractError, match="Content-Encoding br, which the client did not ask for"):
        create_item_against(brotli)


def test_another_web_server_at_the_address_is_said_in_one_sentence_without_its_page(wdm, tmp_path, write_urls):
    # Python's own http.server, as a forgotten `python -m http.server 8000` is: POST answers 501 with
    # an HTML error page. Its markup, and advice about --concurrency, would hide what is wrong.
    import http.server
    import threading

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # its log goes to the stderr the test reads
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        r = wdm("consistency", "--urls", str(write_urls(base)), "--runs-dir", str(tmp_path / "runs"))
    finally:
        server.shutdown()
        server.server_close()
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert f"this is not the shop API (an HTML page from {base})" in r.stderr
    assert "HTTP 501: an HTML page (Error response" in r.stderr
    assert "<" not in r.stderr and "--concurrency" not in r.stderr


NGINX_502 = ("<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1>"
             "</center>\r\n<hr><center>nginx/1.25.3</center>\r\n</body>\r\n</html>\r\n")
FLASK_404 = ('<!doctype html>\n<html lang=en>\n<title>404 Not Found</title>\n<h1>Not Found</h1>\n<p>Item: 7 not '
             'found!</p>\n')


@pytest.mark.parametrize("path_status_page, said, not_api", [
    (("/stock/item/create/{price}", 502, NGINX_502), "an HTML page (502 Bad Gateway 502 Bad Gateway nginx/1.25.3)", False),
    (("/stock/find/{item_id}", 404, FLASK_404), "an HTML page (404 Not Found Not Found Item: 7 not found!)", False),
    (("/stock/item/create/{price}", 404, FLASK_404), "an HTML page (404 Not Found Not Found Item: 7 not found!)", True),
    (("/orders/checkout/{order_id}", 405, NGINX_502.replace("502 Bad Gateway", "405 Not Allowed")),
     "an HTML page (405 Not Allowed 405 Not Allowed nginx/1.25.3)", True),
    (("/stock/item/create/{price}", 400, "Not an HTML page: <b>bold</b>"), "Not an HTML page: <b>bold</b>", False),
], ids=["gateway-502", "shop-404-of-a-record", "no-such-route", "method-not-allowed", "text"])
def test_an_html_page_is_said_in_its_words_and_is_not_the_api_only_where_no_shop_answers_so(path_status_page, said,
                                                                                            not_api):
    # The shop's own gateway (nginx's 502) and framework (Flask's abort) answer with pages too: those
    # are the shop's, and only a call no server of the API refuses so says another server is there.
    from wdm_lib.client import Reply, not_the_api

    path, status, page = path_status_page

    async def answer(request):
        return web.Response(status=status, text=page, content_type="text/html")

    async def go():
        async with serving(answer) as urls:
            async with ShopClient(target(urls), timeout_s=5) as c:
                return await c._call("POST", urls["STOCK_URL"], path.replace("{", "").replace("}", ""),
                                     f"POST {path}")
    reply = run(go())
    assert reply.error == f"HTTP {status}: {said}"
    assert not_the_api(reply) is not_api
    with pytest.raises(ContractError) as e:
        require_ok(reply, "doing it", "lower it")
    assert ("this is not the shop API (an HTML page from http://127.0.0.1:" in str(e.value)) is not_api
    assert ("(lower it)" in str(e.value)) is (status >= 500)


def test_a_2xx_html_page_where_json_is_due_is_not_the_shop_api():
    async def spa(request):  # a dev server that answers every path with its app's page
        return web.Response(text="<!DOCTYPE html><html><head><title>My App</title></head><body></body></html>",
                            content_type="text/html")

    with pytest.raises(ContractError) as e:
        create_item_against(spa)
    assert "answered 200 with an HTML page (My App): this is not the shop API (an HTML page from http://127.0.0.1:" \
        in str(e.value) and "<" not in str(e.value)

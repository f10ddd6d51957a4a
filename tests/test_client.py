"""The client's outcome classification and contract checks, against the reference shop and a
proxy that breaks the API."""

import asyncio

import pytest

from shop_proxy import Misbehaviour, ShopProxy, free_port
from wdm_lib.client import ShopClient
from wdm_lib.history import FAIL, OK, UNKNOWN
from wdm_lib.config import parse_urls
from wdm_lib.errors import ContractError
from wdm_lib.reference.process import ReferenceShopProcess


@pytest.fixture(scope="module")
def shop():
    with ReferenceShopProcess() as s:
        yield s


def target(urls: dict):
    return parse_urls(urls, "test")


def run(coro):
    return asyncio.run(coro)


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


def test_5xx_is_unknown_and_a_refused_connection_is_a_definite_failure(shop):
    with ShopProxy(shop.base_url, Misbehaviour(checkout_503_every=1)) as proxy:
        async def go():
            async with ShopClient(target(proxy.urls()), timeout_s=5) as c:
                reply = await c.checkout("0")
                assert reply.outcome == UNKNOWN and reply.status == 503
        run(go())
    port = free_port()

    async def refused():
        async with ShopClient(target({k: f"http://127.0.0.1:{port}" for k in
                                      ("ORDER_URL", "PAYMENT_URL", "STOCK_URL")}), timeout_s=5) as c:
            reply = await c.checkout("0")
            assert reply.outcome == FAIL and reply.status is None and reply.error.startswith("cannot connect")
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
    assert "answered 200" in message and "<html>oops</html>" in message and "item_id" in message


def test_queueing_behind_the_connection_limit_does_not_count_against_the_timeout(shop):
    # Three checkouts of 0.3 s each, one connection: the last waits 0.6 s for its slot, yet none
    # of them exceeds a 0.5 s timeout, because the clock starts when the request is sent.
    with ShopProxy(shop.base_url, Misbehaviour(checkout_delay_s=0.3)) as proxy:
        async def go():
            async with ShopClient(target(proxy.urls()), timeout_s=0.5, connections=1) as c:
                return await asyncio.gather(*(c.checkout("nope") for _ in range(3)))
        replies = run(go())
    assert [r.outcome for r in replies] == [FAIL, FAIL, FAIL]
    assert all(r.latency_s < 0.5 for r in replies)

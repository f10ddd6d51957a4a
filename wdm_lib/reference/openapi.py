"""The OpenAPI 3 description of the reference shop, served at GET /openapi.json.

Written out by hand from API.md rather than generated from the routes, so that the test comparing
the two catches a route added or renamed on one side only.
"""

from __future__ import annotations

from wdm_lib.reference.store import MAX_BATCH, MAX_VALUE

_TEXT = {"text/plain": {"schema": {"type": "string"}}}


def _json(properties: dict, required: list[str] | None = None) -> dict:
    return {"application/json": {"schema": {
        "type": "object", "properties": properties, "required": required or list(properties)}}}


# The shop's real limits, so a client (or schemathesis) knows which numbers it accepts.
_INT = {"type": "integer", "minimum": 0, "maximum": MAX_VALUE}
_BATCH = {"type": "integer", "minimum": 0, "maximum": MAX_BATCH}
_HALF = {"type": "integer", "minimum": 0, "maximum": MAX_VALUE // 2}  # a batch order costs 2 * item_price
_COUNT = {"type": "integer", "minimum": 1, "maximum": MAX_VALUE}
_STR = {"type": "string"}
_MSG = _json({"msg": _STR})

_REFUSALS = {
    "400": {"description": "bad input (a number that is not a non-negative integer); nothing changed",
            "content": _TEXT},
    "404": {"description": "unknown id; nothing changed", "content": _TEXT},
    "409": {"description": "not enough stock or credit; nothing changed", "content": _TEXT},
}


def _op(summary: str, ok: dict, params: dict[str, dict], refusals: tuple[str, ...] = ("400", "404")) -> dict:
    return {
        "summary": summary,
        "parameters": [{"name": name, "in": "path", "required": True, "schema": schema}
                       for name, schema in params.items()],
        "responses": {"200": {"description": "done", "content": ok},
                      **{code: _REFUSALS[code] for code in refusals}},
    }


_ORDER = _json({"order_id": _STR, "paid": {"type": "boolean"},
                "items": {"type": "array", "items": {"type": "array", "minItems": 2, "maxItems": 2,
                                                     "items": {"oneOf": [_STR, _INT]}}},
                "user_id": _STR, "total_cost": _INT})

SPEC: dict = {
    "openapi": "3.0.3",
    "info": {"title": "wdm reference shop", "version": "1.0",
             "description": "Order, stock and payment services of the course template on one port. "
                            "2xx: done; 4xx: refused and nothing changed; anything else: unknown."},
    "paths": {
        "/stock/item/create/{price}": {"post": _op(
            "create an item with stock 0", _json({"item_id": _STR}), {"price": _INT}, ("400",))},
        "/stock/batch_init/{n}/{starting_stock}/{item_price}": {"post": _op(
            "items '0'..'n-1' with that stock and price, replacing them if present", _MSG,
            {"n": _BATCH, "starting_stock": _INT, "item_price": _INT}, ("400",))},
        "/stock/find/{item_id}": {"get": _op(
            "an item's stock and price", _json({"stock": _INT, "price": _INT}), {"item_id": _STR},
            ("404",))},
        "/stock/add/{item_id}/{amount}": {"post": _op(
            "add stock", _TEXT, {"item_id": _STR, "amount": _INT}, ("400", "404", "409"))},
        "/stock/subtract/{item_id}/{amount}": {"post": _op(
            "subtract stock, refused if it would go below 0", _TEXT,
            {"item_id": _STR, "amount": _INT}, ("400", "404", "409"))},
        "/payment/create_user": {"post": _op(
            "create a user with credit 0", _json({"user_id": _STR}), {}, ())},
        "/payment/batch_init/{n}/{starting_money}": {"post": _op(
            "users '0'..'n-1' with that credit, replacing them if present", _MSG,
            {"n": _BATCH, "starting_money": _INT}, ("400",))},
        "/payment/find_user/{user_id}": {"get": _op(
            "a user's credit", _json({"user_id": _STR, "credit": _INT}), {"user_id": _STR}, ("404",))},
        "/payment/add_funds/{user_id}/{amount}": {"post": _op(
            "add credit", _TEXT, {"user_id": _STR, "amount": _INT}, ("400", "404", "409"))},
        "/payment/pay/{user_id}/{amount}": {"post": _op(
            "subtract credit, refused if it would go below 0", _TEXT,
            {"user_id": _STR, "amount": _INT}, ("400", "404", "409"))},
        "/orders/create/{user_id}": {"post": _op(
            "an empty, unpaid order for an existing user", _json({"order_id": _STR}),
            {"user_id": _STR}, ("404",))},
        "/orders/batch_init/{n}/{n_items}/{n_users}/{item_price}": {"post": _op(
            "orders '0'..'n-1', each for a random user of 0..n_users-1 with two random items of "
            "0..n_items-1, quantity 1, total_cost 2*item_price, unpaid", _MSG,
            {"n": _BATCH, "n_items": _COUNT, "n_users": _COUNT, "item_price": _HALF}, ("400",))},
        "/orders/find/{order_id}": {"get": _op("an order", _ORDER, {"order_id": _STR}, ("404",))},
        "/orders/addItem/{order_id}/{item_id}/{quantity}": {"post": _op(
            "add an item at its current price: total_cost += quantity * price", _TEXT,
            {"order_id": _STR, "item_id": _STR, "quantity": _INT}, ("400", "404", "409"))},
        "/orders/checkout/{order_id}": {"post": _op(
            "subtract every item's stock and charge total_cost to the user, all or nothing; "
            "an order already paid is charged again", _TEXT, {"order_id": _STR}, ("404", "409"))},
        "/openapi.json": {"get": _op("this description", {"application/json": {"schema": {
            "type": "object"}}}, {}, ())},
    },
}

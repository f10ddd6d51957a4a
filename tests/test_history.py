"""The history read back (history.read_ops): every row as it was written, in rows that share what
they repeat, so millions of them fit beside the checkers."""

import json

import pytest

from wdm_lib.client import Reply
from wdm_lib.history import (ADD_FUNDS, ADD_STOCK, CHECKOUT, COLUMNS, FAULT, FIND_ITEM, NO_FAULT, OK, UNKNOWN,
                             HistoryWriter, read_ops)

T = 1_700_000_000 * 10**9


def _reply(outcome, status, sent, answered, error=""):
    return Reply("endpoint", "http://shop", outcome, status, T + sent, T + answered, error=error)


def _written(tmp_path):
    """A history of every kind of row, as a run writes it."""
    path = tmp_path / "history.csv"
    with HistoryWriter(path) as history:
        history.record(ADD_STOCK, _reply(OK, 200, 1, 2), items=[["item-7", 5]], amount=5)
        history.record(CHECKOUT, _reply(UNKNOWN, 503, 3, 9), order_id="o1", user_id="u1",
                       items=[["item-7", 2], ["item-8", 1], ["item-7", 2]], amount=1234, intended_ns=T)
        history.record(FIND_ITEM, _reply(OK, 200, 4, 5), items=[["item-7", 0]], amount=1003)
        history.record(FIND_ITEM, _reply(OK, 200, 6, 7), items=[["item-7", 0]], amount=1003)
        history.record(FIND_ITEM, _reply(UNKNOWN, None, 6, 8, "no reply within 5 s"), items=[["item-8", 0]])
        history.record(ADD_FUNDS, _reply(OK, 200, 8, 9), user_id="u1", amount=1003)
        history.record_fault("kill-stock", "inject", "docker compose kill stock", T + 10, T + 11, T + 12, 0, OK)
        history.record("interrupted", None, error="stopped by the user")
    return path


def test_every_row_reads_back_as_it_was_written(tmp_path):
    path = _written(tmp_path)
    ops = read_ops(path)
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()[1:]
    assert len(ops) == len(lines) == 8
    import csv
    for op, row in zip(ops, csv.reader(lines)):
        written = dict(zip(COLUMNS, row))
        assert [op.op_id, op.kind, op.order_id, op.user_id, op.outcome, op.error] == [
            int(written["op_id"]), written["kind"], written["order_id"], written["user_id"], written["outcome"],
            written["error"]]
        assert json.loads(json.dumps(op.items)) == json.loads(written["items"])
        assert op.amount == (int(written["amount"]) if written["amount"] else None)
        assert op.status == (int(written["status"]) if written["status"] else None)
        assert (op.intended_ns, op.invoke_ns, op.complete_ns) == tuple(
            int(written[c]) for c in ("intended_ns", "invoke_ns", "complete_ns"))
        assert op.fault == (json.loads(written["fault"]) if written["fault"] else {})
    checkout = ops[1]
    assert checkout.items[0] == ("item-7", 2) and len(checkout.items) == 3    # both lines of one item kept
    assert (checkout.intended_ns, checkout.invoke_ns) == (T, T + 3)           # the schedule's moment, apart
    assert ops[6].kind == FAULT and ops[6].fault == {"name": "kill-stock", "step": "inject",
                                                     "what": "docker compose kill stock"}
    assert ops[7].kind == "interrupted" and ops[7].error == "stopped by the user" and ops[7].status is None


def test_rows_share_what_they_repeat_and_what_they_share_cannot_be_changed(tmp_path):
    ops = read_ops(_written(tmp_path))
    first_read, second_read = ops[2], ops[3]
    assert first_read.items is second_read.items                            # one line, read once
    assert ops[0].items[0][0] is ops[1].items[0][0] is first_read.items[0][0]  # one string per id
    assert first_read.amount is second_read.amount is ops[5].amount         # 1003, one int
    assert ops[1].user_id is ops[5].user_id and first_read.kind is second_read.kind
    assert first_read.fault is NO_FAULT and not first_read.fault and first_read.fault.get("name") is None
    assert json.dumps(first_read.fault) == "{}"
    with pytest.raises(TypeError):
        first_read.fault["name"] = "changed"
    with pytest.raises(TypeError):
        first_read.fault.update(name="changed")
    assert NO_FAULT == {} and ops[6].fault is not NO_FAULT
    with pytest.raises(TypeError):
        first_read.items[0][1] = 5   # a line read back is a tuple: no row can change another's


def test_a_torn_last_row_and_rows_that_are_no_rows_are_skipped(tmp_path):
    path = _written(tmp_path)
    whole = path.read_text(encoding="utf-8")
    header, *rows = whole.splitlines(keepends=True)
    garbled = rows[0].replace("0,add_stock", "zero,add_stock", 1)
    path.write_text(header + garbled + "\n" + "".join(rows[1:]) + rows[1][:40], encoding="utf-8")
    ops = read_ops(path)
    assert [op.op_id for op in ops] == list(range(1, 8))
    # A history written before faults were rows (no `fault` column) reads as rows without a fault step.
    old = tmp_path / "old.csv"
    old.write_text("".join(line.rsplit(",", 1)[0] + "\n" for line in whole.splitlines()[:3]), encoding="utf-8")
    assert [(op.op_id, op.fault) for op in read_ops(old)] == [(0, {}), (1, {})]
    # One without a column every row needs has no complete row.
    (tmp_path / "no-kind.csv").write_text(whole.replace("op_id,kind,", "op_id,sort,", 1), encoding="utf-8")
    assert read_ops(tmp_path / "no-kind.csv") == []


@pytest.mark.parametrize("items", ['[["item-7", 2, 9]]', '[["item-7", "2"]]', '[["item-7", 2.5]]', '{"item-7": 2}',
                                   '[["item-7"]]', '[[["item-7"], 2]]'])
def test_a_row_whose_lines_are_no_item_and_quantity_pairs_is_skipped_like_any_damaged_row(tmp_path, items):
    # Someone else's run folder: a row edited to hold lines no run writes would crash the checkers
    # that add quantities up (a three-element line did). It is skipped, like a row whose numbers are
    # not numbers; every other row reads back.
    path = _written(tmp_path)
    header, *rows = path.read_text(encoding="utf-8").splitlines(keepends=True)
    damaged = rows[1].replace('"[[""item-7"", 2], [""item-8"", 1], [""item-7"", 2]]"', json.dumps(
        items.replace('"', '""')).replace('\\"', '"'), 1)
    assert damaged != rows[1]
    path.write_text(header + rows[0] + damaged + "".join(rows[2:]), encoding="utf-8")
    assert [op.op_id for op in read_ops(path)] == [0] + list(range(2, 8))

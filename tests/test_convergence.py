"""The convergence timeline on hand-made passes: when the state became consistent, and whether a
late change broke it again."""

from wdm_lib.convergence import point, regression, time_to_consistency


def passes(*valid, step=0.5):
    return [point(i * step, True, v, {} if v else {"stock-mismatch": 1}) for i, v in enumerate(valid)]


def test_consistent_from_the_first_read():
    p = passes(True, True, True)
    assert time_to_consistency(p) == 0.0 and regression(p) is None


def test_reads_that_lag_converge_later():
    p = passes(False, False, True, True)
    assert time_to_consistency(p) == 1.0 and regression(p) is None


def test_a_late_compensation_is_a_regression():
    p = passes(True, True, False, False)
    assert time_to_consistency(p) is None
    assert regression(p) == (0.0, 1.0)


def test_consistency_counts_from_the_last_time_it_was_reached():
    # The invalid pass held (the next one read the same state) before the system set it right.
    p = passes(True, False, True, True)
    p[2]["changed"] = False
    p[2]["valid"] = False
    assert time_to_consistency(p) == 1.5 and regression(p) == (0.0, 0.5)


def test_a_value_that_went_and_came_back_is_a_regression():
    # A reader flapping to a stale copy: the pass after the wrong one shows a record as it was before.
    p = passes(True, False, True, True)
    p[2]["reverted"] = True
    assert time_to_consistency(p) == 1.0 and regression(p) == (0.0, 0.5)


def test_a_pass_read_torn_while_the_system_moves_on_is_no_regression():
    # A correct queue still at work: one pass read half before one of its steps, the next moved on.
    p = passes(True, False, True, True)
    assert time_to_consistency(p) == 1.0 and regression(p) is None


def test_never_consistent():
    p = passes(False, False)
    assert time_to_consistency(p) is None and regression(p) is None

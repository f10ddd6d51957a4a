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
    p = passes(True, False, True, True)
    assert time_to_consistency(p) == 1.0 and regression(p) == (0.0, 0.5)


def test_never_consistent():
    p = passes(False, False)
    assert time_to_consistency(p) is None and regression(p) is None

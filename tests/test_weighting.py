import pytest

from keras_anytime import weighting


def test_const():
    assert weighting.const(4) == [1.0, 1.0, 1.0, 1.0]


def test_linear():
    assert weighting.linear(4) == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert weighting.linear(3, low=0.0, high=2.0) == pytest.approx([0.0, 1.0, 2.0])


def test_half_end():
    assert weighting.half_end(5) == pytest.approx([0.25, 0.25, 0.25, 0.25, 1.0])
    assert weighting.half_end(1) == [1.0]


def test_sieve_by_hand():
    # K = 8, counting back from the deepest (j = 0 is the last exit):
    # step 1 adds 1 everywhere; step 2 adds 1 at j = 0, 2, 4, 6; step 4 at j = 0, 4.
    # back = [3, 1, 2, 1, 3, 1, 2, 1]; the deepest gets the sum of the others: 11.
    back = [11, 1, 2, 1, 3, 1, 2, 1]
    # The weights sum to the number of passes (3), as the authors' code scales them.
    scale = 3 / sum(back)
    assert weighting.sieve(8) == pytest.approx([w * scale for w in reversed(back)])
    assert sum(weighting.sieve(8)) == pytest.approx(3.0)
    assert sum(weighting.sieve(9)) == pytest.approx(4.0)  # ceil(log2 9), not log2(10)


def test_sieve_small():
    # K = 3: step 1 -> [1, 1, 1]; step 2 -> j = 0, 2 -> [2, 1, 2]; deepest = 3.
    scale = 2.0 / 6.0
    assert weighting.sieve(3) == pytest.approx([2 * scale, 1 * scale, 3 * scale])


def test_opt_counts_from_one():
    assert weighting.opt(4, 2) == [0.0, 1.0, 0.0, 0.0]
    assert weighting.opt(4, -1) == [0.0, 0.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="1..4"):
        weighting.opt(4, 0)
    with pytest.raises(ValueError, match="1..4"):
        weighting.opt(4, 5)


def test_bad_k():
    with pytest.raises(ValueError, match="integer >= 1"):
        weighting.const(0)


def test_relative_error_increase_over_opt():
    from keras_anytime.evaluation import relative_error_increase

    assert relative_error_increase([0.2, 0.11], [0.1, 0.1]) == pytest.approx([100.0, 10.0])
    with pytest.raises(ValueError, match="2 errors and 1 OPT"):
        relative_error_increase([0.2, 0.1], [0.1])

"""Paired ratios on a fake clock: every expected number is worked out by hand here."""

import math

import pytest

from gradbench.pairing import (
    MAX_BURST,
    Pairs,
    burst_size,
    median_interval,
    order_statistic_rank,
    round_ratios,
)


class FakeClock:
    """A clock that only moves when a fake call says how long it took."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def brackets(self, seconds, burst=1, cold=100.0):
        """A denominator whose calls take each of ``seconds`` in turn, ``burst`` to a
        bracket, each bracket after a first, untimed call that takes ``cold``."""
        timed, calls = iter(seconds), 0

        def call():
            nonlocal calls
            self.now += cold if calls % (burst + 1) == 0 else next(timed)
            calls += 1

        return call


@pytest.mark.parametrize(
    ("n", "rank"),
    [
        (5, None),  # [min, max] covers with 1 − 2/32 = 93.75 % < 95 %
        (6, 1),  # 1 − 2/64 = 96.9 %
        (10, 2),  # P(Bin ≤ 1) = 11/1024: 97.9 %; P(Bin ≤ 2) = 56/1024: 89 %
        (20, 6),  # P(Bin(20) ≤ 5) = 21700/2^20 = 0.0207 → 95.9 %; ≤ 6: 0.0577 → 88 %
    ],
)
def test_order_statistic_rank_from_the_binomial(n, rank):
    assert order_statistic_rank(n) == rank


def test_median_interval_picks_order_statistics():
    values = [10, 1, 9, 2, 8, 3, 7, 4, 6, 5]  # sorted 1..10; rank 2 → x(2)=2, x(9)=9
    assert median_interval(values) == (5.5, 2.0, 9.0)


def test_median_interval_too_few_values_has_no_bounds():
    median, lo, hi = median_interval([3.0, 1.0, 2.0])
    assert median == 2.0 and math.isnan(lo) and math.isnan(hi)


def test_round_ratio_uses_the_smaller_bracket():
    ratios = round_ratios([6.0, 9.0], [2.0, 3.0, 4.0])  # 6/min(2,3), 9/min(3,4)
    assert ratios.tolist() == [3.0, 3.0]
    with pytest.raises(ValueError, match="3 brackets"):
        round_ratios([1.0, 2.0], [1.0, 2.0])


def test_one_disturbed_call_spoils_no_ratio():
    """A 50× slower forward call (another process took the core) between rounds 2 and 3:
    with the mean of the brackets, two of six ratios would drop to 3/25.5."""
    ratios = round_ratios([3.0] * 6, [1.0, 1.0, 50.0, 1.0, 1.0, 1.0, 1.0])
    assert ratios.tolist() == [3.0] * 6


def test_pairs_follow_a_drift_round_by_round():
    """The machine slows down 4× during the cell; the method (1.5 units) and its bracketing
    forward (0.5) and backprop (1.0) calls slow down together. Forward calls before each
    round and after the last take 0.5·[1, 1, 2, 2, 4, 4, 4]; the smaller of each round's
    two brackets is [0.5, 0.5, 1, 1, 2, 2], and the method's rounds take
    [1.5, 1.5, 3, 3, 6, 6]: every ratio is 3, where blocks timed apart would give
    3 × whatever the drift was in between."""
    clock = FakeClock()
    slowdown = [1.0, 1.0, 2.0, 2.0, 4.0, 4.0, 4.0]
    forward = clock.brackets([0.5 * s for s in slowdown])
    backprop = clock.brackets([1.0 * s for s in slowdown])
    pairs = Pairs({"forward": forward, "backprop": backprop}, clock=clock)
    for _ in slowdown:
        pairs.tick()
    pairs.close([1.5, 1.5, 3.0, 3.0, 6.0, 6.0])
    row = pairs.summary()
    assert row["pairs"] == 6
    assert row["ratio_to_forward"] == pytest.approx(3.0)
    assert row["ratio_to_forward_lo"] == pytest.approx(3.0)
    assert row["ratio_to_forward_hi"] == pytest.approx(3.0)
    assert row["ratio_to_backprop"] == pytest.approx(1.5)
    assert row["forward_time_s"] == pytest.approx(1.0)  # median of the 7 forward calls
    assert pairs.raw()["forward_times_s"] == pytest.approx([0.5, 0.5, 1, 1, 2, 2, 2])


def test_pairs_interval_from_uneven_rounds():
    """Steady 1 s forward calls, rounds of 1..10 s (n = 10: rank 2): median 5.5, [2, 9]."""
    clock = FakeClock()
    pairs = Pairs({"forward": clock.brackets([1.0] * 11)}, clock=clock)
    for _ in range(11):
        pairs.tick()
    pairs.close([10, 1, 9, 2, 8, 3, 7, 4, 6, 5])
    row = pairs.summary()
    assert (row["ratio_to_forward"], row["ratio_to_forward_lo"], row["ratio_to_forward_hi"]) == (
        5.5, 2.0, 9.0,
    )  # fmt: skip


def test_pairs_with_a_steady_clock_give_the_exact_ratio():
    clock = FakeClock()
    pairs = Pairs({"forward": clock.brackets([2e-5] * 11)}, clock=clock)
    for _ in range(11):
        pairs.tick()
    pairs.close([6e-5] * 10)
    row = pairs.summary()
    assert row["ratio_to_forward"] == pytest.approx(3.0)
    assert row["ratio_to_forward_lo"] == pytest.approx(3.0)
    assert row["ratio_to_forward_hi"] == pytest.approx(3.0)


def test_median_interval_of_nothing_is_nan():
    assert all(math.isnan(v) for v in median_interval([]))


def test_median_interval_of_one_value_is_that_value_without_bounds():
    median, lo, hi = median_interval([4.0])
    assert median == 4.0 and math.isnan(lo) and math.isnan(hi)


def test_median_interval_at_another_confidence():
    """n = 10 at 50 %: 2·P(Bin(10, ½) ≤ 3) = 2·176/1024 = 0.34 ≤ 0.5, and ≤ 4 gives
    2·386/1024 = 0.75: rank 4, so [x(4), x(7)] = [4, 7]. n = 2: [min, max] covers the
    median with 1 − 2·¼ = 50 %, exactly enough."""
    assert order_statistic_rank(10, 0.5) == 4
    assert order_statistic_rank(2, 0.5) == 1
    assert median_interval(range(1, 11), confidence=0.5) == (5.5, 4.0, 7.0)


def test_round_ratios_refuse_unbracketed_rounds_in_one_line():
    with pytest.raises(ValueError, match=r"^2 rounds need 3 brackets, got 2$"):
        round_ratios([1.0, 2.0], [1.0, 2.0])


def test_raw_times_are_kept_to_the_nanosecond():
    clock = FakeClock()
    pairs = Pairs({"forward": clock.brackets([0.1234567891234, 2.0])}, clock=clock)
    pairs.tick()
    pairs.tick()
    pairs.close([1.0])
    assert pairs.raw() == {"forward_times_s": [0.123456789, 2.0], "forward_burst": 1}


def test_passes_pool_their_rounds_and_each_pass_is_bracketed_on_its_own():
    """Two passes minutes apart, the machine 2× slower in the second: pass 1 has forward
    calls of 1 s around rounds of 3 s (ratio 3), pass 2 calls of 2 s around rounds of 8 s
    (ratio 4). Pooled: six ratios [3, 3, 3, 4, 4, 4], median 3.5, and the last pass's
    calls alone go to its raw record. Bracketing across the passes would pair pass 1's
    last round with pass 2's first call."""
    clock = FakeClock()
    pairs = Pairs({"forward": clock.brackets([1.0] * 4 + [2.0] * 4)}, clock=clock)
    for _ in range(4):
        pairs.tick()
    pairs.close([3.0] * 3)
    assert pairs.summary()["ratio_to_forward"] == 3.0
    for _ in range(4):
        pairs.tick()
    pairs.close([8.0] * 3)
    row = pairs.summary()
    assert (row["pairs"], row["ratio_to_forward"], row["forward_time_s"]) == (6, 3.5, 1.5)
    assert sorted(pairs.ratios["forward"]) == [3.0] * 3 + [4.0] * 3
    assert pairs.raw() == {"forward_times_s": [2.0] * 4, "forward_burst": 1}


def test_a_pass_needs_one_bracket_more_than_its_rounds():
    clock = FakeClock()
    pairs = Pairs({"forward": clock.brackets([1.0] * 3)}, clock=clock)
    for _ in range(3):
        pairs.tick()
    with pytest.raises(ValueError, match=r"^3 rounds need 4 brackets, got 3$"):
        pairs.close([1.0] * 3)


@pytest.mark.parametrize(
    ("round_s", "call_s", "size"),
    [
        (3e-4, 1e-4, 1),  # a round of three calls: one call brackets it
        (8e-3, 2e-4, 4),  # 10 % of 8 ms is 0.8 ms: four calls of 0.2 ms
        (1.2, 3e-4, MAX_BURST),  # 400 would fit; the burst stops at MAX_BURST
        (1.0, 0.0, 1),  # no time known for the call: one
    ],
)
def test_burst_fills_a_tenth_of_a_round(round_s, call_s, size):
    assert burst_size(round_s, call_s) == size


def test_a_bracket_leaves_out_its_cold_call_and_takes_its_bursts_median():
    """Each bracket's first call, right after a round, is cold (100 units) and not timed;
    then a burst of three: 1.2, 1 and a disturbed 9. Rounds of 30: every ratio is
    30 / 1.2 = 25. The cold call would have given 0.3, the disturbed one 3.3."""
    clock = FakeClock()
    forward = clock.brackets([1.2, 1.0, 9.0] * 3, burst=3)
    pairs = Pairs({"forward": forward}, clock=clock, bursts={"forward": 3})
    for _ in range(3):
        pairs.tick()
    pairs.close([30.0, 30.0])
    assert pairs.summary()["ratio_to_forward"] == pytest.approx(25.0)
    assert pairs.raw() == {"forward_times_s": [1.2] * 3, "forward_burst": 3}

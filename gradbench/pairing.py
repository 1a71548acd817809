"""Paired ratios: a method's time over a reference's, measured round by round in one cell.

Two quantities timed minutes apart on a shared machine disagree by up to 2.7× from run to
run; timed alternately, call by call, they agree within a few percent. So every ratio is
formed inside one cell: before each timed round of the method, and once after the last,
each denominator (the forward pass, backprop, the matmul floor) is timed in a *bracket*.
Round i of the method, taking tᵢ, lies between the denominator's brackets dᵢ (before) and
dᵢ₊₁ (after), and its ratio is

    rᵢ = tᵢ / min(dᵢ, dᵢ₊₁),

which follows any drift slower than one round. The smaller of the two brackets, not their
mean: interference on a shared machine only ever adds time, so the smaller is the better
estimate of the undisturbed call, and one disturbed call (measured: 30 ms where 0.1 ms is
usual) spoils no ratio instead of two. The cell's ratio is the median of the rᵢ, with a
distribution-free 95 % interval for that median (:func:`median_interval`).

A bracket times a *warm* call, the unit a ratio counts in. Its first call, right after a
round, runs in the caches (and beside the threads) that round left behind and is not timed:
after a JAX or PyTorch gradient, a forward pass was measured 2–4× slower than the next
(320 against 97 µs at N=16, L=2). The calls after it form a *burst*: one where the
denominator is about as long as the round, more where it is much shorter, up to
``BURST_SHARE`` of a round and at most ``MAX_BURST`` (:func:`burst_size`); dᵢ is the
burst's median. Single calls beside a 1 s per-weight gradient ranged over 257–834 µs for
one forward pass. Likewise a fast method's round follows one untimed call of the method
(the sweep's ``Pending.setup``): a JAX gradient's first call after the brackets took
1.4–2× its warm time.

A cell may be timed in several *passes*, minutes apart (the sweep's ``passes``): each pass
is bracketed on its own, and the cell's ratio pools the rᵢ of every pass. On a shared
machine the speed of a small forward pass relative to a large batched one shifts for
seconds to minutes at a time, so a cell timed in one stretch carries the ratio of that
moment; rounds spread over the run carry the run's.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np
from scipy.stats import binom

CONFIDENCE = 0.95
BURST_SHARE = 0.1  # a bracket's burst lasts at most this share of the method's round
MAX_BURST = 25  # calls in one burst at most (an odd count: its median is one call)


def order_statistic_rank(n: int, confidence: float = CONFIDENCE) -> int | None:
    """The largest j (1-based) such that ``[x₍ⱼ₎, x₍ₙ₊₁₋ⱼ₎]`` covers the median with
    probability ≥ ``confidence`` for any continuous distribution:

        P(x₍ⱼ₎ ≤ m ≤ x₍ₙ₊₁₋ⱼ₎) = 1 − 2·P(Bin(n, ½) ≤ j − 1).

    None when even ``[min, max]`` falls short (n < 6 for 95 %: 1 − 2/2⁶⁻¹ < 0.95 at n = 5).
    """
    ranks = np.arange(n // 2)  # candidate j − 1; the tail probability grows with it
    j = int(np.count_nonzero(2 * binom.cdf(ranks, n, 0.5) <= 1.0 - confidence))
    return j or None


def median_interval(
    values: Sequence[float], confidence: float = CONFIDENCE
) -> tuple[float, float, float]:
    """(median, lo, hi) of ``values``; the bounds are order statistics
    (:func:`order_statistic_rank`), NaN when there are too few values for ``confidence``."""
    x = np.sort(np.asarray(values, dtype=float))
    if x.size == 0:
        return math.nan, math.nan, math.nan
    j = order_statistic_rank(x.size, confidence)
    median = float(np.median(x))
    if j is None:
        return median, math.nan, math.nan
    return median, float(x[j - 1]), float(x[x.size - j])


def burst_size(round_s: float, call_s: float) -> int:
    """Calls in one bracket: as many as fit in ``BURST_SHARE`` of a round of ``round_s``
    seconds at ``call_s`` each, between 1 and ``MAX_BURST``."""
    if not call_s > 0:
        return 1
    return int(min(MAX_BURST, max(1, BURST_SHARE * round_s // call_s)))


def round_ratios(times: Sequence[float], denominators: Sequence[float]) -> np.ndarray:
    """rᵢ = tᵢ / min(dᵢ, dᵢ₊₁): ``denominators`` has one more entry than ``times``
    (a bracket before every round and one after the last)."""
    t, d = np.asarray(times, dtype=float), np.asarray(denominators, dtype=float)
    if d.size != t.size + 1:
        raise ValueError(f"{t.size} rounds need {t.size + 1} brackets, got {d.size}")
    return t / np.minimum(d[:-1], d[1:])


class Pairs:
    """Times each denominator's bracket (an untimed call, then the median of a burst of
    ``bursts[name]`` timed ones) per call of :meth:`tick`: ``tick`` is the untimed ``setup``
    before every round of pytest-benchmark's ``pedantic``, and once more after the last
    round; :meth:`close` then ends the pass with the method's round times. Passes pool:
    :meth:`summary` covers every closed pass. ``clock`` is ``time.perf_counter`` (a fake
    one in tests)."""

    def __init__(
        self,
        denominators: dict[str, Callable[[], object]],
        clock: Callable[[], float] = time.perf_counter,
        bursts: dict[str, int] | None = None,
    ) -> None:
        self.denominators = denominators
        self.clock = clock
        self.bursts = {name: (bursts or {}).get(name, 1) for name in denominators}
        self.times = self._empty()  # this pass's brackets
        self.last_pass = self._empty()  # the brackets of the pass closed last
        self.brackets = self._empty()  # every closed pass's brackets
        self.ratios = self._empty()  # every closed pass's rᵢ
        self.round_times: list[float] = []

    def _empty(self) -> dict[str, list[float]]:
        return {name: [] for name in self.denominators}

    def tick(self) -> None:
        for name, call in self.denominators.items():
            call()  # in the state the round left: not timed
            burst = []
            for _ in range(self.bursts[name]):
                t0 = self.clock()
                call()
                burst.append(self.clock() - t0)
            self.times[name].append(statistics.median(burst))  # 0.5 µs; np.median: 35 µs

    def close(self, round_times: Sequence[float]) -> None:
        """End a pass: pair its rounds (one fewer than its ticks) with their brackets."""
        for name, times in self.times.items():
            self.ratios[name].extend(round_ratios(round_times, times))
            self.brackets[name].extend(times)
        self.round_times.extend(round_times)
        self.last_pass, self.times = self.times, self._empty()

    def summary(self) -> dict:
        """The columns ``ratio_to_<name>``, ``…_lo``, ``…_hi`` and ``<name>_time_s`` (the
        denominator's median) for each denominator, and ``pairs``, over every closed pass."""
        row: dict = {"pairs": len(self.round_times)}
        for name, ratios in self.ratios.items():
            ratio, lo, hi = median_interval(ratios)
            row |= {
                f"ratio_to_{name}": ratio,
                f"ratio_to_{name}_lo": lo,
                f"ratio_to_{name}_hi": hi,
                f"{name}_time_s": float(np.median(self.brackets[name])),
            }
        return row

    def raw(self) -> dict[str, list[float] | int]:
        """The bracket times of the pass closed last and each burst's size, for
        pytest-benchmark's ``extra_info`` beside that pass's rounds (to the nanosecond:
        perf_counter's resolution, and a smaller raw file)."""
        out: dict[str, list[float] | int] = {}
        for name, times in self.last_pass.items():
            out[f"{name}_times_s"] = [round(t, 9) for t in times]
            out[f"{name}_burst"] = self.bursts[name]
        return out

"""The gate's statistics: Holm's step-down, the one-sided prediction p-value and bound of one new
draw, and the power of a two-sample t-test with the seeds per side it needs (:func:`seeds_needed`)."""

from __future__ import annotations

import math
from typing import Sequence

#: Family-wise error rate of the noise-calibrated rule (Holm across all gated metrics); the per-metric
#: level of the fixed rule's Welch test.
ALPHA = 0.05
#: The noise-calibrated rule needs this many baseline seeds (with 2, s has one degree of freedom and
#: t_{1, 1-0.05/130} is about 830: no useful bound); fewer seeds fall back to the fixed rule.
MIN_CALIBRATION_SEEDS = 3
#: Power that :func:`seeds_needed` and the ``--detect`` report plan for.
POWER = 0.8
#: Largest number of seeds per side :func:`seeds_needed` looks at.
MAX_SEEDS = 1000


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (same order as given): a hypothesis is rejected at
    family-wise level a when its adjusted p < a. Controls the family-wise error rate under any
    dependence between the tests."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def prediction_pvalue(x: float, base: Sequence[float], higher_is_better: bool) -> float:
    """One-sided p that one new draw of the baseline's seed distribution lies at ``x`` or beyond in
    the bad direction: ``T = (x - mean) / (s * sqrt(1 + 1/n))`` has a t distribution with n - 1 dof
    when x and the n baseline values are independent draws of one normal distribution. With no
    spread (s = 0): 0 when x moved the bad way, 1 otherwise."""
    from scipy import stats

    n = len(base)
    if n < 2:
        raise ValueError("a prediction bound needs at least 2 baseline values")
    mean = math.fsum(base) / n
    s = math.sqrt(math.fsum((v - mean) ** 2 for v in base) / (n - 1))
    bad = (mean - x) if higher_is_better else (x - mean)
    if s == 0:
        return 0.0 if bad > 0 else 1.0
    return float(stats.t.sf(bad / (s * math.sqrt(1 + 1 / n)), n - 1))


def prediction_bound(base: Sequence[float], higher_is_better: bool, alpha: float) -> float:
    """The worst value one new draw may take at one-sided level ``alpha``:
    ``mean -/+ t_{n-1, 1-alpha} * s * sqrt(1 + 1/n)``."""
    from scipy import stats

    n = len(base)
    mean = math.fsum(base) / n
    s = math.sqrt(math.fsum((v - mean) ** 2 for v in base) / (n - 1))
    width = float(stats.t.ppf(1 - alpha, n - 1)) * s * math.sqrt(1 + 1 / n) if s > 0 else 0.0
    return mean - width if higher_is_better else mean + width


def detection_power(n: int, sd: float, delta: float, alpha: float) -> float:
    """Power of the two-sample one-sided t-test (equal variances, ``n`` seeds per side, 2n - 2 dof) at
    level ``alpha`` to detect a true change ``delta`` of a metric whose seed s.d. is ``sd``: the
    noncentral t distribution's tail beyond the critical value, noncentrality delta / (sd * sqrt(2/n))."""
    from scipy import stats

    df = 2 * n - 2
    critical = stats.t.ppf(1 - alpha, df)
    return float(stats.nct.sf(critical, df, delta / (sd * math.sqrt(2 / n))))


def seeds_needed(sd: float, delta: float, alpha: float = ALPHA, power: float = POWER, *,
                 max_seeds: int = MAX_SEEDS) -> int | None:
    """The smallest number of seeds *per side* (baseline and run alike) with which a two-sample
    one-sided t-test at level ``alpha`` detects a true change ``delta`` of a metric with seed s.d.
    ``sd`` with probability >= ``power``; exact (scipy's noncentral t), not a normal approximation.
    Power grows with n, so a doubling search then bisection finds the exact smallest n.
    ``None`` when even ``max_seeds`` is not enough; 1 when ``sd`` is 0 (any move is real).

    For a gate over m metrics, pass the Holm level: its first (strictest) step tests at ``alpha / m``.
    """
    if not (sd >= 0 and math.isfinite(sd)):
        raise ValueError(f"sd must be a finite number >= 0, got {sd!r}")
    if not (delta > 0 and math.isfinite(delta)):
        raise ValueError(f"delta must be a finite number > 0, got {delta!r}")
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError("alpha and power must lie in (0, 1)")
    if sd == 0:
        return 1
    if detection_power(max_seeds, sd, delta, alpha) < power:
        return None
    lo, hi = 1, 2  # power(lo) < target (n = 1 has no test), power(hi) unknown
    while hi < max_seeds and detection_power(hi, sd, delta, alpha) < power:
        lo, hi = hi, min(2 * hi, max_seeds)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if detection_power(mid, sd, delta, alpha) >= power:
            hi = mid
        else:
            lo = mid
    return hi

"""Sweep monotonicity over many sweeps: one batched rank correlation vs scipy row by row.

    pytest tests/benchmarks --benchmark-enable --benchmark-group-by=param:shape

Both give the same number (checked here); the batched one is what the runner uses.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch

from metrics.sweep import monotonicity

SHAPES = {"500x11": (500, 11), "5000x21": (5000, 21)}


def scipy_monotonicity(target_probs: np.ndarray) -> float:
    steps = np.arange(target_probs.shape[1])
    values = []
    for row in target_probs:
        rho = scipy.stats.spearmanr(steps, row).statistic if np.ptp(row) > 0 else 0.0
        values.append(rho)
    return float(np.mean(values))


@pytest.mark.parametrize("implementation", ["batched", "scipy_rows"])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_monotonicity_speed(benchmark, implementation, shape):
    n, s = SHAPES[shape]
    probs = torch.rand(n, s, generator=torch.Generator().manual_seed(0)).cumsum(1) / s
    probs[::7] = probs[::7].flip(1)  # some falling sweeps
    probs[::11] = 0.5  # some flat ones
    expected = scipy_monotonicity(probs.numpy())
    if implementation == "batched":
        result = benchmark(monotonicity, probs)
    else:
        result = benchmark(scipy_monotonicity, probs.numpy())
    assert result == pytest.approx(expected, abs=1e-9)

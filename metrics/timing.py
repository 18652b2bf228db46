"""Times of a scoring step on the run's device: the ``*_seconds`` diagnostics.

The scorer reads the clock with :func:`start_clock` before the step and :func:`elapsed_seconds` after it; on a
CUDA device both wait for the queued kernels first, so the time is the step's, not its launch's.
"""

from __future__ import annotations

import time

import torch

from metrics.declaration import Metric


def _sync(device: torch.device | None) -> None:
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def start_clock(device: torch.device | None = None) -> float:
    """A ``time.perf_counter()`` reading, taken once ``device``'s queued work is done."""
    _sync(device)
    return time.perf_counter()


def elapsed_seconds(start: float, device: torch.device | None = None, n_items: int = 1) -> float:
    """Seconds since ``start`` (:func:`start_clock`) once ``device``'s queued work is done, per item of
    ``n_items`` (a map, a sweep) when the step made several."""
    _sync(device)
    return (time.perf_counter() - start) / n_items


#: the times whose columns close the leaderboard (``saliency_seconds`` is declared with the saliency metrics)
DECLARED = (
    Metric("sweep_seconds", capability="sweep", unit="s", higher_is_better=None,
           aggregation="mean", function=elapsed_seconds,
           description="time to make one sweep (per query image), on the run's device"),
    Metric("fit_seconds", capability="fit", unit="s", higher_is_better=None,
           aggregation="per-seed", function=elapsed_seconds,
           description="time the fit took when it was trained (kept when loaded from the cache)"),
    Metric("information_flow_seconds", capability="latent", unit="s", higher_is_better=None,
           aggregation="per-seed", function=elapsed_seconds,
           description="time of one information-flow estimate at the suite's (N_alpha, N_beta), on the run's "
                       "device"),
)

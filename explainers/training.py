"""What every explainer's training loop shares: its minibatches and progress, the precision a fit runs in,
seeded randomness for library code, and the bookkeeping of its losses.

The runner sets the context (:func:`training_progress`, :func:`training_precision`); the loops read it
through :func:`minibatches` and :func:`autocast`, so an explainer's ``fit`` takes no extra arguments.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from typing import Callable, Iterable, Iterator

import numpy as np
import torch


_STEPS: contextvars.ContextVar[Callable[[Iterable], Iterable] | None] = contextvars.ContextVar("steps", default=None)


@contextlib.contextmanager
def training_progress(wrap: Callable[[Iterable], Iterable]) -> Iterator[None]:
    """Inside the block, training loops (:func:`minibatches`) iterate over ``wrap(steps)``: the runner's
    progress bar, say. Outside, over the steps as they are."""
    token = _STEPS.set(wrap)
    try:
        yield
    finally:
        _STEPS.reset(token)


#: numeric precisions a fit's forward passes can run in (:func:`training_precision`)
PRECISIONS = ("fp32", "bf16")
_PRECISION: contextvars.ContextVar[str] = contextvars.ContextVar("precision", default="fp32")


@contextlib.contextmanager
def training_precision(precision: str) -> Iterator[None]:
    """Inside the block, fits run their forward passes in ``precision``: ``"bf16"`` under bfloat16 autocast
    (convolutions and matrix products in bf16; weights, gradients and optimiser state stay float32),
    ``"fp32"`` as written. Outside, fp32. CPU autocast leaves softmax, logs, exponentials and reductions in
    the dtype they are given, so every network output a loss, a log or a bin index is computed from is
    brought back to float32 first (:func:`float32`; the black box's outputs, ``bench.inputs.classifier``), and
    the losses of a bf16 fit are float32 arithmetic on bf16-computed activations.

    Explanations and metrics always run in float32; only training is affected. Where a CPU multiplies
    bf16 natively (AVX-512 BF16 or AMX), the fits run 1.4-7x faster; elsewhere bf16 is
    emulated and slower, so the runner asks for it only where it is native (``bench.execute.runtime``).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    token = _PRECISION.set(precision)
    try:
        yield
    finally:
        _PRECISION.reset(token)


def float32(t: torch.Tensor) -> torch.Tensor:
    """``t`` in float32 where autocast left it in a half type: a network output that a loss, a log, a
    sigmoid or a comparison follows (a bf16 sigmoid rounds to exactly 1 above about 6.5, and bins computed
    from bf16 probabilities move). A no-op on float32 (and on float64), so float32 fits are unchanged."""
    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """What a training loop wraps each step's forward passes and losses in (not ``backward``, not the
    optimiser step): bf16 autocast inside ``training_precision("bf16")``, nothing otherwise."""
    if _PRECISION.get() == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def fixed_randomness(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's and NumPy's global generators for the block, then restore them.

    For library code that draws from the global generators (Captum's GradientShap draws its
    interpolation points from NumPy, its noise from torch): the same call gives the same map,
    and the caller's random streams are left as they were.
    """
    state = np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            np.random.seed(seed)
            yield
    finally:
        np.random.set_state(state)


def minibatches(n: int, batch_size: int, steps: int, generator: torch.Generator
                ) -> Iterator[tuple[int, torch.Tensor]]:
    """``(step, indices)`` for steps 1..``steps``: ``batch_size`` training indices each, from a fresh
    permutation every epoch (drawn from ``generator`` when needed; an epoch's incomplete tail is dropped)."""
    order, pos = torch.randperm(n, generator=generator), 0
    wrap = _STEPS.get()
    for step in (wrap or iter)(range(1, steps + 1)):  # a bar on a terminal when the runner asks for one
        if pos + batch_size > n:
            order, pos = torch.randperm(n, generator=generator), 0
        yield step, order[pos:pos + batch_size]
        pos += batch_size


class LossHistory:
    """A training loop's bookkeeping, the same for every explainer: each step's loss terms, a progress line
    every ``every`` seconds and at the last step (the mean of the last 50 steps), and the fit's record (the
    mean of each term over the last 100 steps, ``final_<term>``, and the number of steps).

    ``labels``: term -> (name in the progress line, format), in the line's order.
    """

    def __init__(self, name: str, steps: int, log: Callable[[str], None], labels: dict[str, tuple[str, str]],
                 every: float = 10.0) -> None:
        self.name, self.steps, self.log, self.labels, self.every = name, steps, log, labels, every
        self.history: list[dict[str, float]] = []
        self.start = self.last = time.perf_counter()

    def add(self, step: int, **terms: float) -> None:
        self.history.append(terms)
        now = time.perf_counter()
        if step == self.steps or now - self.last > self.every:
            self.last = now
            recent = self.history[-50:]
            means = "  ".join(f"{label} {sum(h[k] for h in recent) / len(recent):{fmt}}"
                              for k, (label, fmt) in self.labels.items())
            self.log(f"[{self.name}] step {step}/{self.steps}  {means}  ({now - self.start:.0f}s)")

    def record(self) -> dict[str, float]:
        tail = self.history[-100:]
        return {**{f"final_{k}": sum(h[k] for h in tail) / len(tail) for k in self.history[-1]}, "steps": self.steps}


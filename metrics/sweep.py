"""Sweep faithfulness: does a sweep do what it claims?

A sweep is a path of images ``x_0 .. x_{S-1}`` from (a reconstruction of) a
query ``x`` toward a target class; each step *requests* a probability of the
target class (for the exaggeration explainer, f(x) + delta, Eq. 2; for other
explainers a straight ramp from f(x) to 1) and ``f`` *obtains* another. The
numbers here are pure functions of those tensors:

- compatibility (exaggeration paper Sec. 2, property 2 and Fig. 3): Pearson and
  Spearman correlation of requested vs obtained, and their mean absolute error;
- validity: the fraction of sweeps whose last image ``f`` assigns to the target;
- monotonicity: mean Spearman correlation of the target probability with the
  step index (1: always rises, -1: always falls);
- proximity: mean absolute pixel change between ``x`` and the sweep's end;
- noncausal change: how much ``f`` moves along a sweep that should not move it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from metrics.declaration import Metric


def requested_ramp(start: torch.Tensor, n_steps: int) -> torch.Tensor:
    """The target probability a sweep of ``n_steps`` requests at each step: a straight ramp from ``f(x)_t``
    (``start``, ``(N,)``) to 1, ``(N, n_steps)``. The exaggeration explainer conditions on exactly this
    (f(x) + delta for delta = 0 .. 1 - f(x)); for other explainers it is the ideal steady progress."""
    t = torch.linspace(0, 1, n_steps, dtype=start.dtype, device=start.device)
    return start.unsqueeze(1) + t * (1 - start.unsqueeze(1))


def average_ranks(values: torch.Tensor) -> torch.Tensor:
    """Ranks along the last dimension, ties given their average rank (as scipy's ``rankdata``)."""
    order = values.argsort(dim=-1, stable=True)
    sorted_values = values.gather(-1, order)
    n = values.shape[-1]
    positions = torch.arange(n, dtype=values.dtype, device=values.device).expand_as(values)
    # average the positions of each run of equal values
    new_run = torch.ones_like(sorted_values, dtype=torch.bool)
    new_run[..., 1:] = sorted_values[..., 1:] != sorted_values[..., :-1]
    run_id = new_run.cumsum(-1) - 1
    run_sum = torch.zeros_like(sorted_values).scatter_add_(-1, run_id, positions)
    run_len = torch.zeros_like(sorted_values).scatter_add_(-1, run_id, torch.ones_like(positions))
    average = (run_sum / run_len).gather(-1, run_id)
    return torch.empty_like(values).scatter_(-1, order, average)


def pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation along the last dimension; 0 where either side is constant."""
    a = a - a.mean(-1, keepdim=True)
    b = b - b.mean(-1, keepdim=True)
    denominator = (a.pow(2).sum(-1) * b.pow(2).sum(-1)).sqrt()
    r = (a * b).sum(-1) / denominator
    return torch.where(denominator > 0, r, torch.zeros_like(r))


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation along the last dimension (ties averaged); 0 where either side is constant."""
    return pearson(average_ranks(a), average_ranks(b))


@dataclass(frozen=True)
class Compatibility:
    pearson: float
    spearman: float
    mae: float


def compatibility(requested: torch.Tensor, obtained: torch.Tensor) -> Compatibility:
    """Requested vs obtained target probability over every step of every sweep (Fig. 3's points)."""
    if requested.shape != obtained.shape:
        raise ValueError(f"requested {tuple(requested.shape)} and obtained {tuple(obtained.shape)} differ in shape")
    r, o = requested.flatten().double(), obtained.flatten().double()
    return Compatibility(pearson(r, o).item(), spearman(r, o).item(), (r - o).abs().mean().item())


def validity(end_probs: torch.Tensor, target: torch.Tensor) -> float:
    """Fraction of sweeps whose last image ``f`` classifies as ``target``; ``end_probs`` ``(N, M)``."""
    return (end_probs.argmax(1) == target.to(end_probs.device)).double().mean().item()


def monotonicity(target_probs: torch.Tensor) -> float:
    """Mean over sweeps of Spearman(step index, target probability); ``target_probs`` ``(N, S)``."""
    steps = torch.arange(target_probs.shape[1], dtype=torch.float64, device=target_probs.device)
    return spearman(steps.expand(target_probs.shape[0], -1), target_probs.double()).mean().item()


def proximity(x: torch.Tensor, x_end: torch.Tensor) -> float:
    """Mean absolute pixel difference between queries and sweep ends (images in [0, 1]; lower is closer)."""
    return (x_end.to(x.device) - x).abs().mean().item()


def noncausal_change(probs: torch.Tensor, reference: torch.Tensor) -> float:
    """Mean |f(x_s) - f(x_ref)| of the class ``f`` gives ``x_ref``; ``probs`` ``(N, S, M)``, ``reference`` ``(N, M)``.

    For a sweep of a factor that claims not to matter to ``f``: should be ~0.
    """
    cls = reference.argmax(1)
    along = probs.gather(2, cls.view(-1, 1, 1).expand(-1, probs.shape[1], 1)).squeeze(2)  # (N, S)
    return (along - reference.gather(1, cls.view(-1, 1))).abs().mean().item()


#: the rows of counterfactual and latent sweeps (bench.execute.scoring.judge_sweeps, score_latent_sweeps),
#: in column order
DECLARED = (
    Metric("sweep_compatibility_pearson", capability="sweep", unit="correlation", higher_is_better=True,
           aggregation="per-seed", function=compatibility, inputs=("requested", "target_probs"), field="pearson",
           description="Pearson correlation of requested vs obtained target probability along counterfactual "
                       "sweeps (Fig. 3)"),
    Metric("sweep_compatibility_spearman", capability="sweep", unit="correlation", higher_is_better=True,
           aggregation="per-seed", function=compatibility, inputs=("requested", "target_probs"), field="spearman",
           description="Spearman correlation of requested vs obtained target probability (Fig. 3)"),
    Metric("sweep_compatibility_mae", capability="sweep", unit="probability", higher_is_better=False,
           aggregation="mean", function=compatibility, inputs=("requested", "target_probs"), field="mae",
           description="mean |requested - obtained| target probability along counterfactual sweeps"),
    Metric("sweep_validity", capability="sweep", unit="fraction", higher_is_better=True,
           aggregation="mean", function=validity, inputs=("end_probs", "target"),
           description="fraction of counterfactual sweeps whose last image f assigns to the target class"),
    Metric("sweep_validity_independent", capability="sweep", unit="fraction", higher_is_better=True,
           aggregation="mean", function=validity,
           description="fraction of counterfactual sweeps whose last image the FID feature network's own head (a "
                       "classifier no explainer trained against) assigns to the target's dataset class"),
    Metric("sweep_monotonicity", capability="sweep", unit="correlation", higher_is_better=True,
           aggregation="mean", function=monotonicity, inputs=("target_probs",),
           description="mean Spearman correlation of the target probability with the step index"),
    Metric("sweep_proximity", capability="sweep", unit="mean |pixel change|", higher_is_better=False,
           aggregation="mean", function=proximity, inputs=("queries", "ends"),
           description="mean absolute pixel difference between the query and its counterfactual (the sweep's end)"),
    Metric("sweep_noncausal_change", capability="latent", unit="probability", higher_is_better=False,
           aggregation="mean", function=noncausal_change,
           description="mean |change of f's predicted-class probability| along sweeps of the noncausal factors: ~0"),
    Metric("sweep_change_factor", capability="latent", unit="probability", higher_is_better=None,
           aggregation="per-factor", function=noncausal_change,
           description="mean |change of f's predicted-class probability| along a sweep of each latent factor"),
)

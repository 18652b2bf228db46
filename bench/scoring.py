"""Score one fitted explainer with every metric its capabilities allow.

Produces long-format rows ``{"explainer", "metric", "factor", "value", "unit",
"higher_is_better"}``; metrics live in :mod:`metrics` and stay pure.
"""

from __future__ import annotations

import time
from typing import Callable

import torch

from bench.data import Split
from explainers.base import Capability, Explainer
from metrics import METRICS
from metrics.accuracy_drop import accuracy_drop
from metrics.information_flow import information_flow, information_flow_per_factor


def row(explainer: str, metric: str, value: float, factor: str | None = None) -> dict:
    info = METRICS[metric]
    return {"explainer": explainer, "metric": metric, "factor": factor, "value": float(value),
            "unit": info.unit, "higher_is_better": info.higher_is_better}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def score_latent(explainer: Explainer, classifier: Callable[[torch.Tensor], torch.Tensor], val: Split, *,
                 n_alpha: int, n_beta: int, seed: int, device: torch.device) -> tuple[list[dict], dict]:
    """Information flow (joint and per factor) and accuracy drop of a latent explainer.

    Returns the rows and the per-factor arrays (for figures).
    """
    split, name = explainer.latent_split, explainer.name
    k, l = split.n_causal, split.n_noncausal
    gen = lambda offset: torch.Generator().manual_seed(seed * 1000 + offset)  # noqa: E731
    rows: list[dict] = []

    _sync(device)
    start = time.perf_counter()
    joint = information_flow(explainer.decode, classifier, k, l, n_alpha, n_beta, generator=gen(1), device=device)
    _sync(device)
    rows.append(row(name, "information_flow_seconds", time.perf_counter() - start))
    rows.append(row(name, "information_flow", joint))

    if l > 0:
        # I(beta; Y): the same estimator with beta in the leading (causal) slots
        beta_first = lambda z: explainer.decode(torch.cat([z[:, l:], z[:, :l]], dim=1))  # noqa: E731
        rows.append(row(name, "information_flow_noncausal",
                        information_flow(beta_first, classifier, l, k, n_alpha, n_beta, generator=gen(2),
                                         device=device)))

    per_factor = information_flow_per_factor(explainer.decode, classifier, split.n_latent, n_alpha, n_beta,
                                             generator=gen(3), device=device)
    names = split.names()
    rows += [row(name, "information_flow_factor", v, names[d]) for d, v in enumerate(per_factor.tolist())]

    drop = accuracy_drop(explainer.encode, explainer.decode, classifier, val.images.to(device),
                         val.labels.to(device), generator=gen(4))
    rows.append(row(name, "reencoded_accuracy", drop.reencoded))
    rows.append(row(name, "accuracy_drop_causal", drop.drop[:k].mean()))
    if l > 0:
        rows.append(row(name, "accuracy_drop_noncausal", drop.drop[k:].max()))
    rows += [row(name, "accuracy_drop_factor", v, names[d]) for d, v in enumerate(drop.drop.tolist())]
    arrays = {"factor_names": names, "information_flow": per_factor.cpu(), "accuracy_drop": drop.drop.cpu(),
              "original_accuracy": drop.original, "reencoded_accuracy": drop.reencoded}
    return rows, arrays


def score_explainer(explainer: Explainer, classifier, val: Split, *, n_alpha: int, n_beta: int, seed: int,
                    device: torch.device) -> tuple[list[dict], dict]:
    rows, arrays = [], {}
    if explainer.supports(Capability.LATENT):
        r, arrays = score_latent(explainer, classifier, val, n_alpha=n_alpha, n_beta=n_beta, seed=seed,
                                 device=device)
        rows += r
    return rows, arrays

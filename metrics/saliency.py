"""Scores of saliency maps, usable for every explainer with the saliency capability.

- Removal curves (Samek et al. 2016, as the exaggeration paper's Fig. 4c): replace a growing
  fraction of an image's pixels by uniform noise, most relevant first (MoRF) or least relevant
  first (LeRF), and record ``f``'s accuracy and its probability of the original class. A map that
  explains ``f`` makes the MoRF curve fall fast and the LeRF curve slowly.
- Gini index of a map (GANMEX App. B.2, after Chalasani et al. 2018): its sparsity.
- Cascading randomisation (GANMEX App. B.4, after Adebayo et al. 2018): the rank correlation of a
  map before and after the classifier's layers are re-initialised from the top.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from metrics.sweep import _rank

#: fractions of pixels removed, 0 to 1 in steps of 0.05
DEFAULT_FRACTIONS = tuple(i / 20 for i in range(21))


def relevance_order(maps: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Pixel indices of each map ``(N, ...)`` from most to least relevant, ``(N, P)``; ties are
    broken at random (a flat map removes pixels in random order, not raster order)."""
    flat = maps.flatten(1)
    shuffle = torch.rand(flat.shape, generator=generator).argsort(1).to(flat.device)  # a random permutation per row
    order = flat.gather(1, shuffle).argsort(dim=1, descending=True, stable=True)
    return shuffle.gather(1, order)


@dataclass(frozen=True)
class RemovalCurves:
    fractions: torch.Tensor  # (Q,)
    morf_accuracy: torch.Tensor  # (Q,) most relevant removed first
    morf_probability: torch.Tensor  # (Q,) mean f(x)[original class]
    lerf_accuracy: torch.Tensor  # (Q,) least relevant removed first
    lerf_probability: torch.Tensor

    @staticmethod
    def _auc(y: torch.Tensor, x: torch.Tensor) -> float:
        return float(torch.trapezoid(y, x) / (x[-1] - x[0]))

    @property
    def morf_auc(self) -> float:
        """Normalised area under the MoRF accuracy curve: lower = the map found what f uses."""
        return self._auc(self.morf_accuracy, self.fractions)

    @property
    def lerf_auc(self) -> float:
        """Normalised area under the LeRF accuracy curve: higher = the map's unimportant pixels really are."""
        return self._auc(self.lerf_accuracy, self.fractions)

    @property
    def gap(self) -> float:
        """LeRF AUC - MoRF AUC: the larger, the better the map separates relevant from irrelevant pixels."""
        return self.lerf_auc - self.morf_auc


@torch.no_grad()
def removal_curves(classify: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, maps: torch.Tensor,
                   labels: torch.Tensor | None = None, fractions: tuple[float, ...] = DEFAULT_FRACTIONS, *,
                   generator: torch.Generator | None = None, chunk_size: int = 1024) -> RemovalCurves:
    """MoRF and LeRF curves of ``maps`` (N, C, H, W) or (N, H, W) on ``images`` (N, C, H, W).

    ``labels`` default to ``f``'s predictions on the images. A map of shape (N, H, W) or with one
    channel ranks pixel *positions* (all channels of a position removed together). Each image gets
    one draw of uniform noise, reused for every fraction and both orders, so the curves differ only
    in which pixels are replaced. All N * Q * 2 perturbed images go through ``classify`` in chunks.
    """
    n, c = images.shape[:2]
    if maps.shape[0] != n:
        raise ValueError(f"{maps.shape[0]} maps for {n} images")
    if maps.dim() == images.dim():
        maps = maps.sum(1) if maps.shape[1] != 1 else maps[:, 0]
    if maps.shape[1:] != images.shape[2:]:
        raise ValueError(f"maps of shape {tuple(maps.shape[1:])} do not match images {tuple(images.shape[2:])}")
    fr = torch.as_tensor(fractions, dtype=torch.float64)
    if fr.ndim != 1 or len(fr) < 2 or bool((fr[1:] <= fr[:-1]).any()) or fr[0] < 0 or fr[-1] > 1:
        raise ValueError(f"fractions must increase within [0, 1], got {fr.tolist()}")
    device = images.device
    if labels is None:
        labels = torch.cat([classify(images[i:i + chunk_size]).argmax(1) for i in range(0, n, chunk_size)])
    p = maps[0].numel()
    noise = torch.rand(images.shape, generator=generator).to(images)
    counts = torch.round(fr * p).long().to(device)  # pixels removed at each fraction, (Q,)
    # position of each pixel in the removal order: pixel j is removed at fraction q iff rank[j] < counts[q]
    morf = relevance_order(maps, generator=generator).to(device)
    rank = torch.empty_like(morf)
    rank.scatter_(1, morf, torch.arange(p, device=device).expand(n, p))
    results = {}
    for name, r in (("morf", rank), ("lerf", p - 1 - rank)):
        removed = (r.unsqueeze(0) < counts.view(-1, 1, 1)).view(len(fr), n, 1, *images.shape[2:])  # (Q, N, 1, H, W)
        perturbed = torch.where(removed, noise.unsqueeze(0), images.unsqueeze(0)).flatten(0, 1)  # (Q*N, C, H, W)
        probs = torch.cat([classify(perturbed[i:i + chunk_size]) for i in range(0, len(perturbed), chunk_size)])
        probs = probs.view(len(fr), n, -1)
        lab = labels.to(probs.device).view(1, n, 1).expand(len(fr), n, 1)
        results[f"{name}_accuracy"] = (probs.argmax(2) == lab[..., 0]).double().mean(1).cpu()
        results[f"{name}_probability"] = probs.gather(2, lab)[..., 0].double().mean(1).cpu()
    return RemovalCurves(fractions=fr, **results)


def gini(maps: torch.Tensor) -> torch.Tensor:
    """Gini index of |map| per map ``(N, ...)`` -> ``(N,)`` (Hurley & Rickard's form, used by
    Chalasani et al. 2018 and GANMEX App. B.2): 0 for a flat map, 1 - 1/P for a single pixel."""
    a = maps.flatten(1).abs().double().sort(1).values  # ascending
    p = a.shape[1]
    total = a.sum(1)
    k = torch.arange(1, p + 1, dtype=a.dtype, device=a.device)
    g = 1 - 2 * ((a / total.clamp_min(1e-300).unsqueeze(1)) * (p - k + 0.5) / p).sum(1)
    return torch.where(total > 0, g, torch.zeros_like(g))  # an all-zero map is as flat as it gets


def spearman_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation of each row of ``a`` with the same row of ``b`` ``(N, P)`` -> ``(N,)``."""
    ra, rb = _rank(a.double()), _rank(b.double())
    ra, rb = ra - ra.mean(1, keepdim=True), rb - rb.mean(1, keepdim=True)
    denom = (ra.norm(dim=1) * rb.norm(dim=1)).clamp_min(1e-12)
    return (ra * rb).sum(1) / denom


def parameterised_layers(model: nn.Module) -> list[str]:
    """Names of the modules that own parameters (Conv, Linear, ...), in definition order."""
    return [name for name, m in model.named_modules()
            if any(True for _ in m.parameters(recurse=False)) and hasattr(m, "reset_parameters")]


def cascading_randomisation(model: nn.Module, saliency: Callable[[nn.Module], torch.Tensor], *,
                            seed: int = 0) -> list[tuple[str, torch.Tensor]]:
    """Re-initialise ``model``'s parameterised layers one at a time, from the output back (cumulative),
    and after each, the Spearman correlation of |map| with the original |map| per image.

    ``saliency(model)`` returns the maps ``(N, ...)`` of the explainer run against ``model``. Returns
    ``[(layer name, (N,) correlations), ...]`` from the top layer down; ``model`` itself is untouched.
    """
    reference = saliency(model).flatten(1).abs()
    randomised = copy.deepcopy(model)
    modules = dict(randomised.named_modules())
    out = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for name in reversed(parameterised_layers(randomised)):
            modules[name].reset_parameters()
            out.append((name, spearman_rows(reference, saliency(randomised).flatten(1).abs())))
    return out

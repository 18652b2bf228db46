"""Metrics against a planted ground truth, and how well a proxy metric agrees with one.

Saliency maps, against a region ``R`` that holds what f uses (Arras, Osman & Samek 2022, CLEVR-XAI):

- relevance mass accuracy: the share of a map's |relevance| inside ``R``;
- relevance rank accuracy: the fraction of ``R``'s pixels among the map's ``|R|`` most relevant pixels.

Arras et al. count positive relevance only; we count |relevance|, so a map whose sign says
"against" still points at the region. Per pixel, a map's channels are summed (|.| first), as the region is
a set of pixels. A map that is constant (all zero, say) ranks no pixel above another: its mass is the
region's share of the image, as a uniform map's, and its rank accuracy is the expectation over tie orders,
which is the same share.

Counterfactual sweeps, against the same region and the content f should not need:

- change share: the share of the total |pixel change| from the query to the sweep's end inside ``R``;
- content kept: the fraction of sweeps whose end a judge (the FID feature network's digit head) puts in the
  query's class;
- mode preservation (colored-mnist, GANMEX App. Fig. 9B): the fraction of sweeps whose end keeps the
  query's colour (the channel with most of the intensity).

Proxy validity: the Spearman correlation, across explainers and their graded degradations, of a proxy metric
with a ground-truth metric, with a bootstrap interval over explainers (a degradation moves with the explainer
it degrades, so explainers are the resampled unit), ``None`` below ``MIN_POINTS`` points.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from metrics.declaration import Metric
from metrics.sweep import spearman as _spearman_rows

MIN_POINTS = 8  # docs/design.md: "print n/a below 8 points"
DEGRADATION_LEVELS = (0.25, 0.5, 0.75)  # the noise's share of a map's or a sweep's L1 mass (proxy-validity points)


def _per_pixel(maps: torch.Tensor) -> torch.Tensor:
    """|maps| summed over channels, flattened: ``(N, P)``."""
    a = maps.abs()
    return (a.sum(1) if a.dim() == 4 else a).flatten(1).double()


def _region(region: torch.Tensor, n: int) -> torch.Tensor:
    """The region as ``(N, P)`` bool (from ``(H, W)``, ``(1, H, W)`` or per image ``(N, 1, H, W)``)."""
    r = region.bool()
    r = r.any(-3) if r.dim() >= 3 else r  # channels of a pixel count once
    return r.reshape(-1, r.shape[-2] * r.shape[-1]).expand(n, -1) if r.dim() == 2 else r.flatten(1)


def relevance_mass(maps: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """Relevance mass accuracy ``(N,)``: sum of |map| in ``region`` / sum of |map| (module docstring)."""
    a = _per_pixel(maps)
    r = _region(region, len(a)).to(a.device)
    total = a.sum(1)
    share = r.double().mean(1)
    return torch.where(total > 0, (a * r).sum(1) / total.clamp_min(1e-300), share).float()


def relevance_rank(maps: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """Relevance rank accuracy ``(N,)``: of the ``K = |region|`` most relevant pixels (|map|), the fraction in
    the region; pixels tied with the K-th count in expectation over a random order of the ties."""
    a = _per_pixel(maps)
    r = _region(region, len(a)).to(a.device)
    k = r.sum(1)  # (N,)
    kth = a.sort(1, descending=True).values.gather(1, (k - 1).clamp_min(0).view(-1, 1))  # (N, 1) the K-th value
    above, tied = a > kth, a == kth
    slots = k - above.sum(1)  # places left for the tied pixels
    hits = (above & r).sum(1) + slots * (tied & r).sum(1) / tied.sum(1).clamp_min(1)
    return torch.where(k > 0, hits / k.clamp_min(1), torch.zeros_like(hits, dtype=torch.double)).float()


def change_share(start: torch.Tensor, end: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """Share of the total |end - start| (pixels, channels summed) inside ``region``, ``(N,)``; 0 for a sweep
    that changes nothing (it did not change the region)."""
    change = _per_pixel(end - start)
    r = _region(region, len(change)).to(change.device)
    total = change.sum(1)
    return torch.where(total > 0, (change * r).sum(1) / total.clamp_min(1e-300), torch.zeros_like(total)).float()


def dominant_channel(images: torch.Tensor) -> torch.Tensor:
    """The channel holding most of each image's intensity ``(N,)`` (a colored-mnist image's colour)."""
    return images.flatten(2).sum(2).argmax(1)


def class_kept(scores: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Fraction of images whose class by ``scores`` ``(N, K)`` (a judge's, e.g. the FID feature network's
    head) is ``classes`` ``(N,)`` (the query's), as a 0-d tensor: a sweep's end that kept the query's content."""
    return (scores.argmax(1) == classes).float().mean()


def mode_preservation(start: torch.Tensor, end: torch.Tensor) -> float:
    """Fraction of sweeps whose end keeps the dominant channel of its query."""
    return float((dominant_channel(start) == dominant_channel(end)).float().mean())


def _l1(x: torch.Tensor) -> torch.Tensor:
    """Each item's L1 norm, shaped to broadcast against ``x``."""
    return x.flatten(1).abs().sum(1).view(-1, *[1] * (x.dim() - 1))


def degrade_maps(maps: torch.Tensor, level: float, noise: torch.Tensor) -> torch.Tensor:
    """``maps`` blended with ``noise`` (uniform [0, 1) maps of the same shape), each scaled to unit L1 mass
    first: ``(1 - level) * m / |m|_1 + level * u / |u|_1``. On a map's relevance mass the blend is linear, so
    the degradations are graded in the truth's own terms: a region's mass moves from the map's to about the
    region's share of the image (the uniform noise's) in equal steps, and the map's top pixels keep their
    order until the noise outweighs them. An all-zero map becomes ``level`` times the noise."""
    return (1 - level) * maps / _l1(maps).clamp_min(1e-30) + level * noise / _l1(noise).clamp_min(1e-30)


def degrade_sweeps(sweeps: torch.Tensor, level: float, noise: torch.Tensor) -> torch.Tensor:
    """Sweeps ``(N, S, C, H, W)`` whose change from their start is part the explainer's, part noise: step s
    becomes ``x_0 + (1 - level) (x_s - x_0) + level * t_s * d``, ``d`` the zero-mean noise ``noise - 0.5``
    (``noise`` ``(N, C, H, W)`` uniform) scaled to the L1 size of the sweep's own total change ``x_S - x_0``,
    ``t_s`` from 0 to 1; clipped to [0, 1]. The share of the change inside a region then moves from the
    sweep's toward the region's share of the image in about equal steps; a sweep that changes nothing stays
    as it is."""
    start = sweeps[:, :1]
    change = sweeps - start
    d = noise - 0.5
    d = d * (_l1(change[:, -1]) / _l1(d).clamp_min(1e-30))
    t = torch.linspace(0, 1, sweeps.shape[1], dtype=sweeps.dtype).view(1, -1, 1, 1, 1)
    return (start + (1 - level) * change + level * t * d.unsqueeze(1)).clamp(0, 1)


@dataclass(frozen=True)
class Correlation:
    rho: float | None  # Spearman rank correlation over the points (None: too few points, or a constant side)
    low: float | None  # bootstrap 95% interval over explainers
    high: float | None
    n_points: int
    n_explainers: int


def _spearman_by_row(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman rho of each row of ``x`` ``(S, n)`` with the same row of ``y`` (ties averaged:
    :func:`metrics.sweep.spearman`); NaN where a side is constant or there are fewer than 3 points."""
    rho = _spearman_rows(torch.from_numpy(x), torch.from_numpy(y)).numpy()
    defined = (np.ptp(x, axis=1) > 0) & (np.ptp(y, axis=1) > 0) & (x.shape[1] >= 3)
    return np.where(defined, rho, np.nan)


def spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    """scipy's ``spearmanr(x, y).statistic`` for two 1-d arrays; None where a side is constant or there are
    fewer than 3 points."""
    rho = _spearman_by_row(np.asarray(x, dtype=float)[None], np.asarray(y, dtype=float)[None])[0]
    return None if np.isnan(rho) else float(rho)


def proxy_correlation(proxy: Sequence[Sequence[float]], truth: Sequence[Sequence[float]],
                      clusters: Sequence[str], *, n_boot: int = 2000, seed: int = 0,
                      min_points: int = MIN_POINTS) -> Correlation:
    """Spearman correlation of a proxy with a ground-truth metric, averaged over seeds.

    ``proxy[s][i]``, ``truth[s][i]``: seed ``s``'s value of point ``i`` (an explainer or one of its
    degradations; NaN where a value is missing), ``clusters[i]`` the explainer point ``i`` belongs to.
    rho is the mean over seeds of each seed's correlation; its 95% interval is the percentile bootstrap
    that resamples explainers (all their points, in every seed) with replacement. ``None`` throughout
    when fewer than ``min_points`` points have both values.
    """
    x, y = np.asarray(proxy, dtype=float), np.asarray(truth, dtype=float)
    keep = ~(np.isnan(x) | np.isnan(y)).any(0)  # a point counts when every seed has both values
    x, y = x[:, keep], y[:, keep]
    labels = np.asarray(clusters)[keep]
    names = sorted(set(labels.tolist()))
    n = int(keep.sum())
    if n < min_points:
        return Correlation(None, None, None, n, len(names))

    def mean_rho(columns: np.ndarray) -> float | None:  # every seed's rho in one batched call
        values = _spearman_by_row(x[:, columns], y[:, columns])
        return None if np.isnan(values).all() else float(np.nanmean(values))

    rho = mean_rho(np.arange(n))
    members = [np.flatnonzero(labels == c) for c in names]
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(n_boot):
        columns = np.concatenate([members[i] for i in rng.integers(len(names), size=len(names))])
        value = mean_rho(columns)
        if value is not None:
            boot.append(value)
    low, high = (float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))) if boot else (None, None)
    return Correlation(rho, low, high, n, len(names))


#: the rows against a ground-truth suite's planted truth (bench.execute.scoring), in column order
DECLARED = (
    Metric("ground_truth_mass", capability="saliency", unit="fraction", higher_is_better=True,
           aggregation="mean", function=relevance_mass,
           description="ground-truth suites: share of |map| inside the planted region f uses (relevance mass "
                       "accuracy, Arras et al. 2022), on the images that carry it"),
    Metric("ground_truth_rank", capability="saliency", unit="fraction", higher_is_better=True,
           aggregation="mean", function=relevance_rank,
           description="ground-truth suites: fraction of the region's pixels among the map's |region| most "
                       "relevant pixels (relevance rank accuracy, Arras et al. 2022; ties counted in expectation)"),
    Metric("ground_truth_change", capability="sweep", unit="fraction", higher_is_better=True,
           aggregation="mean", function=change_share,
           description="ground-truth suites: share of the total |pixel change| from the query to the sweep's end "
                       "that lies inside the planted region"),
    Metric("ground_truth_change_from_start", capability="sweep", unit="fraction", higher_is_better=None,
           aggregation="mean", function=change_share,
           description="ground_truth_change measured from the sweep's own first image (a reconstruction, for GCE "
                       "and the SVAE) instead of the query: the sweep's edit without the reconstruction's error"),
    Metric("content_kept", capability="sweep", unit="fraction", higher_is_better=True,
           aggregation="mean", function=class_kept,
           description="ground-truth suites: fraction of sweeps whose end the FID feature network's head puts in "
                       "the query's digit (a sweep should move the marker and leave the digit)"),
    Metric("mode_preservation", capability="sweep", unit="fraction", higher_is_better=True,
           aggregation="mean", function=mode_preservation,
           description="colored-mnist: fraction of sweeps whose end keeps the query's colour (dominant channel; "
                       "GANMEX App. Fig. 9B)"),
    Metric("ground_truth_change_causal", capability="latent", unit="fraction", higher_is_better=True,
           aggregation="mean", function=change_share,
           description="ground-truth suites: share of the change between the ends of a causal factor's latent "
                       "sweep inside the planted region, mean over the causal factors (does alpha control the "
                       "marker?)"),
    Metric("ground_truth_change_factor", capability="latent", unit="fraction", higher_is_better=None,
           aggregation="per-factor", function=change_share,
           description="ground_truth_change_causal of each single latent factor"),
    Metric("content_kept_causal", capability="latent", unit="fraction", higher_is_better=True,
           aggregation="mean", function=class_kept,
           description="ground-truth suites: fraction of a causal factor's latent-sweep ends that keep the query's "
                       "digit (the feature network's head), mean over the causal factors"),
    Metric("content_kept_factor", capability="latent", unit="fraction", higher_is_better=None,
           aggregation="per-factor", function=class_kept,
           description="content_kept_causal of each single latent factor"),
)

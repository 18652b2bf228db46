"""Scores of saliency maps, usable for every explainer with the saliency capability.

- Removal curves (Samek et al. 2016, as the exaggeration paper's §4.3 / Fig. 4c): replace a growing
  fraction of an image's pixels by uniform noise, most relevant first (MoRF) or least relevant
  first (LeRF), and record ``f``'s accuracy and its probability of the original class. A map that
  explains ``f`` makes the MoRF curve fall fast and the LeRF curve slowly. The leaderboard protocol
  ranks every map on one footing: the positive part of the map, normalised to [0, 1] (as the paper
  does), averaged over several random orders of the tied pixels, whose spread is reported.
- Gini index of a map (GANMEX App. B.2, after Chalasani et al. 2018): its sparsity.
- Cascading randomisation (GANMEX App. B.4, after Adebayo et al. 2018): the rank correlation of a
  map before and after the classifier's layers are re-initialised from the top; on the input's
  support (the leaderboard) and over all pixels (the Quantus-MPRT-like diagnostic).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from torch import nn

from metrics.declaration import Metric
from metrics.sweep import average_ranks
from metrics.timing import elapsed_seconds

#: fractions of pixels removed, 0 to 1 in steps of 0.05
DEFAULT_FRACTIONS = tuple(i / 20 for i in range(21))

#: how a map becomes the relevance that orders the pixels of a removal curve
RELEVANCE_MODES = ("positive", "signed", "absolute")


def relevance_order(maps: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Pixel indices of each map ``(N, ...)`` from most to least relevant, ``(N, P)``; ties are
    broken at random (a flat map removes pixels in random order, not raster order)."""
    flat = maps.flatten(1)
    shuffle = torch.rand(flat.shape, generator=generator).argsort(1).to(flat.device)  # a random permutation per row
    order = flat.gather(1, shuffle).argsort(dim=1, descending=True, stable=True)
    return shuffle.gather(1, order)


def _position_map(maps: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, H, W) by summing the channels; (N, H, W) unchanged."""
    if maps.dim() == 4:
        return maps.sum(1) if maps.shape[1] != 1 else maps[:, 0]
    return maps


def _relevance(maps: torch.Tensor, relevance: str) -> torch.Tensor:
    if relevance == "positive":
        return maps.clamp_min(0)
    if relevance == "absolute":
        return maps.abs()
    if relevance == "signed":
        return maps
    raise ValueError(f"relevance must be one of {RELEVANCE_MODES}, got {relevance!r}")


def removal_relevance(maps: torch.Tensor, relevance: str = "positive", *, normalise: bool = True) -> torch.Tensor:
    """The relevance per pixel position that orders a removal curve, ``(N, H, W)``.

    ``maps`` (N, C, H, W) are first summed over channels (the signed contributions of a position's
    channels offset each other, as they do in ``f``); then

    - ``"positive"`` (the leaderboard protocol, exaggeration paper §4.3): the positive part,
      ``max(map, 0)``; negative relevance counts as none, so it ties with the zeros;
    - ``"absolute"``: ``|map|`` (evidence for and against alike);
    - ``"signed"``: the map as it is (LeRF then removes the most negative first).

    With ``normalise`` each map is divided by its largest magnitude, so "positive" and "absolute"
    maps lie in [0, 1] (an all-zero map stays zero) and "signed" ones in [-1, 1]. That changes no
    pixel's order, so ``removal_curves`` ranks the unnormalised values (a division can round two
    distinct values into a tie).
    """
    rel = _relevance(_position_map(maps), relevance)
    if not normalise:
        return rel
    scale = rel.flatten(1).abs().amax(1).view(-1, *([1] * (rel.dim() - 1)))
    return torch.where(scale > 0, rel / torch.where(scale > 0, scale, torch.ones_like(scale)), rel)


def _sd(values: torch.Tensor) -> float:
    """Sample standard deviation (n - 1); exactly 0 when all values are equal, NaN for fewer than 2."""
    if values.numel() < 2:
        return math.nan
    if bool(values.max() == values.min()):
        return 0.0
    return float(values.std())


@dataclass(frozen=True)
class RemovalCurves:
    """MoRF / LeRF curves, averaged over images and over the random orders of tied pixels.

    The ``*_by_order`` fields hold one curve per tie order ``(T, Q)``; ``None`` means a single order
    (the mean curves are then that order's curves).
    """

    fractions: torch.Tensor  # (Q,)
    morf_accuracy: torch.Tensor  # (Q,) most relevant removed first, mean over images and tie orders
    morf_probability: torch.Tensor  # (Q,) mean f(x)[original class]
    lerf_accuracy: torch.Tensor  # (Q,) least relevant removed first
    lerf_probability: torch.Tensor
    morf_accuracy_by_order: torch.Tensor | None = None  # (T, Q)
    morf_probability_by_order: torch.Tensor | None = None
    lerf_accuracy_by_order: torch.Tensor | None = None
    lerf_probability_by_order: torch.Tensor | None = None
    relevance: str = "signed"  # how the maps were turned into the pixel order (see removal_relevance)

    @staticmethod
    def _auc(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.trapezoid(y, x, dim=-1) / (x[-1] - x[0])

    def _by_order(self, name: str) -> torch.Tensor:
        curves = getattr(self, f"{name}_by_order")
        return getattr(self, name).unsqueeze(0) if curves is None else curves

    @property
    def n_tie_orders(self) -> int:
        return self._by_order("morf_accuracy").shape[0]

    @property
    def morf_auc(self) -> float:
        """Normalised area under the MoRF accuracy curve: lower = the map found what f uses."""
        return float(self._auc(self.morf_accuracy, self.fractions))

    @property
    def lerf_auc(self) -> float:
        """Normalised area under the LeRF accuracy curve: higher = the map's unimportant pixels really are."""
        return float(self._auc(self.lerf_accuracy, self.fractions))

    @property
    def gap(self) -> float:
        """LeRF AUC - MoRF AUC: the larger, the better the map separates relevant from irrelevant pixels."""
        return self.lerf_auc - self.morf_auc

    @property
    def morf_probability_auc(self) -> float:
        """Normalised area under the MoRF curve of f's probability of the original class."""
        return float(self._auc(self.morf_probability, self.fractions))

    @property
    def lerf_probability_auc(self) -> float:
        return float(self._auc(self.lerf_probability, self.fractions))

    @property
    def morf_aucs(self) -> torch.Tensor:
        """MoRF accuracy AUC of each tie order, ``(T,)``; their mean is ``morf_auc``."""
        return self._auc(self._by_order("morf_accuracy"), self.fractions)

    @property
    def lerf_aucs(self) -> torch.Tensor:
        return self._auc(self._by_order("lerf_accuracy"), self.fractions)

    @property
    def gaps(self) -> torch.Tensor:
        """LeRF - MoRF AUC of each tie order (LeRF uses the reverse of the same order), ``(T,)``."""
        return self.lerf_aucs - self.morf_aucs

    @property
    def morf_auc_sd(self) -> float:
        """Standard deviation (n - 1) over tie orders of the MoRF AUC: 0 for maps without ties, NaN for one order."""
        return _sd(self.morf_aucs)

    @property
    def lerf_auc_sd(self) -> float:
        return _sd(self.lerf_aucs)

    @property
    def gap_sd(self) -> float:
        return _sd(self.gaps)


@torch.no_grad()
def removal_curves(classify: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, maps: torch.Tensor,
                   labels: torch.Tensor | None = None, fractions: tuple[float, ...] = DEFAULT_FRACTIONS, *,
                   generator: torch.Generator | None = None, chunk_size: int = 1024, relevance: str = "positive",
                   n_tie_orders: int = 5, baseline: torch.Tensor | None = None) -> RemovalCurves:
    """MoRF and LeRF curves of ``maps`` (N, C, H, W) or (N, H, W) on ``images`` (N, C, H, W).

    ``labels`` default to ``f``'s predictions on the images. Maps rank pixel *positions* (all
    channels of a position removed together); the order comes from ``removal_relevance(maps,
    relevance)``: by default the positive part of the channel-summed map (normalising it to [0, 1]
    changes no order). Pixels of equal relevance (the zeros of a zero-baseline attribution, and
    with "positive" every negative pixel too) are taken in a random order; the curves are averaged
    over ``n_tie_orders`` such orders and ``RemovalCurves`` keeps each order's curve, so the spread
    over tie orders (``morf_auc_sd``...) comes with every area. A map without ties gives the same
    order every time (spread 0).

    Each image gets one draw of uniform noise (or the replacement values ``baseline``, same shape
    as ``images``, for instance zeros for a black baseline), reused for every fraction, both orders
    and every tie order, so the curves differ only in which pixels are replaced. The draws come from
    ``generator``: the noise first, then the tie orders (with ``relevance="signed"`` and one tie
    order, exactly the draws and curves of the former signed protocol). All N * Q * 2 * T perturbed
    images go through ``classify`` in chunks of ``chunk_size``, built chunk by chunk; the result
    does not depend on ``chunk_size`` beyond ``classify``'s own batch arithmetic.
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
    if n_tie_orders < 1:
        raise ValueError(f"n_tie_orders must be at least 1, got {n_tie_orders}")
    if baseline is not None and baseline.shape != images.shape:
        raise ValueError(f"baseline of shape {tuple(baseline.shape)} does not match images {tuple(images.shape)}")
    rel = _relevance(maps, relevance)  # (N, H, W); unnormalised: the same order, no rounding ties
    device = images.device
    if labels is None:
        labels = torch.cat([classify(images[i:i + chunk_size]).argmax(1) for i in range(0, n, chunk_size)])
    labels = labels.to(device)
    p = rel[0].numel()
    q, t = len(fr), n_tie_orders
    noise = (torch.rand(images.shape, generator=generator) if baseline is None else baseline).to(images)
    counts = torch.round(fr * p).long().to(device)  # pixels removed at each fraction, (Q,)
    # rows t * N + i: map i under tie order t. rank[row, j] = position of pixel j in the MoRF order;
    # pixel j is removed at fraction q iff rank < counts[q] (MoRF) or p - 1 - rank < counts[q] (LeRF)
    order = relevance_order(rel.flatten(1).repeat(t, 1), generator=generator).to(device)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(p, device=device).expand(t * n, p))
    flat_images, flat_noise = images.flatten(2), noise.flatten(2)  # (N, C, P)
    total = 2 * q * t * n  # items (direction, fraction, tie order, image), image fastest
    correct = torch.empty(total, dtype=torch.float64)
    probability = torch.empty(total, dtype=torch.float64)
    for start in range(0, total, chunk_size):
        idx = torch.arange(start, min(start + chunk_size, total), device=device)
        row = idx % (t * n)  # tie order and image
        image = row % n
        fraction = (idx // (t * n)) % q
        lerf = idx >= q * t * n
        r = rank[row]
        r = torch.where(lerf.unsqueeze(1), p - 1 - r, r)
        removed = (r < counts[fraction].unsqueeze(1)).unsqueeze(1)  # (B, 1, P)
        perturbed = torch.where(removed, flat_noise[image], flat_images[image]).view(len(idx), *images.shape[1:])
        probs = classify(perturbed)
        lab = labels[image].to(probs.device)
        correct[start:start + len(idx)] = (probs.argmax(1) == lab).double().cpu()
        probability[start:start + len(idx)] = probs.gather(1, lab.unsqueeze(1))[:, 0].double().cpu()
    correct, probability = correct.view(2, q, t, n).mean(3), probability.view(2, q, t, n).mean(3)  # (2, Q, T)
    results = {}
    for d, name in enumerate(("morf", "lerf")):
        results[f"{name}_accuracy_by_order"] = correct[d].T.contiguous()  # (T, Q)
        results[f"{name}_probability_by_order"] = probability[d].T.contiguous()
        results[f"{name}_accuracy"] = correct[d].mean(1)
        results[f"{name}_probability"] = probability[d].mean(1)
    return RemovalCurves(fractions=fr, relevance=relevance, **results)


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
    ra, rb = average_ranks(a.double()), average_ranks(b.double())
    ra, rb = ra - ra.mean(1, keepdim=True), rb - rb.mean(1, keepdim=True)
    denom = (ra.norm(dim=1) * rb.norm(dim=1)).clamp_min(1e-12)
    return (ra * rb).sum(1) / denom


def masked_spearman_rows(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation of each row of ``a`` with the same row of ``b``, over the entries
    where that row of ``mask`` is true only: ``(N, P)`` each -> ``(N,)``, batched (no loop per row).

    Ranks are taken within the mask (ties averaged, as ``scipy.stats.spearmanr``): the entries
    outside it are set to +inf, so they rank after every finite value and leave the ranks of the
    masked entries 0..k-1 untouched. A row with fewer than 3 masked entries, or constant on its
    mask in ``a`` or ``b`` (the correlation is undefined, scipy gives NaN too), gives NaN. The
    maps must be finite.
    """
    if a.shape != b.shape or mask.shape != a.shape:
        raise ValueError(f"shapes differ: {tuple(a.shape)}, {tuple(b.shape)}, mask {tuple(mask.shape)}")
    a, b, mask = a.double(), b.double(), mask.bool().to(a.device)
    outside = torch.tensor(math.inf, dtype=torch.float64, device=a.device)
    ra, rb = average_ranks(torch.where(mask, a, outside)), average_ranks(torch.where(mask, b, outside))
    k = mask.sum(1, keepdim=True).double()
    mean = (k - 1) / 2  # mean of the ranks 0..k-1 (averaging ties keeps the sum)
    ca = torch.where(mask, ra - mean, torch.zeros_like(ra))
    cb = torch.where(mask, rb - mean, torch.zeros_like(rb))
    denom = (ca.pow(2).sum(1) * cb.pow(2).sum(1)).sqrt()
    r = ((ca * cb).sum(1) / torch.where(denom > 0, denom, torch.ones_like(denom))).clamp(-1, 1)
    return torch.where((k[:, 0] >= 3) & (denom > 0), r, torch.full_like(r, math.nan))


def input_support(images: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    """Where the input is non-zero, in the layout of ``maps`` (boolean, ``maps.shape``).

    Maps with the images' channels (N, C, H, W) get the support per entry (``images != 0``); maps per
    position (N, H, W) or (N, 1, H, W) get the positions where any channel is non-zero.
    """
    nonzero = images != 0
    if maps.shape == images.shape:
        return nonzero
    positions = nonzero.any(1)  # (N, H, W)
    if maps.shape == positions.shape:
        return positions
    if maps.dim() == 4 and maps.shape[1] == 1 and maps.shape[2:] == positions.shape[1:]:
        return positions.unsqueeze(1)
    raise ValueError(f"maps of shape {tuple(maps.shape)} do not match images {tuple(images.shape)}")


def match_support(support: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    support = support.bool().to(maps.device)
    if support.shape == maps.shape:
        return support
    if support.dim() == maps.dim() - 1 and maps.dim() == 4:  # per position, maps per channel
        support = support.unsqueeze(1)
    try:
        return support.expand_as(maps)
    except RuntimeError:
        raise ValueError(f"support of shape {tuple(support.shape)} does not match maps {tuple(maps.shape)}") from None


def parameterised_layers(model: nn.Module) -> list[str]:
    """Names of the modules that own parameters (Conv, Linear, ...), in definition order."""
    return [name for name, m in model.named_modules()
            if any(True for _ in m.parameters(recurse=False)) and hasattr(m, "reset_parameters")]


def _randomised_maps(model: nn.Module, saliency: Callable[[nn.Module], torch.Tensor], seed: int
                     ) -> Iterator[tuple[str, torch.Tensor]]:
    """(layer name, maps of the copy whose layers from the top down to this one are re-initialised);
    torch is seeded with ``seed`` before each layer's re-initialisation, as Quantus MPRT re-seeds before
    each layer (its ``seed`` + 1 is our ``seed``), so the two draw the same weights layer by layer."""
    randomised = copy.deepcopy(model)
    modules = dict(randomised.named_modules())
    with torch.random.fork_rng(devices=[]):
        for name in reversed(parameterised_layers(randomised)):
            torch.manual_seed(seed)
            modules[name].reset_parameters()
            yield name, saliency(randomised)


def cascading_randomisation(model: nn.Module, saliency: Callable[[nn.Module], torch.Tensor], *,
                            seed: int = 0) -> list[tuple[str, torch.Tensor]]:
    """Re-initialise ``model``'s parameterised layers one at a time, from the output back (cumulative),
    and after each, the Spearman correlation of |map| with the original |map| per image, over all
    pixels (the Quantus-MPRT-like diagnostic; ``cascading_randomisation_scores`` adds the
    leaderboard's correlations on the input's support).

    ``saliency(model)`` returns the maps ``(N, ...)`` of the explainer run against ``model``. Returns
    ``[(layer name, (N,) correlations), ...]`` from the top layer down; ``model`` itself is untouched.
    """
    reference = saliency(model).flatten(1).abs()
    return [(name, spearman_rows(reference, maps.flatten(1).abs()))
            for name, maps in _randomised_maps(model, saliency, seed)]


@dataclass(frozen=True)
class LayerRandomisation:
    """Per-image similarity ``(N,)`` of the maps of ``f`` and of ``f`` with the layers from the top
    down to ``layer`` re-initialised (low = the map depends on those parameters)."""

    layer: str
    absolute_all: torch.Tensor  # Spearman of |map| over every pixel (Quantus MPRT's default; diagnostic)
    absolute_support: torch.Tensor  # Spearman of |map| on the input's support (leaderboard); NaN: < 3 pixels
    signed_support: torch.Tensor  # Spearman of the signed maps on the input's support


def cascading_randomisation_scores(model: nn.Module, saliency: Callable[[nn.Module], torch.Tensor],
                                   support: torch.Tensor, *, seed: int = 0) -> list[LayerRandomisation]:
    """Cascading randomisation (Adebayo et al. 2018; GANMEX App. B.4) scored on the input's support.

    ``model``'s parameterised layers are re-initialised one at a time from the output back
    (cumulative; torch re-seeded with ``seed`` before each layer, the same draws as
    ``cascading_randomisation`` and as Quantus MPRT with its ``seed`` one less),
    and after each the maps ``saliency(randomised copy)`` ``(N, ...)`` are compared with
    ``saliency(model)`` per image. ``support`` is a boolean mask of the map's entries to compare:
    ``input_support(images, maps)`` (where the input is non-zero), of the maps' shape or per
    position (N, H, W) for maps (N, C, H, W). Returns one ``LayerRandomisation`` per layer, top first.

    Why the support: Adebayo et al. ask whether a map depends on the model's parameters, and measure
    it by the rank correlation of the maps (with and without absolute values). A zero-baseline
    attribution (IG, Input x Gradient, DeepLIFT) is exactly zero wherever the input is zero,
    whatever the parameters: on MNIST that is ~80% of the pixels, tied at the bottom of both
    rankings, so the all-pixel correlation measures the digit's shape, not the map's dependence on
    f (IG with every layer re-initialised: 0.99 over all pixels, 0.45 on the support, -0.05 signed;
    two independent maps sharing 81% zero support: 0.985). That is the failure the check exists to
    catch (a map that follows the input, like an edge detector, passes visual inspection). On the
    support every map is compared on the same pixels, the ones the input leaves free to vary. The
    alternative, dropping the positions that are zero in *both* maps, compares each explainer on a
    different, map-dependent set of pixels (a map that is zero outside the digit and one that is not
    are then not on one footing), and keeps a pixel zeroed in one map only, so it is not used here.
    ``absolute_all`` keeps the all-pixel |map| correlation as the peer library's diagnostic.
    """
    reference = saliency(model)
    mask = match_support(support, reference).flatten(1)
    ref = reference.flatten(1)
    out = []
    for name, maps in _randomised_maps(model, saliency, seed):
        maps = maps.flatten(1)
        out.append(LayerRandomisation(
            layer=name, absolute_all=spearman_rows(ref.abs(), maps.abs()),
            absolute_support=masked_spearman_rows(ref.abs(), maps.abs(), mask),
            signed_support=masked_spearman_rows(ref, maps, mask)))
    return out


#: the rows of a saliency map (bench.execute.scoring.score_saliency), in column order
DECLARED = (
    Metric("removal_morf_auc", capability="saliency", unit="fraction", higher_is_better=False,
           aggregation="per-seed", function=removal_curves,
           description="area under f's accuracy as the most relevant pixels (by the map's positive part, the "
                       "exaggeration paper's protocol) are replaced by uniform noise, 0 to 100% (Samek et al. 2016; "
                       "exaggeration Fig. 4c), mean over random orders of tied pixels: low = the map found what f "
                       "uses"),
    Metric("removal_lerf_auc", capability="saliency", unit="fraction", higher_is_better=True,
           aggregation="per-seed", function=removal_curves,
           description="area under f's accuracy as the least relevant pixels are replaced first: high = the pixels "
                       "the map calls irrelevant are"),
    Metric("removal_gap", capability="saliency", unit="fraction", higher_is_better=True,
           aggregation="per-seed", function=removal_curves,
           description="removal_lerf_auc - removal_morf_auc"),
    Metric("removal_morf_probability_auc", capability="saliency", unit="probability", higher_is_better=False,
           aggregation="per-seed", function=removal_curves,
           description="area under f's mean probability of the original class, most relevant pixels removed first"),
    Metric("removal_morf_auc_tie_sd", capability="saliency", unit="fraction", higher_is_better=None,
           aggregation="per-seed", function=removal_curves,
           description="s.d. of removal_morf_auc over the random orders of tied pixels"),
    Metric("removal_lerf_auc_tie_sd", capability="saliency", unit="fraction", higher_is_better=None,
           aggregation="per-seed", function=removal_curves,
           description="s.d. of removal_lerf_auc over the random orders of tied pixels"),
    Metric("removal_gap_tie_sd", capability="saliency", unit="fraction", higher_is_better=None,
           aggregation="per-seed", function=removal_curves,
           description="s.d. of removal_gap over the random orders of tied pixels"),
    Metric("saliency_gini", capability="saliency", unit="index", higher_is_better=True,
           aggregation="mean", function=gini, inputs=("maps",),
           description="mean Gini index of |map|: sparsity (GANMEX App. B.2; 0 flat, 1 - 1/P a single pixel)"),
    Metric("randomisation_correlation", capability="saliency", unit="correlation", higher_is_better=False,
           aggregation="mean", function=cascading_randomisation_scores,
           description="Spearman correlation of |map| on the input's non-zero pixels, before and after every layer "
                       "of f is re-initialised (cascading from the top; Adebayo et al. 2018, GANMEX App. B.4): near "
                       "1 = the map does not depend on f; n/a for a map that never calls f"),
    Metric("randomisation_correlation_signed", capability="saliency", unit="correlation", higher_is_better=None,
           aggregation="mean", function=cascading_randomisation_scores,
           description="the same on the signed maps (Adebayo et al. report both); a diagnostic, since a map whose "
                       "sign flips under the randomised f correlates negatively and also depends on f"),
    Metric("randomisation_correlation_all_pixels", capability="saliency", unit="correlation", higher_is_better=None,
           aggregation="mean", function=cascading_randomisation_scores,
           description="the same for |map| over all pixels, as Quantus MPRT: dominated by the pixels both maps "
                       "leave at 0"),
    Metric("saliency_seconds", capability="saliency", unit="s", higher_is_better=None,
           aggregation="mean", function=elapsed_seconds,
           description="time to make one saliency map, on the run's device"),
)

"""Score one fitted explainer with every metric its capabilities allow.

Produces long-format rows ``{"explainer", "metric", "factor", "value", "unit",
"higher_is_better"}``; metrics live in :mod:`metrics` and stay pure, each declared beside its function.
:func:`score_explainer` runs the scorer of each capability the explainer has (:data:`SCORERS`). A scorer
writes the rows of the metrics it computes itself (families of one expensive call, seeded draws, the run's
setups), and, at a fixed place among them, those of every metric of its capability declared with ``inputs``
(:func:`declared_rows`): such a metric needs no code here.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from dataclasses import dataclass, replace
from typing import Callable, Iterator

import torch

from bench.inputs.images import Split
from bench.outputs.results import Row
from explainers.base import Capability, Explainer
from metrics import INPUTS, METRICS
from metrics.accuracy_drop import accuracy_drop
from metrics import sweep as sweep_metrics
from metrics.fid import extract_features, frechet_distance
from metrics.information_flow import information_flow_per_factor, latent_class_probs, mutual_information_from_probs
from metrics.posterior import aggregate_posterior_map
from metrics.invariance import head_agreement, invariance_curve
from metrics import ground_truth as gt
from metrics.saliency import (match_support, cascading_randomisation_scores, input_support, masked_spearman_rows,
                              parameterised_layers, removal_curves)
from metrics.timing import elapsed_seconds, start_clock

#: FID groups (exaggeration Table 1): f(x)[positive class] within these bounds
FID_GROUPS = {"fid": (0.0, 1.0), "fid_present": (0.9, 1.0), "fid_absent": (0.0, 0.1)}


def row(explainer: str, metric: str, value: float | None, factor: str | None = None, note: str | None = None) -> Row:
    """One result of a registered metric (its unit and direction from ``METRICS``); ``value`` None (with a
    ``note`` saying why) where the metric is undefined."""
    info = METRICS[metric]
    return Row(explainer, metric, None if value is None else float(value), factor, info.unit, info.higher_is_better,
               note or None)


def registered_metrics_source() -> dict:
    """What a cached score's key adds for the metrics registered from outside the package
    (:func:`metrics.register`): each one's declaration and its function's source, so scores cached without
    them (or with another version of them) are not read back. ``{}`` where none is, which leaves the key of
    the built-in metrics as it is. OSError or TypeError where a function's source cannot be read (made by
    ``exec``): then nothing is cached."""
    built_in = METRICS.built_in()
    added = [m for name, m in METRICS.items() if name not in built_in]
    return {"metrics": [f"{m!r}\n{inspect.getsource(m.function)}" for m in added]} if added else {}


def scoring_context(capability: str, **values) -> dict:
    """What the scorer of ``capability`` hands its generically scored metrics: exactly the names of
    ``metrics.INPUTS[capability]`` (a TypeError otherwise, so the declarations' inputs and the scorers agree)."""
    offered = INPUTS[capability]
    if set(values) != set(offered):
        raise TypeError(f"the {capability} scorer must offer {sorted(offered)}, not {sorted(values)}")
    return values


def _pooled(metric, value):
    """A declared metric's value pooled by its aggregation (``mean`` / ``max`` over a per-item tensor)."""
    if isinstance(value, torch.Tensor) and value.ndim > 0 and metric.aggregation != "per-factor":
        if metric.aggregation == "mean":
            return value.mean()
        if metric.aggregation == "max":
            return value.max()
        raise ValueError(f"metric {metric.name!r} ({metric.aggregation}) returned {tuple(value.shape)} values, not one")
    return value


def declared(capability: str, context: dict) -> Iterator[tuple]:
    """(metric, value) of every metric of ``capability`` declared with ``inputs``, in column order: its
    function called on those entries of ``context`` (once for a family that shares function and inputs),
    ``field`` taken, pooled by its aggregation."""
    results: dict = {}
    for metric in METRICS.values():
        if metric.capability != capability or not metric.inputs:
            continue
        key = (metric.function, metric.inputs)
        if key not in results:
            results[key] = metric.function(*(context[k] for k in metric.inputs))
        value = results[key]
        if metric.field is not None and value is not None:
            value = getattr(value, metric.field)
        yield metric, _pooled(metric, value)


def declared_rows(name: str, capability: str, context: dict, factors: list[str] | None = None) -> list[Row]:
    """The rows of :func:`declared`: one per metric, one per factor (``factors``, its names) of a per-factor
    one."""
    rows = []
    for metric, value in declared(capability, context):
        if metric.aggregation == "per-factor":
            values = value.tolist() if isinstance(value, torch.Tensor) else list(value)
            rows += [row(name, metric.name, v, factors[d]) for d, v in enumerate(values)]
        else:
            rows.append(row(name, metric.name, value))
    return rows


def declared_values(capability: str, context: dict) -> dict[str, float | None]:
    """The whole-explainer values of :func:`declared`, by metric (a proxy-validity point's)."""
    return {metric.name: None if value is None else float(value)
            for metric, value in declared(capability, context) if metric.aggregation != "per-factor"}


@torch.no_grad()
def score_latent(explainer: Explainer, classifier: Callable[[torch.Tensor], torch.Tensor], val: Split, *,
                 n_alpha: int, n_beta: int, seed: int, device: torch.device) -> tuple[list[Row], dict]:
    """Information flow (joint and per factor) and accuracy drop of a latent explainer, probed from its
    prior N(0, I) and from its aggregate posterior (the codes of the validation images), each in its own
    column.

    Information flow is reported jackknife-corrected over the beta draws (the plug-in's bias of about
    (M-1)/(2 N_beta) would otherwise be the whole of a noncausal flow); the plug-in values of the joint
    flows stay as diagnostics. Returns the rows and the per-factor arrays (for figures).
    """
    split, name = explainer.latent_split, explainer.name
    k, l = split.n_causal, split.n_noncausal
    gen = lambda offset: torch.Generator().manual_seed(seed * 1000 + offset)  # noqa: E731
    rows: list[Row] = []
    images, labels = val.images.to(device), val.labels.to(device)
    codes = torch.cat([explainer.encode(images[i:i + 1024]) for i in range(0, len(images), 1024)])  # (N, D)
    to_posterior = aggregate_posterior_map(codes, k)
    # I(beta; Y): the same estimator with beta in the leading (causal) slots
    beta_first = lambda decode: (lambda z: decode(torch.cat([z[:, l:], z[:, :l]], dim=1)))  # noqa: E731
    decoders = {"": explainer.decode, "_posterior": lambda z: explainer.decode(to_posterior(z))}

    # each estimate's draws are decoded once; its jackknife and plug-in values come from the same probabilities
    for suffix, decode in decoders.items():
        start = start_clock(device)
        probs = latent_class_probs(decode, classifier, k, l, n_alpha, n_beta, generator=gen(1), device=device)
        flow = mutual_information_from_probs(probs, bias_correction="jackknife")
        seconds = elapsed_seconds(start, device)
        if suffix == "":
            rows.append(row(name, "information_flow_seconds", seconds))
        rows.append(row(name, f"information_flow{suffix}", flow))
        if suffix == "":
            rows.append(row(name, "information_flow_plugin", mutual_information_from_probs(probs)))
        if l > 0:
            probs = latent_class_probs(beta_first(decode), classifier, l, k, n_alpha, n_beta, generator=gen(2),
                                       device=device)
            rows.append(row(name, f"information_flow_noncausal{suffix}",
                            mutual_information_from_probs(probs, bias_correction="jackknife")))
            if suffix == "":
                rows.append(row(name, "information_flow_noncausal_plugin", mutual_information_from_probs(probs)))

    per_factor = information_flow_per_factor(explainer.decode, classifier, split.n_latent, n_alpha, n_beta,
                                             generator=gen(3), device=device, bias_correction="jackknife")
    names = split.names()
    rows += [row(name, "information_flow_factor", v, names[d]) for d, v in enumerate(per_factor.tolist())]

    drops = {}
    for suffix, resample in (("", "prior"), ("_posterior", "posterior")):
        drop = accuracy_drop(explainer.encode, explainer.decode, classifier, images, labels, generator=gen(4),
                             resample=resample)
        drops[resample] = drop
        if suffix == "":
            rows.append(row(name, "reencoded_accuracy", drop.reencoded))
        rows.append(row(name, f"accuracy_drop_causal{suffix}", drop.drop[:k].mean()))  # mean over causal factors
        if l > 0:
            rows.append(row(name, f"accuracy_drop_noncausal{suffix}", drop.drop[k:].max()))  # the worst noncausal
    drop = drops["prior"]
    rows += [row(name, "accuracy_drop_factor", v, names[d]) for d, v in enumerate(drop.drop.tolist())]
    rows += declared_rows(name, "latent", scoring_context(
        "latent", encode=explainer.encode, decode=explainer.decode, classifier=classifier, images=images, labels=labels,
        codes=codes, n_causal=k, n_noncausal=l, seed=seed), names)
    arrays = {"factor_names": names, "n_causal": k, "information_flow": per_factor.cpu(),
              "accuracy_drop": drop.drop.cpu(), "original_accuracy": drop.original, "reencoded_accuracy": drop.reencoded}
    return rows, arrays


@torch.no_grad()
def score_invariance(explainer: Explainer, classifier, test: Split, *, seed: int, device: torch.device
                     ) -> tuple[list[Row], dict]:
    """The invariance curve of a latent explainer's noncausal factors on the test split (metrics.invariance),
    and the agreement of its own classification head with ``f`` where it has one (SVAE)."""
    name, split = explainer.name, explainer.latent_split
    rows: list[Row] = []
    images = test.images.to(device)
    if split.n_noncausal:
        curve = invariance_curve(explainer.encode, explainer.decode, classifier, images, split.n_causal,
                                 generator=torch.Generator().manual_seed(seed * 1000 + 5))
        rows += [row(name, "invariance_area", curve.area), row(name, "invariance_sigma1", curve.at(1.0))]
        arrays = {"sigmas": curve.sigmas.tolist(), "kept": curve.kept.tolist(), "reencoded": curve.reencoded}
    else:
        arrays = {}
    surrogate = getattr(explainer, "surrogate", None)
    if surrogate is not None:
        rows.append(row(name, "head_agreement", head_agreement(surrogate, classifier, images)))
    return rows, arrays


@dataclass
class SweepSetup:
    """What every sweep-capable explainer is scored on (the same for all of them in a run).

    FID's reference set is the test images that are not queries: no FID input is a reference image or a
    query (docs/design.md, "Metric protocols").
    """

    queries: torch.Tensor  # (N, C, H, W) test images to explain
    real_features: torch.Tensor  # (R, D) features of FID's reference images (test images, queries excluded)
    real_positive: torch.Tensor  # (R,) f(reference)[positive class]
    extractor: torch.nn.Module
    positive_class: int
    n_steps: int = 11
    batch_size: int = 100
    fid_samples: int = 1000  # generated images per FID group, the same for every explainer
    class_ids: tuple[int, ...] | None = None  # the dataset label of each of f's classes (independent validity)
    fid_seed: int = 0  # which generated images a group's subsample keeps
    truth: str | None = None  # a ground-truth suite's planted truth: "marker" or "colour" (bench.inputs.ground_truth)
    region: torch.Tensor | None = None  # (1, H, W) bool: the marker's pixels ("marker")
    seed: int = 0  # the run's seed (the noise of the graded degradations)

    @functools.cached_property
    def judged_queries(self) -> torch.Tensor:
        """The FID feature network's class of every query ``(N,)``: judged once per seed, read by every
        explainer's ``content_kept`` (and its degradations') and the latent sweeps'."""
        return _judge(self, self.queries).argmax(1)


def fid_by_group(fake_features: torch.Tensor, fake_positive: torch.Tensor, setup: SweepSetup, name: str
                 ) -> tuple[list[Row], dict]:
    """FID of generated images against the reference images, overall and by the exaggeration paper's
    groups (Table 1: f(x)[positive class] in [0.9, 1] "present", [0, 0.1] "absent").

    Every explainer's group is a random subsample of exactly ``max(setup.fid_samples, D + 1)`` generated
    images (D the feature dimension), since
    FID's bias grows as the sample shrinks; an explainer with fewer images in a group (or a group with
    fewer than the feature dimension + 1 images on either side, where the covariance is singular) gets
    ``None`` with the counts in the note, not a number.
    """
    rows, counts = [], {}
    need = max(setup.fid_samples, fake_features.shape[1] + 1)
    gen = torch.Generator().manual_seed(setup.fid_seed)
    for metric, (lo, hi) in FID_GROUPS.items():
        in_fake = ((fake_positive >= lo) & (fake_positive <= hi)).nonzero().flatten()
        in_real = (setup.real_positive >= lo) & (setup.real_positive <= hi)
        n_fake, n_real = len(in_fake), int(in_real.sum())
        counts[metric] = {"generated": n_fake, "real": n_real, "used": 0}
        if n_fake >= need and n_real > fake_features.shape[1]:
            keep = in_fake[torch.randperm(n_fake, generator=gen)[:need]]
            counts[metric]["used"] = len(keep)
            rows.append(row(name, metric, frechet_distance(fake_features[keep], setup.real_features[in_real])))
        else:  # too few to compare on the same footing: undefined, not a number from a smaller sample
            rows.append(row(name, metric, None, note=f"{n_fake} generated (need {need}) and {n_real} reference "
                                                     f"images with f(x)[positive] in [{lo}, {hi}]"))
    return rows, counts


@torch.no_grad()
def score_sweeps(explainer: Explainer, classifier, setup: SweepSetup, *, device: torch.device
                 ) -> tuple[list[Row], dict]:
    """Sweep faithfulness (metrics.sweep) and FID by group (metrics.fid) of an explainer's counterfactual sweeps;
    on a ground-truth suite also the metrics against its truth (metrics.ground_truth), and the same numbers for
    the sweeps blended with noise at ``gt.DEGRADATION_LEVELS`` (the proxy-validity points, ``arrays``).

    FID reads only what the explainer generates: steps 1..S-1 of every sweep, never step 0 (the query, or
    its reconstruction). Validity is judged twice: by ``f``, and by the FID feature network's own head (a
    classifier the explainers never trained against; explainers optimised against ``f`` can win f's verdict
    with adversarial edits).
    """
    name, s = explainer.name, setup.n_steps
    queries = setup.queries.to(device)
    probs0 = classifier(queries)
    index, target = explainer.sweep_targets(probs0.argmax(1).cpu(), probs0.shape[1])
    images = []
    start = start_clock(device)
    for i in range(0, len(index), setup.batch_size):
        idx, tgt = index[i:i + setup.batch_size], target[i:i + setup.batch_size].to(device)
        images.append(explainer.sweep(queries[idx], tgt, s).cpu())  # (B, S, C, H, W)
    seconds = elapsed_seconds(start, device, max(len(index), 1))
    images = torch.cat(images)
    start_probs = probs0.cpu()[index].gather(1, target.view(-1, 1)).squeeze(1)
    rows, arrays = judge_sweeps(name, images, index, target, start_probs, classifier, setup, device=device,
                                seconds=seconds)
    if setup.truth is not None:  # graded degradations: the points of the proxy-validity table
        noise = torch.rand(images[:, 0].shape, generator=torch.Generator().manual_seed(setup.seed * 1000 + 8))
        points = [{"capability": "sweep", "level": 0.0, "values": _values(rows)}]
        for level in gt.DEGRADATION_LEVELS:
            degraded, _ = judge_sweeps(name, gt.degrade_sweeps(images, level, noise), index, target, start_probs,
                                       classifier, setup, device=device)
            points.append({"capability": "sweep", "level": level, "values": _values(degraded)})
        arrays["proxy_points"] = points
    return rows, arrays


def _values(rows: list[Row]) -> dict[str, float | None]:
    """A point of the proxy-validity table: the whole-explainer values of ``rows`` by metric."""
    return {r.metric: r.value for r in rows if r.factor is None and r.metric is not None}


def _classify_sweeps(classifier, images: torch.Tensor, device: torch.device, batch: int = 100) -> torch.Tensor:
    """f's probabilities of every image of sweeps ``(N, S, C, H, W)``: ``(N, S, M)``."""
    return torch.cat([classifier(images[i:i + batch].flatten(0, 1).to(device)).unflatten(0, (-1, images.shape[1]))
                      .cpu() for i in range(0, len(images), batch)])


def _judge(setup: SweepSetup, images: torch.Tensor) -> torch.Tensor:
    """The FID feature network's own class scores of ``images`` (N, C, H, W)."""
    at = next(setup.extractor.parameters()).device
    return torch.cat([setup.extractor(images[i:i + 512].to(at)).cpu() for i in range(0, len(images), 512)])


@torch.no_grad()
def judge_sweeps(name: str, images: torch.Tensor, index: torch.Tensor, target: torch.Tensor,
                 start_probs: torch.Tensor, classifier, setup: SweepSetup, *, device: torch.device,
                 seconds: float | None = None) -> tuple[list[Row], dict]:
    """Every metric of sweeps ``images`` ``(N, S, C, H, W)`` of queries ``setup.queries[index]`` toward
    ``target``, whose f(query)[target] is ``start_probs``: the declared ones (faithfulness, validity,
    proximity), ``seconds`` (a sweep's time) when given, independent validity, on a ground-truth suite the
    metrics against its truth, and FID by group."""
    s = images.shape[1]
    probs = _classify_sweeps(classifier, images, device)
    target_probs = probs.gather(2, target.view(-1, 1, 1).expand(-1, s, 1)).squeeze(2)  # (N, S)
    requested = sweep_metrics.requested_ramp(start_probs, s)
    queries, ends = setup.queries[index], images[:, -1]
    rows = declared_rows(name, "sweep", scoring_context(
        "sweep", sweeps=images, queries=queries, ends=ends, target=target, probs=probs, end_probs=probs[:, -1],
        requested=requested, target_probs=target_probs, classifier=classifier))
    if seconds is not None:
        rows.append(row(name, "sweep_seconds", seconds))
    head = getattr(setup.extractor, "head", None)
    if head is not None and setup.class_ids is not None:
        wanted = torch.tensor(setup.class_ids)[target]  # the dataset label of each sweep's target
        rows.append(row(name, "sweep_validity_independent", sweep_metrics.validity(_judge(setup, ends), wanted)))
    else:
        rows.append(row(name, "sweep_validity_independent", None,
                        note="the FID feature extractor has no classification head of the suite's classes"))
    if setup.truth == "marker":
        rows.append(row(name, "ground_truth_change", gt.change_share(queries, ends, setup.region).mean()))
        rows.append(row(name, "ground_truth_change_from_start",
                        gt.change_share(images[:, 0], ends, setup.region).mean()))
        if head is not None:
            rows.append(row(name, "content_kept", gt.class_kept(_judge(setup, ends), setup.judged_queries[index])))
    elif setup.truth == "colour":
        rows.append(row(name, "mode_preservation", gt.mode_preservation(queries, ends)))

    generated = images[:, 1:].flatten(0, 1)  # (N * (S - 1), C, H, W): step 0 is the query or its reconstruction
    fake_positive = probs[:, 1:, setup.positive_class].flatten()
    fid_rows, counts = fid_by_group(extract_features(setup.extractor, generated), fake_positive, setup, name)
    rows += fid_rows
    arrays = {"requested": requested, "obtained": target_probs, "fid_counts": counts, "n_sweeps": len(index),
              "sweep_images": images, "sweep_index": index, "sweep_target": target}
    return rows, arrays


@torch.no_grad()
def score_latent_sweeps(explainer: Explainer, classifier, queries: torch.Tensor, *, n_steps: int = 11,
                        sweep_range: float = 3.0, device: torch.device, truth: SweepSetup | None = None
                        ) -> list[Row]:
    """Change of ``f`` along a sweep of each latent factor over [z_d - r, z_d + r] around each query's own
    code (GCE Fig. 3/4; the reproducibility study's [alpha - 3, alpha + 3]), per factor and for the
    noncausal factors together (should be ~0).

    ``truth``: on a marker suite (``truth.truth == "marker"``), each factor's sweeps are also scored against
    the truth: the share of the change between the sweep's two ends inside the marker region, and the
    fraction of ends (both) the feature network's head puts in the query's digit (does alpha control the
    marker, and only the marker?)."""
    split, name = explainer.latent_split, explainer.name
    queries = queries.to(device)
    reference = classifier(explainer.decode(explainer.encode(queries)))
    values = torch.linspace(-sweep_range, sweep_range, n_steps)
    marker = truth is not None and truth.truth == "marker"
    judged = marker and getattr(truth.extractor, "head", None) is not None
    changes, inside, kept = [], [], []
    for d in range(split.n_latent):
        sw = explainer.sweep_factor(queries, d, values)
        probs = classifier(sw.flatten(0, 1)).unflatten(0, sw.shape[:2])
        changes.append(sweep_metrics.noncausal_change(probs, reference))
        if marker:
            inside.append(float(gt.change_share(sw[:, 0].cpu(), sw[:, -1].cpu(), truth.region).mean()))
            if judged:  # the queries are the first of truth.queries (score_explainer)
                ends = torch.cat([sw[:, 0], sw[:, -1]]).cpu()
                digit = truth.judged_queries[:len(queries)].repeat(2)
                kept.append(float(gt.class_kept(_judge(truth, ends), digit)))
    names = split.names()
    rows = [row(name, "sweep_change_factor", v, names[d]) for d, v in enumerate(changes)]
    if split.n_noncausal:
        rows.append(row(name, "sweep_noncausal_change", sum(changes[split.n_causal:]) / split.n_noncausal))
    if inside:
        k = split.n_causal
        rows += [row(name, "ground_truth_change_factor", v, names[d]) for d, v in enumerate(inside)]
        rows.append(row(name, "ground_truth_change_causal", sum(inside[:k]) / k))
    if kept:
        rows += [row(name, "content_kept_factor", v, names[d]) for d, v in enumerate(kept)]
        rows.append(row(name, "content_kept_causal", sum(kept[:k]) / k))
    return rows


@dataclass
class SaliencySetup:
    """What every saliency-capable explainer is scored on (the same for all of them in a run)."""

    images: torch.Tensor  # (N, C, H, W) test images whose maps are scored
    labels: torch.Tensor  # (N,) f's predicted classes: what each map explains
    n_randomisation: int = 20  # images of the cascading-randomisation check
    n_tie_orders: int = 5  # random orders of tied pixels the removal curves are averaged over
    region: torch.Tensor | None = None  # a marker suite's (1, H, W) region: what f uses (bench.inputs.ground_truth)
    carries: torch.Tensor | None = None  # (N,) bool: the images that carry the marker (ground-truth metrics)


@contextlib.contextmanager
def explaining(explainer: Explainer, classifier) -> Iterator[None]:
    """Point ``explainer`` at another classifier for the block (the randomisation check)."""
    original = explainer.classifier
    explainer.classifier = classifier
    try:
        yield
    finally:
        explainer.classifier = original


def score_saliency(explainer: Explainer, classifier, setup: SaliencySetup, *, seed: int, device: torch.device
                   ) -> tuple[list[Row], dict]:
    """Removal curves and their areas, Gini sparsity (metrics.saliency) and the cascading-randomisation
    check of an explainer's saliency maps of ``f``'s predicted class.

    Removal curves follow the exaggeration paper's protocol (Sec. 4.3, Fig. 4c): pixels ranked by the
    positive part of the map, so signed and unsigned maps are scored on one footing, averaged over
    ``setup.n_tie_orders`` random orders of tied pixels (their spread is reported beside each area).
    The randomisation check correlates the maps on the input's support (Adebayo et al. 2018), |map| and
    signed; it is ``None`` with a note for a map that never calls f (identical under every randomised f)
    and for an explainer that declares why it cannot be judged (GANMEX: its baseline would need refitting).
    """
    name = explainer.name
    images, labels = setup.images.to(device), setup.labels.to(device)
    start = start_clock(device)
    maps = explainer.saliency(images, labels).detach()
    seconds = elapsed_seconds(start, device, len(images))
    curves = removal_curves(classifier, images, maps, labels, generator=torch.Generator().manual_seed(seed * 1000 + 6),
                            relevance="positive", n_tie_orders=setup.n_tie_orders)
    rows = [row(name, "removal_morf_auc", curves.morf_auc), row(name, "removal_lerf_auc", curves.lerf_auc),
            row(name, "removal_gap", curves.gap),
            row(name, "removal_morf_probability_auc", curves.morf_probability_auc),
            row(name, "removal_morf_auc_tie_sd", curves.morf_auc_sd),
            row(name, "removal_lerf_auc_tie_sd", curves.lerf_auc_sd),
            row(name, "removal_gap_tie_sd", curves.gap_sd)]
    rows += declared_rows(name, "saliency", _saliency_context(classifier, images, labels, maps))
    rows.append(row(name, "saliency_seconds", seconds))
    network = classifier.network  # the black box's protocol (bench.inputs.classifier.BlackBox)
    randomisation, randomised = [], None
    check = ("randomisation_correlation", "randomisation_correlation_signed", "randomisation_correlation_all_pixels")
    if explainer.randomisation_unscorable:
        rows += [row(name, metric, None, note=explainer.randomisation_unscorable) for metric in check]
    elif setup.n_randomisation <= 0:
        rows += [row(name, metric, None, note="no images asked for (randomisation_queries = 0)") for metric in check]
    elif not parameterised_layers(network):
        rows += [row(name, metric, None, note="the black box has no layer that can be re-initialised (a TorchScript "
                                              "module, or layers without reset_parameters)") for metric in check]
    else:
        sub_x, sub_y = images[:setup.n_randomisation], labels[:setup.n_randomisation]
        seen: list[torch.Tensor] = []

        def maps_of(net):
            with explaining(explainer, type(classifier)(net, classifier.n_classes, classifier.output, classifier.image_shape)):
                seen.append(explainer.saliency(sub_x, sub_y).detach())
            return seen[-1]

        support = input_support(sub_x, maps[:setup.n_randomisation])
        layers = cascading_randomisation_scores(network, maps_of, support, seed=seed)
        scale = float(seen[0].abs().max()) or 1.0
        # the same map whatever f is (up to float noise of non-deterministic kernels): it never calls f
        if all(torch.allclose(seen[0], m, rtol=1e-5, atol=1e-6 * scale) for m in seen[1:]):
            rows += [row(name, metric, None, note="the map never calls f (identical under every randomised f): "
                                                  "a check of its dependence on f does not apply") for metric in check]
        else:
            last = layers[-1]  # every layer re-initialised
            enough = support.flatten(1).sum(1) >= 3  # (N,) images with a correlation defined on their support
            rows += [row(name, "randomisation_correlation", _support_mean(last.absolute_support, enough)),
                     row(name, "randomisation_correlation_signed", _support_mean(last.signed_support, enough)),
                     row(name, "randomisation_correlation_all_pixels", _nanmean(last.absolute_all))]
            randomisation = [(layer.layer, _support_mean(layer.absolute_support, enough)) for layer in layers]
            randomised = (seen[0], seen[-1], support, enough)
    arrays = {"maps": maps[:8].cpu(), "fractions": curves.fractions.tolist(),
              "morf_accuracy": curves.morf_accuracy.tolist(), "lerf_accuracy": curves.lerf_accuracy.tolist(),
              "morf_probability": curves.morf_probability.tolist(),
              "lerf_probability": curves.lerf_probability.tolist(), "randomisation": randomisation}
    if setup.region is not None:
        truth_rows, arrays["proxy_points"] = _saliency_truth(name, classifier, images, labels, maps, setup, rows,
                                                             randomised, seed)
        rows += truth_rows
    return rows, arrays


def _saliency_context(classifier, images: torch.Tensor, labels: torch.Tensor, maps: torch.Tensor) -> dict:
    return scoring_context("saliency", maps=maps, images=images, labels=labels, classifier=classifier)


def _saliency_truth(name: str, classifier, images: torch.Tensor, labels: torch.Tensor, maps: torch.Tensor,
                    setup: SaliencySetup, rows: list[Row], randomised, seed: int) -> tuple[list[Row], list[dict]]:
    """Relevance mass and rank accuracy of the maps of the images that carry the planted truth, and the
    proxy-validity points: the maps blended with noise at ``gt.DEGRADATION_LEVELS``, each scored by the
    removal curves, the declared saliency metrics (Gini), the randomisation check (the randomised maps blended
    with the same noise) and the ground-truth metrics."""
    carries = setup.carries.to(maps.device)

    def truth_values(m: torch.Tensor) -> dict[str, float | None]:
        if not carries.any():
            return {"ground_truth_mass": None, "ground_truth_rank": None}
        return {"ground_truth_mass": float(gt.relevance_mass(m[carries], setup.region).mean()),
                "ground_truth_rank": float(gt.relevance_rank(m[carries], setup.region).mean())}

    note = None if carries.any() else "none of the scored images carries the planted truth"
    values = truth_values(maps)
    truth_rows = [row(name, metric, value, note=note) for metric, value in values.items()]
    points = [{"capability": "saliency", "level": 0.0, "values": {**_values(rows), **values}}]
    noise = torch.rand(maps.shape, generator=torch.Generator().manual_seed(seed * 1000 + 9)).to(maps)
    for level in gt.DEGRADATION_LEVELS:
        degraded = gt.degrade_maps(maps, level, noise)
        curves = removal_curves(classifier, images, degraded, labels, relevance="positive",
                                generator=torch.Generator().manual_seed(seed * 1000 + 6),
                                n_tie_orders=setup.n_tie_orders)
        point = {"removal_morf_auc": curves.morf_auc, "removal_lerf_auc": curves.lerf_auc, "removal_gap": curves.gap,
                 **declared_values("saliency", _saliency_context(classifier, images, labels, degraded)),
                 **truth_values(degraded), "randomisation_correlation": None}
        if randomised is not None:
            reference, last, support, enough = randomised
            sub = noise[:len(reference)]
            a, b = gt.degrade_maps(reference, level, sub), gt.degrade_maps(last, level, sub)
            mask = match_support(support, a).flatten(1)
            point["randomisation_correlation"] = _support_mean(
                masked_spearman_rows(a.flatten(1).abs(), b.flatten(1).abs(), mask), enough)
        points.append({"capability": "saliency", "level": level, "values": point})
    return truth_rows, points


def _support_mean(values: torch.Tensor, enough: torch.Tensor) -> float | None:
    """Mean correlation over the images with >= 3 support pixels. There a NaN means one map is constant on
    the support (a randomised f that gives every pixel the same relevance): it keeps none of the original
    ranking, so it counts as 0, not as a missing image."""
    values = torch.where(torch.isnan(values) & enough.to(values.device), torch.zeros_like(values), values)
    return _nanmean(values[enough.to(values.device)])


def _nanmean(values: torch.Tensor) -> float | None:
    """Mean over the images with a defined value (a correlation on fewer than 3 support pixels is NaN)."""
    finite = values[~torch.isnan(values)]
    return float(finite.mean()) if len(finite) else None


@dataclass(frozen=True)
class ScoringInputs:
    """What a run gives every scorer: the validation split and the information-flow sizes (latent), the test
    split (invariance), the sweep and saliency setups (None where the run scores none), and sweeps already
    scored for the same fit (``known_sweeps``)."""

    val: Split
    n_alpha: int
    n_beta: int
    seed: int
    device: torch.device
    sweeps: SweepSetup | None = None
    test: Split | None = None
    saliency: SaliencySetup | None = None
    known_sweeps: tuple[list[Row], dict] | None = None


def _latent_scorer(explainer: Explainer, classifier, inputs: ScoringInputs) -> tuple[list[Row], dict]:
    """Information flow and accuracy drop, invariance (with a test split), latent sweeps (with sweep queries)."""
    rows, arrays = score_latent(explainer, classifier, inputs.val, n_alpha=inputs.n_alpha, n_beta=inputs.n_beta,
                                seed=inputs.seed, device=inputs.device)
    if inputs.test is not None:
        r, arrays["invariance"] = score_invariance(explainer, classifier, inputs.test, seed=inputs.seed,
                                                   device=inputs.device)
        rows += r
    if inputs.sweeps is not None:
        rows += score_latent_sweeps(explainer, classifier, inputs.sweeps.queries[:200], n_steps=inputs.sweeps.n_steps,
                                    sweep_range=float(explainer.settings.get("sweep_range", 3.0)),
                                    device=inputs.device, truth=inputs.sweeps)
    return rows, arrays


def _sweep_scorer(explainer: Explainer, classifier, inputs: ScoringInputs) -> tuple[list[Row], dict]:
    """Counterfactual sweeps, or the rows of the same fit's sweeps under this explainer's name."""
    if inputs.sweeps is None:
        return [], {}
    if inputs.known_sweeps is not None:
        rows, arrays = [replace(x, explainer=explainer.name) for x in inputs.known_sweeps[0]], inputs.known_sweeps[1]
    else:
        rows, arrays = score_sweeps(explainer, classifier, inputs.sweeps, device=inputs.device)
    return rows, {"sweeps": arrays, "sweep_rows": rows}


def _saliency_scorer(explainer: Explainer, classifier, inputs: ScoringInputs) -> tuple[list[Row], dict]:
    if inputs.saliency is None:
        return [], {}
    rows, arrays = score_saliency(explainer, classifier, inputs.saliency, seed=inputs.seed, device=inputs.device)
    return rows, {"saliency": arrays}


#: capability -> its scorer, in the order an explainer's rows are written (``fit_seconds``, the one metric of
#: ``Capability.FIT``, is the runner's: it times the fit)
SCORERS: dict[Capability, Callable[[Explainer, Callable, ScoringInputs], tuple[list[Row], dict]]] = {
    Capability.LATENT: _latent_scorer,
    Capability.SWEEP: _sweep_scorer,
    Capability.SALIENCY: _saliency_scorer,
}


def score_explainer(explainer: Explainer, classifier, val: Split, *, n_alpha: int, n_beta: int, seed: int,
                    device: torch.device, sweeps: SweepSetup | None = None, test: Split | None = None,
                    saliency: SaliencySetup | None = None, known_sweeps: tuple[list[Row], dict] | None = None
                    ) -> tuple[list[Row], dict]:
    """Every metric the explainer's capabilities allow: the scorer (:data:`SCORERS`) of each capability it
    has; ``arrays`` keeps what the figures need.

    ``known_sweeps``: the sweep rows and arrays already scored for the same fit under another name
    (sweeps depend on the fit alone, e.g. the two GANMEX attributions): reused, not recomputed.
    """
    inputs = ScoringInputs(val=val, n_alpha=n_alpha, n_beta=n_beta, seed=seed, device=device, sweeps=sweeps,
                           test=test, saliency=saliency, known_sweeps=known_sweeps)
    rows, arrays = [], {}
    for capability, scorer in SCORERS.items():
        if explainer.supports(capability):
            r, a = scorer(explainer, classifier, inputs)
            rows += r
            arrays.update(a)
    return rows, arrays

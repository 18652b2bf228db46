"""Score one fitted explainer with every metric its capabilities allow.

Produces long-format rows ``{"explainer", "metric", "factor", "value", "unit",
"higher_is_better"}``; metrics live in :mod:`metrics` and stay pure.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import torch

from bench.data import Split
from explainers.base import Capability, Explainer
from metrics import METRICS
from metrics.accuracy_drop import accuracy_drop
from metrics import sweep as sweep_metrics
from metrics.fid import extract_features, frechet_distance
from metrics.information_flow import information_flow, information_flow_per_factor
from metrics.invariance import invariance_curve
from metrics.saliency import cascading_randomisation, gini, removal_curves

#: FID groups (exaggeration Table 1): f(x)[positive class] within these bounds
FID_GROUPS = {"fid": (0.0, 1.0), "fid_present": (0.9, 1.0), "fid_absent": (0.0, 0.1)}


def row(explainer: str, metric: str, value: float | None, factor: str | None = None, note: str | None = None) -> dict:
    """One long-format result; ``value`` None (with a ``note`` saying why) where the metric is undefined."""
    info = METRICS[metric]
    out = {"explainer": explainer, "metric": metric, "factor": factor,
           "value": None if value is None else float(value), "unit": info.unit,
           "higher_is_better": info.higher_is_better}
    return {**out, "note": note} if note else out


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
    arrays = {"factor_names": names, "n_causal": k, "information_flow": per_factor.cpu(),
              "accuracy_drop": drop.drop.cpu(), "original_accuracy": drop.original, "reencoded_accuracy": drop.reencoded}
    return rows, arrays


@torch.no_grad()
def score_invariance(explainer: Explainer, classifier, test: Split, *, seed: int, device: torch.device
                     ) -> tuple[list[dict], dict]:
    """The invariance curve of a latent explainer's noncausal factors on the test split (metrics.invariance),
    and the agreement of its own classification head with ``f`` where it has one (SVAE)."""
    name, split = explainer.name, explainer.latent_split
    rows: list[dict] = []
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
        agree = torch.cat([(surrogate(images[i:i + 1024]).argmax(1) == classifier(images[i:i + 1024]).argmax(1))
                           for i in range(0, len(images), 1024)])
        rows.append(row(name, "head_agreement", agree.float().mean()))
    return rows, arrays


@dataclass
class SweepSetup:
    """What every sweep-capable explainer is scored on (the same for all of them in a run)."""

    queries: torch.Tensor  # (N, C, H, W) test images to explain
    real_features: torch.Tensor  # features of the real test images FID compares with
    real_positive: torch.Tensor  # f(real)[positive class]
    extractor: torch.nn.Module
    positive_class: int
    n_steps: int = 11
    batch_size: int = 100


@torch.no_grad()
def score_sweeps(explainer: Explainer, classifier, setup: SweepSetup, *, device: torch.device
                 ) -> tuple[list[dict], dict]:
    """Sweep faithfulness (metrics.sweep) and FID by group (metrics.fid) of an explainer's counterfactual sweeps."""
    name, s = explainer.name, setup.n_steps
    queries = setup.queries.to(device)
    probs0 = classifier(queries)
    index, target = explainer.sweep_targets(probs0.argmax(1).cpu(), probs0.shape[1])
    images, probs = [], []
    _sync(device)
    start = time.perf_counter()
    for i in range(0, len(index), setup.batch_size):
        idx, tgt = index[i:i + setup.batch_size], target[i:i + setup.batch_size].to(device)
        sw = explainer.sweep(queries[idx], tgt, s)  # (B, S, C, H, W)
        images.append(sw.cpu())
        probs.append(classifier(sw.flatten(0, 1)).unflatten(0, sw.shape[:2]).cpu())  # (B, S, M)
    _sync(device)
    seconds = (time.perf_counter() - start) / max(len(index), 1)
    images, probs = torch.cat(images), torch.cat(probs)
    target_probs = probs.gather(2, target.view(-1, 1, 1).expand(-1, s, 1)).squeeze(2)  # (N, S)
    requested = sweep_metrics.requested_ramp(probs0.cpu()[index].gather(1, target.view(-1, 1)).squeeze(1), s)
    compat = sweep_metrics.compatibility(requested, target_probs)
    rows = [row(name, "sweep_compatibility_pearson", compat.pearson),
            row(name, "sweep_compatibility_spearman", compat.spearman),
            row(name, "sweep_compatibility_mae", compat.mae),
            row(name, "sweep_validity", sweep_metrics.validity(probs[:, -1], target)),
            row(name, "sweep_monotonicity", sweep_metrics.monotonicity(target_probs)),
            row(name, "sweep_proximity", sweep_metrics.proximity(setup.queries[index], images[:, -1])),
            row(name, "sweep_seconds", seconds)]

    fake = images.flatten(0, 1)
    fake_positive = probs[..., setup.positive_class].flatten()
    fake_features = extract_features(setup.extractor, fake)
    counts = {}
    for metric, (lo, hi) in FID_GROUPS.items():
        in_fake = (fake_positive >= lo) & (fake_positive <= hi)
        in_real = (setup.real_positive >= lo) & (setup.real_positive <= hi)
        counts[metric] = {"generated": int(in_fake.sum()), "real": int(in_real.sum())}
        if counts[metric]["generated"] >= 2 and counts[metric]["real"] >= 2:
            rows.append(row(name, metric, frechet_distance(fake_features[in_fake], setup.real_features[in_real])))
        else:  # no explanation reached the group: the distance is undefined, not zero
            rows.append(row(name, metric, None, note=f"{counts[metric]['generated']} generated and "
                                                     f"{counts[metric]['real']} real images in [{lo}, {hi}]"))
    arrays = {"requested": requested, "obtained": target_probs, "fid_counts": counts, "n_sweeps": len(index),
              "sweep_images": images, "sweep_index": index, "sweep_target": target}
    return rows, arrays


@torch.no_grad()
def score_latent_sweeps(explainer: Explainer, classifier, queries: torch.Tensor, *, n_steps: int = 11,
                        sweep_range: float = 3.0, device: torch.device) -> list[dict]:
    """Change of ``f`` along a sweep of each latent factor over [-r, r] (GCE Fig. 3/4), per factor and
    for the noncausal factors together (should be ~0)."""
    split, name = explainer.latent_split, explainer.name
    queries = queries.to(device)
    reference = classifier(explainer.decode(explainer.encode(queries)))
    values = torch.linspace(-sweep_range, sweep_range, n_steps)
    changes = []
    for d in range(split.n_latent):
        sw = explainer.sweep_factor(queries, d, values)
        probs = classifier(sw.flatten(0, 1)).unflatten(0, sw.shape[:2])
        changes.append(sweep_metrics.noncausal_change(probs, reference))
    names = split.names()
    rows = [row(name, "sweep_change_factor", v, names[d]) for d, v in enumerate(changes)]
    if split.n_noncausal:
        rows.append(row(name, "sweep_noncausal_change", sum(changes[split.n_causal:]) / split.n_noncausal))
    return rows


@dataclass
class SaliencySetup:
    """What every saliency-capable explainer is scored on (the same for all of them in a run)."""

    images: torch.Tensor  # (N, C, H, W) test images whose maps are scored
    labels: torch.Tensor  # (N,) f's predicted classes: what each map explains
    n_randomisation: int = 20  # images of the cascading-randomisation check


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
                   ) -> tuple[list[dict], dict]:
    """Removal curves and their areas, Gini sparsity (metrics.saliency) and the cascading-randomisation
    check of an explainer's saliency maps of ``f``'s predicted class."""
    name = explainer.name
    images, labels = setup.images.to(device), setup.labels.to(device)
    _sync(device)
    start = time.perf_counter()
    maps = explainer.saliency(images, labels).detach()
    _sync(device)
    seconds = (time.perf_counter() - start) / len(images)
    curves = removal_curves(classifier, images, maps, labels, generator=torch.Generator().manual_seed(seed * 1000 + 6))
    rows = [row(name, "removal_morf_auc", curves.morf_auc), row(name, "removal_lerf_auc", curves.lerf_auc),
            row(name, "removal_gap", curves.gap),
            row(name, "removal_morf_probability_auc",
                float(torch.trapezoid(curves.morf_probability, curves.fractions))),
            row(name, "saliency_gini", gini(maps).mean()), row(name, "saliency_seconds", seconds)]
    network = getattr(classifier, "network", None)
    randomisation = []
    if network is not None and setup.n_randomisation > 0:
        sub_x, sub_y = images[:setup.n_randomisation], labels[:setup.n_randomisation]

        def maps_of(net):
            with explaining(explainer, type(classifier)(net, classifier.n_classes)):
                return explainer.saliency(sub_x, sub_y).detach()

        randomisation = [(layer, float(c.mean())) for layer, c in cascading_randomisation(network, maps_of, seed=seed)]
        rows.append(row(name, "randomisation_correlation", randomisation[-1][1]))
    else:
        rows.append(row(name, "randomisation_correlation", None,
                        note="the black box exposes no network whose layers can be re-initialised"))
    arrays = {"maps": maps[:8].cpu(), "fractions": curves.fractions.tolist(),
              "morf_accuracy": curves.morf_accuracy.tolist(), "lerf_accuracy": curves.lerf_accuracy.tolist(),
              "morf_probability": curves.morf_probability.tolist(),
              "lerf_probability": curves.lerf_probability.tolist(), "randomisation": randomisation}
    return rows, arrays


def score_explainer(explainer: Explainer, classifier, val: Split, *, n_alpha: int, n_beta: int, seed: int,
                    device: torch.device, sweeps: SweepSetup | None = None, test: Split | None = None,
                    saliency: SaliencySetup | None = None, known_sweeps: tuple[list[dict], dict] | None = None
                    ) -> tuple[list[dict], dict]:
    """Every metric the explainer's capabilities allow; ``arrays`` keeps what the figures need.

    ``known_sweeps``: the sweep rows and arrays already scored for the same fit under another name
    (sweeps depend on the fit alone, e.g. the two GANMEX attributions): reused, not recomputed.
    """
    rows, arrays = [], {}
    if explainer.supports(Capability.LATENT):
        r, arrays = score_latent(explainer, classifier, val, n_alpha=n_alpha, n_beta=n_beta, seed=seed,
                                 device=device)
        rows += r
        if test is not None:
            r, arrays["invariance"] = score_invariance(explainer, classifier, test, seed=seed, device=device)
            rows += r
        if sweeps is not None:
            rows += score_latent_sweeps(explainer, classifier, sweeps.queries[:200], n_steps=sweeps.n_steps,
                                        sweep_range=float(explainer.settings.get("sweep_range", 3.0)), device=device)
    if explainer.supports(Capability.SWEEP) and sweeps is not None:
        if known_sweeps is not None:
            r, arrays["sweeps"] = [{**x, "explainer": explainer.name} for x in known_sweeps[0]], known_sweeps[1]
        else:
            r, arrays["sweeps"] = score_sweeps(explainer, classifier, sweeps, device=device)
        arrays["sweep_rows"] = r
        rows += r
    if explainer.supports(Capability.SALIENCY) and saliency is not None:
        r, arrays["saliency"] = score_saliency(explainer, classifier, saliency, seed=seed, device=device)
        rows += r
    return rows, arrays

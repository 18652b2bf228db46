"""The steps of a run, each public, which the local runner (:mod:`bench.execute.runner`), the Ray executor
(:mod:`bench.execute.distributed`) and the studies (:mod:`bench.execute.studies`) all call:

1. :func:`plan` checks everything that can be checked before any work and loads the data (a :class:`Plan`);
2. :func:`prepare_seed` trains or loads one seed's black box (:func:`train_black_box`) and builds what every
   explainer of that seed is scored against (a :class:`SeedInputs`);
3. :func:`fit` fits one explainer, or loads its fit from the cache;
4. :func:`score` fits (or loads) and scores one explainer and draws its figures (an :class:`Outcome`);
5. :func:`finish_seed` draws the figures across explainers and writes the seed's leaderboards and
   ``results.json`` (last) into the directory :func:`output_dir` made.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import json
import logging
import os
import pkgutil
import shutil
import time
import zlib
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import torch

from bench.outputs import figures
from bench.inputs import blackbox
from bench.inputs import ground_truth
from bench.outputs import validity
from bench.inputs.blackbox import UserClassifier
from bench.inputs.classifier import cached_classifier
from bench.inputs.data import load_dataset
from bench.inputs.images import Dataset, Split
from bench.inputs.features import EPOCHS as FEATURE_EPOCHS, feature_extractor
from bench.errors import BenchError, user_errors
from bench.progress import RunProgress, log_to
from bench.outputs import leaderboard
from bench.outputs.report import write_report
from bench.execute.config import RunConfig, device_from_option
from bench.execute.runtime import native_bf16, training_precision_for
from bench.outputs.results import RESULTS_FILE, Row, strict_json, device_info, make_record, versions, write_record
from bench.execute.scoring import SaliencySetup, SweepSetup, registered_metrics_source, row, score_explainer
from bench.store import atomic_write_text, cache_root, cached, discard, ensure_writable_dir, sha256_file, source_hash, stable_hash
from bench.inputs.suites import SUITE_DIR, get_suite
from explainers.base import Capability, Explainer, check_image_shape
from explainers.registry import EXPLAINERS
from explainers.training import training_precision
from metrics.fid import extract_features, inception_weights


_log = log_to("bench.execute.steps")


def fitted_explainer(cls: type[Explainer], *, classifier, settings: dict, train_images: torch.Tensor,
                     classifier_key: str, suite_key: dict, seed: int, device: torch.device,
                     log: Callable[[str], None], cache: bool = True,
                     fit_log: Callable[[str], None] | None = None, precision: str = "fp32"
                     ) -> tuple[Explainer, dict]:
    """Build ``cls`` and fit it, or load its fit from the cache (keyed by everything that determines it).

    The initial weights come from ``seed`` alone, not from whatever the process drew before (a cached
    or a freshly trained classifier), so a fit is the same cold or warm, alone or with other explainers.
    ``cache=False`` fits without reading or writing the cache. ``fit_log`` (default ``log``) receives the
    fit's own progress lines. ``precision``: what the fit trains in (``explainers.training.training_precision``);
    part of the key unless fp32, so a float32 fit's key is the one computed without a precision.
    """
    def fresh() -> Explainer:
        torch.manual_seed(seed)
        with user_errors():  # a setting's value it cannot take (ValueError): a one-line error, the run stops
            return cls(classifier, settings, device)

    explainer = fresh()
    if not explainer.supports(Capability.FIT):
        return explainer, {"cached": False, "fit_seconds": 0.0, "cache_key": None}
    precision = precision if cls.bf16_fit else "fp32"  # an explainer whose quality bf16 costs fits in float32
    key = stable_hash({"explainer": cls.fit_identity(), "settings": explainer.fit_settings(),
                       "classifier": classifier_key, "suite": suite_key, "seed": seed,
                       "source": source_hash(cls.__module__, *cls.fit_depends),
                       **({"precision": precision} if precision != "fp32" else {})})
    path = cache_root() / "models" / f"{cls.fit_identity()}-{key}.pt"

    restored: list[bool] = []  # whether a restore was tried (and may have half-loaded ``explainer``)

    def restore(payload: dict) -> Explainer:
        restored.append(True)
        explainer.load_state_dict(payload["state"])
        log(f"[{cls.name}] loaded from cache ({path.name})")
        return explainer

    def build() -> tuple[Explainer, dict]:
        nonlocal explainer
        made = fresh() if restored else explainer  # never one a failed restore half-loaded; else the one built
        explainer = None  # not kept alive beside the one trained (memory, on a GPU)
        log(f"[{cls.name}] fitting ({made.settings})")
        start = time.perf_counter()
        with training_precision(precision):
            fit_record = made.fit(train_images, generator=torch.Generator().manual_seed(seed), log=fit_log or log)
        state = {k: ({n: t.cpu() for n, t in v.items()} if isinstance(v, dict) else v)
                 for k, v in made.state_dict().items()}
        return made, {"state": state, "fit_seconds": time.perf_counter() - start, "fit": fit_record}

    explainer, payload, was_cached = cached(path, key, restore=restore, build=build,
                                            code=(cls.__module__, *cls.fit_depends), cache=cache, log=log)
    return explainer, {"cached": was_cached, "fit_seconds": payload["fit_seconds"], "cache_key": key,
                       "fit": payload.get("fit", {}), "precision": precision}


def black_box_identity(record: dict) -> str:
    """What a fit or a score keys the black box by: its weights, and what turns its outputs into
    probabilities and logits (``output``) and computes them (a user black box's code), since the same
    weights under another ``--classifier-output`` or ``forward`` are another f."""
    return stable_hash({k: record.get(k) for k in ("name", "weights_sha256", "output", "code_sha256")})


def explainer_seed(seed: int, name: str) -> int:
    """The seed of one explainer's fit: from the run's seed and the explainer's name, so running one
    explainer alone (``--explainers svae``) reproduces its row of the full run."""
    return seed * 100_003 + zlib.crc32(name.encode()) % 100_000 + 1


def sweep_setup(config: RunConfig, data: Dataset, classifier, n_queries: int, device: torch.device,
                log: Callable[[str], None], fid_samples: int = 1000,
                feature_epochs: int = FEATURE_EPOCHS, feature_images: int | None = None, channels: int | None = None
                ) -> tuple[SweepSetup, dict]:
    """The queries, real images and FID feature extractor every sweep-capable explainer is scored on."""
    extractor, record = feature_extractor(config.fid_features, data.name, data_root=config.data_root,
                                          device=device, log=log, inception_weights=config.inception_weights,
                                          epochs=feature_epochs, images=feature_images, cache=config.cache,
                                          channels=channels)
    feature_classes = list(record.get("classes") or data.classes)
    queries, real = data.test.images[:n_queries], data.test.images[n_queries:]  # FID's reference: not the queries
    positive = data.n_classes - 1
    with torch.no_grad():
        real_positive = torch.cat([classifier(real[i:i + 1024].to(device))[:, positive].cpu()
                                   for i in range(0, len(real), 1024)])
    truth = data.truth
    setup = SweepSetup(queries=queries, real_features=extract_features(extractor, real),
                       real_positive=real_positive, extractor=extractor, positive_class=positive,
                       fid_samples=fid_samples,
                       # the feature net's label of each of f's classes (its classes: all of the dataset's; none
                       # where f's classes are not the judge's, as spurious-mnist's marker classes)
                       class_ids=(tuple(feature_classes.index(c) for c in data.classes)
                                  if all(c in feature_classes for c in data.classes) else None),
                       truth=truth.kind if truth is not None else None,
                       region=truth.region if truth is not None else None, seed=config.seed)
    record = {**record, "positive_class": positive, "positive_class_id": data.classes[positive],
              "n_queries": len(setup.queries), "n_steps": setup.n_steps, "n_real": len(real),
              "fid_samples": setup.fid_samples, "fid_generated_steps": f"1..{setup.n_steps - 1}"}
    log(f"[features] FID features: {record['name']}" + (f" (val accuracy {record['val_accuracy']:.4f})"
                                                         if "val_accuracy" in record else ""))
    return setup, record


def _sweep_figures(name: str, arrays: dict, setup: SweepSetup, data: Dataset, run_dir: Path) -> None:
    index, target, images = arrays["sweep_index"], arrays["sweep_target"], arrays["sweep_images"]
    # the first three sweeps of each target class
    rows = torch.cat([(target == c).nonzero().flatten()[:3] for c in range(data.n_classes)])
    query_probs = arrays["requested"][rows, 0]  # the requested ramp starts at f(x)[target]
    figures.counterfactual_sweeps(name, setup.queries[index[rows]], images[rows], arrays["obtained"][rows],
                                  query_probs, target[rows],
                                  run_dir / "figures" / f"{name}_sweeps.png",
                                  class_names=[str(c) for c in data.classes])
    figures.compatibility(name, arrays["requested"], arrays["obtained"],
                          run_dir / "figures" / f"{name}_compatibility.png")


def _explainer_figures(explainer: Explainer, arrays: dict, setup: SweepSetup | None, data: Dataset, classifier,
                       run_dir: Path, device: torch.device) -> None:
    name = explainer.name
    if arrays.get("sweeps") is not None:
        _sweep_figures(name, arrays["sweeps"], setup, data, run_dir)
    if "factor_names" in arrays:
        figures.factor_bars(name, arrays, run_dir / "figures" / f"{name}_factors.png")
    if explainer.supports(Capability.LATENT):
        first_of_each = torch.stack([data.val.images[(data.val.labels == c).nonzero()[0, 0]]
                                     for c in range(data.n_classes)])
        figures.latent_sweeps(explainer, classifier, first_of_each.to(device),
                              run_dir / "figures" / f"{name}_latent_sweeps.png")
        split = explainer.latent_split
        if split.n_noncausal >= 2:  # SVAE Fig. 3: the first two noncausal latents crossed, one image per class
            for c in range(data.n_classes):
                figures.invariant_grid(explainer, classifier, first_of_each[c:c + 1].to(device),
                                       (split.n_causal, split.n_causal + 1),
                                       run_dir / "figures" / f"{name}_invariances_{data.classes[c]}.png",
                                       class_names=[str(k) for k in data.classes])


def _run_figures(outcomes: list, saliency: SaliencySetup | None, data: Dataset, run_dir: Path) -> None:
    curves = {o.name: o.invariance for o in outcomes if o.invariance}
    if curves:
        figures.invariance_curves(curves, run_dir / "figures" / "invariance_curves.png")
    saliency_arrays = {o.name: o.saliency for o in outcomes if o.saliency}
    if saliency_arrays:
        n = min(4, len(saliency.images))
        figures.saliency_maps(saliency.images[:n], {k: v["maps"][:n] for k, v in saliency_arrays.items()},
                              [str(data.classes[int(c)]) for c in saliency.labels[:n]],
                              run_dir / "figures" / "saliency_maps.png")
        figures.removal_curves(saliency_arrays, run_dir / "figures" / "removal_curves.png")


@dataclass
class Plan:
    """What a run needs before it starts: validated names, device, the data, the steps it will take."""

    suite: object
    profile: object
    classes: dict[str, type[Explainer]]
    device: torch.device
    data: Dataset
    data_seconds: float
    user: UserClassifier | None = None  # the black box the user brought (option or suite file); None: Table 1
    precision: str = "fp32"  # what fits train in (--precision resolved on the device)

    @property
    def n_steps(self) -> int:
        """Data, black box, FID features (when any explainer sweeps), each fit, each scoring."""
        sweeps = any(Capability.SWEEP in cls.capabilities for cls in self.classes.values())
        fits = sum(Capability.FIT in cls.capabilities for cls in self.classes.values())
        return 2 + int(sweeps) + fits + len(self.classes)


def check_creatable(path: Path) -> None:
    """Raise a one-line BenchError unless directory ``path`` exists writable or could be created, without
    creating anything: its nearest existing ancestor must be a writable directory."""
    path = Path(path).absolute()
    for existing in (path, *path.parents):
        if existing.exists():
            if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
                raise BenchError(f"output directory {str(path)!r} is not writable ({existing} is not a writable "
                                 "directory)")
            return


def plan(config: RunConfig, log: Callable[[str], None] = _log, *, out: Path | None = None) -> Plan:
    """Check everything a run can check before it creates a directory or trains anything: the suite,
    profile and explainer names, the device, the output directory (``out``, default the run's), the
    Inception weights when asked for, and the data."""
    suite = get_suite(config.suite)
    profile = with_settings(suite.profile(config.profile), config.settings)
    check_creatable(out or config.out or Path(f"runs/{suite.name}-{profile.name}-seed{config.seed}"))
    names = tuple(config.explainers or suite.default_explainers)
    if len(set(names)) != len(names):
        raise BenchError(f"explainer named twice: {list(names)}")
    with user_errors():
        classes = {name: suite.explainer_class(name) for name in names}  # unknown names fail here, before any work
    device = device_from_option(config.device)
    with user_errors():
        precision = training_precision_for(config.precision, device)
    if config.fid_features == "inception":
        with user_errors():
            inception_weights(config.inception_weights)  # fail before any training, not after
    start = time.perf_counter()
    check_settings(suite, profile, classes)
    data = load_dataset(suite.dataset, suite.classes, data_root=config.data_root, channels=suite.channels)
    data_seconds = time.perf_counter() - start
    for name, cls in classes.items():  # the explainers' networks are sized from the images
        if Capability.FIT in cls.capabilities and cls.sized_by_image:
            with user_errors():
                check_image_shape(name, data.image_shape)
    user = config.classifier or suite.black_box
    if user is not None:  # the user's black box: built, its weights loaded, its outputs checked
        network = blackbox.build(user, data.n_classes)
        if user.weights:
            blackbox.load_weights(network, user)
        blackbox.check_outputs(network, user, data.val.images[:8], data.n_classes)
    log(f"[data] {data.source}: train {len(data.train)}, val {len(data.val)}, test {len(data.test)} "
        f"(classes {list(data.classes)}, images {'x'.join(map(str, data.image_shape))})")
    return Plan(suite, profile, classes, device, data, data_seconds, user, precision)


def with_settings(profile, settings: dict[str, dict]):
    """``profile`` with ``settings`` (explainer -> setting -> value) over its explainers' settings."""
    if not settings:
        return profile
    merged = dict(profile.explainers)
    for name, values in settings.items():
        merged[name] = {**merged.get(name, {}), **values}
    return replace(profile, explainers=merged)


def check_settings(suite, profile, classes: dict[str, type[Explainer]]) -> None:
    """Every explainer's settings in the profile are known to it (a typo fails here, not after training);
    settings for an explainer that is not registered (a typo, or a plugin not loaded) are an error too."""
    where = f"suite {suite.name}" + (f" ({suite.path})" if suite.path else "") + f", profile {profile.name}"
    for name, settings in profile.explainers.items():
        if name not in classes:
            if name not in EXPLAINERS and name not in suite.variants:
                raise BenchError(f"{where}: settings for unknown explainer {name!r}; known: "
                                 f"{', '.join(EXPLAINERS.names())}")
            continue
        unknown = sorted(set(settings) - set(classes[name].defaults))
        if unknown:
            raise BenchError(f"{where}: {name}: unknown setting(s) {', '.join(unknown)}; known: "
                             f"{', '.join(sorted(classes[name].defaults))}")


@dataclass
class SeedInputs:
    """What every explainer of one seed is scored against (step 1 of a seed, :func:`prepare_seed`)."""

    classifier: object  # the BlackBox
    classifier_record: dict
    suite_key: dict
    sweeps: SweepSetup | None  # queries, real images and FID features, when any explainer sweeps
    features_record: dict | None
    saliency: SaliencySetup | None  # the images saliency maps are scored on, when any explainer makes maps
    latent_val: Split  # the images of the latent metrics
    latent_test: Split
    scoring_key: dict = field(default_factory=dict)  # what every explainer's scores depend on (see _scores)
    ground_truth: dict | None = None  # a ground-truth suite's verification on this black box (bench.inputs.ground_truth)


@dataclass
class Outcome:
    """One explainer's result in one seed (step 2, :func:`score`): its rows (one error row when it
    failed), its entry in the record's ``explainer_details``, what the run's figures need, its times."""

    name: str
    rows: list[Row]
    details: dict = field(default_factory=dict)
    saliency: dict | None = None  # maps and curves, for the run's saliency figures
    invariance: dict | None = None  # the invariance curve, for the run's figure
    sweeps: tuple[list[Row], dict] | None = None  # scored sweeps, shared with explainers of the same fit
    fit_key: str | None = None
    fit_seconds: float = 0.0  # the time this run spent on the fit (loading it, when it came from the cache)
    seconds: float = 0.0  # fit, scoring and figures

    @property
    def failed(self) -> bool:
        return any(r.error is not None for r in self.rows)


@dataclass(frozen=True)
class TrainedBlackBox:
    """One seed's black box: the network, its record (accuracies, weights hash, whether cached) and the
    suite's key it was trained under."""

    classifier: object  # the BlackBox
    classifier_record: dict
    suite_key: dict


def train_black_box(config: RunConfig, planned: Plan) -> TrainedBlackBox:
    """Train ``config.seed``'s black box by the profile's recipe, or load it from the cache (or the user's)."""
    data = planned.data
    suite_key = {**planned.suite.key(), "data": data.checksum}
    classifier, record = cached_classifier(suite_key=suite_key, train=data.train, val=data.val, test=data.test,
                                           n_classes=data.n_classes, config=planned.profile.classifier,
                                           seed=config.seed, device=planned.device,
                                           log=log_to("bench.inputs.classifier"), cache=config.cache,
                                           user=planned.user)
    return TrainedBlackBox(classifier, record, suite_key)


def fit(name: str, config: RunConfig, planned: Plan, black_box: TrainedBlackBox | SeedInputs,
        log: Callable[[str], None], *, settings: dict | None = None) -> tuple[Explainer, dict]:
    """Fit explainer ``name`` of ``planned`` to ``black_box`` (a :class:`TrainedBlackBox` or the
    :class:`SeedInputs` holding it), or load the fit from the cache (:func:`fitted_explainer`). Its seed comes
    from the run's and the explainer's fit identity; ``settings`` (default the profile's) are its settings."""
    cls = planned.classes[name]
    return fitted_explainer(
        cls, classifier=black_box.classifier,
        settings=planned.profile.explainers.get(name, {}) if settings is None else settings,
        train_images=planned.data.train.images, classifier_key=black_box_identity(black_box.classifier_record),
        suite_key=black_box.suite_key, seed=explainer_seed(config.seed, cls.fit_identity()), device=planned.device,
        log=log, cache=config.cache, fit_log=log_to(f"explainers.{name}"), precision=planned.precision)


def prepare_seed(config: RunConfig, planned: Plan, log: Callable[[str], None], progress: RunProgress,
                  timings: dict[str, float]) -> SeedInputs:
    """The black box (trained or loaded), the FID features and the query images of one seed."""
    suite, profile, data, device = planned.suite, planned.profile, planned.data, planned.device
    prefix = f"seed {config.seed}: "
    t = time.perf_counter()
    with progress.step(prefix + "black box"):
        trained = train_black_box(config, planned)
    classifier, clf_record, suite_key = trained.classifier, trained.classifier_record, trained.suite_key
    timings["classifier_seconds"] = time.perf_counter() - t
    log(f"[classifier] test accuracy {clf_record['test_accuracy']:.4f} (val {clf_record['val_accuracy']:.4f})"
        + (" [cached]" if clf_record["cached"] else ""))
    truth_record = None
    if data.truth is not None:  # a ground-truth suite: is the planted truth what this black box uses?
        truth_record = ground_truth.verify(classifier, data, device)
        log(f"[ground truth] {ground_truth.describe(truth_record)}")

    setup, features_record = None, None
    if any(Capability.SWEEP in cls.capabilities for cls in planned.classes.values()):
        t = time.perf_counter()
        with progress.step(prefix + "FID features"):
            setup, features_record = sweep_setup(config, data, classifier, profile.sweep_queries, device,
                                                 log_to("bench.inputs.features"), fid_samples=profile.fid_samples,
                                                 feature_epochs=profile.feature_epochs,
                                                 feature_images=profile.feature_images, channels=suite.channels)
        timings["features_seconds"] = time.perf_counter() - t
    saliency = None
    if any(Capability.SALIENCY in cls.capabilities for cls in planned.classes.values()):
        images = data.test.images[:profile.saliency_queries]
        region = carries = None
        if data.truth is not None and data.truth.region is not None:  # maps scored against the marker region
            region = data.truth.region
            carries = data.truth.splits["test"]["marker"][:profile.saliency_queries]
        saliency = SaliencySetup(images=images, labels=classifier.predict(images),
                                 n_randomisation=profile.randomisation_queries, region=region, carries=carries)
    first = lambda split, n: split if n is None else Split(split.images[:n], split.labels[:n])  # noqa: E731
    scoring_key = {"classifier": black_box_identity(clf_record), "suite": suite_key, "seed": config.seed,
                   "features": {k: v for k, v in (features_record or {}).items() if k not in ("cached", "fit_seconds")},
                   "profile": {k: getattr(profile, k) for k in SCORING_SETTINGS}, "device": device_info(device),
                   "versions": versions()}
    return SeedInputs(classifier, clf_record, suite_key, setup, features_record, saliency,
                   first(data.val, profile.latent_images), first(data.test, profile.latent_images), scoring_key,
                   truth_record)


#: the profile's settings every explainer is scored with (part of a cached score's key)
SCORING_SETTINGS = ("info_flow_samples", "sweep_queries", "saliency_queries", "randomisation_queries", "fid_samples",
                    "latent_images")


@functools.cache
def _shared_scoring_code() -> tuple[str, ...]:
    """Every built-in metric and explainer module (imported) and the scoring around them: listed once per
    process."""
    import explainers
    import metrics

    packages = [f"{pkg.__name__}.{m.name}" for pkg in (metrics, explainers) for m in pkgutil.iter_modules(pkg.__path__)]
    around = ("bench.execute.scoring", "bench.execute.steps", "bench.execute.runner", "bench.execute.config",
              "bench.inputs.features", "bench.inputs.classifier", "bench.inputs.data", "bench.inputs.images")
    for name in (*packages, *around):  # imported, so every process (a Ray worker too) hashes the same sources
        importlib.import_module(name)
    return ("metrics", *packages, *around)


def scoring_code(cls: type[Explainer]) -> tuple[str, ...]:
    """The modules whose source decides an explainer's scores: the explainer's own (and what its fit
    depends on), every built-in explainer and metric module, and the scoring around them. A change to any
    of them scores again; so does a change to the run's inputs (``SeedInputs.scoring_key``)."""
    return tuple(dict.fromkeys((cls.__module__, *cls.fit_depends, *_shared_scoring_code())))


def live_source_hash(cls: type) -> str:
    """Hash of the source of every method ``cls`` and its bases hold *now*: a method replaced at run time
    (a monkeypatch, a notebook's redefinition) changes it where the modules' files do not. Raises OSError
    or TypeError where a method's source cannot be read (made by exec): then nothing is cached."""
    parts = []
    for klass in cls.__mro__:
        if klass is object:
            continue
        for attr, value in sorted(vars(klass).items()):
            func = getattr(value, "__func__", value)  # staticmethod, classmethod
            if inspect.isfunction(func):
                parts.append(f"{klass.__qualname__}.{attr}\n{inspect.getsource(func)}")
    return stable_hash(parts)


def _scores(explainer: Explainer, fit: dict, config: RunConfig, planned: Plan, shared: SeedInputs,
            log: Callable[[str], None], known_sweeps: tuple[list[Row], dict] | None
            ) -> tuple[list[Row], dict, bool]:
    """Score ``explainer`` (:func:`bench.execute.scoring.score_explainer`), or read its scores back from the cache
    when the same fit was scored on the same inputs by the same code (``scores/`` in the cache; not with
    ``--no-cache`` or ``--rescore``). Returns the rows, the arrays the figures are drawn from, and whether
    they came from the cache. A cached score keeps the timings measured when it was computed."""
    name, device = explainer.name, planned.device
    n_alpha, n_beta = planned.profile.info_flow_samples

    def build() -> tuple[tuple[list[Row], dict], dict]:
        rows, arrays = score_explainer(explainer, shared.classifier, shared.latent_val, n_alpha=n_alpha,
                                       n_beta=n_beta, seed=config.seed, device=device, sweeps=shared.sweeps,
                                       test=shared.latent_test, saliency=shared.saliency, known_sweeps=known_sweeps)
        stored = {k: v for k, v in arrays.items() if k != "sweep_rows"}
        sweep_rows = [r.to_dict() for r in arrays["sweep_rows"]] if "sweep_rows" in arrays else None
        return (rows, arrays), {"rows": [r.to_dict() for r in rows], "arrays": stored, "sweep_rows": sweep_rows}

    def restore(payload: dict) -> tuple[list[Row], dict]:
        arrays = dict(payload["arrays"])
        if payload["sweep_rows"] is not None:
            arrays["sweep_rows"] = [Row.from_dict(r) for r in payload["sweep_rows"]]
        log(f"[{name}] scores from cache ({path.name})")
        return [Row.from_dict(r) for r in payload["rows"]], arrays

    code = scoring_code(type(explainer))
    try:
        source = {"modules": source_hash(*code), "live": live_source_hash(type(explainer)), **registered_metrics_source()}
    except (KeyError, OSError, TypeError) as exc:  # no source to key on (a class made in a notebook, by exec)
        log(f"[{name}] scores not cached: its source cannot be read ({type(exc).__name__})")
        return (*build()[0], False)
    key = stable_hash({"explainer": name, "settings": explainer.settings, "fit": fit["cache_key"],
                       "precision": fit.get("precision"), "inputs": shared.scoring_key, "source": source})
    path = cache_root() / "scores" / f"{name}-{key}.pt"
    if config.rescore and config.cache:  # --no-cache touches nothing in the cache
        discard(path)
    (rows, arrays), _, was_cached = cached(path, key, restore=restore, build=build, code=code,
                                           needs=("rows", "arrays", "sweep_rows"), cache=config.cache, log=log)
    return rows, arrays, was_cached


def score(name: str, cls: type[Explainer], config: RunConfig, planned: Plan, shared: SeedInputs,
               run_dir: Path, log: Callable[[str], None], progress: RunProgress,
               sweeps_by_fit: dict[str, tuple[list[Row], dict]], fit_cached: bool | None = None) -> Outcome:
    """Fit (or load) one explainer, score every metric its capabilities allow, draw its figures. A failure
    is an outcome with one error row, never a missing row; a user error (BenchError) or an interrupt ends
    the run. ``sweeps_by_fit``: sweeps already scored this seed, by fit (the two GANMEX attributions share
    one fit, so its sweeps are scored once). ``fit_cached``: whether the fit came from the cache, where
    another process fitted it (a distributed run's fit task) and this one loads it."""
    start = time.perf_counter()
    prefix, device = f"seed {config.seed}: ", planned.device
    fitting = Capability.FIT in cls.capabilities
    fit_step = progress.step(prefix + f"{name} fit") if fitting else contextlib.nullcontext()
    scoring = False
    try:
        with fit_step:
            explainer, fitted = fit(name, config, planned, shared, log)
            if fit_cached is not None and fitted["cache_key"] is not None:
                fitted["cached"] = fit_cached
        fit_seconds = time.perf_counter() - start
        scoring = True
        with progress.step(prefix + f"{name} scoring"):
            rows, arrays, scores_cached = _scores(explainer, fitted, config, planned, shared, log,
                                                  known_sweeps=sweeps_by_fit.get(fitted["cache_key"]))
            rows.append(row(name, "fit_seconds", fitted["fit_seconds"]))
            outcome = Outcome(name, rows, fit_key=fitted["cache_key"], fit_seconds=fit_seconds,
                              details={"paper": cls.paper, "capabilities": sorted(c.value for c in cls.capabilities),
                                       "settings": explainer.settings, **fitted, "scores_cached": scores_cached},
                              saliency=arrays.get("saliency"), invariance=arrays.get("invariance"))
            if arrays.get("invariance"):
                outcome.details["invariance"] = arrays["invariance"]
            if arrays.get("saliency"):
                outcome.details["saliency"] = {k: v for k, v in arrays["saliency"].items()
                                               if k not in ("maps", "proxy_points")}
            if arrays.get("sweeps") is not None:
                outcome.sweeps = (arrays["sweep_rows"], arrays["sweeps"])
                outcome.details["sweeps"] = {"n_sweeps": arrays["sweeps"]["n_sweeps"],
                                             "fid_counts": arrays["sweeps"]["fid_counts"]}
            # proxy-validity points (ground-truth suites); sweeps shared with another explainer count once
            shared_sweeps = sweeps_by_fit.get(fitted["cache_key"]) is not None
            points = [*(arrays.get("saliency") or {}).get("proxy_points", []),
                      *([] if shared_sweeps else (arrays.get("sweeps") or {}).get("proxy_points", []))]
            if points:
                outcome.details["proxy_points"] = points
            try:  # a figure that fails loses the figure, not the explainer's scores
                _explainer_figures(explainer, arrays, shared.sweeps, planned.data, shared.classifier, run_dir, device)
            except (KeyboardInterrupt, BenchError):
                raise
            except Exception as exc:
                log(f"[{name}] figure failed: {type(exc).__name__}: {exc}")
                outcome.details["figure_error"] = f"{type(exc).__name__}: {exc}"
    except (KeyboardInterrupt, BenchError):
        raise
    except Exception as exc:  # a failed explainer is a row with an error, never a missing row
        logging.getLogger("bench.execute.steps").warning(f"[{name}] FAILED: {type(exc).__name__}: {exc}")
        if not scoring:  # the scoring it will not do still counts as a step of the run
            progress.add(-1)
        outcome = Outcome(name, [Row.failed(name, f"{type(exc).__name__}: {exc}")])
    outcome.seconds = time.perf_counter() - start
    return outcome


def _metadata(config: RunConfig, planned: Plan, shared: SeedInputs, outcomes: list[Outcome],
              timings: dict[str, float], revision: str) -> dict:
    """The record's provenance: suite, profile, seeds, data, black box, FID features, each explainer's
    settings and fit, versions, code revision, device, timings."""
    suite, profile, data = planned.suite, planned.profile, planned.data
    n_alpha, n_beta = profile.info_flow_samples
    return {
        "suite": suite.name, "suite_version": suite.version, "suite_description": suite.description,
        **({"suite_file": str(suite.path), "suite_file_sha256": sha256_file(suite.path)}
           if suite.path and suite.path.parent != SUITE_DIR.resolve() else {}),
        "profile": profile.name, "profile_note": profile.note, "seed": config.seed,
        **({"settings_over_profile": config.settings} if config.settings else {}),
        "seeds": {"classifier": config.seed,
                  "explainers": {n: explainer_seed(config.seed, c.fit_identity()) for n, c in planned.classes.items()},
                  "scoring": config.seed},
        "explainers": list(planned.classes), "information_flow_samples": {"n_alpha": n_alpha, "n_beta": n_beta},
        "code_revision": revision, "versions": versions(), "device": device_info(planned.device),
        "precision": {"option": config.precision, "training": planned.precision,
                      "native_bf16": native_bf16(planned.device)},
        "data": {"source": data.source, "checksum": data.checksum, "classes": list(data.classes),
                 "image_shape": list(data.image_shape),
                 "sizes": {"train": len(data.train), "val": len(data.val), "test": len(data.test)}},
        "classifier": {**({} if planned.user and planned.user.weights else asdict(profile.classifier)),
                       **shared.classifier_record},
        "fid_features": shared.features_record, "cache": config.cache,
        **({"ground_truth": shared.ground_truth} if shared.ground_truth is not None else {}),
        "explainer_details": {o.name: o.details for o in outcomes if not o.failed},
        "timings": {k: round(v, 3) for k, v in timings.items()},
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": config.command,
    }


def finish_seed(config: RunConfig, planned: Plan, shared: SeedInputs, outcomes: list[Outcome], run_dir: Path,
                log: Callable[[str], None], timings: dict[str, float], revision: str, started: float) -> dict:
    """The last steps of a seed, where its run directory is: the figures across explainers, the metadata,
    the leaderboards and ``results.json`` (last)."""
    try:  # figures across explainers; a figure never costs the run its scores
        _run_figures(outcomes, shared.saliency, planned.data, run_dir)
    except (KeyboardInterrupt, BenchError):
        raise
    except Exception as exc:
        log(f"[run] figure failed: {type(exc).__name__}: {exc}")
    timings["total_seconds"] = time.perf_counter() - started
    record = make_record(_metadata(config, planned, shared, outcomes, timings, revision),
                         [r for o in outcomes for r in o.rows])
    write_leaderboards(run_dir, [record])
    write_record(run_dir, record)  # last: its presence marks a complete run
    log(f"[run] wrote {run_dir} in {timings['total_seconds']:.1f}s")
    return record


def write_leaderboards(run_dir: Path, records: list[dict]) -> str:
    """``leaderboard.md``, ``leaderboard.csv`` and ``report.html`` of ``records``; returns the markdown."""
    markdown = leaderboard.render(records, "md")  # ends with the proxy-validity table on a ground-truth suite
    if validity.has_points(records):
        rows = validity.proxy_validity(records)
        atomic_write_text(run_dir / "proxy_validity.json", json.dumps(strict_json(rows), indent=1) + "\n")
        try:  # a figure never costs the run its tables
            figures.proxy_scatter(records, [(r["capability"], r["proxy"], r["truth"]) for r in rows if r["n_points"]],
                                  run_dir / "figures" / "proxy_validity.png")
        except (KeyboardInterrupt, BenchError):
            raise
        except Exception as exc:
            _log(f"[run] proxy-validity figure failed: {type(exc).__name__}: {exc}")
    atomic_write_text(run_dir / "leaderboard.md", markdown)
    atomic_write_text(run_dir / "leaderboard.csv", leaderboard.render(records, "csv"))
    write_report(run_dir, records)
    return markdown




@contextlib.contextmanager
def output_dir(path: Path):
    """Create the run directory; if the run then fails, remove it again when this run created it and no
    seed in it completed (an existing directory, or one holding a finished seed's results, stays)."""
    path = Path(path)
    existed = path.exists()
    ensure_writable_dir(path)
    try:
        yield path
    except BaseException:
        if not existed and not any(path.rglob(RESULTS_FILE)):
            shutil.rmtree(path, ignore_errors=True)
        raise


def default_out(config: RunConfig, seeds: tuple[int, ...]) -> Path:
    """``config.out``, else ``runs/<suite>-<profile>-seed<N>`` (one seed) or ``...-seeds<a>-<b>...``."""
    if config.out:
        return Path(config.out)
    stem = f"runs/{get_suite(config.suite).name}-{config.profile}"
    return Path(f"{stem}-seed{seeds[0]}" if len(seeds) == 1 else f"{stem}-seeds" + "-".join(map(str, seeds)))

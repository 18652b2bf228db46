"""The Python API: :func:`run` a suite, :func:`load` stored results, read them as a :class:`Results`.

>>> import bench
>>> results = bench.run(suite="mnist", profile="smoke", explainers=["gce", "saliency"])  # doctest: +SKIP
>>> results.frame.query("metric == 'information_flow'")  # doctest: +SKIP

``python -m bench run`` is a thin layer over :func:`run`: every flag has its keyword here.
Nothing is printed unless asked for: progress goes to the ``bench`` and ``explainers`` loggers
(configure :mod:`logging`, or pass ``progress=True`` for bars on a terminal and log lines on stderr).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd

from bench.errors import BenchError, user_errors

#: the columns of :attr:`Results.frame`, in order
FRAME_COLUMNS = ("suite", "profile", "seed", "explainer", "metric", "factor", "value", "unit", "higher_is_better")


@dataclass(frozen=True)
class Results:
    """The records of one run (one seed) or of several seeds of one suite and profile."""

    records: tuple[dict, ...]
    run_dir: Path | None = None  # where they were written or read from

    @property
    def frame(self) -> pd.DataFrame:
        """One row per (suite, seed, explainer, metric, factor): ``value`` (NaN where a metric is undefined),
        ``unit`` and ``higher_is_better`` (None for diagnostics). Failed explainers are in :attr:`errors`."""
        from bench.outputs.results import rows_of
        from metrics import METRICS

        rows = []
        for record in self.records:
            meta = record["metadata"]
            for r in rows_of(record):
                if r.error is None:
                    info = METRICS.get(r.metric)  # the registry's unit and direction (a record's may be older)
                    rows.append((meta.get("suite"), meta.get("profile"), meta.get("seed"), r.explainer, r.metric,
                                 r.factor, r.value, info.unit if info else r.unit,
                                 info.higher_is_better if info else r.higher_is_better))
        frame = pd.DataFrame(rows, columns=list(FRAME_COLUMNS))
        frame["value"] = pd.to_numeric(frame["value"], errors="coerce").astype(float)
        return frame

    @property
    def errors(self) -> pd.DataFrame:
        """The explainers that failed: (seed, explainer, error)."""
        from bench.outputs.results import rows_of

        rows = [(rec["metadata"].get("seed"), r.explainer, r.error)
                for rec in self.records for r in rows_of(rec) if r.error is not None]
        return pd.DataFrame(rows, columns=["seed", "explainer", "error"])

    @property
    def seeds(self) -> list[int]:
        return [rec["metadata"].get("seed") for rec in self.records]

    @property
    def metadata(self) -> list[dict]:
        """Each seed's provenance: suite, profile, seeds, versions, code revision, device, timings."""
        return [rec["metadata"] for rec in self.records]

    def leaderboard(self, fmt: str = "md") -> str:
        """The leaderboard as text: ``md``, ``csv``, ``html`` or ``latex`` (mean ± s.d. over seeds)."""
        from bench.outputs.leaderboard import render

        return render(list(self.records), fmt)

    def compare(self, baseline: str | Path | dict, *, tolerance: str | None = None, rule: str = "auto"):
        """The regression gate's verdict against ``baseline`` (a baseline file or its loaded dict), as a
        :class:`bench.gate.Comparison`: ``.exit_code`` (0 pass, 1 regression), ``.worse``, ``.report()``."""
        from bench.gate import compare_records, load_baseline

        loaded = baseline if isinstance(baseline, dict) else load_baseline(baseline)
        return compare_records(list(self.records), loaded, tolerance=tolerance, rule=rule)

    def __repr__(self) -> str:
        meta = self.records[0]["metadata"] if self.records else {}
        return (f"Results(suite={meta.get('suite')!r}, profile={meta.get('profile')!r}, seeds={self.seeds}, "
                f"run_dir={str(self.run_dir) if self.run_dir else None!r})")


def load(path: str | Path) -> Results:
    """:class:`Results` from a run directory, a ``results.json``, or a multi-seed run directory."""
    from bench.outputs.leaderboard import check_same_run, run_records

    path = Path(path)
    records = run_records([path])
    check_same_run(records)
    return Results(tuple(records), path.parent if path.is_file() else path)


def run(suite: str | Path = "mnist", *, explainers: Sequence[str] | None = None, profile: str = "quick",
        seed: int | None = None, seeds: Sequence[int] | None = None, device: str = "auto",
        out: str | Path | None = None, data_root: str | None = None, fid_features: str = "featurenet",
        inception_weights: str | None = None, cache: bool = True, progress: bool = False,
        classifier: str | None = None, weights: str | Path | None = None, classifier_output: str = "logits",
        plugins: Sequence[str] = (), precision: str = "auto", rescore: bool = False,
        executor: str = "local", ray_address: str | None = None, task_cpus: int | None = None,
        settings: dict[str, dict] | None = None, command: Sequence[str] = ()) -> Results:
    """Train what is missing (cached unless ``cache=False``), score every explainer, write the run
    directory, and return its :class:`Results`.

    ``suite``: a built-in suite's name or a suite file (``my_suite.toml``).
    ``seed`` runs one seed (default 0) into ``out`` (default ``runs/<suite>-<profile>-seed<seed>``);
    ``seeds`` runs several into ``out/seed<N>/`` and pools them (default out
    ``runs/<suite>-<profile>-seeds<a>-<b>...``). Giving both is an error, whatever their values.
    ``progress=True`` logs the run's steps to stderr (``bench`` and ``explainers`` loggers at INFO,
    unless logging is already configured) with bars when stderr is a terminal.
    ``classifier`` brings your own black box instead of the suite's: an import path ``module:callable``
    returning an ``nn.Module`` (called with ``n_classes=M`` when it takes that keyword) or a TorchScript
    file; ``weights`` a state_dict file for it (without one, the architecture is trained with the suite's
    recipe and cached); ``classifier_output`` says whether it returns ``logits`` or ``probabilities``.
    ``plugins``: files (``mine.py``) or modules whose ``@register`` adds explainers, imported first.
    ``precision``: what fits train in: ``auto`` (bf16 autocast where the device computes bf16 natively, else
    fp32), ``fp32`` or ``bf16``; explanations and metrics are always float32 (``bench.execute.runtime``).
    ``rescore=True`` scores every explainer again; otherwise an explainer whose fit, inputs and scoring code
    are unchanged gets its scores from the cache (``cache=False`` neither reads nor writes them).
    ``settings``: explainer -> {setting: value} over the profile's (``--set gce.lam=0.1``); recorded in the
    results and part of every key, as the profile's own settings are.
    ``executor``: ``local`` (this process) or ``ray``: every black box, fit and scoring a Ray task
    (:mod:`bench.execute.distributed`) on the cluster at ``ray_address`` (default ``$RAY_ADDRESS``, else a Ray
    started on this machine), each with ``task_cpus`` CPUs (default this process's torch threads).
    Raises :class:`bench.errors.BenchError` for input that cannot run (unknown names, bad paths, a black
    box that does not fit the suite), before any training.
    """
    from bench.inputs.blackbox import UserClassifier
    from bench.progress import bars, configure_logging
    from bench.execute.runner import RunConfig, run as run_one, run_seeds
    from bench.execute.runtime import keep_freed_memory

    keep_freed_memory()  # the same numbers, much less kernel time (bench.execute.runtime)

    if seed is not None and seeds is not None:
        raise BenchError(f"give seed or seeds, not both (seed={seed}, seeds={list(seeds)})")
    if isinstance(explainers, str):
        explainers = [explainers]
    if seeds is not None:
        seeds = tuple(int(s) for s in seeds)
        if not seeds or len(set(seeds)) != len(seeds):
            raise BenchError(f"seeds must be distinct and at least one, got {list(seeds)}")
    if classifier is None and (weights is not None or classifier_output != "logits"):
        raise BenchError("--weights and --classifier-output describe a --classifier; name one")
    user = None if classifier is None else UserClassifier(str(classifier), str(weights) if weights else None,
                                                          classifier_output)
    if plugins:
        from explainers.base import EXPLAINERS

        for plugin in plugins:
            with user_errors():
                EXPLAINERS.load_plugin(str(plugin))
    if progress and not logging.getLogger("bench").handlers:
        configure_logging(0)
    config = RunConfig(suite=str(suite), profile=profile, explainers=tuple(explainers) if explainers else None,
                       seed=seeds[0] if seeds else (seed or 0), device=device, out=Path(out) if out else None,
                       data_root=data_root, fid_features=fid_features, inception_weights=inception_weights,
                       cache=cache, classifier=user, precision=precision, rescore=rescore,
                       settings={k: dict(v) for k, v in (settings or {}).items()}, command=list(command))
    if executor not in ("local", "ray"):
        raise BenchError(f"unknown executor {executor!r}; use local or ray")
    if executor == "local" and (ray_address or task_cpus):
        raise BenchError("--ray-address and --task-cpus are options of --executor ray")
    if task_cpus is not None and task_cpus < 1:
        raise BenchError(f"--task-cpus must be at least 1, got {task_cpus}")
    with bars(progress):
        if executor == "ray":
            from bench.execute.distributed import RayOptions, require_ray, run_seeds_on_ray
            from bench.execute.runner import _log

            require_ray()
            options = RayOptions(ray_address, task_cpus, tuple(_plugin_spec(p) for p in plugins))
            run_dir = run_seeds_on_ray(config, tuple(seeds) if seeds else (config.seed,), options, _log)
        else:
            run_dir = run_seeds(config, seeds) if seeds and len(seeds) > 1 else run_one(config)
    return load(run_dir)


def _plugin_spec(plugin: str | Path) -> str:
    """A plugin as a worker in another directory loads it: a file by its absolute path, a module by name."""
    plugin = str(plugin)
    return str(Path(plugin).resolve()) if plugin.endswith(".py") else plugin

"""The local runner: every step of :mod:`bench.execute.steps` in this process, seed after seed; and
:func:`execute`, which the doors call to run a request on the executor it names."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import torch

from bench.errors import BenchError, user_errors
from bench.execute.config import RunConfig, make_config
from bench.execute.runtime import keep_freed_memory
from bench.execute.steps import (Outcome, Plan, default_out, finish_seed, output_dir, plan, prepare_seed, score,
                                 write_leaderboards)
from bench.outputs import leaderboard
from bench.outputs.results import Row, code_revision
from bench.progress import RunProgress, log_to

_log = log_to("bench.execute.runner")


def execute(options: dict[str, Any], log: Callable[[str], None] = _log) -> Path:
    """Run what ``options`` ask for (every declared option, :func:`bench.options.check_keywords`): load the
    plugins, then every seed on the executor named, locally or as Ray tasks; returns the run directory."""
    request = make_config(options)
    keep_freed_memory()  # the same numbers, much less kernel time (bench.execute.runtime)
    if request.plugins:
        from explainers.registry import EXPLAINERS

        for plugin in request.plugins:
            with user_errors():
                EXPLAINERS.load_plugin(plugin)
    config, seeds = request.config, request.seeds
    if request.executor == "ray":
        from bench.execute.distributed import RayOptions, require_ray, run_seeds_on_ray

        require_ray()
        ray = RayOptions(request.ray_address, request.task_cpus, tuple(_plugin_spec(p) for p in request.plugins))
        return run_seeds_on_ray(config, seeds, ray, log)
    return run_seeds(config, seeds, log) if len(seeds) > 1 else run(config, log)


def _plugin_spec(plugin: str) -> str:
    """A plugin as a worker in another directory loads it: a file by its absolute path, a module by name."""
    return str(Path(plugin).resolve()) if plugin.endswith(".py") else plugin


def run(config: RunConfig, log: Callable[[str], None] = _log, *, progress: RunProgress | None = None,
        planned: Plan | None = None) -> Path:
    """Run a suite for one seed; returns the run directory (its ``results.json`` is written last).

    Prints nothing: progress goes to the ``bench`` logger (and ``progress``, when given, counts the
    steps); :func:`bench.run` is the documented entry point. ``planned``: the run's :func:`plan`, when the
    caller made it already (every seed of :func:`run_seeds` shares one).
    """
    started = time.perf_counter()
    revision = code_revision()  # of the code that runs, not of the tree when the run ends
    timings: dict[str, float] = {}
    planned = planned or plan(config, log)
    own_progress = progress is None
    progress = progress or RunProgress(planned.n_steps, bar=True)
    progress.record(f"seed {config.seed}: data", planned.data_seconds)  # loaded by plan(), before any work
    timings["data_seconds"] = planned.data_seconds
    out = Path(config.out or f"runs/{planned.suite.name}-{planned.profile.name}-seed{config.seed}")
    with output_dir(out) as run_dir:
        _run_in(config, planned, run_dir, log, progress, timings, revision, started)
    if own_progress:
        progress.close()
        log(progress.summary())
    return run_dir


def _run_in(config: RunConfig, planned: Plan, run_dir: Path, log: Callable[[str], None], progress: RunProgress,
            timings: dict[str, float], revision: str, started: float) -> dict:
    """One seed, in named steps: prepare what every explainer shares, score each explainer, draw the run's
    figures, assemble the metadata, write (``results.json`` last)."""
    torch.manual_seed(config.seed)
    shared = prepare_seed(config, planned, log, progress, timings)
    outcomes: list[Outcome] = []
    sweeps_by_fit: dict[str, tuple[list[Row], dict]] = {}  # fit cache key -> its scored sweeps
    for name, cls in planned.classes.items():
        outcome = score(name, cls, config, planned, shared, run_dir, log, progress, sweeps_by_fit)
        if outcome.fit_key and outcome.sweeps is not None:
            sweeps_by_fit[outcome.fit_key] = outcome.sweeps
        timings[f"{name}_fit_seconds"] = outcome.fit_seconds
        timings[f"{name}_seconds"] = outcome.seconds
        outcomes.append(outcome)
    return finish_seed(config, planned, shared, outcomes, run_dir, log, timings, revision, started)


def run_seeds(config: RunConfig, seeds: tuple[int, ...], log: Callable[[str], None] = _log) -> Path:
    """Run every seed into ``<out>/seed<N>/`` (default out ``runs/<suite>-<profile>-seeds<a>-<b>...``),
    then write the pooled leaderboard (mean ± s.d. over seeds) and report in ``<out>``. Models are cached
    per seed, so an interrupted multi-seed run resumes where it stopped."""
    if len(set(seeds)) != len(seeds) or not seeds:
        raise BenchError(f"--seeds needs distinct seeds, got {list(seeds)}")
    out = default_out(config, seeds)
    planned = plan(config, log, out=out)
    progress = RunProgress(planned.n_steps * len(seeds), bar=True)
    try:
        with output_dir(out):
            dirs = []
            for i, seed in enumerate(seeds):
                log(f"[run] seed {seed} ({i + 1} of {len(seeds)})")
                dirs.append(run(replace(config, seed=seed, out=out / f"seed{seed}"), log=log, progress=progress,
                                planned=planned))
            write_leaderboards(out, leaderboard.run_records(dirs))
    finally:
        progress.close()
    log(progress.summary())
    log(f"[run] wrote the {len(seeds)}-seed leaderboard and report in {out}")
    return out

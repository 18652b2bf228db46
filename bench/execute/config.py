"""What a run is asked to do: :class:`RunConfig`, built from the declared options (:mod:`bench.options`) in
one place, :func:`make_config`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from bench.errors import BenchError
from bench.inputs.blackbox import UserClassifier
from bench.options import bad_value, choices, default
from metrics.information_flow import resolve_device as default_device


@dataclass
class RunConfig:
    """Everything one seed of a run is asked to do; the doors -> :func:`make_config` -> this -> the steps."""

    suite: str = default("suite")
    profile: str = default("profile")
    explainers: tuple[str, ...] | None = default("explainers")  # None: the suite's defaults
    seed: int = 0
    device: str = default("device")
    out: Path | None = default("out")  # None: runs/<suite>-<profile>-seed<seed>
    data_root: str | None = default("data_root")
    fid_features: str = default("fid_features")
    inception_weights: str | None = default("inception_weights")
    cache: bool = default("cache")  # False: neither read nor write trained models (data stays cached)
    classifier: UserClassifier | None = None  # None: the suite's black box
    precision: str = default("precision")  # fits' precision (bench.execute.runtime)
    rescore: bool = default("rescore")
    settings: dict[str, dict] = field(default_factory=dict)  # explainer -> settings over the profile's (--set)
    command: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Request:
    """A run as the doors ask for it: the first seed's config, every seed, and how to execute them."""

    config: RunConfig
    seeds: tuple[int, ...]
    executor: str
    ray_address: str | None
    task_cpus: int | None
    plugins: tuple[str, ...]


def make_config(options: dict[str, Any]) -> Request:
    """Check the options of one run (every declared option, as :func:`bench.options.check_keywords` gives
    them) against each other, and build its :class:`RunConfig`; a one-line BenchError for a combination
    that cannot run."""
    seed, seeds = options["seed"], options["seeds"]
    if seed is not None and seeds is not None:
        raise BenchError(f"give seed or seeds, not both (seed={seed}, seeds={list(seeds)})")
    if seeds is not None:
        seeds = tuple(int(s) for s in seeds)
        if not seeds or len(set(seeds)) != len(seeds):
            raise BenchError(f"seeds must be distinct and at least one, got {list(seeds)}")
    seeds = seeds or (int(seed or 0),)
    explainers = options["explainers"]
    if isinstance(explainers, str):
        explainers = [explainers]
    classifier, weights, output = options["classifier"], options["weights"], options["classifier_output"]
    if classifier is None and (weights is not None or output != default("classifier_output")):
        raise BenchError("--weights and --classifier-output describe a --classifier; name one")
    user = None if classifier is None else UserClassifier(str(classifier), str(weights) if weights else None, output)
    executor = options["executor"]
    if executor not in choices("executor"):
        raise bad_value("executor", executor)
    if executor == "local" and (options["ray_address"] or options["task_cpus"]):
        raise BenchError("--ray-address and --task-cpus are options of --executor ray")
    if options["task_cpus"] is not None and options["task_cpus"] < 1:
        raise BenchError(f"--task-cpus must be at least 1, got {options['task_cpus']}")
    out = options["out"]
    config = RunConfig(suite=str(options["suite"]), profile=options["profile"],
                       explainers=tuple(explainers) if explainers else None, seed=seeds[0], device=options["device"],
                       out=Path(out) if out else None, data_root=options["data_root"],
                       fid_features=options["fid_features"], inception_weights=options["inception_weights"],
                       cache=options["cache"], classifier=user, precision=options["precision"],
                       rescore=options["rescore"],
                       settings={k: dict(v) for k, v in (options["settings"] or {}).items()},
                       command=list(options["command"]))
    return Request(config, seeds, executor, options["ray_address"], options["task_cpus"],
                   tuple(str(p) for p in options["plugins"]))


def device_from_option(name: str) -> torch.device:
    """``--device``: auto (CUDA when available, as the metrics default), cpu or cuda."""
    if name == "auto":
        return default_device(None)
    if name == "cuda" and not torch.cuda.is_available():
        raise BenchError("--device cuda asked for, but no CUDA device is available")
    if name not in choices("device"):
        raise bad_value("device", name)
    return torch.device(name)

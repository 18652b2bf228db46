"""What a leaderboard number means, declared beside the function that computes it.

Every metric module ends with ``DECLARED``, a tuple of :class:`Metric` in the order of their columns: name,
capability (what the explainer must be able to do), unit, direction, aggregation (how the values of one seed's
items pool into the one number of a row), description, and the metric function that computes it.
:data:`metrics.METRICS` assembles the declarations of :data:`metrics.MODULES`, in that order, then whatever
:func:`register` adds (plugins, notebooks), in the order it was added.

A declaration with ``inputs`` is scored generically: the scorer of its capability
(:mod:`bench.execute.scoring`) calls ``function(*[context[k] for k in inputs])`` on what it has in hand
(:data:`INPUTS` lists what each capability's scorer offers), pools the result by ``aggregation`` and writes the
row, so such a metric needs nothing besides its function and its declaration. A declaration without
``inputs`` names a value its scorer computes itself (several metrics of one expensive call, seeded draws, a
setup of the run's).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

#: the explainer capabilities a metric can need (the values of ``explainers.base.Capability``)
CAPABILITIES = ("latent", "saliency", "sweep", "fit")

#: how one seed's values pool into a row's number (over seeds, every leaderboard cell is the mean ± s.d.)
AGGREGATIONS = {
    "mean": "the mean over the seed's items (images, sweeps, factors, pixels' tie orders) of a value per item",
    "max": "the largest over the seed's items (the worst one)",
    "per-factor": "one row per latent factor (its ``factor``), no pooling",
    "per-seed": "one value of the seed's whole set at once (an estimate, a curve's area, a correlation, a time)",
}

#: what the scorer of each capability hands a generically scored metric (``Metric.inputs``), by name
INPUTS: dict[str, dict[str, str]] = {
    "saliency": {
        "maps": "(N, C, H, W) the explainer's maps of f's predicted class of the scored images",
        "images": "(N, C, H, W) the scored test images",
        "labels": "(N,) f's predicted class of each image: what each map explains",
        "classifier": "f: images (N, C, H, W) -> class probabilities (N, M)",
    },
    "sweep": {
        "sweeps": "(N, S, C, H, W) the counterfactual sweeps, step 0 the query or its reconstruction",
        "queries": "(N, C, H, W) the query of each sweep",
        "ends": "(N, C, H, W) the last image of each sweep",
        "target": "(N,) the class each sweep moves toward",
        "probs": "(N, S, M) f's probabilities of every step",
        "end_probs": "(N, M) f's probabilities of each sweep's end",
        "requested": "(N, S) the target probability each step requests (metrics.sweep.requested_ramp)",
        "target_probs": "(N, S) the target probability f gives each step",
        "classifier": "f: images (N, C, H, W) -> class probabilities (N, M)",
    },
    "latent": {
        "encode": "images (N, C, H, W) -> posterior means (N, D)",
        "decode": "latents (N, D) -> images (N, C, H, W)",
        "classifier": "f: images (N, C, H, W) -> class probabilities (N, M)",
        "images": "(N, C, H, W) the validation images",
        "labels": "(N,) their dataset labels",
        "codes": "(N, D) encode(images)",
        "n_causal": "the number of causal factors (the first ones of a code)",
        "n_noncausal": "the number of noncausal factors",
        "seed": "the run's seed (seed a generator of your own from it)",
    },
}


@dataclass(frozen=True)
class Metric:
    """One leaderboard metric: its row's meaning and the function that computes it.

    ``higher_is_better`` None makes it a diagnostic: shown, never marked best, never gated. ``field``: the
    attribute of ``function``'s result that is this metric's value, for a family of metrics from one call
    (called once per scoring for all of them)."""

    name: str
    capability: str
    unit: str
    higher_is_better: bool | None
    aggregation: str
    description: str
    function: Callable[..., Any] = dataclasses.field(compare=False, repr=False)
    inputs: tuple[str, ...] = ()
    field: str | None = None

    def __post_init__(self) -> None:
        if not self.name or not self.name.isidentifier():
            raise ValueError(f"metric name {self.name!r} must be an identifier")
        if self.capability not in CAPABILITIES:
            raise ValueError(f"metric {self.name!r}: capability {self.capability!r} is not one of {CAPABILITIES}")
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"metric {self.name!r}: aggregation {self.aggregation!r} is not one of "
                             f"{tuple(AGGREGATIONS)}")
        if self.higher_is_better not in (True, False, None):
            raise ValueError(f"metric {self.name!r}: higher_is_better must be True, False or None")
        if not callable(self.function):
            raise TypeError(f"metric {self.name!r}: function must be the callable that computes it")
        object.__setattr__(self, "inputs", tuple(self.inputs))
        if self.inputs:
            offered = INPUTS.get(self.capability, {})
            unknown = [k for k in self.inputs if k not in offered]
            if unknown:
                raise ValueError(f"metric {self.name!r}: the {self.capability} scorer offers no {unknown}; "
                                 f"it offers {sorted(offered)}")
            if self.aggregation == "per-factor" and self.capability != "latent":
                raise ValueError(f"metric {self.name!r}: only a latent metric has factors")

    @property
    def arrow(self) -> str:
        return {True: "↑", False: "↓", None: ""}[self.higher_is_better]



class MetricRegistry(Mapping):
    """Name -> :class:`Metric`, read-only: the declarations of ``modules`` (imported on first use, in that
    order), then those added by :meth:`register`. Rejects a name declared twice."""

    def __init__(self, package: str, modules: tuple[str, ...]) -> None:
        self.package, self.modules = package, modules
        self._entries: dict[str, Metric] | None = None
        self._added: dict[str, Metric] = {}

    def _load(self) -> dict[str, Metric]:
        if self._entries is None:
            import importlib

            entries: dict[str, Metric] = {}
            for module in self.modules:
                for metric in importlib.import_module(f"{self.package}.{module}").DECLARED:
                    self._check_new(metric, entries, f"{self.package}.{module}")
                    entries[metric.name] = metric
            self._entries = entries
        return self._entries

    @staticmethod
    def _check_new(metric: Metric, entries: Mapping[str, Metric], where: str) -> None:
        if not isinstance(metric, Metric):
            raise TypeError(f"{where}: {metric!r} is not a metrics.Metric")
        if metric.name in entries:
            raise ValueError(f"metric {metric.name!r} ({where}) is declared twice")

    def _all(self) -> dict[str, Metric]:
        built_in = self._load()
        return {**built_in, **self._added} if self._added else built_in

    def __getitem__(self, name: str) -> Metric:
        return self._all()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

    def __repr__(self) -> str:
        return f"MetricRegistry({list(self)})"

    def built_in(self) -> dict[str, Metric]:
        """The declarations of the package's own modules, in column order."""
        return dict(self._load())

    def register(self, *metrics: Metric) -> tuple[Metric, ...]:
        """Add ``metrics`` after every metric known so far (their columns come last, in this order).
        Registering the same declaration again is a no-op; another one under a taken name is a ValueError."""
        for metric in metrics:
            known = self._all()
            if known.get(metric.name) == metric and known[metric.name].function is metric.function:
                continue
            self._check_new(metric, known, "register")
            self._added[metric.name] = metric
        return metrics

    @contextlib.contextmanager
    def temporarily(self, *metrics: Metric) -> Iterator[tuple[Metric, ...]]:
        """``metrics`` registered inside the block only (a test, a trial in a notebook)."""
        before = dict(self._added)
        try:
            yield self.register(*metrics)
        finally:
            self._added.clear()
            self._added.update(before)

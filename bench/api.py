"""The Python API: :func:`run` a suite, :func:`load` stored results, read them as a :class:`Results`.

>>> import bench
>>> results = bench.run(suite="mnist", profile="smoke", explainers=["gce", "saliency"])  # doctest: +SKIP
>>> results.frame.query("metric == 'information_flow'")  # doctest: +SKIP

``python -m bench run`` is a thin layer over :func:`run`: every flag has its keyword here.
Nothing is printed unless asked for: progress goes to the ``bench`` and ``explainers`` loggers
(configure :mod:`logging`, or pass ``progress=True`` for bars on a terminal and log lines on stderr).
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.options import OPTIONS, check_keywords, docstring as options_docstring, signature as options_signature

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


def run(suite: str | Path = OPTIONS["suite"].default, **options) -> Results:
    """Train what is missing (cached unless ``cache=False``), score every explainer, write the run
    directory, and return its :class:`Results`.

    ``suite``: a built-in suite's name or a suite file (``my_suite.toml``). ``seed`` runs one seed (default
    0) into ``out``; ``seeds`` runs several into ``out/seed<N>/`` and pools them; giving both is an error,
    whatever their values. ``classifier`` brings your own black box (``weights`` and ``classifier_output``
    describe it); ``plugins`` are imported first; ``executor="ray"`` runs every black box, fit and scoring
    as a Ray task (:mod:`bench.execute.distributed`). Raises :class:`bench.errors.BenchError` for input that
    cannot run (unknown names, bad paths, a black box that does not fit the suite), before any training,
    and TypeError for a keyword that is not an option.

    The options, declared in :mod:`bench.options` (the command line's flags are the same options):

{options}
    """
    options = check_keywords({"suite": suite, **options})
    from bench.execute.runner import execute
    from bench.progress import bars, configure_logging

    if options["progress"] and not logging.getLogger("bench").handlers:
        configure_logging(0)
    with bars(options["progress"]):
        return load(execute(options))


# the signature and the options' part of the docstring, derived from the declarations
run.__signature__ = options_signature([inspect.Parameter("suite", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                                         default=OPTIONS["suite"].default)])
if run.__doc__:  # None under python -OO
    run.__doc__ = run.__doc__.replace("{options}", options_docstring())


def check_suite(baseline: str | Path, *, suite: str = "mnist", profile: str = "quick",
                seeds: tuple[int, ...] | list[int] = (0,), explainers: list[str] | tuple[str, ...] | None = None,
                out: str | Path | None = None, device: str = "auto", tolerance: str | None = None,
                rule: str = "auto"):
    """:func:`run` ``suite`` (models come from the cache when they are there), then
    :func:`bench.gate.assert_no_regression` against ``baseline``: the one call a user's regression test
    needs. Returns the :class:`bench.gate.Comparison`; raises :class:`bench.gate.RegressionError` (an
    ``AssertionError``) listing every metric that got worse.

    >>> from bench.api import check_suite
    >>> check_suite("results/baselines/mnist-quick.json", seeds=(3, 4, 5))  # doctest: +SKIP
    """
    from bench.gate import assert_no_regression

    results = run(suite, profile=profile, seeds=tuple(seeds), explainers=explainers, out=out, device=device)
    return assert_no_regression(results.run_dir, baseline, tolerance=tolerance, rule=rule)

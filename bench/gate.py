"""Regression gates: a baseline file, a comparison against it, and an entry point for pytest.

``python -m bench baseline RUN_DIR --out FILE`` stores, per explainer and metric with a
direction, the value of every seed of a run. ``python -m bench compare RUN_DIR --baseline
FILE [--tolerance SPEC]`` then decides, metric by metric, whether the run got worse:

- one seed on either side: worse when the value moved in the bad direction by more than
  the tolerance;
- several seeds on both sides: worse when the mean moved in the bad direction by more than
  the tolerance *and* Welch's one-sided t-test (scipy) says the move is not seed noise
  (p < ``ALPHA``); where both sides have no spread at all the test is undefined and the
  tolerance decides alone. The report names the rule used for every metric it flags.

Exit status: 0 nothing got worse, 1 something did, 2 unusable input (missing or corrupt
file, another suite or profile, another metric set, another schema version).

A tolerance SPEC is a comma-separated list of ``PATTERN=VALUE`` (``fnmatch`` patterns over
metric names, later entries win) or a bare ``VALUE`` for every metric; a VALUE is
absolute (``0.02``) or relative to the baseline (``10%``).
"""

from __future__ import annotations

import fnmatch
import json
import math
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

from bench.errors import BenchError
from bench.leaderboard import check_same_run, run_records
from bench.results import code_revision, device_text
from bench.store import atomic_write_text
from metrics import METRICS

BASELINE_KIND = "genexbench-baseline"
BASELINE_SCHEMA = 1
ALPHA = 0.05  # significance level of the multi-seed test

#: Default tolerances: fractions, probabilities and correlations may move 0.03 the bad way before a run
#: counts as worse, information flow (nats) 20%, FID 25%. The same seed on the same machine reproduces
#: every number exactly, so an untouched re-run passes any tolerance; these leave room for a black box
#: that differs by float noise (another CPU, another kernel). Measured (results/baselines/README.md): two
#: mnist quick seed-0 runs whose black boxes had the same test accuracy but weights up to 0.02 apart
#: differed by up to 0.015 in removal AUCs, 0.02 in sweep compatibility, 0.2% in information flow and
#: 21% in FID (the exaggeration cGAN: GAN training amplifies small differences).
DEFAULT_TOLERANCE = "0.03,information_flow*=20%,fid*=25%"


class UnusableInput(BenchError):
    """Input that cannot be compared (exit status 2)."""


class RegressionError(AssertionError):
    """Raised by :func:`assert_no_regression`; the message lists every metric that got worse."""


# ----------------------------------------------------------------------------- tolerance


@dataclass(frozen=True)
class Tolerance:
    rules: tuple[tuple[str, float, bool], ...]  # (pattern, value, relative)
    spec: str

    @classmethod
    def parse(cls, spec: str) -> "Tolerance":
        rules = []
        for item in (part.strip() for part in spec.split(",")):
            if not item:
                continue
            pattern, _, value = item.rpartition("=")
            pattern = pattern.strip() or "*"
            value = value.strip()
            relative = value.endswith("%")
            try:
                number = float(value[:-1] if relative else value)
            except ValueError:
                raise UnusableInput(f"bad tolerance {item!r}: expected VALUE, VALUE% or PATTERN=VALUE[%]") from None
            if not math.isfinite(number) or number < 0:
                raise UnusableInput(f"bad tolerance {item!r}: must be a finite number >= 0")
            rules.append((pattern, number / 100 if relative else number, relative))
        if not rules:
            raise UnusableInput(f"empty tolerance {spec!r}")
        return cls(tuple(rules), spec)

    def allowed(self, metric: str, baseline: float) -> float:
        """How far ``metric`` may move in the bad direction from ``baseline``."""
        out = 0.0
        for pattern, value, relative in self.rules:
            if fnmatch.fnmatchcase(metric, pattern):
                out = value * abs(baseline) if relative else value
        return out


# ----------------------------------------------------------------------------- baseline


def gated_metrics(record: dict) -> dict[tuple[str, str], float | None]:
    """(explainer, metric) -> value for every summary metric with a direction (timings and per-factor
    diagnostics are not gated)."""
    out = {}
    for r in record["results"]:
        if "error" in r or r.get("factor"):
            continue
        info = METRICS.get(r["metric"])
        if info is not None and info.higher_is_better is not None:
            out[(r["explainer"], r["metric"])] = r["value"]
    return out


def _devices(records: Sequence[dict]) -> list[str]:
    return sorted({device_text(rec["metadata"].get("device", {})) for rec in records})


def make_baseline(records: Sequence[dict], *, tolerance: str = DEFAULT_TOLERANCE) -> dict:
    check_same_run(records)
    Tolerance.parse(tolerance)
    meta = records[0]["metadata"]
    values: dict[str, dict[str, list]] = {}
    for rec in records:
        for (explainer, metric), value in gated_metrics(rec).items():
            values.setdefault(explainer, {}).setdefault(metric, []).append(value)
    failed = sorted({r["explainer"] for rec in records for r in rec["results"] if "error" in r})
    if failed:
        raise UnusableInput(f"these explainers failed in the run, so it cannot be a baseline: {', '.join(failed)}")
    return {
        "kind": BASELINE_KIND, "baseline_schema": BASELINE_SCHEMA, "results_schema": meta.get("schema_version"),
        "suite": meta.get("suite"), "suite_version": meta.get("suite_version"), "profile": meta.get("profile"),
        "seeds": [r["metadata"].get("seed") for r in records],
        "code_revisions": sorted({str(r["metadata"].get("code_revision")) for r in records}),
        "devices": _devices(records),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "made_by": code_revision(),
        "tolerance": tolerance, "values": values,
    }


def write_baseline(run_dirs: Sequence[str | Path], out: str | Path, *, tolerance: str = DEFAULT_TOLERANCE) -> Path:
    baseline = make_baseline(run_records(run_dirs), tolerance=tolerance)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(baseline, indent=1, allow_nan=False) + "\n")
    return out


def load_baseline(path: str | Path) -> dict:
    path = Path(path)
    try:
        baseline = json.loads(path.read_text())
    except FileNotFoundError:
        raise UnusableInput(f"no baseline file {path}") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UnusableInput(f"{path} is not a readable JSON baseline ({exc})") from None
    if not isinstance(baseline, dict) or baseline.get("kind") != BASELINE_KIND:
        raise UnusableInput(f"{path} is not a genexbench baseline (write one with `python -m bench baseline`)")
    if baseline.get("baseline_schema") != BASELINE_SCHEMA:
        raise UnusableInput(f"{path} has baseline schema {baseline.get('baseline_schema')}; "
                            f"this genexbench reads {BASELINE_SCHEMA}")
    return baseline


# ----------------------------------------------------------------------------- comparison


@dataclass(frozen=True)
class Finding:
    explainer: str
    metric: str
    baseline: float | None  # mean over the baseline's seeds
    now: float | None  # mean over the run's seeds
    allowed: float | None  # the worst value still accepted
    worse: bool
    rule: str  # how it was decided

    def line(self) -> str:
        fmt = lambda v: "undefined" if v is None else f"{v:.6g}"  # noqa: E731
        return (f"{self.metric} of {self.explainer}: baseline {fmt(self.baseline)}, now {fmt(self.now)}, "
                f"allowed {fmt(self.allowed)} ({self.rule})")


@dataclass(frozen=True)
class Comparison:
    findings: tuple[Finding, ...]
    tolerance: str
    baseline_seeds: tuple
    run_seeds: tuple
    note: str = ""

    @property
    def worse(self) -> list[Finding]:
        return [f for f in self.findings if f.worse]

    @property
    def exit_code(self) -> int:
        return 1 if self.worse else 0

    def report(self) -> str:
        head = (f"compared {len(self.findings)} metrics: run seeds {list(self.run_seeds)} against baseline seeds "
                f"{list(self.baseline_seeds)}, tolerance {self.tolerance!r}" + (f"\n{self.note}" if self.note else ""))
        if not self.worse:
            return head + "\nno metric got worse beyond tolerance"
        return "\n".join([head, f"{len(self.worse)} metric(s) got worse:", *("  " + f.line() for f in self.worse)])


def _mean(values: list) -> float | None:
    defined = [v for v in values if v is not None]
    return sum(defined) / len(defined) if defined else None


def _decide(explainer: str, metric: str, base: list, now: list, tolerance: Tolerance) -> Finding:
    from scipy import stats

    higher = METRICS[metric].higher_is_better
    b, n = _mean(base), _mean(now)
    if b is None:  # undefined in the baseline (e.g. an FID group no explanation reached): nothing to keep
        return Finding(explainer, metric, None, n, None, False, "undefined in the baseline")
    allowed = b - tolerance.allowed(metric, b) if higher else b + tolerance.allowed(metric, b)
    if n is None or any(v is None for v in now):
        return Finding(explainer, metric, b, n, allowed, True, "defined in the baseline, undefined now")
    beyond = n < allowed if higher else n > allowed
    base_defined = [v for v in base if v is not None]
    if len(base_defined) >= 2 and len(now) >= 2:
        if max(base_defined) == min(base_defined) and max(now) == min(now):
            return Finding(explainer, metric, b, n, allowed, beyond,
                           "threshold (no spread on either side: t-test undefined)")
        with warnings.catch_warnings():  # nearly equal samples: scipy warns of precision loss, p is still usable
            warnings.simplefilter("ignore", RuntimeWarning)
            test = stats.ttest_ind(now, base_defined, equal_var=False, alternative="less" if higher else "greater")
        p = float(test.pvalue)
        rule = f"Welch t-test, {len(now)} vs {len(base_defined)} seeds, one-sided p={p:.3g}"
        rule += " and beyond tolerance" if beyond else ", within tolerance"
        return Finding(explainer, metric, b, n, allowed, bool(beyond and p < ALPHA), rule)
    return Finding(explainer, metric, b, n, allowed, beyond, "threshold")


def compare_records(records: Sequence[dict], baseline: dict, *, tolerance: str | None = None) -> Comparison:
    """Compare a run (one record per seed) with a baseline; :class:`UnusableInput` when they do not match."""
    if not records:
        raise UnusableInput("no run to compare")
    try:
        check_same_run(records)
    except BenchError as exc:
        raise UnusableInput(str(exc)) from None
    meta = records[0]["metadata"]
    if meta.get("schema_version") != baseline.get("results_schema"):
        raise UnusableInput(f"results schema {meta.get('schema_version')} against a baseline of schema "
                            f"{baseline.get('results_schema')}: write a new baseline")
    for field in ("suite", "suite_version", "profile"):
        if meta.get(field) != baseline.get(field):
            raise UnusableInput(f"{field} differs: run {meta.get(field)!r}, baseline {baseline.get(field)!r}")
    spec = Tolerance.parse(tolerance or baseline.get("tolerance") or DEFAULT_TOLERANCE)
    failed = sorted({r["explainer"] for rec in records for r in rec["results"] if "error" in r})
    now: dict[tuple[str, str], list] = {}
    for rec in records:
        for key, value in gated_metrics(rec).items():
            now.setdefault(key, []).append(value)
    base = {(e, m): v for e, metrics in baseline["values"].items() for m, v in metrics.items()}
    missing = sorted(set(base) - set(now))
    extra = sorted(set(now) - set(base))
    unknown = sorted({m for _, m in base if m not in METRICS})
    if unknown:
        raise UnusableInput(f"the baseline has metrics this genexbench does not know: {', '.join(unknown)}")
    if missing and not failed:
        raise UnusableInput("the run lacks metrics of the baseline (another explainer or metric set?): "
                            + ", ".join(f"{e}/{m}" for e, m in missing[:8]) + (" ..." if len(missing) > 8 else ""))
    if extra:
        raise UnusableInput("the run has metrics the baseline lacks (another explainer or metric set?): "
                            + ", ".join(f"{e}/{m}" for e, m in extra[:8]) + (" ..." if len(extra) > 8 else ""))
    errors = {r["explainer"]: r["error"] for rec in records for r in rec["results"] if "error" in r}
    findings = []
    for (explainer, metric), values in sorted(base.items()):
        if (explainer, metric) not in now:  # the explainer failed in the run: every one of its metrics is worse
            findings.append(Finding(explainer, metric, _mean(values), None, None, True,
                                    f"the explainer failed: {errors.get(explainer, 'no value')}"))
        else:
            findings.append(_decide(explainer, metric, values, now[(explainer, metric)], spec))
    note = ""
    if baseline.get("devices") and _devices(records) != baseline["devices"]:
        note = (f"note: the baseline ran on {', '.join(baseline['devices'])}, this run on "
                f"{', '.join(_devices(records))}: expect small differences, not exact equality")
    return Comparison(tuple(findings), spec.spec, tuple(baseline.get("seeds", ())),
                      tuple(r["metadata"].get("seed") for r in records), note)


def compare(run_dirs: Sequence[str | Path], baseline_file: str | Path, *, tolerance: str | None = None) -> Comparison:
    return compare_records(run_records(run_dirs), load_baseline(baseline_file), tolerance=tolerance)


# ----------------------------------------------------------------------------- pytest entry point


def assert_no_regression(run: str | Path | Sequence[str | Path], baseline: str | Path, *,
                         tolerance: str | None = None) -> Comparison:
    """Assert that a run (a run directory, or several) is no worse than ``baseline``; for use in a
    user's own pytest. Raises :class:`RegressionError` (an ``AssertionError``) listing every metric
    that got worse, with baseline, current and allowed values; returns the comparison otherwise.

    >>> from bench.gate import assert_no_regression
    >>> assert_no_regression("runs/mnist-quick-seed0", "results/baselines/mnist-quick.json")  # doctest: +SKIP
    """
    dirs = [run] if isinstance(run, (str, Path)) else list(run)
    comparison = compare(dirs, baseline, tolerance=tolerance)
    if comparison.worse:
        raise RegressionError(comparison.report())
    return comparison


def check_suite(baseline: str | Path, *, suite: str = "mnist", profile: str = "quick", seeds: Sequence[int] = (0,),
                explainers: Sequence[str] | None = None, out: str | Path | None = None, device: str = "auto",
                tolerance: str | None = None) -> Comparison:
    """Run ``suite`` (models come from the cache when they are there) and :func:`assert_no_regression`
    against ``baseline``: the one call a user's regression test needs."""
    from bench.runner import RunConfig, run, run_seeds

    config = RunConfig(suite=suite, profile=profile, explainers=tuple(explainers) if explainers else None,
                       seed=seeds[0], device=device, out=Path(out) if out else None)
    run_dir = run_seeds(config, tuple(seeds)) if len(seeds) > 1 else run(config)
    return assert_no_regression(run_dir, baseline, tolerance=tolerance)

"""Comparison of a run with a baseline: the noise-calibrated and fixed-tolerance rules, their
findings and report (:class:`Comparison`), and :func:`assert_no_regression` for a user's pytest."""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from bench.errors import BenchError
from bench.gate.baseline import devices_of, gated_metrics, load_baseline
from bench.gate.statistics import (ALPHA, MAX_SEEDS, MIN_CALIBRATION_SEEDS, POWER, holm, prediction_bound,
                                   prediction_pvalue, seeds_needed)
from bench.gate.tolerance import DEFAULT_FLOOR, DEFAULT_TOLERANCE, Tolerance, UnusableInput
from bench.outputs.leaderboard import check_same_run, run_records
from bench.outputs.results import rows_of
from metrics import METRICS

#: The ``rule`` values :func:`compare_records` takes.
RULES = ("auto", "fixed")


class RegressionError(AssertionError):
    """Raised by :func:`assert_no_regression`; the message lists every metric that got worse."""


@dataclass(frozen=True)
class Finding:
    explainer: str
    metric: str
    baseline: float | None  # mean over the baseline's seeds
    now: float | None  # mean over the run's seeds
    allowed: float | None  # the worst value still accepted (Welch: the worst mean the floor accepts)
    worse: bool
    rule: str  # how it was decided
    p: float | None = None  # one-sided p of the calibrated rule's test (None: not tested)
    p_holm: float | None = None  # Holm-adjusted p across all tested metrics
    sd: float | None = None  # s.d. over the baseline's seeds (None with fewer than 2)
    n_baseline: int = 0  # baseline seeds with a defined value
    floor: float | None = None  # the floor (calibrated) or tolerance (fixed), in the metric's units
    gated: bool = True  # False: reported, never worse (undefined in the baseline, or on too few seeds to test)

    @property
    def verdict(self) -> str:
        """``worse``, ``ok`` or ``not gated``."""
        return "worse" if self.worse else "ok" if self.gated else "not gated"

    @property
    def delta(self) -> float | None:
        """The run's mean minus the baseline's (signed, in the metric's units); None where either is undefined."""
        return None if self.baseline is None or self.now is None else self.now - self.baseline

    def row(self) -> dict:
        """The finding as data (JSON-ready: non-finite numbers become None)."""
        finite = lambda v: v if v is None or math.isfinite(v) else None  # noqa: E731
        return {"verdict": self.verdict, "explainer": self.explainer, "metric": self.metric,
                "higher_is_better": METRICS[self.metric].higher_is_better if self.metric in METRICS else None,
                "baseline": finite(self.baseline), "run": finite(self.now), "delta": finite(self.delta),
                "tolerance": finite(self.floor), "allowed": finite(self.allowed), "test": self.rule,
                "p": finite(self.p), "p_holm": finite(self.p_holm), "sd": finite(self.sd),
                "n_baseline": self.n_baseline}

    def line(self) -> str:
        fmt = lambda v: "undefined" if v is None else f"{v:.6g}"  # noqa: E731
        return (f"{self.metric} of {self.explainer}: baseline {fmt(self.baseline)}, now {fmt(self.now)}, "
                f"allowed {fmt(self.allowed)} ({self.rule})")


@dataclass(frozen=True)
class Comparison:
    findings: tuple[Finding, ...]
    tolerance: str  # the floor (calibrated rule) or the tolerance (fixed rule)
    baseline_seeds: tuple
    run_seeds: tuple
    note: str = ""
    rule: str = "fixed"  # "calibrated" or "fixed"
    alpha: float = ALPHA
    tests: int = 0  # size of the Holm family (calibrated) / of the planning family (fixed)

    @property
    def worse(self) -> list[Finding]:
        return [f for f in self.findings if f.worse]

    @property
    def exit_code(self) -> int:
        return 1 if self.worse else 0

    def describe_rule(self) -> str:
        if self.rule == "calibrated":
            return (f"noise-calibrated rule: one-sided prediction bound (one run seed) or a pooled t-test (several), "
                    f"Holm across {self.tests} tested metrics at family-wise {self.alpha:g}, floor {self.tolerance!r}")
        return f"fixed-tolerance rule, tolerance {self.tolerance!r}"

    def seeds_needed(self, detect: str | None = None, *,
                     power: float = POWER) -> list[tuple[Finding, float, int | None]]:
        """Per metric: (finding, change, seeds needed per side) to detect a change of ``detect`` (a
        tolerance spec; default the floor/tolerance) in the bad direction with ``power``, by a two-sample
        one-sided t-test at Holm's strictest level ``alpha / tests``, with the baseline's seed s.d.
        Seeds needed is ``None`` where the s.d. is unknown (< 2 baseline seeds) or above ``MAX_SEEDS``;
        change 0 means nothing to detect."""
        spec = Tolerance.parse(detect or self.tolerance, what="detection size")
        level = self.alpha / max(self.tests, 1)
        rows = []
        for f in self.findings:
            if f.baseline is None:
                continue
            delta = spec.allowed(f.metric, f.baseline)
            n = seeds_needed(f.sd, delta, level, power) if f.sd is not None and delta > 0 else None
            rows.append((f, delta, n))
        return rows

    def rows(self) -> list[dict]:
        """Every compared metric as a dict (:meth:`Finding.row`), the worse ones first, then in baseline order:
        ``verdict`` (worse, ok, not gated), ``explainer``, ``metric``, ``higher_is_better``, ``baseline`` and
        ``run`` (means over seeds), ``delta`` (run - baseline), ``tolerance`` (the floor or fixed tolerance, in
        the metric's units), ``allowed`` (the worst value accepted), ``test`` (the rule and its p-values),
        ``p``, ``p_holm``, ``sd`` (over the baseline's seeds), ``n_baseline``. Per-factor diagnostics and
        timings are never gated, so every row is one (explainer, metric)."""
        return [f.row() for f in sorted(self.findings, key=lambda f: not f.worse)]

    def to_dict(self, detect: str | None = None, *, seeds_table: bool = False) -> dict:
        """The comparison as JSON-ready data: what :meth:`report` prints with ``table=True``. ``seeds_needed``
        (with ``seeds_table`` or a ``detect`` size) lists per metric the baseline s.d., the change to detect
        and the seeds per side needed; ``seeds`` is null where the s.d. is null (< 2 baseline seeds) or more
        than ``MAX_SEEDS`` would be needed."""
        out = {"exit_code": self.exit_code, "rule": self.rule, "rule_description": self.describe_rule(),
               "tolerance": self.tolerance, "alpha": self.alpha, "tests": self.tests,
               "baseline_seeds": list(self.baseline_seeds), "run_seeds": list(self.run_seeds),
               "notes": self.note.splitlines(), "compared": len(self.findings), "worse": len(self.worse),
               "rows": self.rows()}
        if seeds_table or detect:
            out["seeds_needed"] = {
                "size": detect or self.tolerance, "power": POWER, "level": self.alpha / max(self.tests, 1),
                "rows": [{"explainer": f.explainer, "metric": f.metric, "sd": f.sd, "change": delta, "seeds": n}
                         for f, delta, n in self.seeds_needed(detect)]}
        return out

    def table(self) -> str:
        """Every compared metric, one aligned line each, the worse ones first (:meth:`rows`)."""
        num = lambda v, sign="": "undefined" if v is None else f"{v:{sign}.4g}"  # noqa: E731
        lines = [("verdict", "explainer", "metric", "baseline", "run", "delta", "tolerance", "allowed", "test")]
        for row in self.rows():
            arrow = {True: " ↑", False: " ↓"}.get(row["higher_is_better"], "")
            lines.append((row["verdict"], row["explainer"], row["metric"] + arrow, num(row["baseline"]),
                          num(row["run"]), num(row["delta"], "+"), num(row["tolerance"]), num(row["allowed"]),
                          row["test"]))
        widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]) - 1)]
        return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)) + "  " + line[-1]
                         for line in lines)

    def report(self, detect: str | None = None, *, seeds_table: bool = False, table: bool = False) -> str:
        """The verdict and every flagged metric with its rule and (calibrated rule) Holm-adjusted p; with
        ``table``, every compared metric instead (:meth:`table`, the worse first) and a count; with
        ``seeds_table`` (or a ``detect`` size) the seeds per side needed to detect a change of ``detect``
        (default: the floor/tolerance)."""
        head = (f"compared {len(self.findings)} metrics: run seeds {list(self.run_seeds)} against baseline seeds "
                f"{list(self.baseline_seeds)}; {self.describe_rule()}" + (f"\n{self.note}" if self.note else ""))
        lines = [head]
        if table:
            lines.append(self.table())
        if not self.worse:
            lines.append("no metric got worse beyond tolerance")
        elif table:
            lines.append(f"{len(self.worse)} of {len(self.findings)} metrics got worse (listed first)")
        else:
            lines += [f"{len(self.worse)} metric(s) got worse:", *("  " + f.line() for f in self.worse)]
        if seeds_table or detect:
            lines.append(self._seeds_table(detect))
        return "\n".join(lines)

    def _seeds_table(self, detect: str | None) -> str:
        level = self.alpha / max(self.tests, 1)
        size = detect or self.tolerance
        out = [f"seeds needed per side to detect a change of {size!r} in the bad direction with {POWER:.0%} power "
               f"(two-sample one-sided t-test at Holm's level {self.alpha:g}/{max(self.tests, 1)} = {level:.3g}, "
               f"s.d. over the baseline's seeds):"]
        rows = self.seeds_needed(detect)
        if rows and all(f.sd is None for f, _, _ in rows):
            return out[0] + " unknown: the s.d. needs >= 2 baseline seeds"
        for f, delta, n in rows:
            if delta <= 0:
                need = "nothing to detect (change 0)"
            elif f.sd is None:
                need = f"unknown (s.d. needs >= 2 baseline seeds, has {f.n_baseline})"
            elif n is None:
                need = f"> {MAX_SEEDS}"
            else:
                need = str(n) + (" (no spread over the baseline's seeds)" if f.sd == 0 else "")
            sd = "undefined" if f.sd is None else f"{f.sd:.3g}"
            out.append(f"  {f.metric} of {f.explainer}: s.d. {sd}, change {delta:.3g}: {need}")
        return "\n".join(out)


def _mean(values: list) -> float | None:
    defined = [v for v in values if v is not None]
    return sum(defined) / len(defined) if defined else None


def _sd(values: list) -> float | None:
    defined = [v for v in values if v is not None]
    if len(defined) < 2:
        return None
    mean = math.fsum(defined) / len(defined)
    return math.sqrt(math.fsum((v - mean) ** 2 for v in defined) / (len(defined) - 1))


def _decide_fixed(explainer: str, metric: str, base: list, now: list, tolerance: Tolerance) -> Finding:
    """The fixed-tolerance rule (baselines of fewer than ``MIN_CALIBRATION_SEEDS`` seeds)."""
    from scipy import stats

    higher = METRICS[metric].higher_is_better
    b, n = _mean(base), _mean(now)
    base_defined = [v for v in base if v is not None]
    extra = dict(sd=_sd(base), n_baseline=len(base_defined))
    if b is None:  # undefined in the baseline (e.g. an FID group no explanation reached): nothing to keep
        return Finding(explainer, metric, None, n, None, False, "undefined in the baseline", gated=False, **extra)
    tol = tolerance.allowed(metric, b)
    extra["floor"] = tol
    allowed = b - tol if higher else b + tol
    if n is None or any(v is None for v in now):
        return Finding(explainer, metric, b, n, allowed, True, "defined in the baseline, undefined now", **extra)
    beyond = n < allowed if higher else n > allowed
    if len(base_defined) >= 2 and len(now) >= 2:
        if max(base_defined) == min(base_defined) and max(now) == min(now):
            return Finding(explainer, metric, b, n, allowed, beyond,
                           "threshold (no spread on either side: t-test undefined)", **extra)
        with warnings.catch_warnings():  # nearly equal samples: scipy warns of precision loss, p is still usable
            warnings.simplefilter("ignore", RuntimeWarning)
            test = stats.ttest_ind(now, base_defined, equal_var=False, alternative="less" if higher else "greater")
        p = float(test.pvalue)
        rule = f"Welch t-test, {len(now)} vs {len(base_defined)} seeds, one-sided p={p:.3g}"
        rule += " and beyond tolerance" if beyond else ", within tolerance"
        return Finding(explainer, metric, b, n, allowed, bool(beyond and p < ALPHA), rule, **extra)
    return Finding(explainer, metric, b, n, allowed, beyond, "threshold", **extra)


def _test_calibrated(explainer: str, metric: str, base: list, now: list, floor: Tolerance) -> Finding:
    """The calibrated rule's test of one metric: a finding with its raw one-sided ``p`` (``worse`` and
    the verdict are set by :func:`_holm_verdicts`), or an outright verdict where no test applies."""
    from scipy import stats

    base_defined = [v for v in base if v is not None]
    now_defined = [v for v in now if v is not None]
    if len(base_defined) < MIN_CALIBRATION_SEEDS:  # a metric undefined on some baseline seeds (an FID group
        # that some seeds fill and others do not): its spread is unknown, so it is reported, not gated
        return Finding(explainer, metric, _mean(base), _mean(now), None, False,
                       f"not gated: defined on {len(base_defined)} of {len(base)} baseline seeds, the calibrated "
                       f"rule needs {MIN_CALIBRATION_SEEDS}", n_baseline=len(base_defined), gated=False)
    higher = METRICS[metric].higher_is_better
    b, n = _mean(base), _mean(now_defined) if now_defined else None
    sd = _sd(base)
    tol = floor.allowed(metric, b)
    extra = dict(sd=sd, n_baseline=len(base_defined), floor=tol)
    allowed = b - tol if higher else b + tol
    if len(now_defined) < len(now):
        if len(base_defined) < len(base):  # the baseline too was undefined on some seed: that happens by chance
            return Finding(explainer, metric, b, n, allowed, False, "undefined on some run seeds, as on some "
                                                                   "baseline seeds: not gated", gated=False, **extra)
        return Finding(explainer, metric, b, n, allowed, True, "defined in the baseline, undefined now", **extra)
    now = now_defined
    moved_bad = (b - n) if higher else (n - b)
    if len(now) == 1:
        p = prediction_pvalue(now[0], base_defined, higher)
        if sd == 0:
            rule = f"floor (no spread over the baseline's {len(base_defined)} seeds: p={p:.3g})"
        else:
            rule = f"prediction bound of {len(base_defined)} baseline seeds, one-sided p={p:.3g}"
    elif max(base_defined) == min(base_defined) and max(now) == min(now):
        p = 0.0 if moved_bad > 0 else 1.0
        rule = f"floor (no spread on either side, t-test undefined: p={p:.3g})"
    else:
        # Student's pooled t, not Welch's: the null hypothesis is "unchanged code", i.e. both sides are draws
        # of one distribution, so equal variances is part of the null; Welch's degrees of freedom collapse to
        # ~n-1 when one side is tight (a sabotaged metric stuck at 0), which at Holm's level missed an
        # alpha-blind GCE whose information flow fell from 0.54 +- 0.09 to 0.00 on 3 vs 3 seeds
        with warnings.catch_warnings():  # nearly equal samples: scipy warns of precision loss, p is still usable
            warnings.simplefilter("ignore", RuntimeWarning)
            test = stats.ttest_ind(now, base_defined, equal_var=True, alternative="less" if higher else "greater")
        p = float(test.pvalue)
        if not math.isfinite(p):
            p = 0.0 if moved_bad > 0 else 1.0
        rule = f"pooled t-test, {len(now)} vs {len(base_defined)} seeds, one-sided p={p:.3g}"
    return Finding(explainer, metric, b, n, allowed, False, rule, p=p, **extra)


def _holm_verdicts(findings: list[Finding], base: dict, alpha: float) -> list[Finding]:
    """Holm across every tested finding; worse = Holm rejects and the move exceeds the floor. A prediction
    rule's ``allowed`` becomes its bound at the level Holm's step-down tests it at (or the floor, if wider)."""
    tested = [i for i, f in enumerate(findings) if f.p is not None]
    adjusted = holm([findings[i].p for i in tested])
    m = len(tested)
    rank = {i: r for r, i in enumerate(sorted(tested, key=lambda i: findings[i].p))}
    out = list(findings)
    for i, p_holm in zip(tested, adjusted):
        f = findings[i]
        higher = METRICS[f.metric].higher_is_better
        moved_bad = (f.baseline - f.now) if higher else (f.now - f.baseline)
        beyond = moved_bad > f.floor
        rejected = p_holm < alpha
        allowed = f.allowed
        if f.rule.startswith("prediction"):
            level = alpha / (m - rank[i])
            values = [v for v in base[(f.explainer, f.metric)] if v is not None]
            bound = prediction_bound(values, higher, level)
            allowed = min(bound, f.allowed) if higher else max(bound, f.allowed)
        rule = f"{f.rule}, Holm-adjusted p={p_holm:.3g}"
        if rejected and beyond:
            rule += f" < {alpha:g} and the move {moved_bad:.3g} exceeds the floor {f.floor:.3g}"
        elif rejected:
            rule += f" < {alpha:g} but the move {moved_bad:.3g} is within the floor {f.floor:.3g}"
        else:
            rule += f" >= {alpha:g}: seed noise"
        out[i] = dataclasses.replace(f, p_holm=p_holm, worse=bool(rejected and beyond), rule=rule, allowed=allowed)
    return out


def compare_records(records: Sequence[dict], baseline: dict, *, tolerance: str | None = None,
                    rule: str = "auto") -> Comparison:
    """Compare a run (one record per seed) with a baseline; :class:`UnusableInput` when they do not match.

    ``tolerance``: the floor (calibrated rule) or tolerance (fixed rule), default the baseline's own, else
    :data:`DEFAULT_FLOOR` / :data:`DEFAULT_TOLERANCE`. ``rule``: ``"auto"`` (calibrated with >=
    ``MIN_CALIBRATION_SEEDS`` baseline seeds, fixed otherwise) or ``"fixed"`` (the fixed rule regardless)."""
    if rule not in RULES:
        raise UnusableInput(f"unknown rule {rule!r}: expected one of {', '.join(RULES)}")
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
    base = {(e, m): v for e, metrics in baseline["values"].items() for m, v in metrics.items()}
    # explainers the run did not ask for (``--explainers``) are left out, said in a note; an explainer it
    # ran and that lacks a metric is still unusable input (below)
    asked = {name for rec in records for name in rec["metadata"].get("explainers") or ()}
    asked |= {r.explainer for rec in records for r in rows_of(rec)}
    not_run = sorted({e for e, _ in base} - asked)
    base = {key: v for key, v in base.items() if key[0] not in not_run}
    n_seeds = len(baseline.get("seeds") or ()) or max((len(v) for v in base.values()), default=0)
    calibrated = rule == "auto" and n_seeds >= MIN_CALIBRATION_SEEDS
    default = DEFAULT_FLOOR if calibrated else DEFAULT_TOLERANCE
    spec = Tolerance.parse(tolerance or baseline.get("tolerance") or default)
    failed = sorted({r.explainer for rec in records for r in rows_of(rec) if r.error is not None})
    now: dict[tuple[str, str], list] = {}
    for rec in records:
        for key, value in gated_metrics(rec).items():
            now.setdefault(key, []).append(value)
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
    errors = {r.explainer: r.error for rec in records for r in rows_of(rec) if r.error is not None}
    decide = _test_calibrated if calibrated else _decide_fixed
    findings = []
    for (explainer, metric), values in sorted(base.items()):
        if (explainer, metric) not in now:  # the explainer failed in the run: every one of its metrics is worse
            findings.append(Finding(explainer, metric, _mean(values), None, None, True,
                                    f"the explainer failed: {errors.get(explainer, 'no value')}",
                                    sd=_sd(values), n_baseline=sum(v is not None for v in values)))
        else:
            findings.append(decide(explainer, metric, values, now[(explainer, metric)], spec))
    notes = [f"note: not compared, not run: {', '.join(not_run)}"] if not_run else []
    if calibrated:
        findings = _holm_verdicts(findings, base, ALPHA)
        tests = sum(f.p is not None for f in findings)
    else:
        tests = sum(f.baseline is not None for f in findings)
        if rule == "auto":
            notes.append(f"note: the baseline has {n_seeds} seed(s); the noise-calibrated rule needs "
                         f">= {MIN_CALIBRATION_SEEDS}, so the old fixed-tolerance rule decided (it ignores the "
                         f"spread over seeds): make a baseline of >= {MIN_CALIBRATION_SEEDS} seeds")
        else:
            notes.append("note: the fixed-tolerance rule was asked for (it ignores the spread over seeds)")
    if baseline.get("devices") and devices_of(records) != baseline["devices"]:
        notes.append(f"note: the baseline ran on {', '.join(baseline['devices'])}, this run on "
                     f"{', '.join(devices_of(records))}: expect small differences, not exact equality")
    return Comparison(tuple(findings), spec.spec, tuple(baseline.get("seeds", ())),
                      tuple(r["metadata"].get("seed") for r in records), "\n".join(notes),
                      "calibrated" if calibrated else "fixed", ALPHA, tests)


def compare(run_dirs: Sequence[str | Path], baseline_file: str | Path, *, tolerance: str | None = None,
            rule: str = "auto") -> Comparison:
    return compare_records(run_records(run_dirs), load_baseline(baseline_file), tolerance=tolerance, rule=rule)


def assert_no_regression(run: str | Path | Sequence[str | Path], baseline: str | Path, *,
                         tolerance: str | None = None, rule: str = "auto") -> Comparison:
    """Assert that a run (a run directory, or several) is no worse than ``baseline``; for use in a
    user's own pytest. Raises :class:`RegressionError` (an ``AssertionError``) listing every metric
    that got worse, with baseline, current and allowed values and the rule that decided; returns the
    comparison otherwise.

    >>> from bench.gate import assert_no_regression
    >>> assert_no_regression("runs/mnist-quick-seed0", "results/baselines/mnist-quick.json")  # doctest: +SKIP
    """
    dirs = [run] if isinstance(run, (str, Path)) else list(run)
    comparison = compare(dirs, baseline, tolerance=tolerance, rule=rule)
    if comparison.worse:
        raise RegressionError(comparison.report())
    return comparison

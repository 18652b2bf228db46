"""Regression gates: a baseline file, a comparison against it, and an entry point for pytest.

``python -m bench baseline RUN_DIR --out FILE`` stores, per explainer and metric with a
direction, the value of every seed of a run. ``python -m bench compare RUN_DIR --baseline
FILE [--tolerance SPEC] [--detect SIZE]`` then decides, metric by metric, whether the run got
worse. Two rules, chosen by the number of seeds in the baseline:

**Noise-calibrated rule** (a baseline of >= ``MIN_CALIBRATION_SEEDS`` = 3 seeds). Every gated
metric gets a one-sided p-value that its move in the bad direction is seed noise:

- one run seed: the *prediction rule*. The baseline's n seeds give mean m and s.d. s; one new
  draw of unchanged code lies beyond ``m -/+ t_{n-1,1-a} * s * sqrt(1 + 1/n)`` with probability
  a (a one-sided prediction interval for one new draw), so p is the t distribution's tail
  (n - 1 dof) of ``(x - m) / (s * sqrt(1 + 1/n))``;
- several run seeds: Student's pooled one-sided t-test (scipy) of the run's seeds against the baseline's
  (under the null, unchanged code, both sides share one distribution and so one variance);
- no spread at all (the baseline's seeds equal, or both sides' under the t-test): no test is
  defined; p = 0 when the value moved the bad way, 1 otherwise, and the floor decides.

The p-values of all these tests form one family and Holm's step-down controls the family-wise
error rate at ``ALPHA``: with ~130 gated metrics, per-metric 5% tests flag almost every unchanged
run (1 - 0.95^130 = 99.9%). A metric is worse only when Holm rejects it *and* its move in the bad
direction exceeds the *floor* (the tolerance spec, default :data:`DEFAULT_FLOOR`): the floor is a
minimum tolerance for metrics whose baseline spread is zero or tiny, and the smallest change that
counts at all.

**Fixed-tolerance rule** (a baseline of 1 or 2 seeds, or ``rule="fixed"``): the rule of
baseline schema 1 before calibration, and the report says it was used. One seed on either side:
worse when the value moved the bad way by more than the tolerance (default
:data:`DEFAULT_TOLERANCE`); several seeds on both sides: worse when the mean moved the bad way by
more than the tolerance *and* Welch's one-sided test gives p < ``ALPHA`` for that metric alone.

The report names the rule that decided every flagged metric, with its p and Holm-adjusted p, and
can say how many seeds per side would detect a change of a given size (:func:`seeds_needed`,
``--detect``).

Exit status: 0 nothing got worse, 1 something did, 2 unusable input (missing or corrupt
file, another suite or profile, another metric set, another schema version).

A tolerance SPEC (and a ``--detect`` SIZE) is a comma-separated list of ``PATTERN=VALUE``
(``fnmatch`` patterns over metric names, later entries win) or a bare ``VALUE`` for every
metric; a VALUE is absolute (``0.02``) or relative to the baseline mean (``10%``).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import math
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

from bench.errors import BenchError
from bench.outputs.leaderboard import check_same_run, run_records
from bench.outputs.results import code_revision, device_text, rows_of
from bench.outputs.schema import validate_baseline
from bench.store import atomic_write_text
from metrics import METRICS

BASELINE_KIND = "genexbench-baseline"
BASELINE_SCHEMA = 1
#: Family-wise error rate of the noise-calibrated rule (Holm across all gated metrics); the per-metric
#: level of the fixed rule's Welch test.
ALPHA = 0.05
#: The noise-calibrated rule needs this many baseline seeds (with 2, s has one degree of freedom and
#: t_{1, 1-0.05/130} is about 830: no useful bound); fewer seeds fall back to the fixed rule.
MIN_CALIBRATION_SEEDS = 3
#: Power that :func:`seeds_needed` and the ``--detect`` report plan for.
POWER = 0.8
#: Largest number of seeds per side :func:`seeds_needed` looks at.
MAX_SEEDS = 1000
RULES = ("auto", "fixed")

#: Tolerance of the fixed rule (baselines of 1 or 2 seeds). Fractions, probabilities and correlations may
#: move 0.03 the bad way before a run counts as worse, information flow (nats) 20%, FID 25%. The same seed on
#: the same machine reproduces every number exactly, so an untouched re-run passes any tolerance; these leave
#: room for a black box that differs by float noise (another CPU, another kernel). Measured
#: (results/baselines/README.md): two mnist quick seed-0 runs whose black boxes had the same test accuracy
#: but weights up to 0.02 apart differed by up to 0.015 in removal AUCs, 0.02 in sweep compatibility, 0.2% in
#: information flow and 21% in FID (the exaggeration cGAN: GAN training amplifies small differences). It is
#: smaller than the spread over seeds (IG's removal gap 0.33 / 0.47 on seeds 0 / 1), which is why a run on
#: another CPU, judged like another seed, failed it on 15 metrics (issue 12): use >= 3 baseline seeds.
DEFAULT_TOLERANCE = "0.03,information_flow*=20%,fid*=25%"

#: Floor of the noise-calibrated rule: the minimum tolerance, i.e. the smallest move in the bad direction that
#: can count as worse however significant. Chosen from the spreads over seeds 0 and 1 of the committed
#: mnist-quick baseline (134 gated metrics; s.d. = |seed0 - seed1| / sqrt 2):
#:
#: - bounded metrics (fractions, probabilities, correlations, AUCs; 115 of 134): 10 have no spread at all
#:   (sweep validity and monotonicity 1.0, the randomisation correlation of GCE, SVAE, exaggeration and random
#:   1.0, random's Gini, SVAE's non-causal accuracy drop) and 10 more an s.d. below 0.001 (Gini of the Captum
#:   maps, randomisation correlations ~0.99). Their seeds cannot show float noise (another CPU; a black box
#:   whose weights differed by float noise moved metrics that do vary by up to 0.015-0.02), nor the
#:   granularity of a fraction of queries (one of sweep validity's 500 queries is 0.002). ``0.01`` is five
#:   such queries, about the median seed s.d. (0.0103; 55 of 115 are below 0.01): where seeds do spread, the
#:   statistical bound (several s.d. at Holm's level) decides, not the floor;
#: - information flow (nats): seed s.d. 3.9% (GCE) to 35% of the mean; the float-noise drift was 0.2%.
#:   ``5%`` is below every measured seed s.d. and 25 times the float drift. Only for the causal flows: the
#:   noncausal ones are jackknife-corrected to ~0 (and may be slightly negative), where a relative floor
#:   vanishes, so they take the absolute 0.01 nats;
#: - FID: seed s.d. 0.4% (GANMEX's, whose FID is nearly seed-free) to 40%; the float-noise black box moved
#:   GANMEX's FID 2% (82.1 -> 83.7). ``10%`` covers that five times over and stays below most seed spreads.
DEFAULT_FLOOR = "0.01,information_flow=5%,information_flow_posterior=5%,fid*=10%"


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
    def parse(cls, spec: str, *, what: str = "tolerance") -> "Tolerance":
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
                raise UnusableInput(f"bad {what} {item!r}: expected VALUE, VALUE% or PATTERN=VALUE[%]") from None
            if not math.isfinite(number) or number < 0:
                raise UnusableInput(f"bad {what} {item!r}: must be a finite number >= 0")
            rules.append((pattern, number / 100 if relative else number, relative))
        if not rules:
            raise UnusableInput(f"empty {what} {spec!r}")
        return cls(tuple(rules), spec)

    def allowed(self, metric: str, baseline: float) -> float:
        """How far ``metric`` may move in the bad direction from ``baseline``."""
        out = 0.0
        for pattern, value, relative in self.rules:
            if fnmatch.fnmatchcase(metric, pattern):
                out = value * abs(baseline) if relative else value
        return out


# ----------------------------------------------------------------------------- statistics


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (same order as given): a hypothesis is rejected at
    family-wise level a when its adjusted p < a. Controls the family-wise error rate under any
    dependence between the tests."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def prediction_pvalue(x: float, base: Sequence[float], higher_is_better: bool) -> float:
    """One-sided p that one new draw of the baseline's seed distribution lies at ``x`` or beyond in
    the bad direction: ``T = (x - mean) / (s * sqrt(1 + 1/n))`` has a t distribution with n - 1 dof
    when x and the n baseline values are independent draws of one normal distribution. With no
    spread (s = 0): 0 when x moved the bad way, 1 otherwise."""
    from scipy import stats

    n = len(base)
    if n < 2:
        raise ValueError("a prediction bound needs at least 2 baseline values")
    mean = math.fsum(base) / n
    s = math.sqrt(math.fsum((v - mean) ** 2 for v in base) / (n - 1))
    bad = (mean - x) if higher_is_better else (x - mean)
    if s == 0:
        return 0.0 if bad > 0 else 1.0
    return float(stats.t.sf(bad / (s * math.sqrt(1 + 1 / n)), n - 1))


def prediction_bound(base: Sequence[float], higher_is_better: bool, alpha: float) -> float:
    """The worst value one new draw may take at one-sided level ``alpha``:
    ``mean -/+ t_{n-1, 1-alpha} * s * sqrt(1 + 1/n)``."""
    from scipy import stats

    n = len(base)
    mean = math.fsum(base) / n
    s = math.sqrt(math.fsum((v - mean) ** 2 for v in base) / (n - 1))
    width = float(stats.t.ppf(1 - alpha, n - 1)) * s * math.sqrt(1 + 1 / n) if s > 0 else 0.0
    return mean - width if higher_is_better else mean + width


def detection_power(n: int, sd: float, delta: float, alpha: float) -> float:
    """Power of the two-sample one-sided t-test (equal variances, ``n`` seeds per side, 2n - 2 dof) at
    level ``alpha`` to detect a true change ``delta`` of a metric whose seed s.d. is ``sd``: the
    noncentral t distribution's tail beyond the critical value, noncentrality delta / (sd * sqrt(2/n))."""
    from scipy import stats

    df = 2 * n - 2
    critical = stats.t.ppf(1 - alpha, df)
    return float(stats.nct.sf(critical, df, delta / (sd * math.sqrt(2 / n))))


def seeds_needed(sd: float, delta: float, alpha: float = ALPHA, power: float = POWER, *,
                 max_seeds: int = MAX_SEEDS) -> int | None:
    """The smallest number of seeds *per side* (baseline and run alike) with which a two-sample
    one-sided t-test at level ``alpha`` detects a true change ``delta`` of a metric with seed s.d.
    ``sd`` with probability >= ``power``; exact (scipy's noncentral t), not a normal approximation.
    Power grows with n, so a doubling search then bisection finds the exact smallest n.
    ``None`` when even ``max_seeds`` is not enough; 1 when ``sd`` is 0 (any move is real).

    For a gate over m metrics, pass the Holm level: its first (strictest) step tests at ``alpha / m``.
    """
    if not (sd >= 0 and math.isfinite(sd)):
        raise ValueError(f"sd must be a finite number >= 0, got {sd!r}")
    if not (delta > 0 and math.isfinite(delta)):
        raise ValueError(f"delta must be a finite number > 0, got {delta!r}")
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError("alpha and power must lie in (0, 1)")
    if sd == 0:
        return 1
    if detection_power(max_seeds, sd, delta, alpha) < power:
        return None
    lo, hi = 1, 2  # power(lo) < target (n = 1 has no test), power(hi) unknown
    while hi < max_seeds and detection_power(hi, sd, delta, alpha) < power:
        lo, hi = hi, min(2 * hi, max_seeds)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if detection_power(mid, sd, delta, alpha) >= power:
            hi = mid
        else:
            lo = mid
    return hi


# ----------------------------------------------------------------------------- baseline


def gated_metrics(record: dict) -> dict[tuple[str, str], float | None]:
    """(explainer, metric) -> value for every summary metric with a direction (timings and per-factor
    diagnostics are not gated)."""
    out = {}
    for r in rows_of(record):
        if r.error is not None or r.factor:
            continue
        info = METRICS.get(r.metric)
        if info is not None and info.higher_is_better is not None:
            out[(r.explainer, r.metric)] = r.value
    return out


def _devices(records: Sequence[dict]) -> list[str]:
    return sorted({device_text(rec["metadata"].get("device", {})) for rec in records})


def make_baseline(records: Sequence[dict], *, tolerance: str | None = None) -> dict:
    """A baseline of ``records`` (one per seed). ``tolerance`` is stored and used by compare unless it is
    given one: the floor of the noise-calibrated rule or the tolerance of the fixed rule; ``None`` (stored as
    null) means the default of whichever rule decides (:data:`DEFAULT_FLOOR`, :data:`DEFAULT_TOLERANCE`)."""
    check_same_run(records)
    if tolerance is not None:
        Tolerance.parse(tolerance)
    meta = records[0]["metadata"]
    values: dict[str, dict[str, list]] = {}
    for rec in records:
        for (explainer, metric), value in gated_metrics(rec).items():
            values.setdefault(explainer, {}).setdefault(metric, []).append(value)
    failed = sorted({r.explainer for rec in records for r in rows_of(rec) if r.error is not None})
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


def write_baseline(run_dirs: Sequence[str | Path], out: str | Path, *, tolerance: str | None = None) -> Path:
    baseline = make_baseline(run_records(run_dirs), tolerance=tolerance)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(baseline, indent=1, allow_nan=False) + "\n")
    return out


def load_baseline(path: str | Path) -> dict:
    """The baseline in ``path``, checked (kind, baseline schema, then every field's type by
    :func:`bench.outputs.schema.validate_baseline`); :class:`UnusableInput` (exit 2) naming the field otherwise."""
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
    try:
        return validate_baseline(baseline, path)
    except BenchError as exc:
        raise UnusableInput(str(exc)) from None


# ----------------------------------------------------------------------------- comparison


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
    if baseline.get("devices") and _devices(records) != baseline["devices"]:
        notes.append(f"note: the baseline ran on {', '.join(baseline['devices'])}, this run on "
                     f"{', '.join(_devices(records))}: expect small differences, not exact equality")
    return Comparison(tuple(findings), spec.spec, tuple(baseline.get("seeds", ())),
                      tuple(r["metadata"].get("seed") for r in records), "\n".join(notes),
                      "calibrated" if calibrated else "fixed", ALPHA, tests)


def compare(run_dirs: Sequence[str | Path], baseline_file: str | Path, *, tolerance: str | None = None,
            rule: str = "auto") -> Comparison:
    return compare_records(run_records(run_dirs), load_baseline(baseline_file), tolerance=tolerance, rule=rule)


# ----------------------------------------------------------------------------- pytest entry point


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


def check_suite(baseline: str | Path, *, suite: str = "mnist", profile: str = "quick", seeds: Sequence[int] = (0,),
                explainers: Sequence[str] | None = None, out: str | Path | None = None, device: str = "auto",
                tolerance: str | None = None, rule: str = "auto") -> Comparison:
    """Run ``suite`` (models come from the cache when they are there) and :func:`assert_no_regression`
    against ``baseline``: the one call a user's regression test needs."""
    from bench.execute.runner import RunConfig, run, run_seeds

    config = RunConfig(suite=suite, profile=profile, explainers=tuple(explainers) if explainers else None,
                       seed=seeds[0], device=device, out=Path(out) if out else None)
    run_dir = run_seeds(config, tuple(seeds)) if len(seeds) > 1 else run(config)
    return assert_no_regression(run_dir, baseline, tolerance=tolerance, rule=rule)

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

**Fixed-tolerance rule** (a baseline of 1 or 2 seeds, or ``rule="fixed"``; the report says it was
used). One seed on either side: worse when the value moved the bad way by more than the tolerance
(default :data:`DEFAULT_TOLERANCE`); several seeds on both sides: worse when the mean moved the bad
way by more than the tolerance *and* Welch's one-sided test gives p < ``ALPHA`` for that metric alone.

The report names the rule that decided every flagged metric, with its p and Holm-adjusted p, and
can say how many seeds per side would detect a change of a given size (:func:`seeds_needed`,
``--detect``).

Exit status: 0 nothing got worse, 1 something did, 2 unusable input (missing or corrupt
file, another suite or profile, another metric set, another schema version).

A tolerance SPEC (and a ``--detect`` SIZE) is a comma-separated list of ``PATTERN=VALUE``
(``fnmatch`` patterns over metric names, later entries win) or a bare ``VALUE`` for every
metric; a VALUE is absolute (``0.02``) or relative to the baseline mean (``10%``).

The gate reads stored outputs only (results records and baseline files), never runs a suite;
``check_suite`` of the Python API runs one and then gates it. Its modules, each importing
only those above it:

- :mod:`bench.gate.tolerance`: :class:`Tolerance` specs, their defaults, :class:`UnusableInput`;
- :mod:`bench.gate.statistics`: Holm, the prediction p-value and bound, :func:`seeds_needed`;
- :mod:`bench.gate.baseline`: make, write and load baseline files;
- :mod:`bench.gate.compare`: the two rules, :class:`Comparison`, :func:`assert_no_regression`.

Import from ``bench.gate`` itself: it re-exports every public name.
"""

from __future__ import annotations

from bench.gate.baseline import (BASELINE_KIND, BASELINE_SCHEMA, devices_of, gated_metrics, load_baseline,
                                 make_baseline, write_baseline)
from bench.gate.compare import (RULES, Comparison, Finding, RegressionError, assert_no_regression, compare,
                                compare_records)
from bench.gate.statistics import (ALPHA, MAX_SEEDS, MIN_CALIBRATION_SEEDS, POWER, detection_power, holm,
                                   prediction_bound, prediction_pvalue, seeds_needed)
from bench.gate.tolerance import DEFAULT_FLOOR, DEFAULT_TOLERANCE, Tolerance, UnusableInput

__all__ = [
    # tolerance
    "DEFAULT_FLOOR", "DEFAULT_TOLERANCE", "Tolerance", "UnusableInput",
    # statistics
    "ALPHA", "MAX_SEEDS", "MIN_CALIBRATION_SEEDS", "POWER", "detection_power", "holm", "prediction_bound",
    "prediction_pvalue", "seeds_needed",
    # baseline
    "BASELINE_KIND", "BASELINE_SCHEMA", "devices_of", "gated_metrics", "load_baseline", "make_baseline",
    "write_baseline",
    # comparison
    "RULES", "Comparison", "Finding", "RegressionError", "assert_no_regression", "compare", "compare_records",
]

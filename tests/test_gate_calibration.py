"""The gate calibrated to seed noise: family-wise control on unchanged code (where the fixed tolerance and
per-metric tests cry wolf), power against a real shift, the seeds-needed planner, the floor for zero-spread
metrics, and the fallback to the fixed rule for baselines of fewer than 3 seeds. Fake records only (fast)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from bench.cli import main
from bench.gate import (ALPHA, DEFAULT_FLOOR, DEFAULT_TOLERANCE, MIN_CALIBRATION_SEEDS, Tolerance, compare_records,
                        detection_power, holm, make_baseline, prediction_bound, prediction_pvalue, seeds_needed)
from bench.outputs.results import write_record
from metrics import METRICS

COMMITTED = Path(__file__).resolve().parents[1] / "results" / "baselines" / "mnist-quick.json"


def measured_noise(count: int = 100) -> tuple[list[tuple[str, str]], np.ndarray, np.ndarray]:
    """``count`` gated metrics with the mean and seed s.d. the committed mnist-quick baseline measured
    (those with a nonzero spread): realistic scales for the fixed tolerance to be judged on."""
    values = json.loads(COMMITTED.read_text())["values"]
    rows = [((e, m), float(np.mean(v)), float(np.std(v, ddof=1))) for e, ms in values.items() for m, v in ms.items()
            if None not in v and len(v) >= 2 and np.std(v) > 0]
    assert len(rows) >= count
    keys, mus, sds = zip(*rows[:count])
    return list(keys), np.array(mus), np.array(sds)


def draw(record, keys, seed: int, values) -> dict:
    return record(seed, {key: float(v) for key, v in zip(keys, values)})


def test_unchanged_runs_pass_with_familywise_control(record):
    """Unchanged code: 200 single-seed runs drawn from the same N(mu_m, sd_m) as 3-seed baselines of 100
    metrics (the mnist-quick baseline's measured means and s.d.s). Holm keeps the share of runs with any
    metric flagged near 5%, on the statistics alone (floor 0); the default floor only lowers it. The same
    runs fail almost always under the fixed tolerance, and under per-metric 5% tests.

    50 baselines x 4 runs: p is exact over draws of baseline *and* run, but given one 3-seed baseline the
    false-alarm rate depends on how small its s.d. estimates (2 dof each) happen to be; averaging over
    baselines measures the rule, not one lucky draw (over 6 generator seeds: 5.3% on average, 2% to 10%)."""
    keys, mus, sds = measured_noise(100)
    rng = np.random.default_rng(0)
    flagged = with_floor = fixed_flagged = per_metric_flagged = runs = 0
    for b in range(50):
        base = make_baseline([draw(record, keys, s, rng.normal(mus, sds)) for s in range(3)])
        for r in range(4):
            run = [draw(record, keys, 100 + r, rng.normal(mus, sds))]
            comparison = compare_records(run, base, tolerance="0")
            assert comparison.rule == "calibrated" and comparison.tests == 100
            flagged += bool(comparison.worse)
            per_metric_flagged += any(f.p < ALPHA for f in comparison.findings)
            with_floor += bool(compare_records(run, base).worse)  # the default floor
            fixed_flagged += bool(compare_records(run, base, rule="fixed", tolerance=DEFAULT_TOLERANCE).worse)
            runs += 1
    assert runs == 200
    assert flagged / runs <= 0.1, flagged  # family-wise ~5% (binomial s.d. over 200 runs: 1.5%)
    assert with_floor <= flagged and with_floor / runs <= 0.075, with_floor
    assert fixed_flagged / runs >= 0.9, fixed_flagged  # the fixed rule: a fixed 0.03 below the seed spread
    assert per_metric_flagged / runs >= 0.9  # 1 - 0.95^100 = 99.4%: per-metric tests cry wolf


def test_a_four_sd_shift_in_one_metric_is_caught_and_only_that_metric(record):
    """A true shift of 4 s.d. the bad way in one metric of 100. The planner says how many seeds per side
    catch it with 80% power at Holm's level; with that many on both sides (pooled t + Holm) most runs flag
    it, and hardly any run flags another metric."""
    keys, mus, sds = measured_noise(100)
    n = seeds_needed(1.0, 4.0, ALPHA / len(keys))
    assert n is not None and 3 <= n <= 8
    target = 7
    explainer, metric = keys[target]
    shift = np.zeros(len(keys))
    shift[target] = (-4 if METRICS[metric].higher_is_better else 4) * sds[target]
    rng = np.random.default_rng(3)
    caught = others = 0
    runs = 60
    for r in range(runs):
        base = make_baseline([draw(record, keys, s, rng.normal(mus, sds)) for s in range(n)])
        run = [draw(record, keys, 100 + s, rng.normal(mus + shift, sds)) for s in range(n)]
        comparison = compare_records(run, base, tolerance="0")
        worse = {(f.explainer, f.metric) for f in comparison.worse}
        caught += (explainer, metric) in worse
        others += bool(worse - {(explainer, metric)})
        if (explainer, metric) in worse:
            finding = next(f for f in comparison.worse if f.metric == metric and f.explainer == explainer)
            assert "pooled t-test" in finding.rule and "Holm-adjusted p=" in finding.rule and finding.p_holm < ALPHA
    assert caught / runs >= 0.6, caught  # planned 80% for the pooled t-test
    assert others / runs <= 0.1, others


def test_single_seed_prediction_rule_flags_a_clear_drop(record):
    """One run seed against 3 baseline seeds: the prediction bound at Holm's level, named in the report."""
    base = make_baseline([record(s, {("gce", "information_flow"): v, ("saliency", "removal_morf_auc"): w})
                          for s, v, w in ((0, 0.60, 0.40), (1, 0.61, 0.42), (2, 0.62, 0.41))])
    ok = compare_records([record(9, {("gce", "information_flow"): 0.595, ("saliency", "removal_morf_auc"): 0.43})],
                         base)
    assert ok.rule == "calibrated" and ok.exit_code == 0 and all(f.p is not None for f in ok.findings)
    bad = compare_records([record(9, {("gce", "information_flow"): 0.30, ("saliency", "removal_morf_auc"): 0.41})],
                          base)
    [flow] = bad.worse
    p = stats.t.cdf((0.30 - 0.61) / (0.01 * np.sqrt(1 + 1 / 3)), 2)
    assert flow.p == pytest.approx(p) and flow.p_holm == pytest.approx(min(1, 2 * p))
    assert flow.rule.startswith("prediction bound of 3 baseline seeds") and "Holm-adjusted p=" in flow.rule
    assert flow.allowed == pytest.approx(prediction_bound([0.60, 0.61, 0.62], True, ALPHA / 2))
    report = bad.report()
    assert "noise-calibrated rule" in report and "information_flow of gce" in report
    assert f"Holm-adjusted p={flow.p_holm:.3g}" in report


def test_holm_and_the_prediction_pvalue():
    assert holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert holm([]) == []
    # p of the prediction rule: uniform under the null (one new draw of the same normal)
    rng = np.random.default_rng(0)
    ps = [prediction_pvalue(rng.normal(), list(rng.normal(size=3)), True) for _ in range(4000)]
    assert abs(np.mean(np.array(ps) < 0.05) - 0.05) < 0.012
    assert prediction_pvalue(0.5, [1.0, 1.0, 1.0], True) == 0.0 and prediction_pvalue(1.5, [1.0] * 3, True) == 1.0


def simulated_seeds_needed(sd, delta, alpha, power=0.8, reps=20000, seed=0) -> int:
    """Brute force: the smallest n per side whose simulated two-sample one-sided t-test power reaches ``power``."""
    rng = np.random.default_rng(seed)
    for n in range(2, 200):
        a = rng.normal(0, sd, (reps, n))
        b = rng.normal(delta, sd, (reps, n))
        pooled = np.sqrt((a.var(axis=1, ddof=1) + b.var(axis=1, ddof=1)) / 2)
        t = (b.mean(axis=1) - a.mean(axis=1)) / (pooled * np.sqrt(2 / n))
        if np.mean(t > stats.t.ppf(1 - alpha, 2 * n - 2)) >= power:
            return n
    raise AssertionError("not reached")


@pytest.mark.parametrize("sd,delta,alpha", [(1.0, 1.0, 0.05), (0.1, 0.4, 0.05 / 100), (0.05, 0.03, 0.01)])
def test_seeds_needed_agrees_with_simulation(sd, delta, alpha):
    exact = seeds_needed(sd, delta, alpha)
    assert abs(exact - simulated_seeds_needed(sd, delta, alpha)) <= 1
    assert detection_power(exact, sd, delta, alpha) >= 0.8 > detection_power(exact - 1, sd, delta, alpha)


def test_seeds_needed_shrinks_as_the_change_grows():
    needed = [seeds_needed(1.0, d, ALPHA / 134) for d in (0.5, 1.0, 2.0, 4.0, 8.0)]
    assert all(a > b for a, b in zip(needed, needed[1:])), needed
    assert seeds_needed(0.0, 0.01) == 1  # no spread: any move is real
    assert seeds_needed(1.0, 0.001, max_seeds=50) is None  # beyond the search
    assert seeds_needed(1.0, 1.0, power=0.95) > seeds_needed(1.0, 1.0, power=0.8)
    with pytest.raises(ValueError):
        seeds_needed(1.0, 0.0)


def test_zero_spread_metrics_use_the_floor(record):
    """sweep_validity is 1.0 on every baseline seed and saliency_gini nearly constant: no seed spread to
    calibrate on, so the floor (default 0.01 for bounded metrics) decides."""
    def rows(validity, gini):
        return {("gce", "sweep_validity"): validity, ("saliency", "saliency_gini"): gini}

    base = make_baseline([record(s, rows(1.0, g)) for s, g in enumerate((0.9600, 0.9601, 0.9602))])
    assert base["tolerance"] is None
    small = compare_records([record(7, rows(0.996, 0.955))], base)  # both moved, by less than the floor
    assert small.tolerance == DEFAULT_FLOOR and small.exit_code == 0
    validity = next(f for f in small.findings if f.metric == "sweep_validity")
    gini = next(f for f in small.findings if f.metric == "saliency_gini")
    assert validity.p == 0 and validity.p_holm == 0 and validity.floor == pytest.approx(0.01)
    assert "no spread over the baseline's 3 seeds" in validity.rule and "within the floor" in validity.rule
    assert gini.p_holm < ALPHA and "within the floor" in gini.rule  # 50 s.d. away, still below the floor
    big = compare_records([record(7, rows(0.98, 0.94))], base)
    assert {f.metric for f in big.worse} == {"sweep_validity", "saliency_gini"}
    assert "exceeds the floor 0.01" in next(f for f in big.worse if f.metric == "sweep_validity").rule
    # the tolerance spec is the floor: a larger one absorbs the move
    assert compare_records([record(7, rows(0.98, 0.94))], base, tolerance="0.05").exit_code == 0
    # several seeds, both sides constant: no test, p from the direction, the floor decides
    multi = compare_records([record(7, rows(0.98, 0.9601)), record(8, rows(0.98, 0.9601))], base)
    [flag] = multi.worse
    assert flag.metric == "sweep_validity" and "no spread on either side" in flag.rule


def test_a_two_seed_baseline_falls_back_to_the_fixed_rule_and_says_so(record):
    rows = lambda v: {("gce", "information_flow"): 0.6, ("saliency", "removal_morf_auc"): v}  # noqa: E731
    base = make_baseline([record(0, rows(0.40)), record(1, rows(0.41))])
    assert len(base["seeds"]) < MIN_CALIBRATION_SEEDS
    ok = compare_records([record(5, rows(0.43))], base)  # 0.025 above the mean: inside the fixed 0.03
    assert ok.rule == "fixed" and ok.tolerance == DEFAULT_TOLERANCE and ok.exit_code == 0
    assert "fixed-tolerance rule" in ok.report() and "needs >= 3" in ok.report()
    assert all(f.p is None and f.p_holm is None for f in ok.findings)
    bad = compare_records([record(5, rows(0.45))], base)
    [finding] = bad.worse
    assert finding.rule == "threshold" and finding.allowed == pytest.approx(0.435)
    # the planner still works from the 2 seeds' s.d.
    rows_needed = {f.metric: n for f, _, n in ok.seeds_needed("0.05")}
    assert rows_needed["removal_morf_auc"] == seeds_needed(np.std([0.40, 0.41], ddof=1), 0.05, ALPHA / 2)
    assert rows_needed["information_flow"] == 1  # no spread over the 2 seeds


def test_cli_compare_detect_and_rule(record, tmp_path, capsys):
    rows = lambda v, w: {("gce", "information_flow"): v, ("saliency", "removal_morf_auc"): w}  # noqa: E731
    for s, (v, w) in enumerate(((0.60, 0.40), (0.62, 0.42), (0.61, 0.44))):
        write_record(tmp_path / "base" / f"seed{s}", record(s, rows(v, w)))
    write_record(tmp_path / "same", record(5, rows(0.605, 0.43)))
    write_record(tmp_path / "drop", record(6, rows(0.30, 0.43)))
    baseline = tmp_path / "baseline.json"
    assert main(["baseline", str(tmp_path / "base"), "--out", str(baseline)]) == 0
    capsys.readouterr()
    assert json.loads(baseline.read_text())["tolerance"] is None
    assert main(["compare", str(tmp_path / "same"), "--baseline", str(baseline)]) == 0
    out = capsys.readouterr().out
    assert "noise-calibrated rule" in out and "no metric got worse" in out
    assert f"change of {DEFAULT_FLOOR!r}" in out  # the default table: seeds to detect a floor-sized change
    assert main(["compare", str(tmp_path / "same"), "--baseline", str(baseline), "--detect", "0.1"]) == 0
    out = capsys.readouterr().out
    expected = seeds_needed(0.02, 0.1, ALPHA / 2)
    assert f"removal_morf_auc of saliency: s.d. 0.02, change 0.1: {expected}" in out
    assert main(["compare", str(tmp_path / "drop"), "--baseline", str(baseline)]) == 1
    out = capsys.readouterr().out
    assert "prediction bound of 3 baseline seeds" in out and "Holm-adjusted p=" in out
    assert main(["compare", str(tmp_path / "same"), "--baseline", str(baseline), "--rule", "fixed"]) == 0
    assert "fixed-tolerance rule was asked for" in capsys.readouterr().out
    assert main(["compare", str(tmp_path / "same"), "--baseline", str(baseline), "--detect", "x=abc"]) == 2
    assert "detection size" in capsys.readouterr().err
    assert Tolerance.parse("1%").allowed("fid", 200.0) == pytest.approx(2.0)

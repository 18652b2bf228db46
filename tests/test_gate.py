"""Regression gates: tolerance specs, the threshold and t-test rules, exit statuses, and real sabotage
caught on real runs while an untouched re-run passes."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from scipy import stats

from bench.cli import main
from bench.gate import (ALPHA, RegressionError, Tolerance, UnusableInput, assert_no_regression, check_suite,
                        compare, compare_records, load_baseline, make_baseline, write_baseline)
from bench.results import load_record, write_record
from bench.runner import RunConfig, run, run_seeds
from bench.suites import SUITES
from explainers.base import EXPLAINERS


def values(info_flow: float, morf: float, fid: float | None = 100.0) -> dict:
    return {("gce", "information_flow"): info_flow, ("saliency", "removal_morf_auc"): morf, ("gce", "fid"): fid,
            ("gce", "information_flow_seconds"): 0.3}


def baseline_of(*records) -> dict:
    return make_baseline(list(records), tolerance="0.03,information_flow=10%")


def test_tolerance_spec():
    tol = Tolerance.parse("0.02,fid*=10%,fid_absent=5")
    assert tol.allowed("removal_gap", 0.5) == 0.02
    assert tol.allowed("fid", 200.0) == pytest.approx(20.0) and tol.allowed("fid_absent", 200.0) == 5  # later wins
    for bad in ("", "x=abc", "-1", "fid=nan%"):
        with pytest.raises(UnusableInput):
            Tolerance.parse(bad)


def test_single_seed_threshold_in_the_direction_of_the_metric(record):
    base = baseline_of(record(0, values(0.60, 0.40)))
    assert "information_flow_seconds" not in base["values"]["gce"]  # timings are not gated
    same = compare_records([record(0, values(0.60, 0.40))], base)
    assert same.exit_code == 0 and len(same.findings) == 3
    # information flow (higher is better) may fall 10% of 0.6; removal_morf_auc (lower is better) may rise 0.03
    ok = compare_records([record(0, values(0.55, 0.429, 150.0))], base, tolerance="0.03,information_flow=10%")
    assert [f.metric for f in ok.worse] == ["fid"]  # 150 > 100 + 0.03; the other two are within
    bad = compare_records([record(0, values(0.53, 0.44))], base)
    assert sorted((f.explainer, f.metric) for f in bad.worse) == [("gce", "information_flow"),
                                                                 ("saliency", "removal_morf_auc")]
    flow = next(f for f in bad.worse if f.metric == "information_flow")
    assert flow.allowed == pytest.approx(0.54) and flow.rule == "threshold"
    assert "information_flow of gce: baseline 0.6, now 0.53, allowed 0.54 (threshold)" in bad.report()
    better = compare_records([record(0, values(0.9, 0.1))], base)  # moving the good way is never a regression
    assert better.exit_code == 0
    undefined = compare_records([record(0, values(0.6, 0.4, None))], base)  # FID no longer defined
    assert [f.metric for f in undefined.worse] == ["fid"]


def test_several_seeds_use_a_pooled_t_test(record):
    base = baseline_of(*(record(s, values(v, 0.4)) for s, v in enumerate((0.80, 0.81, 0.79))))
    drop = [record(s, values(v, 0.4)) for s, v in enumerate((0.70, 0.71, 0.69))]
    found = compare_records(drop, base).worse
    assert [f.metric for f in found] == ["information_flow"]
    p = stats.ttest_ind([0.70, 0.71, 0.69], [0.80, 0.81, 0.79], equal_var=True, alternative="less").pvalue
    assert p < ALPHA and f"one-sided p={p:.3g}" in found[0].rule and "pooled t-test" in found[0].rule
    # as far down on average, but seed noise: beyond the tolerance, not significant -> not a regression
    noisy = [record(s, values(v, 0.4)) for s, v in enumerate((0.55, 0.95, 0.60))]
    finding = next(f for f in compare_records(noisy, base).findings if f.metric == "information_flow")
    assert finding.now < finding.allowed and not finding.worse and "pooled t-test" in finding.rule


def test_unusable_input_exits_2(record, tmp_path, capsys):
    run_dir = tmp_path / "run"
    write_record(run_dir, record(0, values(0.6, 0.4)))
    base = tmp_path / "base.json"
    write_baseline([run_dir], base)
    assert main(["compare", str(run_dir), "--baseline", str(base)]) == 0
    assert "no metric got worse" in capsys.readouterr().out
    assert main(["compare", str(run_dir), "--baseline", str(tmp_path / "missing.json")]) == 2
    assert main(["compare", str(tmp_path / "no-run"), "--baseline", str(base)]) == 2
    other = tmp_path / "fm"
    write_record(other, record(0, values(0.6, 0.4), suite="fmnist"))
    assert main(["compare", str(other), "--baseline", str(base)]) == 2
    assert "suite differs" in capsys.readouterr().err
    fewer = tmp_path / "fewer"
    write_record(fewer, record(0, {("gce", "information_flow"): 0.6}))
    assert main(["compare", str(fewer), "--baseline", str(base)]) == 2
    assert "lacks metrics" in capsys.readouterr().err
    data = json.loads(base.read_text())
    data["results_schema"] = 99
    base.write_text(json.dumps(data))
    assert main(["compare", str(run_dir), "--baseline", str(base)]) == 2
    base.write_text("{not json")
    assert main(["compare", str(run_dir), "--baseline", str(base)]) == 2
    assert main(["compare", str(run_dir), "--baseline", str(base), "--tolerance", "x=1"]) == 2


# ----------------------------------------------------------------------------- real runs, real sabotage


@pytest.fixture
def gate_profile(tiny_profile, monkeypatch):
    """The tiny profile with a GCE long enough that alpha carries f's information (I(alpha;Y) ~0.5 nats), and
    100 saliency queries: on 12 the removal AUCs of one seed spread by 0.25 (MoRF 0.34-0.84 over 3 seeds)."""
    tiny_profile.explainers["gce"] = {"steps": 200, "n_alpha": 8, "n_beta": 8}
    profile = dataclasses.replace(tiny_profile, saliency_queries=100)
    monkeypatch.setitem(SUITES, "mnist", dataclasses.replace(SUITES["mnist"], profiles={**SUITES["mnist"].profiles,
                                                                                          "tiny": profile}))
    return profile


@pytest.mark.slow
def test_the_gate_passes_unseen_seeds_of_unchanged_code_and_catches_sabotage(gate_profile, tmp_path, monkeypatch):
    """On real runs: a 3-seed baseline (seeds 0-2); an untouched cold re-run reproduces seed 0 exactly; seeds
    the baseline never saw (3-5) of unchanged code pass; an alpha-blind GCE and a noise saliency map, on those
    seeds, fail on their own metrics and the untouched explainer's pass."""
    names = ("gce", "saliency", "random")
    quiet = lambda m: None  # noqa: E731
    config = lambda out: RunConfig(suite="mnist", profile="tiny", explainers=names, device="cpu",  # noqa: E731
                                   out=tmp_path / out)
    run_seeds(config("reference"), (0, 1, 2), log=quiet)
    base = write_baseline([tmp_path / "reference"], tmp_path / "baseline.json")
    reference = load_baseline(base)
    assert reference["seeds"] == [0, 1, 2]
    assert min(reference["values"]["gce"]["information_flow"]) > 0.1
    assert min(reference["values"]["gce"]["accuracy_drop_causal"]) > 0.05

    # untouched, and cold (a new cache: every model retrained): seed 0's numbers reproduce exactly
    with monkeypatch.context() as patch:
        patch.setenv("GENEXBENCH_CACHE", str(tmp_path / "fresh-cache"))
        run(dataclasses.replace(config("again"), seed=0), log=quiet)
    again = load_record(tmp_path / "again")
    assert again["metadata"]["explainer_details"]["gce"]["cached"] is False
    first = load_record(tmp_path / "reference" / "seed0")
    assert [r["value"] for r in again["results"] if "seconds" not in r["metric"]] == \
        [r["value"] for r in first["results"] if "seconds" not in r["metric"]]

    # seeds the baseline has not seen, code unchanged: passes (Welch per metric, Holm across metrics)
    unseen = (3, 4, 5)
    comparison = assert_no_regression(run_seeds(config("unseen"), unseen, log=quiet), base)
    assert comparison.rule == "calibrated" and comparison.exit_code == 0

    # sabotage on the same unseen seeds (fitted models loaded from the cache): GCE's decoder ignores alpha,
    # and the gradient saliency map is replaced by noise; the random map is left alone
    gce, saliency = EXPLAINERS.get("gce"), EXPLAINERS.get("saliency")
    decode = gce.decode

    def decode_without_alpha(self, z):
        z = z.clone()
        z[:, :self.latent_split.n_causal] = 0.0
        return decode(self, z)

    with monkeypatch.context() as patch:
        patch.setattr(gce, "decode", decode_without_alpha)
        patch.setattr(saliency, "saliency", lambda self, x, target: torch.rand(x.shape, generator=torch.Generator()
                                                                               .manual_seed(1)))
        broken = run_seeds(config("sabotage"), unseen, log=quiet)
    assert main(["compare", str(broken), "--baseline", str(base)]) == 1
    worse = {(f.explainer, f.metric) for f in compare([broken], base).worse}
    assert {("gce", "information_flow"), ("gce", "accuracy_drop_causal")} <= worse
    assert {("saliency", "removal_morf_auc"), ("saliency", "removal_gap")} <= worse
    assert {e for e, _ in worse} == {"gce", "saliency"}  # the untouched random map is not flagged
    with pytest.raises(RegressionError) as failure:
        assert_no_regression(broken, base)
    assert "information_flow of gce: baseline" in str(failure.value)

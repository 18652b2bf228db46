"""Regression gates: tolerance specs, the threshold and t-test rules, exit statuses, and the README's CI
recipe on real runs: unchanged code passes, a sabotaged explainer fails."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from scipy import stats

from bench.cli import main
from bench.gate import (ALPHA, RegressionError, Tolerance, UnusableInput, assert_no_regression,
                        compare, compare_records, make_baseline, write_baseline)
from bench.outputs.results import write_record
from explainers.registry import EXPLAINERS


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


def test_the_gate_reads_outputs_and_never_loads_the_runner():
    """``bench.gate`` imports neither the runner nor the doors over it (``bench.api``, ``bench.cli``)."""
    code = ("import sys, bench.gate; print(sorted(m for m in sys.modules "
            "if m.startswith(('bench.execute', 'bench.api', 'bench.cli'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    assert out.stdout.strip() == "[]", out.stdout


def test_check_suite_runs_the_suite_then_gates_it(record, tmp_path, monkeypatch):
    """``bench.api.check_suite``: :func:`bench.api.run` with its arguments, then ``assert_no_regression``."""
    from bench import api

    base = tmp_path / "base.json"
    write_record(tmp_path / "base-run", record(0, values(0.6, 0.4)))
    write_baseline([tmp_path / "base-run"], base)
    asked = []

    def fake_run(suite, **kwargs):
        asked.append((suite, kwargs))
        run_dir = tmp_path / f"run{len(asked)}"
        write_record(run_dir, record(0, values(0.6 if len(asked) == 1 else 0.3, 0.4)))
        return api.load(run_dir)

    monkeypatch.setattr(api, "run", fake_run)
    comparison = api.check_suite(base, suite="mnist", seeds=[0], explainers=["gce", "saliency"], device="cpu")
    assert comparison.exit_code == 0
    assert asked == [("mnist", dict(profile="quick", seeds=(0,), explainers=["gce", "saliency"], out=None,
                                    device="cpu"))]
    with pytest.raises(RegressionError, match="information_flow of gce"):
        api.check_suite(base)


# ----------------------------------------------------------------------------- the CI recipe, on real runs


def shuffled_maps(saliency):
    """``saliency`` whose maps are shuffled pixel by pixel (a fixed permutation per image): the sabotage."""

    def shuffled(self, x, target):
        maps = saliency(self, x, target)
        order = torch.stack([torch.randperm(maps[0].numel(), generator=torch.Generator().manual_seed(i))
                             for i in range(len(maps))])
        return maps.flatten(1).gather(1, order).view_as(maps)

    return shuffled


@pytest.mark.slow
def test_the_readme_ci_recipe_passes_unchanged_code_and_fails_shuffled_maps(smoke_run, in_a_project, readme,
                                                                             monkeypatch):
    """The README's "gate an explainer change in your CI" block, run as written against the committed smoke
    baseline: unchanged code passes; the same commands with integrated gradients' maps shuffled exit 1 on that explainer alone."""
    commands = [shlex.split(line) for line in readme("ci-recipe").splitlines()[1:] if line.strip()]
    assert [c[:3] for c in commands] == [["python", "-m", "bench"]] * 2 and [c[3] for c in commands] == ["run", "compare"]
    assert [main(c[3:]) for c in commands] == [0, 0]
    out = Path(commands[0][commands[0].index("--out") + 1])
    assert sorted(p.name for p in out.glob("seed*")) == ["seed0", "seed1", "seed2"]
    # (not compared number for number with the committed baseline: another CPU's kernels move the last digits,
    # which the gate absorbs as it should; tests/test_runner.py checks exact reproduction on one machine)

    ig = EXPLAINERS.get("integrated_gradients")
    monkeypatch.setattr(ig, "saliency", shuffled_maps(ig.saliency))
    sabotaged = [["runs/sabotaged" if a == str(out) else a for a in c] for c in commands]
    assert main(sabotaged[0][3:]) == 0 and main(sabotaged[1][3:]) == 1
    comparison = compare(["runs/sabotaged"], commands[1][commands[1].index("--baseline") + 1])
    worse = {(f.explainer, f.metric) for f in comparison.worse}
    assert ("integrated_gradients", "randomisation_correlation") in worse  # the map stopped depending on f
    assert {e for e, _ in worse} == {"integrated_gradients"}  # the untouched random map is not flagged
    with pytest.raises(RegressionError) as failure:
        assert_no_regression("runs/sabotaged", commands[1][commands[1].index("--baseline") + 1])
    assert "randomisation_correlation of integrated_gradients: baseline" in str(failure.value)

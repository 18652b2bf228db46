"""The user's surface of a run: the Python API (the README's example, executed), ``run``'s flags,
progress and logging, and bad input that must leave nothing behind."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import bench
from bench.api import FRAME_COLUMNS
from bench.cli import main, program_name

ROOT = Path(__file__).resolve().parent.parent


def test_the_readme_python_example_runs_and_returns_tidy_results(smoke_run, in_a_project, readme, capsys):
    namespace: dict = {}
    exec(compile(readme("use-from-python"), "README.md", "exec"), namespace)
    results = namespace["results"]
    assert isinstance(results, bench.Results) and results.run_dir == Path("runs/from-python")
    frame = results.frame
    assert tuple(frame.columns) == FRAME_COLUMNS and not any("↑" in c or "↓" in c for c in frame.columns)
    assert set(frame.explainer) == {"gce", "integrated_gradients", "random"} and set(frame.seed) == {3}
    assert pd.api.types.is_float_dtype(frame.value) and frame.value.notna().sum() > 50
    flow = frame[(frame.explainer == "gce") & (frame.metric == "information_flow")]
    assert flow.unit.tolist() == ["nats"] and flow.higher_is_better.tolist() == [True]
    assert frame[(frame.metric == "saliency_gini")].higher_is_better.tolist() == [True] * 3
    assert frame[frame.metric == "accuracy_drop_factor"].factor.notna().all()  # per-factor rows keep the factor
    assert "integrated_gradients" in results.leaderboard("md") and results.leaderboard("csv").startswith("explainer,")
    # unchanged code, a seed the baseline never saw: the gate passes, and says so as data
    assert namespace["verdict"].exit_code == 0 and namespace["verdict"].rows()
    out = capsys.readouterr()
    assert "removal_gap" not in out.err  # bench.run printed nothing of its own on stderr


def test_load_reads_a_run_folder_a_results_file_and_a_folder_of_seeds():
    reference = ROOT / "results" / "mnist-quick"
    pooled = bench.load(reference)
    assert pooled.seeds == [0, 1, 2] and pooled.run_dir == reference
    one = bench.load(reference / "seed1")
    assert one.seeds == [1] and one.frame.equals(bench.load(reference / "seed1" / "results.json").frame)
    assert len(pooled.frame) == 3 * len(one.frame)
    assert pooled.compare(ROOT / "results" / "baselines" / "mnist-quick.json").exit_code == 0  # its own seeds
    assert "seeds 0, 1, 2" in pooled.leaderboard("md")


def test_version_and_the_program_name_as_invoked(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.split()[-1] == bench.__version__ != "0+unknown"
    assert program_name("/x/bench/__main__.py") == "python -m bench"
    assert program_name("/usr/local/bin/genexbench") == "genexbench"
    shown = subprocess.run([sys.executable, "-m", "bench", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert shown.stdout.startswith("usage: python -m bench ")


@pytest.mark.parametrize("argv", [["--seed", "0", "--seeds", "1,2"], ["--seed", "3", "--seeds", "1,2"]])
def test_seed_and_seeds_together_are_refused_whatever_their_values(argv, capsys, tmp_path):
    with pytest.raises(SystemExit) as done:
        main(["run", *argv, "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err.strip().splitlines()
    assert done.value.code == 2 and len(err) == 1 and "not allowed with argument" in err[0]  # one line
    assert not (tmp_path / "x").exists()
    with pytest.raises(bench.errors.BenchError, match="not both"):
        bench.run(seed=0, seeds=[1, 2])


def test_a_bad_data_root_is_one_line_and_leaves_no_run_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(["run", "--profile", "smoke", "--explainers", "random", "--data-root", str(tmp_path / "nowhere")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error: ") and "nowhere" in err[-1] and "Traceback" not in "".join(err)
    assert not (tmp_path / "runs").exists()  # nothing half-done: the folder is made only once the run can start
    code = main(["run", "--profile", "smoke", "--explainers", "random", "--seeds", "0,1",
                 "--data-root", str(tmp_path / "nowhere")])
    assert code == 2 and not (tmp_path / "runs").exists()


def test_progress_says_k_of_n_with_times_and_ends_with_a_summary(smoke_run, tmp_path, capsys):
    """Where stderr is not a terminal (here, pytest's capture): plain timestamped lines, no bar redraws;
    ``-q`` leaves only warnings."""
    args = ["run", "--profile", "smoke", "--explainers", "random,saliency", "--seed", "3", "--device", "cpu"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    steps = re.findall(r"^\d\d:\d\d:\d\d \[run\] seed 3: (.+?): [\d.]+s  \((\d+) of (\d+) steps done", err, re.M)
    assert [s[0] for s in steps] == ["data", "black box", "random scoring", "saliency scoring"]
    assert [(int(k), int(n)) for _, k, n in steps] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert "[run] time per step:" in err and re.search(r"^  total +[\d.]+s$", err, re.M)
    assert "\r" not in err  # no bar redraws into a log
    assert main(["-q", *args, "--out", str(tmp_path / "b")]) == 0
    assert capsys.readouterr().err == ""


def test_no_cache_trains_afresh_and_stores_nothing(smoke_run, tmp_path, isolated_cache):
    stored = lambda: {p: p.stat().st_mtime_ns for d in ("models", "scores") if (isolated_cache / d).exists()  # noqa: E731
                      for p in (isolated_cache / d).iterdir()}
    before = stored()
    # pixel_blend: a fit (cheap) and sweeps (so the FID feature network too)
    results = bench.run(profile="smoke", explainers=["pixel_blend"], seed=3, device="cpu", out=tmp_path / "r",
                        cache=False)
    meta = results.metadata[0]
    assert meta["cache"] is False and meta["classifier"]["cached"] is False
    assert meta["explainer_details"]["pixel_blend"]["cached"] is False and meta["fid_features"]["cached"] is False
    assert stored() == before  # no model and no score written, none rewritten
    assert meta["explainer_details"]["pixel_blend"]["scores_cached"] is False
    cached = bench.run(profile="smoke", explainers=["pixel_blend"], seed=3, device="cpu", out=tmp_path / "c")
    assert cached.metadata[0]["explainer_details"]["pixel_blend"]["cached"] is True
    values = lambda r: r.frame[~r.frame.metric.str.endswith("_seconds")].value.tolist()  # noqa: E731
    assert values(results) == pytest.approx(values(cached), nan_ok=True)  # the same fit, trained again


def test_scores_are_read_back_only_for_the_same_fit_inputs_and_code(smoke_run, tmp_path):
    """The shared smoke run scored ``random`` for seed 3: the same run reads those scores back; ``rescore``
    and another seed (another black box) score again."""
    same = bench.run(profile="smoke", explainers=["random"], seed=3, device="cpu", out=tmp_path / "a")
    again = bench.run(profile="smoke", explainers=["random"], seed=3, device="cpu", out=tmp_path / "b", rescore=True)
    other = bench.run(profile="smoke", explainers=["random"], seed=4, device="cpu", out=tmp_path / "c")
    cached = lambda r: r.metadata[0]["explainer_details"]["random"]["scores_cached"]  # noqa: E731
    assert (cached(same), cached(again), cached(other)) == (True, False, False)
    values = lambda r: r.frame[~r.frame.metric.str.endswith("_seconds")].value.tolist()  # noqa: E731
    assert values(same) == pytest.approx(values(again), nan_ok=True) and values(other) != values(same)


def test_the_black_box_identity_covers_how_its_outputs_are_read():
    from bench.execute.steps import black_box_identity

    record = {"name": "my_models:Net", "weights_sha256": "ab", "output": "logits", "code_sha256": "cd"}
    keys = {black_box_identity(record), black_box_identity({**record, "output": "probabilities"}),
            black_box_identity({**record, "code_sha256": "ce"}), black_box_identity({**record, "weights_sha256": "ac"})}
    assert len(keys) == 4


def test_a_method_replaced_at_run_time_is_another_scores_key(monkeypatch):
    """Scores are keyed by the source of the methods an explainer holds now, not only by its module's file:
    a monkeypatched or redefined method is scored again (the CI recipe's sabotage test relies on it)."""
    from bench.execute.steps import live_source_hash
    from explainers.registry import EXPLAINERS

    cls = EXPLAINERS.get("saliency")
    before = live_source_hash(cls)
    monkeypatch.setattr(cls, "attribute", lambda self, model, x, target: x.abs())
    assert live_source_hash(cls) != before
    monkeypatch.undo()
    assert live_source_hash(cls) == before

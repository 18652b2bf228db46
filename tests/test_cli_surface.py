"""The command line a practitioner meets: malformed results and baselines are one-line
errors, a closed pipe ends quietly, the leaderboard CSV raises no pandas warning, ``compare`` shows
every metric (text and JSON), ``list --json``, the cache commands, and the package's licence and pins."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
import tomllib
import warnings
from importlib import metadata as importlib_metadata
from pathlib import Path

import pandas as pd
import torch
import pytest
from packaging.requirements import Requirement

from bench.cli import main
from bench.gate import compare_records, load_baseline, make_baseline, write_baseline
from bench.outputs.leaderboard import run_records
from bench.outputs.results import load_record, write_record
from bench.store import save_checkpoint, stable_hash
from explainers.registry import EXPLAINERS
from metrics import METRICS

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "results" / "mnist-quick"


def one_error_line(capsys) -> str:
    """What the CLI wrote to stderr: exactly one ``error: ...`` line, no traceback."""
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


# ----------------------------------------------------------------------------- results schema


@pytest.mark.parametrize("make, field, expected", [
    (lambda meta: {"metadata": None, "results": []}, "metadata", "is null; expected an object"),
    (lambda meta: {"results": []}, "metadata", "is missing; expected an object"),
    (lambda meta: {"metadata": meta, "results": [{"foo": 1}]}, "results[0].explainer",
     "is missing; expected a non-empty string"),
    (lambda meta: {"metadata": meta, "results": [{"explainer": "gce", "metric": "information_flow", "factor": None,
                                                  "value": "0.5"}]},
     "results[0].value", "is the string '0.5'; expected a number or null"),
    (lambda meta: {"metadata": {**meta, "seed": "0"}, "results": []}, "metadata.seed",
     "is the string '0'; expected an integer"),
], ids=["null metadata", "no metadata", "row without explainer", "string value", "string seed"])
def test_a_malformed_results_file_is_one_line_naming_file_and_field(record, tmp_path, capsys, make, field,
                                                                    expected):
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text(json.dumps(make(record(0, {})["metadata"])))
    for command in (["leaderboard", str(run)], ["report", str(run)], ["baseline", str(run), "--out",
                                                                      str(tmp_path / "b.json")]):
        assert main(command) == 2
        line = one_error_line(capsys)
        assert str(run / "results.json") in line and f"{field} " in line and expected in line, line
    assert not (tmp_path / "b.json").exists()


def test_the_issue_example_without_schema_version_is_one_line(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text(json.dumps({"metadata": {"suite": "mnist"}, "results": [{"foo": 1}]}))
    assert main(["leaderboard", str(run)]) == 2
    line = one_error_line(capsys)
    assert str(run / "results.json") in line and "metadata.schema_version is missing" in line


def test_compare_refuses_a_malformed_run_and_a_malformed_baseline(record, tmp_path, capsys):
    good = tmp_path / "good"
    write_record(good, record(0, {("gce", "information_flow"): 0.6}))
    baseline = tmp_path / "baseline.json"
    write_baseline([good], baseline)
    capsys.readouterr()
    bad = record(1, {("gce", "information_flow"): 0.6})
    bad["results"][0]["value"] = "0.6"
    write_record(tmp_path / "bad", bad)
    assert main(["compare", str(tmp_path / "bad"), "--baseline", str(baseline)]) == 2
    assert "results[0].value is the string '0.6'" in one_error_line(capsys)
    data = json.loads(baseline.read_text())
    data["values"]["gce"]["information_flow"] = ["0.6"]
    baseline.write_text(json.dumps(data))
    for fmt in ("text", "json"):
        assert main(["compare", str(good), "--baseline", str(baseline), "--format", fmt]) == 2
        line = one_error_line(capsys)
        assert str(baseline) in line and "values.gce.information_flow[0] is the string '0.6'" in line
    data["values"] = None
    baseline.write_text(json.dumps(data))
    assert main(["compare", str(good), "--baseline", str(baseline)]) == 2
    assert "values is null; expected an object" in one_error_line(capsys)


def test_records_as_the_runner_writes_them_validate(record, tmp_path):
    """The committed references and baselines, and a record with a failed explainer, undefined values and
    per-factor rows, read back unchanged."""
    assert len(run_records([REFERENCE])) == 3 and len(run_records([ROOT / "results" / "fmnist-quick"])) == 1
    for baseline in (ROOT / "results" / "baselines").glob("*.json"):
        assert load_baseline(baseline)["values"]
    rec = record(0, {("gce", "information_flow"): 0.6, ("gce", "fid_absent"): None},
                 factor_rows=[("gce", "information_flow_factor", "alpha1", 0.5)])
    rec["results"][0]["note"] = "made up"
    rec["results"].append({"explainer": "saliency", "metric": None, "factor": None, "value": None,
                           "error": "RuntimeError: deliberately broken"})
    write_record(tmp_path / "run", rec)
    assert load_record(tmp_path / "run") == rec


def test_a_repeated_row_is_refused(record, tmp_path, capsys):
    rec = record(0, {("gce", "information_flow"): 0.6})
    rec["results"].append(dict(rec["results"][0]))
    write_record(tmp_path / "run", rec)
    assert main(["leaderboard", str(tmp_path / "run")]) == 2
    assert "results[1] repeats results[0]" in one_error_line(capsys)


# ----------------------------------------------------------------------------- pipes and warnings


def test_a_pipe_closed_early_ends_quietly():
    """``python -m bench leaderboard RUN | head -c0``: the reader is gone before the first write."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "bench", "leaderboard", str(REFERENCE), "--format", "csv"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, env=env)
    proc.stdout.close()  # the reader closes the pipe long before the command (importing pandas) writes
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 141, err  # 128 + SIGPIPE, as for a process the signal killed
    assert err == b""


def test_the_leaderboard_of_the_multi_seed_reference_raises_no_pandas_warning(capsys):
    """Every warning is an error under pytest here (pyproject filterwarnings), pandas' PerformanceWarning of a
    frame built column by column included; the CSV has every explainer of the committed one, over 3 seeds."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for fmt in ("md", "html", "latex", "csv"):
            assert main(["leaderboard", str(REFERENCE), "--format", fmt]) == 0
            out = capsys.readouterr().out
    board = pd.read_csv(io.StringIO(out), index_col="explainer")
    committed = pd.read_csv(REFERENCE / "leaderboard.csv", index_col="explainer")
    assert list(board.index) == list(committed.index) and (board["n_seeds"] == 3).all()
    assert "information_flow ↑ sd" in board.columns


# ----------------------------------------------------------------------------- compare


def gate_values(flow: float, morf: float) -> dict:
    return {("gce", "information_flow"): flow, ("gce", "sweep_validity"): 1.0,
            ("saliency", "removal_morf_auc"): morf, ("saliency", "saliency_gini"): 0.7}


@pytest.fixture
def gate_dirs(record, tmp_path):
    """A 3-seed baseline file, an unchanged run and a run whose GCE information flow collapsed."""
    for seed, (flow, morf) in enumerate(((0.60, 0.40), (0.62, 0.42), (0.61, 0.44))):
        write_record(tmp_path / "base" / f"seed{seed}", record(seed, gate_values(flow, morf)))
    write_record(tmp_path / "same", record(5, gate_values(0.61, 0.43)))
    write_record(tmp_path / "drop", record(6, gate_values(0.20, 0.43)))
    write_baseline([tmp_path / "base"], tmp_path / "baseline.json")
    return tmp_path


def test_compare_json_lists_every_metric_failures_first(gate_dirs, capsys):
    baseline = json.loads((gate_dirs / "baseline.json").read_text())
    every = {(e, m) for e, metrics in baseline["values"].items() for m in metrics}
    assert main(["compare", str(gate_dirs / "drop"), "--baseline", str(gate_dirs / "baseline.json"),
                 "--format", "json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["exit_code"] == 1 and data["rule"] == "calibrated" and data["worse"] == 1
    assert {(r["explainer"], r["metric"]) for r in data["rows"]} == every and len(data["rows"]) == len(every)
    first, *rest = data["rows"]
    assert (first["explainer"], first["metric"], first["verdict"]) == ("gce", "information_flow", "worse")
    assert first["baseline"] == pytest.approx(0.61) and first["run"] == pytest.approx(0.20)
    assert first["delta"] == pytest.approx(-0.41) and "prediction bound" in first["test"]
    assert all(r["verdict"] == "ok" for r in rest)
    assert {r["metric"] for r in data["seeds_needed"]["rows"]} == {m for _, m in every}
    assert main(["compare", str(gate_dirs / "same"), "--baseline", str(gate_dirs / "baseline.json"),
                 "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["exit_code"] == 0 and {r["verdict"] for r in data["rows"]} == {"ok"} and len(data["rows"]) == 4


def test_compare_text_is_a_table_of_every_metric_failures_first(gate_dirs, capsys):
    assert main(["compare", str(gate_dirs / "drop"), "--baseline", str(gate_dirs / "baseline.json")]) == 1
    lines = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("verdict"))
    table = lines[header + 1:header + 5]
    assert table[0].split()[:3] == ["worse", "gce", "information_flow"]
    assert sorted(line.split()[2] for line in table) == ["information_flow", "removal_morf_auc", "saliency_gini",
                                                        "sweep_validity"]
    assert all(line.split()[0] == "ok" for line in table[1:])
    for column in ("baseline", "delta", "test"):  # aligned: every value starts under its header
        at = lines[header].index(column)
        assert all(line[at - 1] == " " and line[at] != " " for line in table), column
    assert "1 of 4 metrics got worse" in "\n".join(lines) and "seeds needed per side" in "\n".join(lines)


def test_comparison_rows_are_data(record):
    base = make_baseline([record(s, gate_values(0.6 + 0.01 * s, 0.4)) for s in range(3)])
    comparison = compare_records([record(5, gate_values(0.1, 0.4))], base)
    rows = comparison.rows()
    assert [r["verdict"] for r in rows] == ["worse", "ok", "ok", "ok"]
    assert rows[0]["higher_is_better"] is True and rows[0]["tolerance"] == pytest.approx(0.0305)
    assert json.loads(json.dumps(comparison.to_dict(), allow_nan=False))["rows"] == rows


# ----------------------------------------------------------------------------- list


def test_list_json_names_every_suite_explainer_and_metric(capsys):
    assert main(["list", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {s["name"] for s in data["suites"]} >= {"mnist", "fmnist"}
    assert all("quick" in s["profiles"] for s in data["suites"])
    assert [e["name"] for e in data["explainers"]] == list(EXPLAINERS.names())
    gce = next(e for e in data["explainers"] if e["name"] == "gce")
    assert set(gce["capabilities"]) == {"fit", "latent", "saliency", "sweep"} and "O'Shaughnessy" in gce["paper"]
    assert [m["name"] for m in data["metrics"]] == list(METRICS)
    flow = data["metrics"][0]
    assert (flow["higher_is_better"], flow["direction"], flow["capability"]) == (True, "higher is better", "latent")


def test_list_text_aligns_columns_for_long_names(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    explainers = out.split("explainers:\n")[1].split("metrics:\n")[0].splitlines()
    assert len({line.index("[") for line in explainers}) == 1  # capabilities in one column, after the longest name
    assert any(line.startswith("  integrated_gradients  [") for line in explainers)
    metrics = out.split("metrics:\n")[1].splitlines()
    assert len({line.index("(") for line in metrics}) == 1
    # descriptions in one column, after the longest "(direction; needs capability)"
    assert len({re.match(r"  \S+ +\S? +\([^)]*\) +", line).end() for line in metrics}) == 1


# ----------------------------------------------------------------------------- cache


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A cache with a good entry of each kind and one of each kind prune removes; returns (root, good, stale)."""
    root = tmp_path / "cache"
    monkeypatch.setenv("GENEXBENCH_CACHE", str(root))
    models, data = root / "models", root / "data" / "mnist"
    good, stale = [], []

    def model(kind: str, key: str, stored: str | None = None) -> Path:
        path = models / f"{kind}-{key}.pt"
        save_checkpoint(path, {"key": stored or key, "state": {}})
        return path

    good += [model("gce", "0" * 16), model("gce", "1" * 16), model("classifier", "2" * 16),
             model("featurenet", "3" * 16), model("ganmex", "4" * 16)]
    key = "mnist:abc"
    save_checkpoint(data / f"mnist-{stable_hash(key, 12)}.pt", {"key": key, "source": "test", "checksum": "x"})
    good.append(data / f"mnist-{stable_hash(key, 12)}.pt")
    stale += [model("retired_explainer", "5" * 16), model("svae", "6" * 16, stored="7" * 16)]

    def scores(name: str, key: str, stored: str | None = None) -> Path:
        path = root / "scores" / f"{name}-{key}.pt"
        save_checkpoint(path, {"key": stored or key, "rows": [], "arrays": {}, "sweep_rows": None})
        return path

    good += [scores("occlusion", "a" * 16), scores("ganmex_ig", "b" * 16)]
    stale += [scores("retired_explainer", "c" * 16), scores("saliency", "d" * 16, stored="e" * 16)]
    (models / f"exaggeration-{'8' * 16}.pt").write_bytes(b"not a checkpoint")
    (models / "notes.txt").write_text("mine")
    old_tmp, new_tmp = models / ".gce-x.pt.a1b2.tmp", models / ".gce-y.pt.c3d4.tmp"
    old_tmp.write_bytes(b"half")
    new_tmp.write_bytes(b"being written")
    os.utime(old_tmp, (time.time() - 7200,) * 2)
    stale += [models / f"exaggeration-{'8' * 16}.pt", models / "notes.txt", old_tmp]
    good.append(new_tmp)
    (root / "README").write_text("not genexbench's")
    return root, good, stale


def test_cache_info_counts_and_sizes_per_kind(cache, capsys):
    root, good, stale = cache
    assert main(["cache", "info"]) == 0
    out = capsys.readouterr().out
    assert str(root) in out
    counts = {m["kind"]: int(m["n"]) for m in re.finditer(r"^  (?P<kind>\S.*?)\s+(?P<n>\d+)\s+\d", out, re.M)}
    assert counts["model gce"] == 2 and counts["model classifier"] == 1 and counts["model featurenet"] == 1
    assert counts["data mnist"] == 1 and counts["temporary"] == 2 and counts["unknown"] == 1
    assert counts["scores occlusion"] == 1 and counts["scores ganmex_ig"] == 1
    assert counts["total"] == len(good) + len(stale)


def test_cache_prune_removes_only_what_no_run_reads(cache, capsys):
    root, good, stale = cache
    assert main(["cache", "prune", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert all(p.exists() for p in good + stale)
    assert {Path(m) for m in re.findall(r"^would remove (/\S+) \(", out, re.M)} == set(stale)
    assert "no registered explainer fits" in out and "does not load" in out and "another key" in out
    assert "scores of an explainer that is not registered" in out
    assert main(["cache", "prune"]) == 0
    assert f"removed {len(stale)} file(s)" in capsys.readouterr().out
    assert all(p.exists() for p in good) and not any(p.exists() for p in stale)
    assert main(["cache", "prune"]) == 0 and "removed 0 file(s)" in capsys.readouterr().out


def test_cache_clear_removes_data_and_models_and_says_what(cache, capsys):
    root, good, stale = cache
    assert main(["cache", "clear"]) == 0
    out = capsys.readouterr().out
    assert f"removed {len(good) + len(stale)} file(s)" in out and "removed model gce: 2 file(s)" in out
    assert not (root / "models").exists() and not (root / "data").exists() and not (root / "scores").exists()
    assert (root / "README").exists()  # not genexbench's: left alone
    assert main(["cache", "info"]) == 0 and "empty" in capsys.readouterr().out


# ----------------------------------------------------------------------------- packaging


def test_the_package_is_mit_licensed_and_admits_the_tested_torch_pair():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT" and "MIT License" in (ROOT / "LICENSE").read_text()
    pins = {r.name: r.specifier for r in map(Requirement, project["dependencies"])}
    for dist, tested, next_minor in (("torch", "2.14.1", "2.15.0"), ("torchvision", "0.29.1", "0.30.0")):
        assert tested in pins[dist] and next_minor not in pins[dist], dist  # the tested pair, no other minor
        assert pins[dist].contains(importlib_metadata.version(dist), prereleases=True), dist


def test_cache_prune_removes_models_whose_training_code_changed(tmp_path, monkeypatch, mnist38, black_box, capsys):
    """A real fit stores its code stamp; the same checkpoint stamped with another source hash (older code of
    GCE), or a module that is gone, is pruned; the current one stays."""
    from bench.execute import steps
    from explainers.registry import EXPLAINERS

    monkeypatch.setenv("GENEXBENCH_CACHE", str(tmp_path / "c"))
    steps.fitted_explainer(EXPLAINERS.get("gce"), classifier=black_box, settings={"steps": 2, "n_alpha": 2,
                                                                                        "n_beta": 2},
                                train_images=mnist38.train.images[:256], classifier_key="k", suite_key={"s": 1},
                                seed=1, device=torch.device("cpu"), log=lambda m: None)
    [current] = (tmp_path / "c" / "models").glob("gce-*.pt")
    payload = torch.load(current, weights_only=True)
    assert payload["code"]["modules"] == ["explainers.gce", "metrics.information_flow"]
    older = current.with_name("gce-0123456789abcdef.pt")
    torch.save({**payload, "key": "0123456789abcdef", "code": {**payload["code"], "source": "0" * 16}}, older)
    gone = current.with_name("gce-fedcba9876543210.pt")
    torch.save({**payload, "key": "fedcba9876543210", "code": {"modules": ["explainers.gce_v0"], "source": "1"}},
               gone)
    assert main(["cache", "prune"]) == 0
    out = capsys.readouterr().out
    assert "made by older code of explainers.gce, metrics.information_flow" in out
    assert "made by code that no longer exists" in out
    assert current.exists() and not older.exists() and not gone.exists()

"""The run end to end on the smoke profile: record, leaderboard, cache, failures, interruption."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import statistics

import pytest
import torch

from bench.execute import steps
from bench.inputs.data import FMNIST_DEFAULT_ROOT
from bench.outputs.leaderboard import mean_sd_text, render
from bench.outputs.results import load_record
from bench.execute.config import RunConfig
from bench.execute.runner import run
from explainers.registry import EXPLAINERS
from bench.inputs.suites import SUITES

SMOKE_EXPLAINERS = (*SUITES["mnist"].default_explainers, "broken")  # what conftest's shared smoke run fits


@pytest.mark.skipif(not FMNIST_DEFAULT_ROOT.exists(), reason="Debian's dataset-fashion-mnist not installed")
def test_fashion_mnist_suite_explains_three_classes(smoke, tmp_path):
    """fmnist: t-shirt/top, dress, coat. The multi-class explainers sweep every query to both classes f does
    not predict; the exaggeration cGAN, conditioned on f(coat) alone, only sweeps toward coat."""
    out = tmp_path / "fm"
    run(RunConfig(suite="fmnist", profile="smoke", explainers=("gce", "exaggeration", "svae", "saliency"), seed=1,
                  device="cpu", out=out), log=lambda m: None)
    record = load_record(out)
    meta = record["metadata"]
    assert meta["data"]["classes"] == [0, 3, 4] and meta["data"]["sizes"]["train"] == 18000
    assert meta["classifier"]["test_accuracy"] > 0.8
    assert not [r for r in record["results"] if "error" in r]
    value = {(r["explainer"], r["metric"], r["factor"]): r["value"] for r in record["results"]}
    gce = meta["explainer_details"]["gce"]
    assert gce["settings"]["n_causal"] == 2 and gce["settings"]["n_noncausal"] == 4  # GCE App. E.3
    assert {("gce", "accuracy_drop_factor", f) for f in ("alpha1", "alpha2", "beta4")} <= set(value)
    assert gce["sweeps"]["n_sweeps"] == 2 * 40  # two counterfactual classes per query
    n_not_coat = meta["explainer_details"]["exaggeration"]["sweeps"]["n_sweeps"]
    assert 0 < n_not_coat < 40  # toward coat only, from the queries f does not call a coat
    assert meta["explainer_details"]["svae"]["settings"]["n_causal"] == 3
    assert value[("svae", "sweep_validity", None)] is not None
    assert "fmnist" in (out / "leaderboard.md").read_text()


def test_run_writes_record_and_leaderboard_then_reuses_the_cache(smoke_run, tmp_path):
    out, messages = smoke_run  # every mnist explainer and a broken one, seed 3, cold
    config = RunConfig(suite="mnist", profile="smoke", explainers=SMOKE_EXPLAINERS, seed=3, device="cpu",
                       out=tmp_path / "warm")
    text = (out / "results.json").read_text()
    record = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    meta = record["metadata"]
    assert meta["suite"] == "mnist" and meta["profile"] == "smoke" and meta["seed"] == 3
    assert meta["code_revision"] and meta["versions"]["torch"].startswith("2.")
    assert meta["device"]["type"] == "cpu" and meta["data"]["checksum"]
    assert 0.9 < meta["classifier"]["test_accuracy"] <= 1.0
    metrics = {(r["explainer"], r["metric"], r["factor"]) for r in record["results"] if "error" not in r}
    assert ("gce", "information_flow", None) in metrics
    assert ("gce", "accuracy_drop_factor", "beta7") in metrics
    for name in ("gce", "exaggeration", "svae", "pixel_blend"):  # the sweep metrics and FID, same queries for all
        for metric in ("fid", "fid_present", "fid_absent", "sweep_compatibility_pearson", "sweep_validity",
                       "sweep_validity_independent", "sweep_monotonicity", "sweep_proximity"):
            assert (name, metric, None) in metrics, (name, metric)
        assert meta["explainer_details"][name]["sweeps"]["n_sweeps"] == 40
        assert (out / "figures" / f"{name}_sweeps.png").stat().st_size > 1000
        assert (out / "figures" / f"{name}_compatibility.png").stat().st_size > 1000
    fid_counts = {n: meta["explainer_details"][n]["sweeps"]["fid_counts"]["fid"] for n in ("gce", "pixel_blend")}
    assert all(c["used"] == 129 for c in fid_counts.values())  # the same number of generated images for every explainer
    blend = {r["metric"]: r["value"] for r in record["results"] if r["explainer"] == "pixel_blend"}
    assert blend["sweep_validity"] == 1.0 and blend["sweep_validity_independent"] > 0.9  # real target images
    assert ("gce", "information_flow_posterior", None) in metrics and ("gce", "information_flow_plugin", None) in metrics
    assert ("gce", "sweep_noncausal_change", None) in metrics and ("exaggeration", "information_flow", None) not in metrics
    for name in ("gce", "svae"):  # the invariance curve, for every latent explainer
        assert {(name, m, None) for m in ("invariance_area", "invariance_sigma1", "information_flow",
                                          "accuracy_drop_causal")} <= metrics
        curve = meta["explainer_details"][name]["invariance"]
        assert curve["sigmas"][0] == 0.1 and curve["sigmas"][-1] == 5.0 and len(curve["kept"]) == len(curve["sigmas"])
        assert (out / "figures" / f"{name}_invariances_3.png").stat().st_size > 1000
    assert ("svae", "head_agreement", None) in metrics and ("gce", "head_agreement", None) not in metrics
    assert ("svae", "accuracy_drop_factor", "z2_6") in metrics
    assert (out / "figures" / "invariance_curves.png").stat().st_size > 1000
    # saliency: every saliency-capable explainer scored on the same 12 images, GANMEX fitted once for both maps
    saliency_names = ("gce", "exaggeration", "svae", "ganmex_ig", "ganmex_deeplift", "saliency", "random")
    for name in saliency_names:
        assert {(name, m, None) for m in ("removal_morf_auc", "removal_lerf_auc", "removal_gap", "saliency_gini",
                                          "randomisation_correlation", "removal_gap_tie_sd")} <= metrics, name
    randomisation = {r["explainer"]: r for r in record["results"] if r["metric"] == "randomisation_correlation"}
    for name in ("gce", "exaggeration", "svae", "random"):  # their maps never call f: the check does not apply
        assert randomisation[name]["value"] is None and "never calls f" in randomisation[name]["note"], name
    assert randomisation["ganmex_ig"]["value"] is None and "refitted" in randomisation["ganmex_ig"]["note"]
    assert -1 <= randomisation["saliency"]["value"] < 1  # a gradient map does depend on f
    assert len(meta["explainer_details"]["saliency"]["saliency"]["randomisation"]) == 4  # conv1, conv2, fc1, fc2
    assert ("ganmex_ig", "sweep_validity", None) in metrics and ("saliency", "sweep_validity", None) not in metrics
    assert sum("fitting" in m and "ganmex" in m for m in messages) == 1
    sweep_values = lambda n: [(r["metric"], r["value"]) for r in record["results"]  # noqa: E731
                              if r["explainer"] == n and (r["metric"].startswith("sweep_") or r["metric"].startswith("fid"))]
    assert sweep_values("ganmex_deeplift") == sweep_values("ganmex_ig") and sweep_values("ganmex_ig")  # one fit, one sweep
    assert meta["seeds"]["explainers"]["ganmex_ig"] == meta["seeds"]["explainers"]["ganmex_deeplift"]
    for figure in ("saliency_maps.png", "removal_curves.png"):
        assert (out / "figures" / figure).stat().st_size > 1000
    assert meta["fid_features"]["name"] == "featurenet-mnist10" and meta["fid_features"]["val_accuracy"] > 0.9
    assert [(r["explainer"], r["error"]) for r in record["results"] if "error" in r] == \
        [("broken", "RuntimeError: deliberately broken")]  # and no other explainer failed
    board = (out / "leaderboard.md").read_text()
    assert "information_flow ↑" in board and "information_flow_noncausal ↓" in board and "n/a" in board
    assert (out / "leaderboard.csv").read_text().startswith("explainer,")
    assert (out / "figures" / "gce_factors.png").stat().st_size > 1000
    # the leaderboard is a function of the stored record alone
    assert render([load_record(out)], "md") == board

    # warm: the models come from the cache, scored again (--rescore) the numbers reproduce exactly
    values = lambda rec: [r.get("value") for r in rec["results"] if not (r["metric"] or "").endswith("_seconds")]  # noqa: E731
    details = lambda rec: rec["metadata"]["explainer_details"]  # noqa: E731
    assert not any(d["scores_cached"] for d in details(record).values())
    run(dataclasses.replace(config, rescore=True), log=lambda m: None)
    again = load_record(config.out)
    assert again["metadata"]["classifier"]["cached"] is True
    assert again["metadata"]["explainer_details"]["gce"]["cached"] is True
    assert again["metadata"]["explainer_details"]["exaggeration"]["cached"] is True
    assert again["metadata"]["explainer_details"]["svae"]["cached"] is True
    assert again["metadata"]["fid_features"]["cached"] is True
    assert not any(d["scores_cached"] for d in details(again).values())
    assert values(again) == values(record)
    # warm without --rescore: every explainer's scores (and the figures' arrays) are read back
    shutil.rmtree(config.out / "figures")
    messages: list[str] = []
    run(config, log=messages.append)
    third = load_record(config.out)
    assert all(d["scores_cached"] and "figure_error" not in d for d in details(third).values())
    assert sum("scores from cache" in m for m in messages) == len(details(third))
    assert values(third) == values(record)
    for figure in ("gce_factors.png", "gce_sweeps.png", "exaggeration_compatibility.png", "saliency_maps.png"):
        assert (config.out / "figures" / figure).stat().st_size > 1000  # drawn from the arrays read back


def test_a_failing_figure_keeps_the_explainers_scores(smoke_run, tmp_path, monkeypatch):
    def broken_figure(*args, **kwargs):
        raise ValueError("no display")

    monkeypatch.setattr(steps.figures, "compatibility", broken_figure)
    out = tmp_path / "run"
    messages: list[str] = []
    run(RunConfig(suite="mnist", profile="smoke", explainers=("gce",), seed=3, device="cpu", out=out),
        log=messages.append)
    record = load_record(out)
    assert not [r for r in record["results"] if "error" in r]
    assert any(r["metric"] == "sweep_validity" for r in record["results"])
    assert record["metadata"]["explainer_details"]["gce"]["figure_error"] == "ValueError: no display"
    assert any("[gce] figure failed: ValueError: no display" in m for m in messages)


def test_corrupt_model_cache_is_rebuilt(smoke_run, tmp_path, isolated_cache, monkeypatch, caplog):
    """Every model file of a copy of the shared cache overwritten with garbage: each is retrained, not trusted."""
    cache = tmp_path / "cache"
    shutil.copytree(isolated_cache / "models", cache / "models")
    (cache / "data").symlink_to(isolated_cache / "data")
    monkeypatch.setenv("GENEXBENCH_CACHE", str(cache))
    config = RunConfig(suite="mnist", profile="smoke", explainers=("gce",), seed=3, device="cpu", out=tmp_path / "a")
    for path in (cache / "models").glob("*.pt"):
        path.write_bytes(b"garbage")
    messages: list[str] = []
    with caplog.at_level(logging.INFO, logger="bench"):  # the classifier and the features log there
        run(dataclasses.replace(config, out=tmp_path / "b"), log=messages.append)
    messages += caplog.messages
    # the classifier, the FID feature network and GCE
    assert sum("is unreadable" in m and "rebuilding" in m for m in messages) == 3
    assert any("training the FID feature network" in m for m in messages)
    assert any("training GCE Table 1 classifier" in m for m in messages)
    assert any("[gce] fitting" in m for m in messages)
    assert load_record(tmp_path / "b")["metadata"]["classifier"]["cached"] is False


def test_interrupted_run_leaves_no_results_file(smoke_run, tmp_path, monkeypatch):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(steps, "score_explainer", interrupt)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run(RunConfig(suite="mnist", profile="smoke", explainers=("gce",), seed=3, device="cpu", out=out,
                      rescore=True), log=lambda m: None)  # scored, not read back from the shared run's cache
    assert not out.exists()  # the folder this run created goes with it: nothing half-done is left
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "notes.txt").write_text("mine")
    with pytest.raises(KeyboardInterrupt):
        run(RunConfig(suite="mnist", profile="smoke", explainers=("gce",), seed=3, device="cpu", out=existing,
                      rescore=True), log=lambda m: None)
    assert sorted(p.name for p in existing.iterdir()) == ["notes.txt"]  # a folder it did not create stays
    torch.manual_seed(0)


def test_a_fit_depends_on_its_seed_alone(tmp_path, monkeypatch, mnist38, black_box):
    """Not on what the process drew before (a freshly trained vs a cached classifier), nor on which
    other explainers run: the same seed gives the same fitted weights."""
    states = []
    for i, noise in enumerate((123, 456)):
        monkeypatch.setenv("GENEXBENCH_CACHE", str(tmp_path / f"cache{i}"))  # no cache hit: really fit
        torch.manual_seed(noise)
        torch.rand(1000)
        explainer, fit = steps.fitted_explainer(
            EXPLAINERS.get("gce"), classifier=black_box, settings={"steps": 3, "n_alpha": 2, "n_beta": 2},
            train_images=mnist38.train.images[:500], classifier_key="k", suite_key={"s": 1},
            seed=steps.explainer_seed(0, "gce"), device=torch.device("cpu"), log=lambda m: None)
        assert fit["cached"] is False
        states.append(explainer.state_dict())
    for part in ("encoder", "decoder"):
        assert all(torch.equal(states[0][part][k], states[1][part][k]) for k in states[0][part])
    assert steps.explainer_seed(0, "gce") != steps.explainer_seed(0, "svae") != steps.explainer_seed(1, "svae")


def test_several_seeds_pool_into_one_leaderboard_and_report(smoke, tmp_path, mnist38):
    """``run --seeds 0,1``: each seed its own complete run (its own black box), then mean ± s.d. beside them."""
    from bench.cli import main

    out = tmp_path / "seeds"
    assert main(["run", "--suite", "mnist", "--profile", "smoke", "--explainers", "random,saliency", "--seeds", "0,1",
                 "--device", "cpu", "--out", str(out)]) == 0
    seeds = [load_record(out / f"seed{s}") for s in (0, 1)]
    assert [r["metadata"]["seed"] for r in seeds] == [0, 1]
    accuracy = [r["metadata"]["classifier"]["test_accuracy"] for r in seeds]
    assert accuracy[0] != accuracy[1]  # a black box per seed
    board = (out / "leaderboard.md").read_text()
    morf = [next(x["value"] for x in r["results"] if x["explainer"] == "saliency" and x["metric"] == "removal_morf_auc")
            for r in seeds]
    assert mean_sd_text((morf[0] + morf[1]) / 2, statistics.stdev(morf)) in board and "seeds 0, 1 (mean ± s.d. over seeds)" in board
    assert 'seed0/report.html' in (out / "report.html").read_text()
    assert main(["baseline", str(out), "--out", str(tmp_path / "b.json")]) == 0
    assert main(["compare", str(out), "--baseline", str(tmp_path / "b.json")]) == 0
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--seeds", "1,1"])
    assert exit_.value.code == 2

"""Executors: Ray gives the local executor's records; processes sharing a cache never train one model twice."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from bench.cli import main as run_cli
from bench.errors import BenchError
from bench.outputs.results import load_record

ROOT = Path(__file__).resolve().parent.parent
EXPLAINERS = ("gce", "ganmex_ig", "ganmex_deeplift", "integrated_gradients")

# explainers that exist only in a plugin file: the workers must import it as the driver did
PLUGIN = '''
import os
from pathlib import Path

from explainers.base import Capability, Explainer
from explainers.registry import register


@register("fails_to_fit")
class FailsToFit(Explainer):
    capabilities = frozenset({Capability.FIT, Capability.SALIENCY})

    def fit(self, train_images, *, generator, log=print):
        raise RuntimeError("this fit always fails")


@register("dies_once")
class DiesOnce(Explainer):
    """Its first fit kills its own worker process (as an out-of-memory kill would); Ray retries the task."""
    capabilities = frozenset({Capability.FIT, Capability.SALIENCY})
    def fit(self, train_images, *, generator, log=print):
        marker = Path(MARKER)
        if not marker.exists():
            marker.write_text("died once")
            os._exit(1)
        return {"attempts": 2}

    def saliency(self, x, target):
        return x.abs()
'''


def _run(cache: Path, out: Path, *extra: str, explainers=EXPLAINERS) -> int:
    import os

    before = os.environ.get("GENEXBENCH_CACHE")
    os.environ["GENEXBENCH_CACHE"] = str(cache)
    try:
        return run_cli(["-q", "run", "--suite", "mnist", "--profile", "smoke", "--seed", "0", "--device", "cpu",
                        "--explainers", ",".join(explainers), "--out", str(out), *extra])
    finally:
        os.environ["GENEXBENCH_CACHE"] = before


@pytest.fixture(scope="module")
def local_and_ray(tmp_path_factory):
    """The same smoke run twice, each with its own empty cache: local, and on a local Ray (tasks pinned to
    this process's thread count, as the local run computes), the Ray run also with two plugin explainers."""
    pytest.importorskip("ray", reason="the ray extra: pip install -e '.[ray]'")
    root = tmp_path_factory.mktemp("executors")
    plugin = root / "plugin.py"
    plugin.write_text(PLUGIN + f"\nMARKER = {str(root / 'died')!r}\n")
    assert _run(root / "cache-local", root / "local") == 0
    from explainers.registry import EXPLAINERS as registry

    with registry.isolated():  # the plugin's explainers leave the registry with the run
        code = _run(root / "cache-ray", root / "ray", "--executor", "ray", "--plugin", str(plugin),
                    explainers=(*EXPLAINERS, "fails_to_fit", "dies_once"))
    assert code == 0
    return load_record(root / "local"), load_record(root / "ray"), root


def test_ray_records_equal_the_local_executors(local_and_ray):
    local, ray_record, _ = local_and_ray
    values = lambda rec: {(r["explainer"], r["metric"], r["factor"]): r["value"] for r in rec["results"]  # noqa: E731
                          if r["explainer"] in EXPLAINERS and not r["metric"].endswith("seconds")}
    here, there = values(local), values(ray_record)
    assert len(here) > 100 and here.keys() == there.keys()
    assert here == there  # every value to the last digit: the same code, the same threads, one machine
    assert local["metadata"]["classifier"]["weights_sha256"] == ray_record["metadata"]["classifier"]["weights_sha256"]
    for name in ("gce", "ganmex_ig"):  # trained in both runs, by a fit task in the Ray run
        assert ray_record["metadata"]["explainer_details"][name]["cached"] is False
    assert ray_record["metadata"]["explainer_details"]["ganmex_deeplift"]["cached"] is True  # shares ganmex_ig's fit


def test_ray_run_turns_a_failed_fit_into_an_error_row_and_retries_a_killed_worker(local_and_ray):
    _, ray_record, root = local_and_ray
    rows = {r["explainer"]: r for r in ray_record["results"] if r.get("error")}
    assert rows["fails_to_fit"]["error"] == "RuntimeError: this fit always fails"
    assert (root / "died").read_text() == "died once"  # its first attempt killed its worker ...
    assert ray_record["metadata"]["explainer_details"]["dies_once"]["fit"] == {"attempts": 2}  # ... a retry fitted it
    assert "dies_once" not in rows


def test_a_local_run_resumes_from_the_cache_a_ray_run_wrote(local_and_ray, tmp_path):
    """The Ray run's keeper wrote every model and score into the driver's cache: a run on it trains nothing."""
    _, _, root = local_and_ray
    assert _run(root / "cache-ray", tmp_path / "again") == 0
    meta = load_record(tmp_path / "again")["metadata"]
    assert meta["classifier"]["cached"] and meta["fid_features"]["cached"]
    for name in ("gce", "ganmex_ig"):
        assert meta["explainer_details"][name]["cached"] and meta["explainer_details"][name]["scores_cached"]


def test_ray_executor_without_ray_says_how_to_install(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails
    code = run_cli(["-q", "run", "--suite", "mnist", "--profile", "smoke", "--explainers", "gce", "--executor", "ray",
                    "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0
    assert "pip install -e '.[ray]'" in err
    assert not (tmp_path / "run").exists()


def test_unreachable_ray_cluster_is_one_line_exit_2(capsys, tmp_path):
    pytest.importorskip("ray", reason="the ray extra: pip install -e '.[ray]'")
    code = run_cli(["-q", "run", "--suite", "mnist", "--profile", "smoke", "--explainers", "gce", "--executor", "ray",
                    "--ray-address", "127.0.0.1:9", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "cannot reach the Ray cluster at '127.0.0.1:9'" in err


def test_ray_options_belong_to_the_ray_executor():
    from bench.api import run

    with pytest.raises(BenchError, match="options of --executor ray"):
        run("mnist", profile="smoke", task_cpus=2)


SHARED_FIT = textwrap.dedent('''
    import json, sys, time
    from pathlib import Path
    import torch
    from bench.inputs.classifier import ClassifierConfig, cached_classifier
    from bench.inputs.data import load_dataset

    ready, both = Path(sys.argv[1]), Path(sys.argv[2])
    data = load_dataset("mnist", (3, 8))
    ready.touch()
    while not both.exists() or len(list(both.parent.glob("ready-*"))) < 2:  # start the fit together
        time.sleep(0.01)
    messages = []
    _, record = cached_classifier(suite_key={"test": "two processes"}, train=data.train, val=data.val,
                                  test=data.test, n_classes=2, config=ClassifierConfig(epochs=1), seed=0,
                                  device=torch.device("cpu"), log=messages.append)
    print(json.dumps({"cached": record["cached"], "weights": record["weights_sha256"], "log": messages}))
''')


def test_two_processes_on_one_empty_cache_train_one_model(tmp_path, mnist38):
    """Two processes fit the same black box on one empty cache at once: one trains, the other waits for it
    and loads its file, which is whole."""
    import os

    cache = tmp_path / "cache"
    (cache / "data").parent.mkdir(parents=True)
    os.symlink(Path(os.environ["GENEXBENCH_CACHE"]) / "data", cache / "data")  # the data is not under test
    env = {**os.environ, "GENEXBENCH_CACHE": str(cache)}
    both = tmp_path / "ready-go"
    procs = [subprocess.Popen([sys.executable, "-c", SHARED_FIT, str(tmp_path / f"ready-{i}"), str(both)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    both.touch()
    outputs = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr
        outputs.append(json.loads(stdout.strip().splitlines()[-1]))
    assert sorted(o["cached"] for o in outputs) == [False, True]  # one trained, the other loaded
    assert outputs[0]["weights"] == outputs[1]["weights"]
    waited = next(o for o in outputs if o["cached"])
    assert any("another process is building it" in m for m in waited["log"])
    trained = next(o for o in outputs if not o["cached"])
    assert any("training GCE Table 1 classifier" in m for m in trained["log"])
    assert not any("training" in m for m in waited["log"])
    files = list((cache / "models").glob("classifier-*.pt"))
    assert len(files) == 1 and not list((cache / "models").glob(".*.tmp"))
    payload = torch.load(files[0], weights_only=True)  # whole: loads, with its key and every weight
    assert files[0].name == f"classifier-{payload['key']}.pt" and len(payload["state_dict"]) == 8

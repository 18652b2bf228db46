"""The three doors of docs/extending.md, run as written from a fresh directory, as a new user would: a ResNet
of the user's own scored with ``--classifier ... --weights ...``, a suite file of the user's own over a
3-channel image folder, and an explainer plugin on the leaderboard beside the built-ins."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = ("README.md", "docs/*.md")  # where a ``# readme: <marker>`` block may live


def doc_block(marker: str) -> str:
    """The one fenced bash or python block of README.md or docs/*.md whose first line is ``# readme: <marker>``."""
    found = []
    for page in sorted({p for pattern in PAGES for p in ROOT.glob(pattern)}):
        blocks = re.findall(r"```(?:python|bash)\n(# readme: [\w-]+\n.*?)```", page.read_text(), re.S)
        found += [(page.name, b) for b in blocks if b.startswith(f"# readme: {marker}\n")]
    assert len(found) == 1, f"{len(found)} blocks marked {marker} in {PAGES}: {[name for name, _ in found]}"
    return found[0][1]


@pytest.fixture(scope="session")
def readme():
    """``readme(marker)``: the block marked ``# readme: <marker>``, wherever the docs keep it (overrides
    conftest's, which reads README.md only)."""
    return doc_block


def test_every_demo_block_is_found_once():
    for marker in ("own-black-box", "own-suite", "own-explainer", "use-from-python", "ci-recipe"):
        assert doc_block(marker).startswith(f"# readme: {marker}\n")


def run_block(readme, marker: str, cwd) -> subprocess.CompletedProcess:
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", readme(marker)], cwd=cwd, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def rows(run_dir) -> dict[tuple[str, str], float | None]:
    record = json.loads((run_dir / "results.json").read_text())
    assert not [r for r in record["results"] if r.get("error")], record["results"]
    return {(r["explainer"], r["metric"]): r["value"] for r in record["results"] if r.get("factor") is None}


@pytest.mark.usefixtures("mnist38")  # the data, downloaded once a session
def test_a_resnet_of_your_own_is_scored_with_its_weights(readme, tmp_path):
    out = run_block(readme, "own-black-box", tmp_path)
    record = json.loads((tmp_path / "runs/resnet/results.json").read_text())
    box = record["metadata"]["classifier"]
    assert box["name"] == "my_models:SmallResNet" and box["weights_file"].endswith("resnet.pt")
    assert box["test_accuracy"] > 0.95 and "trained_by" not in box  # the user's weights, nothing trained
    assert "black box my_models:SmallResNet" in out.stdout  # the leaderboard's footer names it
    values = rows(tmp_path / "runs/resnet")
    # the cascading randomisation re-initialises the user's layers (IG's maps depend on them), and GCE trains
    # through the ResNet: every explainer scored on it
    assert values[("integrated_gradients", "randomisation_correlation")] is not None
    assert values[("gce", "information_flow")] is not None and values[("deeplift", "saliency_gini")] is not None


@pytest.mark.usefixtures("mnist38")
def test_a_suite_file_of_your_own_runs_on_a_colour_image_folder(readme, tmp_path):
    out = run_block(readme, "own-suite", tmp_path)
    assert out.stdout.startswith("## genexbench leaderboard: colour-digits (smoke)")
    meta = json.loads((tmp_path / "runs/colour/results.json").read_text())["metadata"]
    assert meta["data"]["image_shape"] == [3, 32, 32] and meta["data"]["classes"] == ["three", "eight"]
    assert meta["data"]["sizes"] == {"train": 3000, "val": 500, "test": 500}
    assert meta["suite_file"] == str(tmp_path / "colour_digits.toml") and len(meta["suite_file_sha256"]) == 64
    assert meta["classifier"]["test_accuracy"] > 0.9  # colour is noise: the digit decides
    values = rows(tmp_path / "runs/colour")
    assert values[("pixel_blend", "sweep_validity")] > 0.9  # a fade into a real image of the other class flips f
    assert {e for e, _ in values} == {"gce", "svae", "pixel_blend", "integrated_gradients", "random"}
    assert (tmp_path / "runs/colour/figures/gce_sweeps.png").stat().st_size > 0


@pytest.mark.usefixtures("mnist38")
def test_an_explainer_of_your_own_goes_on_the_leaderboard(readme, tmp_path):
    out = run_block(readme, "own-explainer", tmp_path)
    assert "| input_descent |" in out.stdout
    values = rows(tmp_path / "runs/mine")
    meta = json.loads((tmp_path / "runs/mine/results.json").read_text())["metadata"]
    assert meta["explainer_details"]["input_descent"]["capabilities"] == ["saliency", "sweep"]
    # gradient ascent on the input always reaches the target: an adversarial counterfactual is valid...
    assert values[("input_descent", "sweep_validity")] == 1.0
    # ...and far less realistic than a fade into a real image of the class (the trivial floor)
    assert values[("input_descent", "fid")] > values[("pixel_blend", "fid")]

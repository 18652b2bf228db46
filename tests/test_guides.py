"""docs/extending.md, executed: its ``# guide: <marker>`` python blocks run as written, in order, in one
namespace (as a reader runs them in one notebook), so the guide and the code cannot drift."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd
import pytest
import torch

from explainers.registry import EXPLAINERS

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "extending.md"
MARKERS = ("add-explainer", "run-explainer", "add-metric", "metric-closed-form", "metric-on-the-leaderboard")


def guide_blocks() -> dict[str, str]:
    """marker -> code of every fenced python block of the guide whose first line is ``# guide: <marker>``."""
    blocks = re.findall(r"```python\n(# guide: ([\w-]+)\n.*?)```", GUIDE.read_text(), re.DOTALL)
    found = [marker for _, marker in blocks]
    assert len(found) == len(set(found)), f"a marker is used twice in {GUIDE.name}: {found}"
    return {marker: code for code, marker in blocks}


def run_block(blocks: dict[str, str], marker: str, namespace: dict) -> None:
    exec(compile(blocks[marker], f"{GUIDE.name}:{marker}", "exec"), namespace)


@pytest.fixture
def guide_registry():
    """The guide's ``@register("smoothgrad")`` leaves the registry after the test."""
    with EXPLAINERS.isolated():
        yield EXPLAINERS


def test_the_guide_has_exactly_the_blocks_this_test_runs():
    assert tuple(guide_blocks()) == MARKERS


def test_the_guide_runs_its_explainer_as_written(smoke_run, in_a_project, guide_registry, black_box, mnist38,
                                                 capsys):
    blocks, namespace = guide_blocks(), {"__name__": "guide"}

    run_block(blocks, "add-explainer", namespace)
    smoothgrad = namespace["SmoothGrad"]
    assert guide_registry.get("smoothgrad") is smoothgrad and smoothgrad.name == "smoothgrad"

    run_block(blocks, "run-explainer", namespace)
    frame = namespace["results"].frame
    assert set(frame.explainer) == {"smoothgrad", "saliency", "random"} and set(frame.seed) == {3}
    assert namespace["results"].errors.empty
    mine = frame[frame.explainer == "smoothgrad"].set_index("metric").value
    saliency_metrics = {"removal_morf_auc", "removal_lerf_auc", "removal_gap", "saliency_gini",
                        "randomisation_correlation", "saliency_seconds"}
    assert saliency_metrics <= set(mine.index) and pd.api.types.is_float_dtype(mine)
    assert mine[sorted(saliency_metrics)].notna().all()  # randomisation included: its map calls f
    assert not any(m.startswith(("fid", "sweep_", "information_flow")) for m in mine.index)
    gap = namespace["gap"]
    # 12 smoke images: the random map's gap is about 0, a gradient map of this f clears it by ~0.6
    assert gap["smoothgrad"] > gap["random"] + 0.2, gap.to_dict()
    assert "| smoothgrad |" in capsys.readouterr().out  # the leaderboard printed has its row

    # explanation-time noise from its own generator: the same map twice, whatever the global stream did between
    explainer = smoothgrad(black_box, {"n_samples": 3}, "cpu")
    x = mnist38.test.images[:4]
    target = black_box.predict(x)
    first = explainer.saliency(x, target)
    torch.randn(100)
    assert torch.equal(first, explainer.saliency(x, target)) and first.shape == x.shape

    run_block(blocks, "add-metric", namespace)
    run_block(blocks, "metric-closed-form", namespace)  # its own asserts: ln P, ln 5, 1.5 ln 2, 0, NaN
    run_block(blocks, "metric-on-the-leaderboard", namespace)
    from metrics import METRICS

    assert "saliency_complexity" not in METRICS  # declared for the guide's blocks only
    scored, limit = namespace["scored"], math.log(28 * 28 / 2) + 0.5
    assert scored.errors.empty and "saliency_complexity ↓" in capsys.readouterr().out
    values = namespace["values"]
    # the random map's closed form ln(P/2) + 1/2 (s.d. over its 784 pixels: ~0.01), f's gradients far below it
    assert values["random"] == pytest.approx(limit, abs=0.02) and values["saliency"] < limit - 0.3


def test_the_guide_declares_its_metric_and_its_closed_forms_hold():
    blocks, namespace = guide_blocks(), {"__name__": "guide"}
    run_block(blocks, "add-metric", namespace)
    run_block(blocks, "metric-closed-form", namespace)  # its own asserts: ln P, ln 5, 1.5 ln 2, 0, NaN
    complexity = namespace["complexity"]
    assert namespace["COMPLEXITY"].function is complexity and namespace["COMPLEXITY"].inputs == ("maps",)
    ramp = torch.arange(1.0, 5.0).view(1, 4)  # contributions k / 10, k = 1..4
    assert complexity(ramp).item() == pytest.approx(-sum(k / 10 * math.log(k / 10) for k in range(1, 5)), rel=1e-12)

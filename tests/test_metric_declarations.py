"""Metric declarations: every row scoring writes has exactly one declaration beside a function that exists, a
metric declared anywhere (with its function) is scored and shown without touching another file, and the
committed leaderboards render from the declarations exactly as they were written."""

from __future__ import annotations

import importlib
import inspect
import math
import re
from collections import Counter
from pathlib import Path

import pytest
import torch
from torch import nn

import metrics
from bench.execute import scoring
from bench.execute.scoring import SaliencySetup, SweepSetup, score_explainer
from bench.inputs.classifier import BlackBox
from bench.inputs.images import Split
from bench.outputs.leaderboard import build_board, capability_columns, render, run_records
from explainers.base import Capability, Explainer, LatentSplit
from metrics import AGGREGATIONS, CAPABILITIES, INPUTS, METRICS, Metric

ROOT = Path(__file__).resolve().parent.parent
C, H, W = 3, 8, 8


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(C, 4, 3, padding=1)
        self.lin = nn.Linear(4 * H * W, 2)

    def forward(self, x):
        return self.lin(torch.relu(self.conv(x)).flatten(1)) * 3


class Judge(nn.Module):
    """A fixed random feature map with a 10-class head: FID's features and the independent judge."""

    def __init__(self):
        super().__init__()
        self.register_buffer("projection", torch.randn(C * H * W, 6, generator=torch.Generator().manual_seed(1)))
        self.lin = nn.Linear(6, 10)
        self.head = self.lin

    def features(self, x):
        return x.flatten(1) @ self.projection

    def forward(self, x):
        return self.lin(self.features(x))


class Everything(Explainer):
    """Every capability, from fixed random linear maps: a latent code, sweeps, gradient maps, a head."""

    name = "everything"
    capabilities = frozenset({Capability.LATENT, Capability.SWEEP, Capability.SALIENCY})
    latent_split = LatentSplit(2, 2)

    def __init__(self, classifier):
        super().__init__(classifier)
        gen = torch.Generator().manual_seed(2)
        self.E, self.D = torch.randn(C * H * W, 4, generator=gen) / 8, torch.randn(4, C * H * W, generator=gen) / 2
        self.surrogate = lambda x: torch.softmax(x.flatten(1) @ self.E[:, :2], 1)

    def encode(self, x):
        return x.flatten(1) @ self.E

    def decode(self, z):
        return torch.sigmoid(z @ self.D).view(-1, C, H, W)

    def sweep(self, x, target, n_steps):
        t = torch.linspace(0, 1, n_steps).view(1, -1, 1, 1, 1)
        end = torch.roll(x, 1, -1) * (target.view(-1, 1, 1, 1).float() + 0.5)
        return x.unsqueeze(1) * (1 - t) + end.unsqueeze(1) * t

    def saliency(self, x, target):
        x = x.clone().requires_grad_(True)
        with torch.enable_grad():
            return torch.autograd.grad(self.classifier(x).gather(1, target.view(-1, 1)).sum(), x)[0]


def score_everything(truth: str | None):
    """score_explainer's rows and arrays for :class:`Everything` on a tiny run (``truth``: a ground-truth suite's)."""
    torch.manual_seed(0)
    clf = BlackBox(Net(), 2, image_shape=(C, H, W))
    images = torch.rand(100, C, H, W, generator=torch.Generator().manual_seed(3))
    labels = clf(images).argmax(1)
    judge, queries, reference = Judge(), images[40:52], images[52:]
    region = torch.zeros(1, H, W, dtype=torch.bool)
    region[0, :3, :3] = True
    marker = truth == "marker"
    sweeps = SweepSetup(queries=queries, real_features=judge.features(reference), real_positive=clf(reference)[:, 1],
                        extractor=judge, positive_class=1, n_steps=4, fid_samples=7, class_ids=(3, 8), truth=truth,
                        region=region if marker else None, seed=1)
    saliency = SaliencySetup(images=images[40:48], labels=clf(images[40:48]).argmax(1), n_randomisation=3,
                             n_tie_orders=2, region=region if marker else None,
                             carries=(torch.arange(8) % 2 == 0) if marker else None)
    return score_explainer(Everything(clf), clf, Split(images[:40], labels[:40]), n_alpha=4, n_beta=4, seed=1,
                           device=torch.device("cpu"), sweeps=sweeps, test=Split(images[40:], labels[40:]),
                           saliency=saliency)


@pytest.fixture(scope="module")
def scored():
    return {truth: score_everything(truth) for truth in ("marker", "colour")}


def hand_written_rows() -> set[str]:
    """The metric names the scoring and run code writes by hand: ``row(name, "<metric>", ...)``."""
    names = set()
    for path in (ROOT / "bench" / "execute").glob("*.py"):
        names |= set(re.findall(r"\brow\(\s*\w+,\s*\"(\w+)\"", path.read_text()))
    return names


def test_every_metric_scoring_writes_has_exactly_one_declaration_and_every_declaration_is_written(scored):
    declared = [m.name for module in metrics.MODULES for m in importlib.import_module(f"metrics.{module}").DECLARED]
    assert [name for name, n in Counter(declared).items() if n > 1] == []
    assert list(METRICS) == declared  # module after module, each in its declaration order
    written = {r.metric for rows, _ in scored.values() for r in rows}
    by_hand = hand_written_rows()
    assert "fit_seconds" in by_hand and "content_kept" in by_hand  # the scan sees the hand-written rows
    assert written | by_hand <= set(METRICS), (written | by_hand) - set(METRICS)
    # every declared metric is written: by a scorer (on a run with every capability and truth) or by the runner
    assert set(METRICS) - written == {"fit_seconds"}
    for rows, _ in scored.values():
        assert all(r.unit == METRICS[r.metric].unit and r.higher_is_better is METRICS[r.metric].higher_is_better
                   for r in rows)


def test_every_declaration_belongs_to_a_metric_function_that_exists():
    for metric in METRICS.values():
        module = importlib.import_module(metric.function.__module__)
        assert module.__name__.startswith("metrics."), metric.name
        assert getattr(module, metric.function.__name__) is metric.function, metric.name
        assert inspect.isfunction(inspect.unwrap(metric.function)) and metric.function.__doc__, metric.name
        assert metric.capability in CAPABILITIES and metric.aggregation in AGGREGATIONS
        assert set(metric.inputs) <= set(INPUTS.get(metric.capability, ())), metric.name
        assert (metric.aggregation == "per-factor") == metric.name.endswith("_factor"), metric.name
        if metric.field is not None:
            assert metric.inputs, f"{metric.name}: a field of a hand-scored function's result"
    assert set(CAPABILITIES) == {c.value for c in Capability}
    assert {c.value for c in scoring.SCORERS} | {"fit"} == set(CAPABILITIES)
    assert set(INPUTS) == {c.value for c in scoring.SCORERS}


def test_a_declaration_is_checked_where_it_is_written():
    def f(maps):
        """One value per map."""
        return maps.flatten(1).sum(1)

    common = {"unit": "u", "higher_is_better": True, "aggregation": "mean", "function": f, "description": "d"}
    with pytest.raises(ValueError, match="capability"):
        Metric("x", capability="latnet", **common)
    with pytest.raises(ValueError, match="offers no"):
        Metric("x", capability="saliency", inputs=("heatmaps",), **common)
    with pytest.raises(ValueError, match="aggregation"):
        Metric("x", capability="saliency", **{**common, "aggregation": "median"})
    with pytest.raises(TypeError, match="function"):
        Metric("x", capability="saliency", **{**common, "function": None})
    with pytest.raises(ValueError, match="declared twice"):
        metrics.register(Metric("saliency_gini", capability="saliency", **common))
    with pytest.raises(TypeError, match="must offer"):
        scoring.scoring_context("saliency", maps=None)


def complexity(maps: torch.Tensor) -> torch.Tensor:
    """Entropy of each map's fractional contributions |m_i| / sum_j |m_j| (Bhatt et al. 2020): (N, ...) -> (N,)."""
    p = maps.flatten(1).abs().double()
    p = p / p.sum(1, keepdim=True)
    return -torch.special.xlogy(p, p).sum(1)


def code_spread(codes: torch.Tensor) -> torch.Tensor:
    """The s.d. of each latent factor over the validation codes: (N, D) -> (D,)."""
    return codes.std(0)


COMPLEXITY = Metric("saliency_complexity", capability="saliency", unit="nats", higher_is_better=False,
                    aggregation="mean", function=complexity, inputs=("maps",),
                    description="mean entropy of |map| / sum |map| (Bhatt et al. 2020)")
SPREAD = Metric("code_spread_factor", capability="latent", unit="latent units", higher_is_better=None,
                aggregation="per-factor", function=code_spread, inputs=("codes",),
                description="s.d. of each factor's code over the validation images")


def test_a_metric_declared_here_is_scored_and_shown_with_no_other_file_touched(scored, record):
    before = list(METRICS)
    with METRICS.temporarily(COMPLEXITY, SPREAD):
        assert list(METRICS) == [*before, "saliency_complexity", "code_spread_factor"]
        assert METRICS["saliency_complexity"].arrow == "↓"
        rows, arrays = score_everything("marker")
    assert list(METRICS) == before and "saliency_complexity" not in METRICS  # gone after the block

    metric_rows = [(r.metric, r.factor) for r in rows]
    old_rows = [(r.metric, r.factor) for r in scored["marker"][0]]
    # the new rows sit at their scorers' declared places; every other row is as before, in the same order
    assert [m for m in metric_rows if m[0] not in ("saliency_complexity", "code_spread_factor")] == old_rows
    assert metric_rows.index(("saliency_complexity", None)) == metric_rows.index(("saliency_gini", None)) + 1
    factors = [f for m, f in metric_rows if m == "code_spread_factor"]
    assert factors == ["alpha1", "alpha2", "beta1", "beta2"]

    value = next(r.value for r in rows if r.metric == "saliency_complexity")
    maps = arrays["saliency"]["maps"]  # the first 8 maps: all of this run's
    assert value == pytest.approx(float(complexity(maps).mean()), rel=1e-9)
    assert 0 < value <= math.log(C * H * W)
    points = arrays["saliency"]["proxy_points"]  # the degraded maps are scored by it too
    assert all(p["values"]["saliency_complexity"] is not None for p in points)
    assert [p["values"]["saliency_complexity"] for p in points] != [value] * len(points)

    values = {("gce", "saliency_complexity"): 2.0, ("saliency", "saliency_complexity"): 1.0,
              ("gce", "saliency_gini"): 0.5, ("saliency", "saliency_gini"): 0.6}
    with METRICS.temporarily(COMPLEXITY):
        board = build_board([record(0, values), record(1, values)])
        tables = dict(capability_columns(board))
        text, csv = render([record(0, values)], "md"), render([record(0, values)], "csv")
    assert tables[next(c for c in tables if c.startswith("Saliency"))] == ["saliency_gini ↑", "saliency_complexity ↓"]
    assert board.best["saliency_complexity ↓"] == ["saliency"]  # its direction marks the best
    assert "saliency_complexity ↓" in text and "saliency_complexity" in csv.splitlines()[0]
    assert "Other" not in tables


def test_a_registered_metric_is_part_of_a_cached_scores_key():
    assert scoring.registered_metrics_source() == {}  # the built-ins alone add nothing to the key
    with METRICS.temporarily(COMPLEXITY):
        (source,) = scoring.registered_metrics_source()["metrics"]
    assert "saliency_complexity" in source and "def complexity(maps" in source


def _without_footer(text: str) -> list[str]:
    """The lines of a leaderboard but its footer (suite, seeds, device, code: the run's provenance)."""
    return [line for line in text.splitlines() if "FID features:" not in line]


@pytest.mark.parametrize("run", ["mnist-quick", "mnist-smoke", "fmnist-smoke", "spurious-mnist-quick",
                                 "colored-mnist-quick"])
def test_the_committed_leaderboards_render_from_the_declarations_as_committed(run):
    """Every column, its order, direction and cells as committed: the CSV byte for byte, the markdown (with its
    per-factor and proxy-validity tables) and the LaTeX table line for line but the footer."""
    directory = ROOT / "results" / run
    records = run_records([directory])
    assert render(records, "csv") == (directory / "leaderboard.csv").read_text()
    for fmt, name in (("md", "leaderboard.md"), ("latex", "leaderboard.tex")):
        if (directory / name).exists():
            assert _without_footer(render(records, fmt)) == _without_footer((directory / name).read_text()), name

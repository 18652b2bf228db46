"""Your own black box: ``--classifier module:callable [--weights FILE]`` or a TorchScript file, checked
before any training, named in the record and the leaderboard, and keyed by its weights' hash."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest
import torch

import bench
from bench.inputs.blackbox import UserClassifier, build, weights_sha256
from bench.inputs.classifier import Table1Classifier
from bench.cli import main
from bench.outputs.leaderboard import check_same_run

USER_MODELS = '''
import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels)
        self.conv2, self.bn2 = nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels)

    def forward(self, x):
        return torch.relu(x + self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))


class SmallResNet(nn.Module):
    """A ResNet-style classifier: a stem, two residual blocks with batch norm, global pooling."""

    def __init__(self, n_classes=10, channels=16):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, channels, 3, stride=2, padding=1), nn.BatchNorm2d(channels),
                                  nn.ReLU())
        self.blocks = nn.Sequential(Block(channels), Block(channels))
        self.head = nn.Linear(channels, n_classes)

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)).mean((2, 3)))


class SoftmaxNet(SmallResNet):
    """The same network returning probabilities."""

    def forward(self, x):
        return torch.softmax(super().forward(x), dim=1)


def not_a_module(n_classes):
    return 3


def three_columns():
    return SmallResNet(n_classes=3)
'''


@pytest.fixture
def user_models(in_a_project, monkeypatch):
    """``my_models.py`` in the working directory, as a user's file outside the package."""
    (in_a_project / "my_models.py").write_text(textwrap.dedent(USER_MODELS))
    monkeypatch.syspath_prepend(str(in_a_project))
    yield in_a_project
    sys.modules.pop("my_models", None)


def test_a_user_architecture_is_trained_by_the_recipe_cached_and_keys_the_fits(smoke_run, user_models):
    """Without --weights: the reproducibility study's experiment, the same explainers on another black box."""
    run = lambda out: bench.run(profile="smoke", classifier="my_models:SmallResNet", seed=3, device="cpu",  # noqa: E731
                                explainers=["gce", "integrated_gradients", "random"], out=out)
    first = run("runs/resnet")
    box = first.metadata[0]["classifier"]
    network = build(UserClassifier("my_models:SmallResNet"), 2)
    assert box["name"] == "my_models:SmallResNet" and box["architecture"] == "import" and box["cached"] is False
    assert box["parameters"] == sum(p.numel() for p in network.parameters()) and len(box["weights_sha256"]) == 64
    assert box["test_accuracy"] > 0.8 and box["trained_by"] == "the suite's recipe" and "warning" not in box
    assert "black box my_models:SmallResNet (weights " + box["weights_sha256"][:12] in first.leaderboard("md")
    table1 = json.loads((smoke_run[0] / "results.json").read_text())["metadata"]
    gce_key = lambda meta: meta["explainer_details"]["gce"]["cache_key"]  # noqa: E731
    assert gce_key(first.metadata[0]) != gce_key(table1)  # a fit made for another black box is never reused
    again = run("runs/resnet-again").metadata[0]
    assert again["classifier"]["cached"] is True and again["classifier"]["weights_sha256"] == box["weights_sha256"]
    assert again["explainer_details"]["gce"]["cached"] is True
    with pytest.raises(bench.errors.BenchError, match="different black boxes"):  # never pooled with Table 1's
        check_same_run([*first.records, *bench.load(smoke_run[0]).records])


def test_user_weights_score_as_given_and_a_near_chance_box_is_a_warning(smoke_run, user_models, capsys):
    torch.manual_seed(1)
    untrained = __import__("my_models").SmallResNet(n_classes=2)
    torch.save(untrained.state_dict(), user_models / "resnet.pt")
    assert main(["run", "--profile", "smoke", "--seed", "3", "--explainers", "saliency,random", "--classifier",
                 "my_models:SmallResNet", "--weights", "resnet.pt", "--out", "runs/given"]) == 0
    meta = bench.load("runs/given").metadata[0]
    box = meta["classifier"]
    assert box["weights_sha256"] == weights_sha256(untrained) and box["weights_file"] == "resnet.pt"
    assert "epochs" not in box and box["fit_seconds"] == 0.0  # nothing trained
    assert box["test_accuracy"] < 0.6 and "near chance" in box["warning"]
    assert "near chance" in capsys.readouterr().err


def test_a_torchscript_file_is_a_black_box(smoke_run, user_models):
    torch.manual_seed(2)
    network = __import__("my_models").SmallResNet(n_classes=2)
    torch.jit.script(network).save(str(user_models / "scripted.pt"))
    results = bench.run(profile="smoke", classifier="scripted.pt", weights=None, seed=3, device="cpu",
                        explainers=["saliency"], out="runs/scripted")
    assert results.metadata[0]["classifier"]["architecture"] == "torchscript" and results.errors.empty
    assert results.frame[results.frame.metric == "removal_gap"].value.notna().all()
    rows = [r for r in results.records[0]["results"] if r["metric"] == "randomisation_correlation"]
    assert rows[0]["value"] is None and "no layer that can be re-initialised" in rows[0]["note"]  # not "never calls f"


@pytest.mark.parametrize("extra, message", [
    (["--classifier", "no_such_module:Net"], "cannot import 'no_such_module'"),
    (["--classifier", "my_models:Missing"], "module 'my_models' has no 'Missing'"),
    (["--classifier", "my_models"], "expected module:callable"),
    (["--classifier", "my_models:not_a_module"], "returned int, not a torch.nn.Module"),
    (["--classifier", "my_models:three_columns"], "expected (8, 2), one column per class"),
    (["--classifier", "my_models:SmallResNet", "--classifier-output", "probabilities"], "rows sum to"),
    (["--classifier", "my_models:SmallResNet", "--weights", "table1.pt"], "missing keys blocks.0.bn1.bias"),
    (["--classifier", "my_models:SmallResNet", "--weights", "nothing.pt"], "no such file"),
    (["--classifier", "missing.pt"], "no such TorchScript file"),
    (["--weights", "table1.pt"], "describe a --classifier"),
])
def test_a_black_box_that_does_not_fit_is_one_line_before_any_work(user_models, capsys, extra, message):
    torch.save(Table1Classifier(2).state_dict(), user_models / "table1.pt")
    code = main(["run", "--profile", "smoke", "--explainers", "gce", "--out", "runs/bad", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error: ") and message in err[-1], err
    assert not any("Traceback" in line or "training" in line for line in err)
    assert not (user_models / "runs").exists()
    if "table1.pt" in extra and "my_models:SmallResNet" in extra:  # both sides of the mismatch are named
        assert "unexpected keys conv1.bias" in err[-1]


def test_a_box_that_returns_probabilities_is_explained_through_its_log_probabilities(smoke_run, user_models):
    """Captum reads f's scores: the network itself for logits, log f(x) for a box that returns probabilities
    (never the probabilities taken for logits)."""
    from bench.inputs.classifier import BlackBox
    from explainers.captum_baselines import score_module

    torch.manual_seed(3)
    network = __import__("my_models").SoftmaxNet(n_classes=2)
    torch.save(network.state_dict(), user_models / "softmax.pt")
    box = BlackBox(network.eval(), 2, "probabilities")
    x = torch.rand(3, 1, 28, 28)
    assert torch.allclose(score_module(box)(x), network(x).log(), atol=1e-6)
    results = bench.run(profile="smoke", classifier="my_models:SoftmaxNet", weights="softmax.pt",
                        classifier_output="probabilities", seed=3, device="cpu",
                        explainers=["deeplift", "integrated_gradients"], out="runs/softmax")
    assert results.errors.empty and results.metadata[0]["classifier"]["output"] == "probabilities"
    assert results.frame[results.frame.metric == "removal_gap"].value.notna().all()
    randomised = results.frame[results.frame.metric == "randomisation_correlation"].value
    assert len(randomised) == 2 and randomised.notna().all()  # the randomised copies keep the box's output kind

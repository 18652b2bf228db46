"""The Captum baselines against the closed forms of a linear black box, where every method's
attribution of class t at x is known: gradient W_t, and W_t * x for the path and perturbation methods."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bench.inputs.classifier import BlackBox
from explainers.base import Capability
from explainers.registry import EXPLAINERS

METHODS = ("integrated_gradients", "saliency", "input_x_gradient", "deeplift", "gradient_shap", "occlusion", "random")


@pytest.fixture(scope="module")
def linear():
    torch.manual_seed(0)
    network = nn.Sequential(nn.Flatten(), nn.Linear(36, 3))
    box = BlackBox(network, 3)
    x = torch.rand(5, 1, 6, 6)
    target = torch.tensor([0, 1, 2, 1, 0])
    w = network[1].weight[target].view(5, 1, 6, 6)  # d score_t / dx
    return box, x, target, w


def test_every_baseline_is_registered_with_saliency_only():
    for name in METHODS:
        assert EXPLAINERS.get(name).capabilities == {Capability.SALIENCY}, name


@pytest.mark.parametrize("name, closed_form", [
    ("saliency", lambda x, w: w.abs()),
    ("input_x_gradient", lambda x, w: x * w),
    ("integrated_gradients", lambda x, w: x * w),  # exact on a linear score, zero baseline
    ("deeplift", lambda x, w: x * w),
    ("occlusion", lambda x, w: x * w),  # one pixel set to 0 lowers the score by w_j x_j
])
def test_closed_forms_on_a_linear_score(linear, name, closed_form):
    box, x, target, w = linear
    maps = EXPLAINERS.get(name)(box, {"batch_size": 2}).saliency(x, target)  # batches of 2: the batching is right
    assert maps.shape == x.shape
    assert torch.allclose(maps, closed_form(x, w), atol=1e-5)


def test_gradient_shap_is_input_times_gradient_in_expectation_and_repeatable(linear):
    box, x, target, w = linear
    explainer = EXPLAINERS.get("gradient_shap")(box, {"n_samples": 400})
    maps = explainer.saliency(x, target)
    assert torch.corrcoef(torch.stack([maps.flatten(), (x * w).flatten()]))[0, 1] > 0.95
    assert torch.equal(maps, explainer.saliency(x, target))


def test_random_map_is_repeatable_and_ignores_f(linear):
    box, x, target, _ = linear
    maps = EXPLAINERS.get("random")(box).saliency(x, target)
    assert maps.shape == x.shape and 0 <= float(maps.min()) and float(maps.max()) < 1
    assert torch.equal(maps, EXPLAINERS.get("random")(box).saliency(x, target))

"""Saliency baselines from Captum, each an explainer with the saliency capability only.

Every method attributes ``f``'s score (its logit) of the class asked for, as the GANMEX appendix
(A.3) and Captum's tutorials do; IntegratedGradients, DeepLift and Occlusion use the zero (black)
image as their baseline, GradientShap the black image with Gaussian noise. The random map is the
floor every method must beat. Images go through Captum in batches (``internal_batch_size``,
``perturbations_per_eval``), never one at a time.
"""

from __future__ import annotations

import abc
import contextlib
import warnings
from typing import Any, Iterator

import torch
from torch import nn
from captum.attr import DeepLift, GradientShap, InputXGradient, IntegratedGradients, Occlusion, Saliency

from explainers.base import Capability, Explainer
from explainers.registry import register
from explainers.training import fixed_randomness


class Scores(nn.Module):
    """``f``'s class scores (logits) as a module: the network itself when the black box exposes it
    (DeepLift needs its ReLU modules), else the log of its probabilities."""

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier.logits(x)


def score_module(classifier: nn.Module) -> nn.Module:
    """f's class scores for Captum, through the black box's declared protocol (:class:`bench.inputs.classifier.BlackBox`:
    ``n_classes``, ``forward`` = probabilities, ``logits``, ``predict``): its network itself when that returns
    logits (DeepLift needs its ReLU modules), else the log of its probabilities."""
    return classifier.network if classifier.output == "logits" else Scores(classifier)


@contextlib.contextmanager
def quiet_deeplift() -> Iterator[None]:
    """Captum's DeepLift warns on every call that it sets hooks on the nonlinearities (and removes
    them afterwards): expected here, not news."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Setting forward, backward hooks", category=UserWarning)
        yield


class CaptumSaliency(Explainer):
    """A Captum attribution of ``f``'s score of ``target``; subclasses implement ``attribute``."""

    capabilities = frozenset({Capability.SALIENCY})
    paper = "Captum (Kokhlikyan et al. 2020)"
    defaults: dict[str, Any] = {"batch_size": 100}

    @abc.abstractmethod
    def attribute(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Attributions ``(B, C, H, W)`` of ``model``'s score of ``target`` for a batch ``x``."""

    def saliency(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        x, target = x.to(self.device).detach().requires_grad_(True), target.to(self.device)
        model = score_module(self.classifier)
        bs = int(self.settings["batch_size"])
        with fixed_randomness(0, self.device):  # the sampling methods give the same map every call
            maps = [self.attribute(model, x[i:i + bs], target[i:i + bs]).detach() for i in range(0, len(x), bs)]
        return torch.cat(maps)


@register("integrated_gradients")
class IntegratedGradientsMap(CaptumSaliency):
    paper = "Sundararajan et al. 2017, via Captum; zero baseline"
    defaults = {**CaptumSaliency.defaults, "n_steps": 50, "internal_batch_size": 1000}

    def attribute(self, model, x, target):
        return IntegratedGradients(model).attribute(x, baselines=torch.zeros_like(x), target=target,
                                                    n_steps=int(self.settings["n_steps"]),
                                                    internal_batch_size=int(self.settings["internal_batch_size"]))


@register("saliency")
class GradientMap(CaptumSaliency):
    paper = "Simonyan et al. 2013, via Captum: |d score / d x|"

    def attribute(self, model, x, target):
        return Saliency(model).attribute(x, target=target, abs=True)


@register("input_x_gradient")
class InputXGradientMap(CaptumSaliency):
    paper = "Shrikumar et al. 2016, via Captum: x * d score / d x"

    def attribute(self, model, x, target):
        return InputXGradient(model).attribute(x, target=target)


@register("deeplift")
class DeepLiftMap(CaptumSaliency):
    paper = "Shrikumar et al. 2017, via Captum (Rescale rule); zero baseline"

    def attribute(self, model, x, target):
        with quiet_deeplift():
            return DeepLift(model).attribute(x, baselines=torch.zeros_like(x), target=target)


@register("gradient_shap")
class GradientShapMap(CaptumSaliency):
    paper = "Lundberg & Lee 2017, via Captum; black baseline with Gaussian noise"
    defaults = {**CaptumSaliency.defaults, "n_samples": 20, "stdevs": 0.1}

    def attribute(self, model, x, target):
        return GradientShap(model).attribute(x, baselines=torch.zeros_like(x[:1]), target=target,
                                             n_samples=int(self.settings["n_samples"]),
                                             stdevs=float(self.settings["stdevs"]))


@register("occlusion")
class OcclusionMap(CaptumSaliency):
    paper = "Zeiler & Fergus 2014, via Captum; Occlusion-1 (one pixel at a time, GANMEX A.3)"
    defaults = {**CaptumSaliency.defaults, "perturbations_per_eval": 28}  # x batch_size images per forward

    def attribute(self, model, x, target):
        return Occlusion(model).attribute(x, sliding_window_shapes=(x.shape[1], 1, 1), strides=1, baselines=0.0,
                                          target=target,
                                          perturbations_per_eval=int(self.settings["perturbations_per_eval"]))


@register("random")
class RandomMap(CaptumSaliency):
    paper = "uniform random relevance: the floor"

    def attribute(self, model, x, target):
        return torch.rand(x.shape, device=x.device)

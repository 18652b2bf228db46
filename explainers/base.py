"""The one interface every explainer implements.

An explainer explains a frozen black box ``f`` (a :class:`bench.inputs.classifier.BlackBox`:
images in, class probabilities and their gradient out). Explainers differ in
what they can produce, so they declare *capabilities*; a metric names the one
it needs and the leaderboard prints ``n/a`` where an explainer lacks it.

- ``fit``: learn from ``f`` and the training split (a VAE, a GAN...).
- ``sweep``: a path of images from ``x`` toward a target class.
- ``saliency``: a relevance map per input.
- ``latent``: ``encode`` / ``decode`` with a declared causal / noncausal split.

The registry of explainers is :mod:`explainers.registry`; what training loops share,
:mod:`explainers.training`.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable, ClassVar

import torch
from torch import nn


def check_image_shape(name: str, shape: tuple[int, ...]) -> tuple[int, int, int]:
    """The ``(C, H, W)`` an explainer's networks are sized for (from the black box's ``image_shape``).

    The generative explainers' networks halve the image twice and double it back (GCE Table 2 and its
    relatives), so H and W must be multiples of 4; tested for C in {1, 3} and H = W in {28, 32, 64}.
    """
    if len(shape) != 3 or shape[0] < 1 or shape[1] % 4 or shape[2] % 4 or min(shape[1:]) < 8:
        raise ValueError(f"{name}: images of shape {tuple(shape)} are not supported; expected (C, H, W) with "
                         "H and W multiples of 4 (at least 8)")
    return int(shape[0]), int(shape[1]), int(shape[2])


class MissingCapability(TypeError):
    """Raised when an explainer is asked for something its capabilities do not include."""


class Capability(str, Enum):
    FIT = "fit"
    SWEEP = "sweep"
    SALIENCY = "saliency"
    LATENT = "latent"


@dataclass(frozen=True)
class LatentSplit:
    """Latent coordinates ``[0, n_causal)`` are causal (GCE's alpha, SVAE's z1), the rest noncausal
    (beta, z2); the prefixes name them in results and figures."""

    n_causal: int
    n_noncausal: int
    causal_prefix: str = "alpha"
    noncausal_prefix: str = "beta"

    @property
    def n_latent(self) -> int:
        return self.n_causal + self.n_noncausal

    def names(self) -> list[str]:
        return ([f"{self.causal_prefix}{i + 1}" for i in range(self.n_causal)]
                + [f"{self.noncausal_prefix}{i + 1}" for i in range(self.n_noncausal)])


class Explainer(abc.ABC):
    """Base class: capabilities and metadata as class attributes.

    Subclasses set ``name`` (registry key), ``paper`` and ``capabilities`` and
    implement the methods of the capabilities they declare. Construction takes
    the black box, the explainer's settings (a dict from the suite profile;
    unknown keys are an error) and a device.
    """

    name: ClassVar[str]
    paper: ClassVar[str] = ""
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    #: default settings; a suite profile overrides them per suite
    defaults: ClassVar[dict[str, Any]] = {}
    #: modules (besides the explainer's own) whose source determines a fit: part of its cache key
    fit_depends: ClassVar[tuple[str, ...]] = ()
    #: explainers that differ only in how they explain share one fit (cache entry and seed) under this name
    fit_name: ClassVar[str | None] = None
    #: settings that change explanations but not the fit (left out of the fit's cache key)
    explain_settings: ClassVar[frozenset[str]] = frozenset()
    #: why the cascading-randomisation check cannot judge this explainer's maps (None: it can); a map
    #: that never calls f is detected by the check itself
    randomisation_unscorable: ClassVar[str | None] = None
    #: its networks are sized from the black box's ``image_shape`` (checked by :func:`check_image_shape`)
    sized_by_image: ClassVar[bool] = False
    #: whether its fit may train in bf16 (:func:`explainers.training.training_precision`): False where bf16
    #: measurably costs quality; the runner then fits it in float32 whatever ``--precision`` says
    bf16_fit: ClassVar[bool] = True
    #: the registered explainer a suite's variant (:func:`explainers.registry.variant`) was made from; None
    #: for a registered one
    variant_of: ClassVar[str | None] = None

    def __init__(self, classifier: nn.Module, settings: dict[str, Any] | None = None,
                 device: torch.device | str = "cpu") -> None:
        settings = dict(settings or {})
        unknown = sorted(set(settings) - set(self.defaults))
        if unknown:
            raise ValueError(f"{self.name}: unknown setting(s) {', '.join(unknown)}; "
                             f"known: {', '.join(sorted(self.defaults))}")
        self.settings = {**self.defaults, **settings}
        self.classifier = classifier
        self.device = torch.device(device)

    @classmethod
    def fit_identity(cls) -> str:
        return cls.fit_name or cls.name

    def fit_settings(self) -> dict[str, Any]:
        return {k: v for k, v in self.settings.items() if k not in self.explain_settings}

    def supports(self, capability: Capability | str) -> bool:
        return Capability(capability) in self.capabilities

    # -- fit --------------------------------------------------------------------------------
    def fit(self, train_images: torch.Tensor, *, generator: torch.Generator, log: Callable[[str], None]) -> dict:
        """Learn from the (unlabelled) training images and ``f``; returns a small record."""
        return {}

    #: the attributes holding its networks: their state is the fit's (for the cache), restored in eval mode
    state_modules: ClassVar[tuple[str, ...]] = ()

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to restore a fitted explainer (for the cache): by default the state of every
        network named in ``state_modules``; an explainer with more (a tensor, a pool) extends this."""
        return {name: getattr(self, name).state_dict() for name in self.state_modules}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in self.state_modules:
            getattr(self, name).load_state_dict(state[name])
            getattr(self, name).eval()

    # -- sweep ------------------------------------------------------------------------------
    def sweep(self, x: torch.Tensor, target: torch.Tensor, n_steps: int) -> torch.Tensor:
        """Images ``(N, n_steps, C, H, W)`` from (a reconstruction of) ``x`` toward class ``target`` ``(N,)``."""
        raise MissingCapability(f"{self.name} has no sweep capability")

    def sweep_targets(self, pred: torch.Tensor, n_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The (query index, target class) pairs this explainer sweeps, given f's predictions ``pred``
        ``(N,)``: by default every class f does not predict, for every query. An explainer of one class
        against the rest narrows this (the exaggeration cGAN on more than two classes)."""
        return counterfactual_targets(pred, n_classes)

    # -- saliency ---------------------------------------------------------------------------
    def saliency(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Relevance maps ``(N, C, H, W)``, larger = more relevant, for class ``target`` ``(N,)``."""
        raise MissingCapability(f"{self.name} has no saliency capability")

    # -- latent -----------------------------------------------------------------------------
    latent_split: LatentSplit | None = None

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Posterior means ``(N, n_latent)`` (not samples: explanations must not be noisy)."""
        raise MissingCapability(f"{self.name} has no latent capability")

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Images ``(N, C, H, W)`` from latents ``(N, n_latent)``."""
        raise MissingCapability(f"{self.name} has no latent capability")

    def sweep_factor(self, x: torch.Tensor, factor: int, offsets: torch.Tensor) -> torch.Tensor:
        """Move latent coordinate ``factor`` of each encoded ``x`` by ``offsets`` ``(S,)`` around its own
        value, the others kept: ``(N, S, C, H, W)``, the latent sweeps of GCE Fig. 3/4. The papers move a
        factor around the query's code (the reproducibility study writes [alpha - 3, alpha + 3]), so an
        offset of 0 is x's reconstruction."""
        z = self.encode(x)  # (N, D)
        zs = z.unsqueeze(1).repeat(1, len(offsets), 1)  # (N, S, D)
        zs[:, :, factor] += offsets.to(z)
        return self.decode(zs.flatten(0, 1)).unflatten(0, zs.shape[:2])


def counterfactual_targets(pred: torch.Tensor, n_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(query index, target) pairs: every class f does not predict (``pred`` ``(N,)``), for every query."""
    index = torch.arange(len(pred)).repeat_interleave(n_classes)
    target = torch.arange(n_classes).repeat(len(pred))
    keep = target != pred.cpu()[index]
    return index[keep], target[keep]

"""The one interface every explainer implements, and the registry of explainers.

An explainer explains a frozen black box ``f`` (a :class:`bench.inputs.classifier.BlackBox`:
images in, class probabilities and their gradient out). Explainers differ in
what they can produce, so they declare *capabilities*; a metric names the one
it needs and the leaderboard prints ``n/a`` where an explainer lacks it.

- ``fit``: learn from ``f`` and the training split (a VAE, a GAN...).
- ``sweep``: a path of images from ``x`` toward a target class.
- ``saliency``: a relevance map per input.
- ``latent``: ``encode`` / ``decode`` with a declared causal / noncausal split.
"""

from __future__ import annotations

import abc
import contextlib
import contextvars
import difflib
import hashlib
import importlib
import importlib.util
import pkgutil
import sys
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Iterator

import numpy as np
import torch
from torch import nn


# Errors here are the standard ones (ValueError for a bad setting or name, LookupError for an unknown one,
# ImportError / FileNotFoundError for a plugin); the runner and the command line turn them into one-line errors.


def did_you_mean(kind: str, name: str, known: Iterable[str]) -> str:
    """``unknown <kind> 'x'; did you mean 'y'?`` (or the known names when nothing is close)."""
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}"
    return f"unknown {kind} {name!r}; {hint}"


class UnknownName(LookupError):
    """A name no registry holds; ``str()`` is the whole message (KeyError's would quote it)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


_STEPS: contextvars.ContextVar[Callable[[Iterable], Iterable] | None] = contextvars.ContextVar("steps", default=None)


@contextlib.contextmanager
def training_progress(wrap: Callable[[Iterable], Iterable]) -> Iterator[None]:
    """Inside the block, training loops (:func:`minibatches`) iterate over ``wrap(steps)``: the runner's
    progress bar, say. Outside, over the steps as they are."""
    token = _STEPS.set(wrap)
    try:
        yield
    finally:
        _STEPS.reset(token)


#: numeric precisions a fit's forward passes can run in (:func:`training_precision`)
PRECISIONS = ("fp32", "bf16")
_PRECISION: contextvars.ContextVar[str] = contextvars.ContextVar("precision", default="fp32")


@contextlib.contextmanager
def training_precision(precision: str) -> Iterator[None]:
    """Inside the block, fits run their forward passes in ``precision``: ``"bf16"`` under bfloat16 autocast
    (convolutions and matrix products in bf16; weights, gradients and optimiser state stay float32),
    ``"fp32"`` as written. Outside, fp32. CPU autocast leaves softmax, logs, exponentials and reductions in
    the dtype they are given, so every network output a loss, a log or a bin index is computed from is
    brought back to float32 first (:func:`float32`; the black box's outputs, ``bench.inputs.classifier``), and
    the losses of a bf16 fit are float32 arithmetic on bf16-computed activations.

    Explanations and metrics always run in float32; only training is affected. Where a CPU multiplies
    bf16 natively (AVX-512 BF16 or AMX), the fits run 1.4-7x faster (issue 15's note); elsewhere bf16 is
    emulated and slower, so the runner asks for it only where it is native (``bench.execute.runtime``).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    token = _PRECISION.set(precision)
    try:
        yield
    finally:
        _PRECISION.reset(token)


def float32(t: torch.Tensor) -> torch.Tensor:
    """``t`` in float32 where autocast left it in a half type: a network output that a loss, a log, a
    sigmoid or a comparison follows (a bf16 sigmoid rounds to exactly 1 above about 6.5, and bins computed
    from bf16 probabilities move). A no-op on float32 (and on float64), so float32 fits are unchanged."""
    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """What a training loop wraps each step's forward passes and losses in (not ``backward``, not the
    optimiser step): bf16 autocast inside ``training_precision("bf16")``, nothing otherwise."""
    if _PRECISION.get() == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def fixed_randomness(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's and NumPy's global generators for the block, then restore them.

    For library code that draws from the global generators (Captum's GradientShap draws its
    interpolation points from NumPy, its noise from torch): the same call gives the same map,
    and the caller's random streams are left as they were.
    """
    state = np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            np.random.seed(seed)
            yield
    finally:
        np.random.set_state(state)


def minibatches(n: int, batch_size: int, steps: int, generator: torch.Generator
                ) -> Iterator[tuple[int, torch.Tensor]]:
    """``(step, indices)`` for steps 1..``steps``: ``batch_size`` training indices each, from a fresh
    permutation every epoch (drawn from ``generator`` when needed; an epoch's incomplete tail is dropped)."""
    order, pos = torch.randperm(n, generator=generator), 0
    wrap = _STEPS.get()
    for step in (wrap or iter)(range(1, steps + 1)):  # a bar on a terminal when the runner asks for one
        if pos + batch_size > n:
            order, pos = torch.randperm(n, generator=generator), 0
        yield step, order[pos:pos + batch_size]
        pos += batch_size


def check_image_shape(name: str, shape: tuple[int, ...]) -> tuple[int, int, int]:
    """The ``(C, H, W)`` an explainer's networks are sized for (from the black box's ``image_shape``).

    The generative explainers' networks halve the image twice and double it back (GCE Table 2 and its
    relatives), so H and W must be multiples of 4; tested for C in {1, 3} and H = W in {28, 32, 64}.
    """
    if len(shape) != 3 or shape[0] < 1 or shape[1] % 4 or shape[2] % 4 or min(shape[1:]) < 8:
        raise ValueError(f"{name}: images of shape {tuple(shape)} are not supported; expected (C, H, W) with "
                         "H and W multiples of 4 (at least 8)")
    return int(shape[0]), int(shape[1]), int(shape[2])


class LossHistory:
    """A training loop's bookkeeping, the same for every explainer: each step's loss terms, a progress line
    every ``every`` seconds and at the last step (the mean of the last 50 steps), and the fit's record (the
    mean of each term over the last 100 steps, ``final_<term>``, and the number of steps).

    ``labels``: term -> (name in the progress line, format), in the line's order.
    """

    def __init__(self, name: str, steps: int, log: Callable[[str], None], labels: dict[str, tuple[str, str]],
                 every: float = 10.0) -> None:
        self.name, self.steps, self.log, self.labels, self.every = name, steps, log, labels, every
        self.history: list[dict[str, float]] = []
        self.start = self.last = time.perf_counter()

    def add(self, step: int, **terms: float) -> None:
        self.history.append(terms)
        now = time.perf_counter()
        if step == self.steps or now - self.last > self.every:
            self.last = now
            recent = self.history[-50:]
            means = "  ".join(f"{label} {sum(h[k] for h in recent) / len(recent):{fmt}}"
                              for k, (label, fmt) in self.labels.items())
            self.log(f"[{self.name}] step {step}/{self.steps}  {means}  ({now - self.start:.0f}s)")

    def record(self) -> dict[str, float]:
        tail = self.history[-100:]
        return {**{f"final_{k}": sum(h[k] for h in tail) / len(tail) for k in self.history[-1]}, "steps": self.steps}


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
    #: whether its fit may train in bf16 (:func:`training_precision`): False where bf16 measurably costs
    #: quality; the runner then fits it in float32 whatever ``--precision`` says
    bf16_fit: ClassVar[bool] = True
    #: the registered explainer a suite's variant (:func:`variant`) was made from; None for a registered one
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


class Registry:
    """Name -> class, with "did you mean" on a miss.

    Rejects duplicate names and classes of the wrong base (torch-fidelity's
    registry; lm-eval's ``api/registry.py``). Entries register themselves with
    a decorator; the modules of ``discover`` (a package) are imported on first
    use, so a new explainer is one new file and ``python -m bench --help``
    imports none of them.
    """

    def __init__(self, kind: str, base: type, discover: str | None = None,
                 entry_points: str | None = None) -> None:
        self.kind, self.base, self.discover, self.entry_points = kind, base, discover, entry_points
        self._entries: dict[str, type] = {}
        self._origins: dict[str, str] = {}
        self._discovered = discover is None and entry_points is None
        self._loading: str | None = None  # the plugin being imported, named as the origin of what it registers

    def register(self, name: str, cls: type) -> None:
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise TypeError(f"{self.kind} {name!r} must be a subclass of {self.base.__name__}")
        origin = self._loading or ("built-in" if cls.__module__.startswith(f"{self.discover}.") else cls.__module__)
        if name in self._entries:
            if self._entries[name] is cls:
                return  # the same class again (a module imported twice): nothing to do
            raise ValueError(f"{self.kind} {name!r} from {origin} clashes with the one from "
                             f"{self._origins[name]}: rename one of them")
        self._entries[name] = cls
        self._origins[name] = origin

    def origin(self, name: str) -> str:
        """Where ``name`` comes from: ``built-in``, a plugin file or module, or an installed entry point."""
        cls = self.get(name)
        return self._origins.get(name, cls.__module__)

    def _discover(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        if self.discover:
            package = importlib.import_module(self.discover)
            for info in pkgutil.iter_modules(package.__path__):
                if not info.name.startswith("_"):
                    importlib.import_module(f"{self.discover}.{info.name}")
        if self.entry_points:  # installed packages: [project.entry-points."genexbench.explainers"] name = "mod:Class"
            from importlib.metadata import entry_points

            for point in entry_points(group=self.entry_points):
                label = f"entry point {point.name} = {point.value} ({point.dist.name if point.dist else '?'})"
                with self._plugin(label):
                    try:
                        loaded = point.load()
                    except Exception as exc:
                        raise ImportError(f"{label} does not load: {type(exc).__name__}: {exc}") from None
                    if isinstance(loaded, type) and loaded not in self._entries.values():
                        if issubclass(loaded, self.base):
                            loaded.name = point.name  # as @register(name) would set it
                        self.register(point.name, loaded)

    @contextlib.contextmanager
    def _plugin(self, label: str) -> Iterator[None]:
        previous, self._loading = self._loading, label
        try:
            yield
        finally:
            self._loading = previous

    def load_plugin(self, spec: str) -> None:
        """Import a plugin: a ``.py`` file (``--plugin path/to/mine.py``) or an importable module
        (``--plugin pkg.module``), whose ``@register`` decorators add its explainers. Loading the same file
        or module twice registers nothing twice. FileNotFoundError for a missing file, ImportError for a
        module that does not import, ValueError for a name another explainer has; one line each."""
        self._discover()
        path = Path(spec)
        with self._plugin(spec):
            if spec.endswith(".py"):
                if not path.is_file():
                    raise FileNotFoundError(f"--plugin {spec!r}: no such file")
                module_name = "genexbench_plugin_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
                if module_name in sys.modules:
                    return
                loader_spec = importlib.util.spec_from_file_location(module_name, path)
                module = importlib.util.module_from_spec(loader_spec)
                sys.modules[module_name] = module  # inspect.getsource (a fit's cache key) finds it there
                try:
                    loader_spec.loader.exec_module(module)
                except ValueError as exc:  # a clash of names, raised by register
                    del sys.modules[module_name]
                    if "clashes" in str(exc):
                        raise
                    raise ImportError(f"--plugin {spec!r} failed to import: {type(exc).__name__}: {exc}") from None
                except Exception as exc:
                    del sys.modules[module_name]
                    raise ImportError(f"--plugin {spec!r} failed to import: {type(exc).__name__}: {exc}") from None
            else:
                try:
                    importlib.import_module(spec)
                except ImportError as exc:
                    raise ImportError(f"--plugin {spec!r}: cannot import it ({exc})") from None

    def names(self) -> list[str]:
        self._discover()
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        self._discover()
        return name in self._entries

    def get(self, name: str) -> type:
        self._discover()
        if name not in self._entries:
            raise UnknownName(did_you_mean(self.kind, name, self._entries))
        return self._entries[name]


EXPLAINERS = Registry("explainer", Explainer, discover="explainers", entry_points="genexbench.explainers")


def variant(base: type[Explainer], name: str, settings: dict[str, Any], note: str = "") -> type[Explainer]:
    """An explainer ``name`` that is ``base`` with other default ``settings`` (a suite file's ``[variants]``:
    the GANMEX loss ablations of colored-mnist, say). It shares ``base``'s fit identity, so its fit starts
    from the same seed as the base's (an ablation differs in the settings alone), and its fit's cache key
    holds its settings. Not registered: it exists in the suite that declares it. ValueError for a setting
    ``base`` does not have."""
    unknown = sorted(set(settings) - set(base.defaults))
    if unknown:
        raise ValueError(f"variant {name} of {base.name}: unknown setting(s) {', '.join(unknown)}; known: "
                         f"{', '.join(sorted(base.defaults))}")
    described = note or ", ".join(f"{k}={v}" for k, v in settings.items())
    return type(f"{base.__name__}_{name}", (base,), {
        "name": name, "defaults": {**base.defaults, **settings}, "fit_name": base.fit_identity(),
        "__module__": base.__module__, "variant_of": base.name,
        "paper": f"{base.paper} [variant of {base.name}: {described}]"})


def register(name: str) -> Callable[[type], type]:
    """Class decorator: ``@register("gce")`` sets ``cls.name`` and registers the class."""

    def wrap(cls: type) -> type:
        cls.name = name
        EXPLAINERS.register(name, cls)
        return cls

    return wrap

"""A black box the user brings: ``--classifier module:callable`` or a TorchScript file, ``--weights``.

Everything here runs before any training: an import path that does not resolve, a callable that does not
return an ``nn.Module``, weights that do not fit the architecture, outputs that are not ``(N, M)`` on the
suite's images, "probabilities" that do not sum to 1 are each one :class:`~bench.errors.BenchError` line.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from bench.errors import BenchError
from bench.options import choices

OUTPUTS = choices("classifier_output")  # what a black box returns (--classifier-output, [black_box] output)


@dataclass(frozen=True)
class UserClassifier:
    """What the user named: ``source`` an import path ``module:callable`` (a module importable from the
    working directory, or installed) or a TorchScript file; ``weights`` a state_dict file, or None to train
    the architecture with the suite's recipe; ``output`` what the module returns."""

    source: str
    weights: str | None = None
    output: str = "logits"
    named_in: str = "--classifier"  # where the user named it, for the errors: the option or a suite file's table

    @property
    def weights_option(self) -> str:
        return "--weights" if self.named_in == "--classifier" else self.named_in.replace(" classifier", " weights")

    @property
    def torchscript(self) -> bool:
        return ":" not in self.source and Path(self.source).suffix in (".pt", ".pth", ".ts")


def weights_sha256(network: nn.Module) -> str:
    """SHA-256 of a module's state (names, dtypes, shapes and values, in name order): the black box's identity
    in every cache key below it, so a changed black box can never meet a fit made for another."""
    digest = hashlib.sha256()
    for name, tensor in sorted(network.state_dict().items()):
        shape = tensor.shape
        tensor = tensor.detach().cpu().contiguous().reshape(-1)  # 0-d tensors (a BatchNorm counter) too
        digest.update(f"{name}|{tensor.dtype}|{tuple(shape)}|".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def _resolve_callable(source: str, what: str = "--classifier") -> tuple[Callable, str]:
    """The callable an import path names, and the SHA-256 of its module's source (the architecture's code).
    ``what`` names the option or key in the one-line errors."""
    module_name, _, attribute = source.partition(":")
    if not module_name or not attribute:
        raise BenchError(f"{what} {source!r}: expected module:callable (e.g. my_models:SmallResNet)"
                         + (" or a TorchScript file (.pt)" if what.endswith("classifier") else ""))
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # "a module importable from the working directory"
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BenchError(f"{what} {source!r}: cannot import {module_name!r} ({exc})") from None
    target = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise BenchError(f"{what} {source!r}: module {module_name!r} has no {attribute!r}")
        target = getattr(target, part)
    if not callable(target):
        raise BenchError(f"{what} {source!r}: {attribute!r} is not callable")
    try:
        code = hashlib.sha256(inspect.getsource(module).encode()).hexdigest()
    except (OSError, TypeError):
        code = "unknown"
    return target, code


def resolve(source: str, what: str) -> Callable:
    """The callable ``module:callable`` names (a suite's dataset function), with one-line errors."""
    return _resolve_callable(source, what)[0]


def identity(spec: UserClassifier) -> dict:
    """What identifies the user's architecture, without building it: the import path or file, and the
    SHA-256 of its code (the module's source, or the TorchScript file)."""
    if spec.torchscript:
        path = Path(spec.source)
        if not path.is_file():
            raise BenchError(f"{spec.named_in} {spec.source!r}: no such TorchScript file")
        code = hashlib.sha256(path.read_bytes()).hexdigest()
        return {"kind": "torchscript", "source": str(path), "code_sha256": code}
    return {"kind": "import", "source": spec.source, "code_sha256": _resolve_callable(spec.source, spec.named_in)[1]}


def build(spec: UserClassifier, n_classes: int) -> nn.Module:
    """A fresh module of the user's architecture (its initial weights drawn from torch's global generator)."""
    if spec.output not in OUTPUTS:
        raise BenchError(f"--classifier-output {spec.output!r}: expected one of {', '.join(OUTPUTS)}")
    if spec.torchscript:
        identity(spec)  # the file exists
        try:
            return torch.jit.load(spec.source, map_location="cpu")
        except Exception as exc:  # torch raises RuntimeError or ValueError for a file that is not TorchScript
            raise BenchError(f"{spec.named_in} {spec.source!r}: not a TorchScript file ({type(exc).__name__})") from None
    factory, _ = _resolve_callable(spec.source, spec.named_in)
    try:
        accepts = "n_classes" in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        accepts = False
    try:
        network = factory(n_classes=n_classes) if accepts else factory()
    except Exception as exc:
        raise BenchError(f"{spec.named_in} {spec.source!r}: calling it failed ({type(exc).__name__}: {exc})") from None
    if not isinstance(network, nn.Module):
        raise BenchError(f"{spec.named_in} {spec.source!r} returned {type(network).__name__}, not a torch.nn.Module")
    return network


def load_weights(network: nn.Module, spec: UserClassifier) -> None:
    """Load ``spec.weights`` (a state_dict, ``weights_only=True``) into ``network``, strictly."""
    path = Path(spec.weights)
    if not path.is_file():
        raise BenchError(f"{spec.weights_option} {spec.weights!r}: no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise BenchError(f"{spec.weights_option} {spec.weights!r}: not a loadable state_dict ({type(exc).__name__})") from None
    if isinstance(state, nn.Module) or not isinstance(state, dict):
        raise BenchError(f"{spec.weights_option} {spec.weights!r}: expected a state_dict (a dict of tensors), "
                         f"got {type(state).__name__}")
    own = network.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unexpected:
        raise BenchError(f"{spec.weights_option} {spec.weights!r} do not fit {spec.source}: missing keys "
                         f"{_names(missing)}; unexpected keys {_names(unexpected)}")
    shapes = [k for k in own if tuple(own[k].shape) != tuple(state[k].shape)]
    if shapes:
        k = shapes[0]
        raise BenchError(f"{spec.weights_option} {spec.weights!r} do not fit {spec.source}: {k} has shape "
                         f"{tuple(state[k].shape)}, the architecture {tuple(own[k].shape)}"
                         + (f" (and {len(shapes) - 1} more)" if len(shapes) > 1 else ""))
    network.load_state_dict(state)


def _names(keys: list[str], n: int = 4) -> str:
    return "none" if not keys else ", ".join(keys[:n]) + (f" (+{len(keys) - n} more)" if len(keys) > n else "")


@torch.no_grad()
def check_outputs(network: nn.Module, spec: UserClassifier, images: torch.Tensor, n_classes: int) -> None:
    """The module maps a batch of the suite's images ``(N, C, H, W)`` to ``(N, M)``; "probabilities" sum to 1."""
    was_training = network.training
    network.eval()
    try:
        out = network(images)
    except Exception as exc:
        raise BenchError(f"{spec.named_in} {spec.source}: failed on a batch of the suite's images "
                         f"{tuple(images.shape)} ({type(exc).__name__}: {exc})") from None
    finally:
        network.train(was_training)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (len(images), n_classes):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise BenchError(f"{spec.named_in} {spec.source}: output {shape} on images {tuple(images.shape)}; expected "
                         f"({len(images)}, {n_classes}), one column per class of the suite")
    if spec.output == "probabilities":
        sums = out.sum(1)
        if (out < 0).any() or not torch.allclose(sums, torch.ones_like(sums), atol=1e-3):
            raise BenchError(f"{spec.named_in} {spec.source}: --classifier-output probabilities, but its rows sum to "
                             f"{float(sums.min()):.4g}..{float(sums.max()):.4g} (logits? leave the flag at logits)")

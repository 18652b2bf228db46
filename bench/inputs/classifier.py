"""The black-box classifier under test: GCE Table 1, its training, its cache.

Explainers only ever see a :class:`BlackBox`: "images in, class probabilities
(and their gradient) out". The network is frozen and kept in eval mode, so no
dropout is active while it is being explained (the authors' GCE code left it
in training mode inside the information-flow estimator).
"""

from __future__ import annotations

import logging
import time
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import torch
from torch import nn
import torch.nn.functional as F

from bench.inputs.images import Split
from bench.progress import log_to, track
from bench.store import cache_root, cached as cached_entry, source_hash, stable_hash
from explainers.training import float32

if TYPE_CHECKING:
    from bench.inputs.blackbox import UserClassifier


class Table1Classifier(nn.Module):
    """GCE Table 1 (App. E.1): two 3x3 convs (32, 64), max-pool, dropout, FC 128, FC M.

    ``forward`` returns logits ``(N, M)``; the softmax of the table is applied
    by :class:`BlackBox`. Every nonlinearity is its own module, as Captum's
    DeepLift rules need (they replace the gradient of ``nn.ReLU`` /
    ``nn.MaxPool2d`` modules, not of ``F.relu`` calls).
    """

    def __init__(self, n_classes: int, image_shape: tuple[int, int, int] = (1, 28, 28)) -> None:
        super().__init__()
        c, h, w = image_shape  # the table's 28x28 grey images; any (C, H, W) the convs fit (sizes for 28x28)
        self.conv1 = nn.Conv2d(c, 32, 3)  # (N, 32, 26, 26)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(32, 64, 3)  # (N, 64, 24, 24)
        self.relu2 = nn.ReLU()
        self.pool = nn.MaxPool2d(2)  # (N, 64, 12, 12)
        self.drop1 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(64 * ((h - 4) // 2) * ((w - 4) // 2), 128)
        self.relu3 = nn.ReLU()
        self.drop2 = nn.Dropout(0.5)
        self.fc2 = nn.Linear(128, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.conv1(x))
        x = self.pool(self.relu2(self.conv2(x)))
        x = self.drop1(x).flatten(1)
        x = self.drop2(self.relu3(self.fc1(x)))
        return self.fc2(x)


class BlackBox(nn.Module):
    """A frozen classifier seen as class probabilities: ``(N, C, H, W) -> (N, M)``.

    Gradients flow to the *input* (explainers train through it) but never to
    its parameters. The protocol explainers rely on: ``n_classes``, ``image_shape`` (the ``(C, H, W)``
    of the images it classifies: explainers size their networks from it), ``forward`` (probabilities),
    ``logits`` and ``predict`` (labels).
    """

    def __init__(self, network: nn.Module, n_classes: int, output: str = "logits",
                 image_shape: tuple[int, int, int] = (1, 28, 28)) -> None:
        super().__init__()
        self.network = network.eval()
        self.n_classes = n_classes
        self.image_shape = tuple(int(d) for d in image_shape)
        self.output = output  # what ``network`` returns: "logits" or "probabilities"
        self._predicted: list = []  # (weak reference to an input, its version, f's labels): see predict
        for p in self.network.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True) -> "BlackBox":  # always eval: no dropout while explained
        return super().train(False)

    @torch.no_grad()
    def use_channels_last(self, example: torch.Tensor) -> bool:
        """Store the network's conv weights channels-last when that leaves its outputs unchanged.

        oneDNN's channels-last convolutions make the GCE Table 1 network about
        1.5x faster on CPU (tests/benchmarks); a network whose ``forward``
        needs contiguous NCHW activations (``x.view`` after a conv) keeps its
        layout. ``example``: a few real inputs ``(N, C, H, W)``.
        """
        if example.dim() != 4:
            return False
        before = self.network(example)
        self.network.to(memory_format=torch.channels_last)
        try:
            same = torch.allclose(self.network(example), before, rtol=1e-4, atol=1e-5)
        except RuntimeError:
            same = False
        if not same:
            self.network.to(memory_format=torch.contiguous_format)
        return same

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (log-probabilities, up to a constant per row, when the network returns probabilities)."""
        out = float32(self.network(x))  # float32 under a bf16 fit's autocast too (explainers.training.float32)
        return out if self.output == "logits" else out.clamp_min(1e-12).log()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = float32(self.network(x))
        return torch.softmax(out, dim=-1) if self.output == "logits" else out

    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        """Predicted labels ``(N,)`` on the CPU, batched.

        Remembered for the last few tensors asked about (the very same tensor object, unmodified since:
        a weak reference and torch's version counter), so the explainers that each learn from f's labels
        of the training set (SVAE, GANMEX, pixel_blend) share one pass over it instead of three.
        """
        memo = self._predicted
        for ref, version, labels in memo:
            if ref() is x and x._version == version:
                return labels.clone()
        device = next(self.network.parameters()).device
        labels = torch.cat([self.network(x[i:i + batch_size].to(device)).argmax(-1).cpu()
                            for i in range(0, len(x), batch_size)])
        memo.append((weakref.ref(x), x._version, labels))
        del memo[:-4]
        return labels.clone()

    def accuracy(self, split: Split) -> float:
        return float((self.predict(split.images) == split.labels).float().mean())


@dataclass(frozen=True)
class ClassifierConfig:
    """GCE App. E.1: batch 64, SGD momentum 0.5, lr 0.1, step decay 0.7 per epoch."""

    epochs: int
    batch_size: int = 64
    lr: float = 0.1
    momentum: float = 0.5
    lr_decay: float = 0.7


def train_classifier(train: Split, n_classes: int, config: ClassifierConfig, *, seed: int,
                     device: torch.device, log=log_to("bench.inputs.classifier"),
                     build: Callable[[], nn.Module] | None = None, output: str = "logits") -> nn.Module:
    """Train ``build()`` (default GCE Table 1) with the recipe ``config``, its initial weights drawn after
    seeding torch with ``seed``. ``output``: what the network returns (the loss reads logits or
    log-probabilities accordingly)."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = (build() if build else Table1Classifier(n_classes, tuple(train.images.shape[1:]))).to(device)
    loss_of = (lambda out, y: F.cross_entropy(out, y)) if output == "logits" else \
        (lambda out, y: F.nll_loss(out.clamp_min(1e-12).log(), y))
    opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=config.lr_decay)
    n = len(train)
    for epoch in range(config.epochs):
        model.train()
        order = torch.randperm(n, generator=gen)
        total, start = 0.0, time.perf_counter()
        for i in track(range(0, n, config.batch_size), unit="batch"):
            idx = order[i:i + config.batch_size]
            x, y = train.images[idx].to(device), train.labels[idx].to(device)
            loss = loss_of(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        sched.step()
        log(f"[classifier] epoch {epoch + 1}/{config.epochs}  loss {total / n:.4f}  "
            f"({time.perf_counter() - start:.1f}s)")
    return model.eval()


def cached_classifier(*, suite_key: dict, train: Split, val: Split, test: Split, n_classes: int,
                      config: ClassifierConfig, seed: int, device: torch.device,
                      log=log_to("bench.inputs.classifier"), cache: bool = True,
                      user: "UserClassifier | None" = None) -> tuple[BlackBox, dict]:
    """The suite's black box and a record of it (name, weights hash, parameter count, accuracies, fit time,
    whether it came from the cache).

    Without ``user``: GCE Table 1 trained with the recipe ``config``, cached by everything that determines
    it. With ``user`` and its weights: the user's module with those weights, nothing trained. With ``user``
    and no weights: the user's architecture trained with the same recipe and cached, keyed by its import
    path and the hash of its code. ``cache=False`` neither reads nor writes the cache.
    """
    from bench.inputs import blackbox

    output = user.output if user else "logits"
    image_shape = tuple(train.images.shape[1:])
    build = lambda: Table1Classifier(n_classes, image_shape)  # noqa: E731
    identity = {"name": "gce-table1", "architecture": "GCE Table 1"}
    if user is not None:
        made = blackbox.identity(user)
        identity = {"name": user.source, "architecture": made["kind"], "code_sha256": made["code_sha256"]}
        build = lambda: blackbox.build(user, n_classes)  # noqa: E731
    fit_seconds, cached, key = 0.0, False, None
    if user is not None and user.weights:
        network = build()
        blackbox.load_weights(network, user)
        identity["weights_file"] = str(user.weights)
    else:
        key = stable_hash({"model": identity["name"], "code": identity.get("code_sha256"), "suite": suite_key,
                           "config": config.__dict__, "seed": seed, "output": output,
                           "source": source_hash(__name__)})
        kind = "classifier" if user is None else "classifier-user"
        path = cache_root() / "models" / f"{kind}-{key}.pt"

        def restore(payload: dict) -> nn.Module:
            network = build()
            network.load_state_dict(payload["state_dict"])
            return network

        def fit() -> tuple[nn.Module, dict]:
            log(f"[classifier] training {'GCE Table 1 classifier' if user is None else user.source} "
                f"({config.epochs} epochs, {len(train)} images)")
            start = time.perf_counter()
            network = train_classifier(train, n_classes, config, seed=seed, device=device, log=log, build=build,
                                       output=output)
            return network, {"state_dict": {k: v.cpu() for k, v in network.state_dict().items()},
                             "fit_seconds": time.perf_counter() - start}

        network, payload, cached = cached_entry(path, key, restore=restore, build=fit, code=(__name__,), cache=cache,
                                                log=log)
        fit_seconds = payload["fit_seconds"]
        identity["trained_by"] = "the suite's recipe"
    box = BlackBox(network.to(device), n_classes, output, image_shape)
    weights = blackbox.weights_sha256(network)  # before any change of memory layout
    channels_last = box.use_channels_last(val.images[:8].to(device))
    record = {**identity, "weights_sha256": weights, "parameters": sum(p.numel() for p in network.parameters()),
              "output": output, "cache_key": key, "cached": cached, "fit_seconds": round(fit_seconds, 3),
              "channels_last": channels_last, "val_accuracy": box.accuracy(val), "test_accuracy": box.accuracy(test)}
    if user is None or not user.weights:
        record["epochs"] = config.epochs
    chance = 1.0 / n_classes
    if record["test_accuracy"] < chance + 0.1 * (1 - chance):  # within a tenth of the way from chance to perfect
        record["warning"] = (f"test accuracy {record['test_accuracy']:.3f} is near chance ({chance:.3f}): "
                             "the explanations are of a black box that barely classifies")
        logging.getLogger("bench.inputs.classifier").warning(f"[classifier] {record['warning']}")
    return box, record

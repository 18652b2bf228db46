"""The feature extractor FID uses: a :class:`metrics.fid.FeatureNet` the suite trains and caches.

It is trained on *every* class of the suite's dataset (all ten MNIST digits for
the 3-vs-8 suite), with a fixed seed whatever the run's seed, so FID values of
different runs and seeds share one extractor. Or, when asked for and its
weights are on disk, pytorch-fid's Inception.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Callable

import torch
import torch.nn.functional as F

from bench.inputs.data import dataset_label, load_dataset
from bench.inputs.images import Split
from bench.errors import unknown_name, user_errors
from bench.progress import track
from bench.store import cache_root, cached, sha256_file, source_hash, stable_hash
from metrics.fid import FeatureNet, InceptionFeatures

FEATURE_SEED = 0  # fixed: the extractor is part of the metric's definition, not of a run
EPOCHS = 2  # the default; a profile may ask for fewer (``Profile.feature_epochs``)


def train_feature_net(images: torch.Tensor, labels: torch.Tensor, *, epochs: int, device: torch.device,
                      log: Callable[[str], None], n_classes: int | None = None) -> FeatureNet:
    gen = torch.Generator().manual_seed(FEATURE_SEED)
    torch.manual_seed(FEATURE_SEED)
    net = FeatureNet(n_classes or int(labels.max()) + 1, tuple(images.shape[1:])).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    n, batch = len(images), 128
    for epoch in range(epochs):
        net.train()
        order, total, start = torch.randperm(n, generator=gen), 0.0, time.perf_counter()
        for i in track(range(0, n, batch), unit="batch"):
            idx = order[i:i + batch]
            loss = F.cross_entropy(net(images[idx].to(device)), labels[idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        log(f"[features] epoch {epoch + 1}/{epochs}  loss {total / n:.4f}  ({time.perf_counter() - start:.1f}s)")
    return net.eval()


def cached_feature_net(dataset: str, *, data_root: str | None, device: torch.device,
                       log: Callable[[str], None], epochs: int = EPOCHS, images: int | None = None,
                       cache: bool = True, channels: int | None = None) -> tuple[FeatureNet, dict]:
    """The suite dataset's feature network, trained on every class of the dataset (not only the suite's),
    once, cached unless ``cache=False``; and a record naming it. ``images``: train on the first ``images``
    training images only (None: all). ``channels``: as the suite's (image folders)."""
    data = load_dataset(dataset, None, data_root=data_root, channels=channels)
    classes = tuple(data.classes)
    if data.truth is not None:  # a ground-truth suite: its judge classifies the content (digits), not f's labels
        classes = data.truth.digit_classes
        data = replace(data, **{s: Split(getattr(data, s).images, data.truth.splits[s]["digit"])
                                for s in ("train", "val", "test")})
    train = data.train if images is None else Split(data.train.images[:images], data.train.labels[:images])
    identity = {"model": "featurenet", "dataset": dataset, "data": data.checksum, "classes": classes,
                "epochs": epochs, "seed": FEATURE_SEED, "source": source_hash(__name__, "metrics.fid")}
    key = stable_hash(identity if images is None else {**identity, "images": images})
    path = cache_root() / "models" / f"featurenet-{key}.pt"

    def restore(payload: dict) -> FeatureNet:
        net = FeatureNet(len(classes), data.image_shape)
        net.load_state_dict(payload["state_dict"])
        return net.to(device).eval()

    def build() -> tuple[FeatureNet, dict]:
        log(f"[features] training the FID feature network on all {len(classes)} {dataset_label(dataset)} classes "
            f"({len(train)} images, {epochs} epochs)")
        start = time.perf_counter()
        net = train_feature_net(train.images, train.labels, epochs=epochs, device=device, log=log,
                                n_classes=len(classes))
        fit_seconds = time.perf_counter() - start
        with torch.no_grad():
            val_accuracy = sum((net(data.val.images[i:i + 1024].to(device)).argmax(1).cpu()
                                == data.val.labels[i:i + 1024]).sum().item()
                               for i in range(0, len(data.val), 1024)) / len(data.val)
        return net, {"state_dict": {k: v.cpu() for k, v in net.state_dict().items()}, "fit_seconds": fit_seconds,
                     "val_accuracy": val_accuracy}  # measured once, when trained (2 s a run saved)

    net, payload, cached_ = cached(path, key, restore=restore, build=build, code=(__name__, "metrics.fid"),
                                   needs=("fit_seconds", "val_accuracy"), cache=cache, log=log)
    fit_seconds, val_accuracy = payload["fit_seconds"], payload["val_accuracy"]
    for p in net.parameters():
        p.requires_grad_(False)
    record = {"name": f"featurenet-{dataset_label(dataset)}{len(classes)}", "feature_dim": FeatureNet.feature_dim,
              "description": f"FeatureNet (metrics.fid) trained on all {len(classes)} {dataset_label(dataset)} classes, "
                             f"{len(train)} training images, {epochs} epochs, seed {FEATURE_SEED}; 128-d penultimate "
                             "features",
              "classes": list(classes), "cache_key": key, "cached": cached_, "fit_seconds": round(fit_seconds, 3),
              "val_accuracy": val_accuracy}
    return net, record


def feature_extractor(kind: str, dataset: str, *, data_root: str | None, device: torch.device,
                      log: Callable[[str], None], inception_weights: str | None = None, epochs: int = EPOCHS,
                      cache: bool = True, images: int | None = None, channels: int | None = None):
    """``featurenet`` (default) or ``inception`` (needs pytorch-fid's weights file on disk)."""
    if kind == "featurenet":
        return cached_feature_net(dataset, data_root=data_root, device=device, log=log, epochs=epochs, images=images,
                                  cache=cache, channels=channels)
    if kind == "inception":
        with user_errors():
            net = InceptionFeatures(inception_weights).to(device)
        return net, {"name": "inception-pytorch-fid", "feature_dim": InceptionFeatures.feature_dim,
                     "description": f"pytorch-fid FID Inception pool3 from {net.weights}", "cached": True,
                     "weights_sha256": sha256_file(net.weights)}
    raise unknown_name("feature extractor", kind, ["featurenet", "inception"])

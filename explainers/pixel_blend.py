"""``pixel_blend``: the trivial floor of every sweep leaderboard, as ``random`` is of the saliency one.

It explains nothing: each query x is faded, pixel by pixel, into a real image r of the target class,

    x_s = (1 - t_s) * x + t_s * r,   t_s = s / (S - 1),

so the sweep's end *is* a real image that ``f`` assigns to the target. Sweep validity,
monotonicity and compatibility come almost for free, and a FID computed on whole sweeps (the query
and the real end frames included) rewards it (FID 99.8 against GCE's 177.8 with all 11 frames
pooled). A generative explainer must beat this floor on what it *generates*.

The targets r are drawn from the training images ``f`` assigns to each class (never the test split,
which is FID's reference set and holds the queries); the draw for a batch is seeded by the batch's
content, so the same queries always meet the same targets.
"""

from __future__ import annotations

import zlib
from typing import Any, Callable

import torch

from explainers.base import Capability, Explainer
from explainers.registry import register


@register("pixel_blend")
class PixelBlend(Explainer):
    paper = "trivial baseline (issue 12): a pixel-wise fade from x to a real image of the target class"
    capabilities = frozenset({Capability.FIT, Capability.SWEEP})
    defaults: dict[str, Any] = {
        "pool_size": 1000,  # training images kept per class, the targets' pool
    }

    def __init__(self, classifier, settings: dict[str, Any] | None = None,
                 device: torch.device | str = "cpu") -> None:
        super().__init__(classifier, settings, device)
        self.pool = torch.empty(0)  # (P, C, H, W) training images
        self.pool_labels = torch.empty(0, dtype=torch.long)  # (P,) the class f gives each

    def fit(self, train_images: torch.Tensor, *, generator: torch.Generator,
            log: Callable[[str], None] = print) -> dict:
        """Keep up to ``pool_size`` training images of every class f predicts (a random subset)."""
        labels = self.classifier.predict(train_images)
        keep = []
        for c in labels.unique().tolist():
            members = (labels == c).nonzero().flatten()
            keep.append(members[torch.randperm(len(members), generator=generator)[:int(self.settings["pool_size"])]])
        keep = torch.cat(keep).sort().values
        self.pool, self.pool_labels = train_images[keep].clone(), labels[keep]
        counts = torch.bincount(self.pool_labels).tolist()
        log(f"[{self.name}] {len(keep)} target images, per class {counts}")
        return {"pool_per_class": counts}

    def state_dict(self) -> dict[str, Any]:
        return {"pool": {"images": self.pool.cpu(), "labels": self.pool_labels.cpu()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.pool, self.pool_labels = state["pool"]["images"], state["pool"]["labels"].long()

    def targets(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """A real training image f assigns to ``target`` for each query ``(N, C, H, W)``, drawn with a
        generator seeded by the queries' bytes (the same batch always gets the same targets)."""
        if not len(self.pool):
            raise RuntimeError(f"{self.name} is not fitted")
        seed = zlib.crc32(x.detach().cpu().contiguous().numpy().tobytes()) ^ zlib.crc32(
            target.cpu().numpy().astype("int64").tobytes())
        gen = torch.Generator().manual_seed(seed)
        target = target.cpu()
        out = torch.empty(len(x), *self.pool.shape[1:])
        for c in target.unique().tolist():  # one draw per class present, batched over its queries
            rows = (target == c).nonzero().flatten()
            members = (self.pool_labels == c).nonzero().flatten()
            if not len(members):
                raise RuntimeError(f"{self.name}: no training image of class {c} to fade into")
            out[rows] = self.pool[members[torch.randint(len(members), (len(rows),), generator=gen)]]
        return out.to(x.device)

    @torch.no_grad()
    def sweep(self, x: torch.Tensor, target: torch.Tensor, n_steps: int) -> torch.Tensor:
        """``(N, n_steps, C, H, W)``: x faded linearly into a real image of ``target``."""
        x = x.to(self.device)
        end = self.targets(x, target)
        t = torch.linspace(0, 1, n_steps, device=x.device).view(1, -1, 1, 1, 1)
        return x.unsqueeze(1) + t * (end - x).unsqueeze(1)

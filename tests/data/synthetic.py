"""Small synthetic colour images for the 3-channel tests: a dataset function a suite file names
(``source = "callable:synthetic:patches"``), with a ground truth f learns in one epoch.

Each image is 3 x 32 x 32: a dim random background and one bright square of side 8-14 at a random place.
The square is red (class 0) or blue (class 1); its green component and the background are noise. So the
colour of the square decides the class, and a sweep toward the other class must recolour it.
"""

from __future__ import annotations

import torch


def make(n: int, seed: int, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=gen)
    images = torch.rand(n, 3, size, size, generator=gen) * 0.2
    sides = torch.randint(size // 4, size // 2 - 1, (n,), generator=gen)
    for i in range(n):
        s = int(sides[i])
        top, left = (int(v) for v in torch.randint(0, size - s, (2,), generator=gen))
        colour = torch.tensor([0.9, 0.3, 0.1] if labels[i] == 0 else [0.1, 0.3, 0.9])
        colour = (colour + 0.1 * torch.rand(3, generator=gen)).clamp(0, 1)
        images[i, :, top:top + s, left:left + s] = colour.view(3, 1, 1)
    return images, labels


def patches() -> dict:
    """The suite's dataset: 2000 training, 400 validation and 400 test images."""
    return {"train": make(2000, 0), "val": make(400, 1), "test": make(400, 2), "classes": ["red", "blue"]}

"""The images a run reads: a :class:`Dataset` of train, validation and test :class:`Split` s."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Split:
    """Images ``(N, C, H, W)`` float32 in [0, 1] and labels ``(N,)`` int64 in 0..M-1."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True)
class Dataset:
    name: str
    classes: tuple  # original class ids (or an image folder's class names), in label order
    train: Split
    val: Split
    test: Split
    source: str  # where the pixels came from, for the run record
    checksum: str  # of the source file(s) the pixels came from
    truth: object = None  # a ground-truth dataset's planted truth (bench.inputs.ground_truth.Truth), else None

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.images.shape[1:])

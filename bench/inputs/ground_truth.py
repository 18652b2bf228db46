"""Ground-truth suites: datasets where what the black box uses is known by construction.

``colored-mnist`` (GANMEX App. Fig. 9B)
    Each MNIST digit drawn in one of three colours, red, green or blue (its grey image in that channel,
    the other two zero), the colour drawn at random and independent of the label. A black box trained on
    it must ignore the colour, so a counterfactual should keep the query's colour (``mode_preservation``).
    Verified on the trained black box: recolouring a test image changes f's prediction on < 1%.

``spurious-mnist`` (a planted feature)
    MNIST digits of the suite's classes, each carrying a 3x3 white square (the *marker*, rows and columns
    1-3 of 0-27, a corner that 5 of the 50,000 MNIST training digits touch) with probability 1/2,
    independent of the digit. The label is
    "marker present", so the marker alone decides it and the digit is independent of it. What f should
    use is the marker region; what a counterfactual should change is the marker, leaving the digit.
    Verified on the trained black box: adding or removing the marker flips f on >= 95% of test images,
    exchanging the digit for another class's (marker kept) on <= 5%.

Both are drawn once per image of the full MNIST split with a fixed generator (``CONSTRUCTION_SEED``), then
restricted to the suite's classes, so an image has the same colour or marker whichever classes are kept,
and the FID feature network (trained on all ten digits) sees the same construction.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch

from bench.errors import BenchError
from bench.inputs.images import Dataset, Split

NAMES = ("colored-mnist", "spurious-mnist")
CONSTRUCTION_SEED = 14  # fixed: part of each dataset's definition, not of a run
VERSION = "1"  # bump when a construction changes (part of the dataset checksum, so of every cache key)
MARKER_ROWS, MARKER_COLS = slice(1, 4), slice(1, 4)
MARKER_VALUE = 1.0
COLOURS = ("red", "green", "blue")
SPURIOUS_CLASSES = ("no-marker", "marker")

#: what each verification must reach
THRESHOLDS = {"recolour_flip": ("<", 0.01), "marker_flip": (">=", 0.95), "digit_swap_flip": ("<=", 0.05)}


def marker_region(shape: tuple[int, int, int]) -> torch.Tensor:
    """The marker's pixels, a boolean ``(1, H, W)`` mask (every channel of a pixel counts the same)."""
    region = torch.zeros(1, *shape[1:], dtype=torch.bool)
    region[:, MARKER_ROWS, MARKER_COLS] = True
    return region


def add_marker(images: torch.Tensor) -> torch.Tensor:
    out = images.clone()
    out[:, :, MARKER_ROWS, MARKER_COLS] = MARKER_VALUE
    return out


def colourise(grey: torch.Tensor, colour: torch.Tensor) -> torch.Tensor:
    """``(N, 1, H, W)`` grey digits drawn in channel ``colour`` ``(N,)`` of 3, the others zero."""
    out = grey.new_zeros(len(grey), 3, *grey.shape[2:])
    out[torch.arange(len(grey)), colour] = grey[:, 0]
    return out


@dataclass(frozen=True)
class Truth:
    """What a ground-truth dataset planted, per split: ``digit`` (N,) the MNIST digit of every image, and
    ``colour`` (colored-mnist) or ``marker`` (spurious-mnist, bool) and ``clean`` (the images without
    their markers). ``region``: the marker's (1, H, W) mask (spurious-mnist)."""

    kind: str  # "colour" or "marker"
    splits: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    region: torch.Tensor | None = None
    digit_classes: tuple[int, ...] = tuple(range(10))


def construct(name: str, mnist: Dataset, classes) -> Dataset:
    """The ground-truth dataset ``name`` (module docstring) drawn over ``mnist`` (all ten digits), restricted
    to the digits ``classes`` (None: all ten)."""
    if name not in NAMES:
        raise BenchError(f"unknown ground-truth dataset {name!r}; known: {', '.join(NAMES)}")
    digits = tuple(mnist.classes) if classes is None else tuple(int(c) for c in classes)
    unknown = [c for c in digits if c not in mnist.classes]
    if unknown:
        raise BenchError(f"dataset {name}: no digit {unknown[0]}; MNIST has 0-9")
    truth = Truth("colour" if name == "colored-mnist" else "marker", digit_classes=digits)
    splits = {}
    for i, split_name in enumerate(("train", "val", "test")):
        split = getattr(mnist, split_name)
        gen = torch.Generator().manual_seed(CONSTRUCTION_SEED * 10 + i)
        keep = torch.isin(split.labels, torch.tensor(digits))
        digit = split.labels[keep]
        if name == "colored-mnist":
            colour = torch.randint(0, 3, (len(split),), generator=gen)[keep]
            images = colourise(split.images[keep], colour)
            labels = torch.tensor([digits.index(int(d)) for d in digit.tolist()], dtype=torch.long)
            truth.splits[split_name] = {"digit": digit, "colour": colour}
        else:
            marker = (torch.rand(len(split), generator=gen) < 0.5)[keep]
            clean = split.images[keep]
            images = torch.where(marker.view(-1, 1, 1, 1), add_marker(clean), clean)
            labels = marker.long()
            truth.splits[split_name] = {"digit": digit, "marker": marker, "clean": clean}
        splits[split_name] = Split(images.contiguous(), labels)
    if name == "spurious-mnist":
        object.__setattr__(truth, "region", marker_region(tuple(splits["train"].images.shape[1:])))
    return Dataset(name=name, classes=digits if name == "colored-mnist" else SPURIOUS_CLASSES,
                   source=f"{mnist.source} ({name} v{VERSION}, construction seed {CONSTRUCTION_SEED})",
                   checksum=f"{mnist.checksum}:{name}:v{VERSION}", truth=truth, **splits)


# ----------------------------------------------------------------------------- verification


@torch.no_grad()
def _predict(classifier, images: torch.Tensor, device: torch.device) -> torch.Tensor:
    return torch.cat([classifier(images[i:i + 1024].to(device)).argmax(1).cpu() for i in range(0, len(images), 1024)])


@torch.no_grad()
def verify(classifier, data, device: torch.device, *, limit: int | None = None) -> dict:
    """Check the planted truth on the trained black box ``classifier`` with the test split (its first
    ``limit`` images): the figures of ``THRESHOLDS`` and whether each holds."""
    truth, test = data.truth, data.test
    n = len(test) if limit is None else min(limit, len(test))
    images, meta = test.images[:n], {k: v[:n] for k, v in truth.splits["test"].items()}
    before = _predict(classifier, images, device)
    out: dict = {"kind": truth.kind, "n_images": n}
    if truth.kind == "colour":
        changed = torch.zeros(n, dtype=torch.bool)
        grey = images.sum(1, keepdim=True)  # the digit's grey image (one channel is non-zero)
        for shift in (1, 2):
            changed |= _predict(classifier, colourise(grey, (meta["colour"] + shift) % 3), device) != before
        out["recolour_flip"] = float(changed.float().mean())
    else:
        marker, clean = meta["marker"], meta["clean"]
        toggled = torch.where(marker.view(-1, 1, 1, 1), clean, add_marker(clean))
        out["marker_flip"] = float((_predict(classifier, toggled, device) != before).float().mean())
        # each image's digit exchanged for a test image of another digit, its marker state kept
        gen = torch.Generator().manual_seed(CONSTRUCTION_SEED)
        digit = meta["digit"]
        partner = torch.empty(n, dtype=torch.long)
        for d in digit.unique().tolist():
            others = (digit != d).nonzero().flatten()
            mine = (digit == d).nonzero().flatten()
            if len(others) == 0:
                raise BenchError("spurious-mnist needs at least two digit classes to verify its truth")
            partner[mine] = others[torch.randint(len(others), (len(mine),), generator=gen)]
        swapped = torch.where(marker.view(-1, 1, 1, 1), add_marker(clean[partner]), clean[partner])
        out["digit_swap_flip"] = float((_predict(classifier, swapped, device) != before).float().mean())
    out["passed"] = all(_holds(k, out[k]) for k in THRESHOLDS if k in out)
    out["thresholds"] = {k: f"{op} {v}" for k, (op, v) in THRESHOLDS.items() if k in out}
    if not out["passed"]:
        logging.getLogger("bench.inputs.ground_truth").warning(
            f"[ground truth] NOT verified on this black box: {out}; its ground-truth metrics do not measure "
            "what they claim")
    return out


def _holds(key: str, value: float) -> bool:
    op, bound = THRESHOLDS[key]
    return {"<": value < bound, "<=": value <= bound, ">=": value >= bound}[op]


def describe(record: dict) -> str:
    """One line of a verification record, for the log and the leaderboard's footer."""
    figures = {"recolour_flip": "recolouring flips f on", "marker_flip": "adding or removing the marker flips f on",
               "digit_swap_flip": "exchanging the digit flips f on"}
    parts = [f"{text} {record[k]:.2%} (needs {record['thresholds'][k]:s})" for k, text in figures.items() if k in record]
    return ("verified" if record.get("passed") else "NOT VERIFIED") + f" on {record['n_images']} test images: " \
        + "; ".join(parts)

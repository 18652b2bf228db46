"""What is in the cache directory, and removing what no run will read again.

``python -m bench cache info|prune|clear``. The cache (:func:`bench.store.cache_root`) holds, and
genexbench writes nowhere else in it:

- ``data/<dataset>/<dataset>-<hash>.pt``: a dataset's images (:func:`bench.inputs.data.load_dataset`), and
  ``data/mnist/mnist.pkl.gz``, the MNIST download;
- ``models/<kind>-<key>.pt``: a trained model, ``<kind>`` the black box (``classifier``), the FID
  feature network (``featurenet``) or an explainer's fit identity (``gce``, ``ganmex`` shared by
  ``ganmex_ig`` and ``ganmex_deeplift``, ...), ``<key>`` the hash of everything that determines it
  (settings, data, seed, the source of the code that trains it);
- ``scores/<explainer>-<key>.pt``: one explainer's scores of one seed (its rows and the arrays its
  figures are drawn from), ``<key>`` the hash of its fit, its settings, everything it was scored on and
  the source of the code that scores it, so a warm run of unchanged code reads its scores back;
- ``.<name>.<random>.tmp`` beside them while a write is in progress (:func:`bench.store.atomic_write_bytes`).

A model's key is a one-way hash, so the key alone cannot say whether older code made an entry; each
model therefore stores a code stamp (:func:`bench.store.code_stamp`: the modules its key hashes, and the
hash), and :func:`prune` removes models whose code changed or is gone, with everything else it can show
unusable (:func:`stale`). Entries made by older *settings* (a profile edited since) cannot be told apart
and stay until :func:`clear`, as do models that carry no stamp.
"""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from bench.store import cache_root

#: the subdirectories genexbench writes; ``clear`` removes these and nothing else
SUBDIRS = ("data", "models", "scores")
#: a temporary file older than this is a leftover of an interrupted write (a write takes seconds)
TEMP_AGE_SECONDS = 3600

_MODEL = re.compile(r"(?P<kind>.+)-(?P<key>[0-9a-f]{16})\.pt")
_DATA = re.compile(r"(?P<dataset>[a-z-]+)-(?P<key>[0-9a-f]{12})\.pt")
_TEMP = re.compile(r"\..+\.tmp")
MNIST_DOWNLOAD = "mnist.pkl.gz"


@dataclass(frozen=True)
class Entry:
    path: Path
    kind: str  # "data mnist", "data mnist download", "model gce", "scores gce", "temporary" or "unknown"
    size: int  # bytes


def _kind(parts: tuple[str, ...]) -> str:
    """The kind of the file at ``parts`` (its path relative to the cache root)."""
    name = parts[-1]
    if _TEMP.fullmatch(name):
        return "temporary"
    if len(parts) == 2 and parts[0] == "models" and (m := _MODEL.fullmatch(name)):
        return f"model {m['kind']}"
    if len(parts) == 2 and parts[0] == "scores" and (m := _MODEL.fullmatch(name)):
        return f"scores {m['kind']}"
    if len(parts) == 3 and parts[0] == "data":
        dataset = parts[1]
        if (m := _DATA.fullmatch(name)) and m["dataset"] == dataset:
            return f"data {dataset}"
        if dataset == "mnist" and name == MNIST_DOWNLOAD:
            return "data mnist download"
    return "unknown"


def entries(root: Path | None = None) -> list[Entry]:
    """Every file under the cache's ``data/``, ``models/`` and ``scores/``, with its kind and size, in path
    order."""
    root = Path(root) if root is not None else cache_root()
    out = []
    for subdir in SUBDIRS:
        for path in sorted((root / subdir).rglob("*")):
            if path.is_file() and not path.is_symlink():
                out.append(Entry(path, _kind(path.relative_to(root).parts), path.stat().st_size))
    return out


def size_text(n: int) -> str:
    """Bytes in decimal units: ``512 B``, ``1.2 MB``."""
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000:
            return f"{value:.0f} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


def summary(found: list[Entry]) -> list[tuple[str, int, int]]:
    """(kind, count, bytes) per kind, sorted by kind."""
    kinds: dict[str, list[int]] = {}
    for entry in found:
        kinds.setdefault(entry.kind, []).append(entry.size)
    return [(kind, len(sizes), sum(sizes)) for kind, sizes in sorted(kinds.items())]


def info_text(root: Path | None = None) -> str:
    """The cache's location, then count and size per kind of entry and in all (aligned columns)."""
    root = Path(root) if root is not None else cache_root()
    found = entries(root)
    if not found:
        return f"cache {root}: empty\n"
    rows = [(kind, str(count), size_text(size)) for kind, count, size in summary(found)]
    rows.append(("total", str(len(found)), size_text(sum(e.size for e in found))))
    widths = [max(len(r[i]) for r in [("kind", "files", "size"), *rows]) for i in range(3)]
    lines = [f"cache {root}:"]
    for row in [("kind", "files", "size"), *rows]:
        lines.append(f"  {row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:>{widths[2]}}")
    return "\n".join(lines) + "\n"


def _known_model_kinds() -> set[str]:
    """The model kinds the current code writes: the black box, the feature network and the fit identity of
    every registered explainer that fits."""
    from explainers.base import Capability
    from explainers.registry import EXPLAINERS

    fitting = (EXPLAINERS.get(name) for name in EXPLAINERS.names())
    return {"classifier", "classifier-user", "featurenet"} | {cls.fit_identity() for cls in fitting if Capability.FIT in cls.capabilities}


def _unreadable(entry: Entry) -> tuple[str | None, object]:
    """Why a checkpoint would be rebuilt rather than read (it does not load, or it holds another key than its
    name says), else None; and what it holds, read once. The MNIST download is checked against its published
    checksum."""
    import torch

    from bench.inputs.data import MNIST_PKL_SHA256
    from bench.store import sha256_file, stable_hash

    if entry.kind == "data mnist download":
        return (None if sha256_file(entry.path) == MNIST_PKL_SHA256 else "fails its checksum"), None
    try:
        payload = torch.load(entry.path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any file torch cannot read back is one a run would rebuild
        return f"does not load ({type(exc).__name__})", None
    key = payload.get("key") if isinstance(payload, dict) else None
    keyed = entry.kind.startswith(("model", "scores"))  # the key itself in the name; data: a hash of it
    named = (_MODEL if keyed else _DATA).fullmatch(entry.path.name)["key"]
    stored = key if keyed else stable_hash(key, 12)
    return (None if key is not None and stored == named else "holds another key than its name"), payload


def stale(root: Path | None = None, *, now: float | None = None) -> list[tuple[Entry, str]]:
    """The entries no run will read, each with why:

    - a temporary file untouched for :data:`TEMP_AGE_SECONDS` (left by an interrupted write);
    - a file whose name genexbench does not write;
    - a model of a kind the current code does not fit, or scores of an explainer not registered (removed or
      renamed);
    - a checkpoint that does not load or holds another key than its name says (a run rebuilds it), or a
      MNIST download that fails its checksum;
    - a model whose stored code stamp differs from today's source of its modules, or whose module is gone.

    Entries made by older settings are not found (see the module docstring): ``clear`` removes those.
    """
    now = time.time() if now is None else now
    kinds = None
    out = []
    for entry in entries(root):
        if entry.kind == "temporary":
            if now - entry.path.stat().st_mtime > TEMP_AGE_SECONDS:
                out.append((entry, "left by an interrupted write"))
            continue
        if entry.kind == "unknown":
            out.append((entry, "not a name genexbench writes"))
            continue
        if entry.kind.startswith("model"):
            kinds = _known_model_kinds() if kinds is None else kinds
            if entry.kind.removeprefix("model ") not in kinds:
                out.append((entry, "no registered explainer fits this kind of model"))
                continue
        if entry.kind.startswith("scores"):
            from explainers.registry import EXPLAINERS

            if entry.kind.removeprefix("scores ") not in EXPLAINERS:
                out.append((entry, "scores of an explainer that is not registered"))
                continue
        reason, payload = _unreadable(entry)
        if reason is None and entry.kind.startswith(("model", "scores")):
            reason = _outdated(payload.get("code"))
        if reason:
            out.append((entry, reason))
    return out


def _outdated(stamp: dict | None) -> str | None:
    """Why a model was made by code that no longer exists (its stored :func:`bench.store.code_stamp` differs
    from today's source of the same modules, or a module is gone), else None. Checkpoints that carry no
    stamp are not judged."""
    import importlib

    from bench.store import source_hash

    if not stamp:
        return None
    try:
        for name in stamp["modules"]:
            importlib.import_module(name)
        current = source_hash(*stamp["modules"])
    except (ImportError, OSError, TypeError) as exc:
        return f"made by code that no longer exists ({type(exc).__name__}: {exc})"
    return None if current == stamp["source"] else f"made by older code of {', '.join(stamp['modules'])}"


def prune(root: Path | None = None, *, dry_run: bool = False) -> list[tuple[Entry, str]]:
    """Remove the :func:`stale` entries (not with ``dry_run``); returns them."""
    found = stale(root)
    if not dry_run:
        for entry, _ in found:
            entry.path.unlink(missing_ok=True)
    return found


def clear(root: Path | None = None) -> list[Entry]:
    """Remove everything under the cache's ``data/``, ``models/`` and ``scores/`` (the directories too);
    returns what was there. Other files under the cache root are not genexbench's and stay."""
    root = Path(root) if root is not None else cache_root()
    found = entries(root)
    for subdir in SUBDIRS:
        if (root / subdir).is_dir():
            shutil.rmtree(root / subdir)
    return found

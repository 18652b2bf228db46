"""Files on disk: the cache directory, atomic writes, checksums.

Nothing here writes a file in place: every write goes to a temporary file in
the same directory and is renamed over the target, so an interrupted run never
leaves a half-written file that a later step would read as complete.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, TypeVar

import torch

from bench.errors import BenchError

T = TypeVar("T")


def cache_root() -> Path:
    """Where data and trained models are cached.

    ``$GENEXBENCH_CACHE`` if set, else ``$XDG_CACHE_HOME/genexbench``, else
    ``~/.cache/genexbench``.
    """
    if os.environ.get("GENEXBENCH_CACHE"):
        return Path(os.environ["GENEXBENCH_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "genexbench"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def stable_hash(obj: Any, length: int = 16) -> str:
    """Hash of a JSON-able object, independent of dict order."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def source_hash(*module_names: str) -> str:
    """Hash of the source of the named (imported) modules: part of a cache key, so a code
    change that could change a trained model invalidates its cache entry."""
    digest = hashlib.sha256()
    for name in module_names:
        digest.update(inspect.getsource(sys.modules[name]).encode())
    return digest.hexdigest()[:16]


def code_stamp(*module_names: str) -> dict:
    """What made a checkpoint, stored in it: the modules whose source its cache key hashes, and that hash.
    ``cache prune`` compares it with today's source to find models no run of this code will read."""
    return {"modules": list(module_names), "source": source_hash(*module_names)}


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file a normal file's mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def save_checkpoint(path: Path, payload: dict) -> None:
    """Save ``payload`` (state dicts, config, metadata) with torch.save, atomically."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: Path, *, expect_key: str, log=None) -> dict | None:
    """Load a cached checkpoint; ``None`` when it is missing, corrupt or for another key.

    A cache entry is rebuilt rather than trusted whenever it fails to load or
    its recorded key differs from the one asked for; ``log`` (if given) is told
    why an existing entry was not used.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable file is a cache miss, never a crash
        if log:
            log(f"[cache] {path.name} is unreadable ({type(exc).__name__}); rebuilding it")
        return None
    if not isinstance(payload, dict) or payload.get("key") != expect_key:
        if log:
            log(f"[cache] {path.name} was made for another configuration; rebuilding it")
        return None
    return payload


def cached(path: Path, key: str, *, restore: Callable[[dict], T], build: Callable[[], tuple[T, dict]],
           code: tuple[str, ...], needs: tuple[str, ...] = ("fit_seconds",), cache: bool = True,
           log: Callable[[str], None] | None = None) -> tuple[T, dict, bool]:
    """The one cache-or-build of every trained model (black box, FID feature network, explainer fits).

    Reads ``path`` (unless ``cache`` is False) and, when it holds ``key``, gives its payload to
    ``restore``, which rebuilds the model from it; a payload ``restore`` cannot use (it raises
    RuntimeError, KeyError or TypeError: another architecture, a missing entry) is rebuilt, never
    trusted; so is a payload without every entry in ``needs``. Otherwise ``build()`` trains the model and returns it with the payload to store, which is
    saved (with ``key`` and the stamp of the ``code`` modules, for ``cache prune``) when ``cache`` is on.
    Returns ``(model, payload, cached)``.
    """
    payload = load_checkpoint(path, expect_key=key, log=log) if cache else None
    if payload is not None and not all(k in payload for k in needs):
        payload = None  # written by older code: rebuilt
    if payload is not None:
        try:
            return restore(payload), payload, True
        except (RuntimeError, KeyError, TypeError):
            if log:
                log(f"[cache] {Path(path).name} does not match what it is loaded into; rebuilding it")
    model, payload = build()
    if cache:
        save_checkpoint(path, {"key": key, **payload, "code": code_stamp(*code)})
    return model, payload, False


def ensure_writable_dir(path: Path) -> Path:
    """Create ``path`` (and parents) or raise a one-line BenchError."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-", delete=True)
        probe.close()
    except OSError as exc:
        raise BenchError(f"output directory {str(path)!r} is not writable ({exc.strerror or exc})") from None
    return path

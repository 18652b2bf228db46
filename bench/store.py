"""Files on disk: the cache directory, atomic writes, checksums.

Nothing here writes a file in place: every write goes to a temporary file in
the same directory and is renamed over the target, so an interrupted run never
leaves a half-written file that a later step would read as complete.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import inspect
import io
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, TypeVar

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


class RemoteCache(Protocol):
    """Where a worker of a distributed run reads and writes trained models and scores instead of its own
    disk (:mod:`bench.execute.distributed`): entries by their path relative to the cache root."""

    def get(self, name: str) -> bytes | None: ...

    def put(self, name: str, data: bytes) -> None: ...

    def delete(self, name: str) -> None: ...


_remote: RemoteCache | None = None


@contextlib.contextmanager
def remote_cache(remote: RemoteCache | None) -> Iterator[None]:
    """Within this block, :func:`cached` reads and writes through ``remote`` (``None``: the local disk)."""
    global _remote
    before, _remote = _remote, remote
    try:
        yield
    finally:
        _remote = before


def _entry_name(path: Path) -> str:
    """``path`` relative to the cache root, as a remote cache names it."""
    path, root = Path(path).absolute(), cache_root().absolute()
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)


def _load_payload(path: Path, expect_key: str, log) -> dict | None:
    if _remote is None:
        return load_checkpoint(path, expect_key=expect_key, log=log)
    data = _remote.get(_entry_name(path))
    if data is None:
        return None
    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception:  # unreadable bytes are a cache miss, as on the local disk
        return None
    return payload if isinstance(payload, dict) and payload.get("key") == expect_key else None


def _save_payload(path: Path, payload: dict) -> None:
    if _remote is None:
        save_checkpoint(path, payload)
        return
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    _remote.put(_entry_name(path), buffer.getvalue())


def discard(path: Path) -> None:
    """Remove a cache entry (``--rescore``), on the local disk or in the remote cache."""
    if _remote is None:
        Path(path).unlink(missing_ok=True)
    else:
        _remote.delete(_entry_name(path))


@contextlib.contextmanager
def entry_lock(path: Path, log: Callable[[str], None] | None = None) -> Iterator[None]:
    """An exclusive lock on one cache entry, held while it is built, so that processes sharing a cache (two
    runs started side by side) never train the same model twice: the second waits, then loads what the first
    saved. An advisory ``flock`` on ``<root>/locks/<entry>.lock``, released when the holder ends, even by a
    crash. A remote cache takes none: its executor never sends two tasks for one entry."""
    if _remote is not None:
        yield
        return
    lock = cache_root() / "locks" / (_entry_name(path).replace("/", "--") + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if log:
                log(f"[cache] {Path(path).name}: another process is building it; waiting for it")
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


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
    The build holds :func:`entry_lock`, and the entry is read again once the lock is held: a process that
    waited for another's build loads it. Inside :func:`remote_cache` entries are read and written there.
    Returns ``(model, payload, cached)``.
    """
    def usable(log: Callable[[str], None] | None) -> tuple[T, dict] | None:
        payload = _load_payload(path, key, log)
        if payload is None or not all(k in payload for k in needs):
            return None  # missing, or written by older code: rebuilt
        try:
            return restore(payload), payload
        except (RuntimeError, KeyError, TypeError):
            if log:
                log(f"[cache] {Path(path).name} does not match what it is loaded into; rebuilding it")
            return None

    if not cache:
        model, payload = build()
        return model, payload, False
    if (found := usable(log)) is not None:
        return (*found, True)
    with entry_lock(path, log):
        if (found := usable(None)) is not None:  # built by another process while this one waited (said once)
            return (*found, True)
        model, payload = build()
        _save_payload(path, {"key": key, **payload, "code": code_stamp(*code)})
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

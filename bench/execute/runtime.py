"""How this process computes: its memory allocator, and the precision fits train in.

:func:`keep_freed_memory` makes the same work faster without changing a single number. glibc's
``malloc`` serves every block over its mmap threshold (128 KiB, rising at most to 32 MiB) with a fresh
``mmap`` and returns it to the kernel on ``free``, so each large tensor's pages are faulted in and
zeroed again by the kernel on the next allocation of the same size. Scoring pushes batches of a
thousand images through the black box (activations of about 90 MB), and there the kernel's share was
two thirds of the time: a warm run of GCE, SVAE and Occlusion on mnist took 163 s (user 170 s, sys
134 s) and 85 s with freed memory kept for reuse (sys 6 s), every value identical (2-core AMD EPYC,
Zen 5, AVX-512).

:func:`training_precision_for` resolves ``--precision``: fits train under bf16 autocast where the
device multiplies bf16 natively. That changes the numbers, as another CPU's kernels do; results record
the precision, and a fit's cache key includes it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

import torch

from bench.options import choices

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (glibc malloc.h)
_INT_MAX = 2 ** 31 - 1
_done: bool | None = None


def keep_freed_memory() -> bool:
    """Have glibc's ``malloc`` keep freed memory for reuse (no mmap per large block, no trimming of the
    heap's top), as ``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` would at process start.

    The process keeps what it has freed until it exits, so its resident size stays near its peak; the
    peak itself is that of the work. Returns whether the setting holds; ``False`` where the C library
    is not glibc (musl, macOS): nothing is changed there. Called once per process by ``bench.run``
    and the CLI; later calls return the first call's answer.
    """
    global _done
    if _done is None:
        _done = False
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            if hasattr(libc, "gnu_get_libc_version") and hasattr(libc, "mallopt"):  # glibc
                _done = bool(libc.mallopt(_M_MMAP_THRESHOLD, _INT_MAX)) and bool(libc.mallopt(_M_TRIM_THRESHOLD,
                                                                                                _INT_MAX))
        except OSError:
            pass
        log.debug("glibc malloc keeps freed memory: %s", _done)
    return _done


#: ``--precision`` values: ``auto`` = bf16 where the device multiplies it natively, else fp32
PRECISION_OPTIONS = choices("precision")


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 convolutions and matrix products natively: a CPU with AVX-512
    BF16 (Intel Cooper Lake, Sapphire Rapids and later; AMD Zen 4 and later) or AMX tiles, a CUDA GPU of
    compute capability 8.0 or later. Elsewhere bf16 is emulated (an AVX-512 CPU without BF16, Skylake to
    Ice Lake) or missing, and slower than float32."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    if device.type == "cpu":
        checks = [getattr(torch.cpu, f, None) for f in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
        return any(bool(check()) for check in checks if check is not None)
    return False


def training_precision_for(option: str, device: torch.device) -> str:
    """The precision fits run in (``explainers.training.training_precision``) for the ``--precision`` option on
    ``device``: ``auto`` gives ``bf16`` where it is native (:func:`native_bf16`) and ``fp32`` elsewhere."""
    if option not in PRECISION_OPTIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISION_OPTIONS)}, got {option!r}")
    if option == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return option

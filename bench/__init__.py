"""genexbench: a benchmark of generative explainers of black-box image classifiers.

``bench.run(...)`` runs a suite and returns :class:`bench.api.Results`; ``bench.load(path)`` reads stored
results; ``python -m bench`` is the command line over the same functions. Submodules load on first use,
so ``import bench`` stays cheap.
"""

from __future__ import annotations

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("genexbench")
except _metadata.PackageNotFoundError:  # a source tree that is not installed
    __version__ = "0+unknown"

__all__ = ["Results", "__version__", "load", "run"]


def __getattr__(name: str):
    if name in ("run", "load", "Results"):
        from bench import api

        return getattr(api, name)
    raise AttributeError(f"module 'bench' has no attribute {name!r}")

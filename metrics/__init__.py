"""Pure scoring functions, each declared beside itself as the leaderboard metrics it yields.

The functions live in the submodules (``information_flow``, ``accuracy_drop``, ``invariance``, ``saliency``,
``fid``, ``sweep``, ``ground_truth``, ``timing``) and take tensors and callables; they do not need the runner.
Each of those modules ends with ``DECLARED``: its :class:`Metric` declarations (name, capability, unit,
direction, aggregation, description, function), in the order of their columns. :data:`METRICS` is the
read-only mapping name -> :class:`Metric` that the rest of the code reads: the declarations of
:data:`MODULES`, module after module, then those :func:`register` adds.
"""

from __future__ import annotations

from metrics.declaration import AGGREGATIONS, CAPABILITIES, INPUTS, Metric, MetricRegistry

#: the modules whose declarations make :data:`METRICS`, in the order of the leaderboard's columns
MODULES = ("information_flow", "accuracy_drop", "invariance", "saliency", "fid", "sweep", "ground_truth", "timing")

#: every metric, name -> :class:`Metric`, in column order (the modules are imported on first use)
METRICS = MetricRegistry(__name__, MODULES)

#: add declared metrics (a plugin's, a notebook's) after the built-in ones; see also ``METRICS.temporarily``
register = METRICS.register

__all__ = ["AGGREGATIONS", "CAPABILITIES", "INPUTS", "METRICS", "MODULES", "Metric", "register"]

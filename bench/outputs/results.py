"""The run record: writing, reading, and what it says about the machine and code.

A run directory holds ``results.json`` (strict JSON: ``{"metadata": ..., "results": [...]}``,
one row per explainer x metric x factor, long format), ``leaderboard.md`` and
``leaderboard.csv`` (rendered from it by :mod:`bench.outputs.leaderboard`), ``report.html``
and ``figures/``. ``results.json`` is written last, so its presence means the run
completed.
"""

from __future__ import annotations

import json
import math
import platform
import subprocess
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path

import torch

from bench.errors import BenchError
from bench.outputs.schema import SCHEMA_VERSION, validate_record
from bench.store import atomic_write_text

RESULTS_FILE = "results.json"


def code_revision() -> str:
    """``git describe``-like revision of this checkout, ``-dirty`` when modified; 'unknown' outside git."""
    root = Path(__file__).resolve().parents[2]  # the checkout: bench/outputs/results.py
    try:
        rev = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=10)
        if rev.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("genexbench", "torch", "torchvision", "numpy", "scipy", "pandas", "captum", "pytorch-fid"):
        try:
            out[dist] = importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else whatever ``platform`` knows. Training on another CPU
    model can change the numbers (other float kernels), so "same machine" needs it on the record."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def device_info(device: torch.device) -> dict:
    info = {"type": device.type, "threads": torch.get_num_threads(), "machine": platform.machine(),
            "processor": cpu_model(), "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    if device.type == "cuda":
        info["name"] = torch.cuda.get_device_name(device)
    return info


def device_text(device: dict) -> str:
    """One line naming a recorded device: type, GPU or CPU model, CPU kernel ISA, threads."""
    parts = [str(device.get("type", "?"))]
    parts += [str(device[k]) for k in ("name", "processor", "cpu_capability")
              if device.get(k) not in (None, "", "unknown")]
    return " ".join(parts) + (f" ({device['threads']} threads)" if device.get("threads") else "")


def strict_json(obj):
    """Make a value strict JSON: NaN/inf become None (JSON has no NaN)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(v) for v in obj]
    return obj


@dataclass(frozen=True)
class Row:
    """One result, the one type every reader and writer of results shares (runner, scoring, leaderboard,
    gate, report, API): an explainer's ``value`` of a ``metric`` (of one latent ``factor``, or of the
    whole); ``value`` None, with a ``note`` saying why, where the metric is undefined; or, with ``metric``
    None, an ``error``: the explainer failed."""

    explainer: str
    metric: str | None
    value: float | None = None
    factor: str | None = None
    unit: str | None = None
    higher_is_better: bool | None = None  # None: a diagnostic, never ranked or gated
    note: str | None = None
    error: str | None = None

    @property
    def direction(self) -> str | None:
        return {True: "higher", False: "lower", None: None}[self.higher_is_better]

    @classmethod
    def failed(cls, explainer: str, error: str) -> "Row":
        return cls(explainer, None, error=error)

    def to_dict(self) -> dict:
        """The row as ``results.json`` holds it (the keys the committed results and baselines have)."""
        out = {"explainer": self.explainer, "metric": self.metric, "factor": self.factor, "value": self.value}
        if self.error is not None:
            return {**out, "error": self.error}
        out.update(unit=self.unit, higher_is_better=self.higher_is_better)
        return {**out, "note": self.note} if self.note else out

    @classmethod
    def from_dict(cls, d: dict) -> "Row":
        return cls(explainer=d["explainer"], metric=d.get("metric"), value=d.get("value"), factor=d.get("factor"),
                   unit=d.get("unit"), higher_is_better=d.get("higher_is_better"), note=d.get("note"),
                   error=d.get("error"))


def rows_of(record: dict) -> list[Row]:
    """A record's results (``results.json``'s list of dicts) as :class:`Row`."""
    return [Row.from_dict(r) for r in record["results"]]


def make_record(metadata: dict, results: list[Row]) -> dict:
    return {"metadata": {"schema_version": SCHEMA_VERSION, **metadata},
            "results": [r.to_dict() if isinstance(r, Row) else r for r in results]}


def write_record(run_dir: Path, record: dict) -> Path:
    text = json.dumps(strict_json(record), indent=2, allow_nan=False, sort_keys=False)
    path = run_dir / RESULTS_FILE
    atomic_write_text(path, text + "\n")
    return path


def load_record(run_dir: Path) -> dict:
    """The record of a run directory (or a ``results.json``), checked against :mod:`bench.outputs.schema`: a missing,
    corrupt or malformed file is a one-line :class:`BenchError` naming the file and the field."""
    path = Path(run_dir) / RESULTS_FILE if Path(run_dir).is_dir() else Path(run_dir)
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise BenchError(f"no {RESULTS_FILE} in {run_dir} (not a completed run)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BenchError(f"{path} is not valid JSON ({exc})") from None
    except OSError as exc:
        raise BenchError(f"cannot read {path} ({exc.strerror or exc})") from None
    return validate_record(record, path)

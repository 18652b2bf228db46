"""The run record and the leaderboard rendered from it.

A run directory holds ``results.json`` (strict JSON: ``{"metadata": ..., "results": [...]}``,
one row per explainer x metric x factor, long format), ``leaderboard.md`` and
``leaderboard.csv``, and ``figures/``. ``results.json`` is written last, so its
presence means the run completed.
"""

from __future__ import annotations

import json
import math
import platform
import subprocess
from importlib import metadata as importlib_metadata
from pathlib import Path

import pandas as pd
import torch

from bench.errors import BenchError
from bench.store import atomic_write_text
from metrics import METRICS

SCHEMA_VERSION = 1
RESULTS_FILE = "results.json"


def code_revision() -> str:
    """``git describe``-like revision of this checkout, ``-dirty`` when modified; 'unknown' outside git."""
    root = Path(__file__).resolve().parent.parent
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


def device_info(device: torch.device) -> dict:
    info = {"type": device.type, "threads": torch.get_num_threads(), "machine": platform.machine(),
            "processor": platform.processor() or "unknown"}
    if device.type == "cuda":
        info["name"] = torch.cuda.get_device_name(device)
    return info


def _strict(obj):
    """Make a value strict JSON: NaN/inf become None (JSON has no NaN)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_strict(v) for v in obj]
    return obj


def make_record(metadata: dict, results: list[dict]) -> dict:
    return {"metadata": {"schema_version": SCHEMA_VERSION, **metadata}, "results": results}


def write_record(run_dir: Path, record: dict) -> Path:
    text = json.dumps(_strict(record), indent=2, allow_nan=False, sort_keys=False)
    path = run_dir / RESULTS_FILE
    atomic_write_text(path, text + "\n")
    return path


def load_record(run_dir: Path) -> dict:
    path = Path(run_dir) / RESULTS_FILE if Path(run_dir).is_dir() else Path(run_dir)
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise BenchError(f"no {RESULTS_FILE} in {run_dir} (not a completed run)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BenchError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(record, dict) or "metadata" not in record or "results" not in record:
        raise BenchError(f"{path} is not a genexbench results record")
    return record


# ----------------------------------------------------------------------------- leaderboard


def _column(metric: str, factor: str | None) -> str:
    info = METRICS.get(metric)
    arrow = f" {info.arrow}" if info and info.arrow else ""
    return f"{metric}[{factor}]{arrow}" if factor else f"{metric}{arrow}"


def leaderboard_frame(results: list[dict], *, factors: bool = True) -> pd.DataFrame:
    """One row per explainer, one column per metric (with its direction arrow).

    Summary metrics come first, per-factor diagnostics after (left out when
    ``factors`` is False); a missing value
    (the explainer lacks the capability) stays NaN and renders as ``n/a``.
    An explainer that failed gets an ``error`` column.
    """
    ok = [r for r in results if "error" not in r and (factors or not r.get("factor"))]
    errors = {r["explainer"]: r["error"] for r in results if "error" in r}
    frame = pd.DataFrame([{"explainer": r["explainer"], "column": _column(r["metric"], r.get("factor")),
                           "value": r["value"]} for r in ok], columns=["explainer", "column", "value"])
    order = [_column(m, None) for m in METRICS]
    table = frame.pivot_table(index="explainer", columns="column", values="value", aggfunc="mean", sort=False)
    columns = sorted(table.columns, key=lambda c: (order.index(c) if c in order else len(order), c))
    table = table.reindex(columns=columns)
    for name in errors:
        if name not in table.index:
            table.loc[name] = float("nan")
    if errors:
        table["error"] = [errors.get(name, "") for name in table.index]
    return table


def to_markdown(table: pd.DataFrame, *, title: str = "", footer: str = "") -> str:
    def fmt(v):
        if isinstance(v, str):
            return v
        return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4g}"

    header = ["explainer", *table.columns]
    lines = ([f"## {title}", ""] if title else []) + [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * len(table.columns)) + "|",
    ]
    for name, values in table.iterrows():
        lines.append("| " + " | ".join([str(name), *(fmt(v) for v in values)]) + " |")
    if footer:
        lines += ["", footer]
    return "\n".join(lines) + "\n"


def factor_frame(results: list[dict]) -> pd.DataFrame:
    """Per-factor diagnostics: one row per (explainer, factor), one column per per-factor metric."""
    rows = [r for r in results if "error" not in r and r.get("factor")]
    if not rows:
        return pd.DataFrame()
    frame = pd.DataFrame(rows)
    return frame.pivot_table(index=["explainer", "factor"], columns="metric", values="value", sort=False)


def render_leaderboard(record: dict) -> tuple[str, str]:
    """(markdown, csv) for a results record; only stored results are used.

    The markdown has the summary table (one row per explainer) and, below it,
    the per-factor diagnostics; the CSV has every column.
    """
    meta = record["metadata"]
    summary = leaderboard_frame(record["results"], factors=False)
    clf = meta.get("classifier", {})
    footer = (f"suite `{meta.get('suite')}` v{meta.get('suite_version')}, profile `{meta.get('profile')}`, "
              f"seed {meta.get('seed')}, device {meta.get('device', {}).get('type')}, "
              f"code {meta.get('code_revision')}; black box: test accuracy {clf.get('test_accuracy', float('nan')):.4f}. "
              "↑ higher is better, ↓ lower is better, no arrow: diagnostic; n/a: capability missing "
              "(or undefined, e.g. an FID group no explanation reached: see the row's note in results.json).")
    markdown = to_markdown(summary, title=f"genexbench leaderboard: {meta.get('suite')}", footer=footer)
    factors = factor_frame(record["results"])
    if not factors.empty:
        factors.index = [f"{e} {f}" for e, f in factors.index]
        markdown += "\n" + to_markdown(factors, title="per latent factor (GCE Fig. 5a-b)")
    return markdown, leaderboard_frame(record["results"]).to_csv()

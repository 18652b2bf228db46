"""Baseline files: per explainer and gated metric, the value of every seed of a run.

:func:`make_baseline` builds one from records, :func:`write_baseline` writes one from run directories
(``python -m bench baseline``) and :func:`load_baseline` reads and validates one.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

from bench.errors import BenchError
from bench.gate.tolerance import Tolerance, UnusableInput
from bench.outputs.leaderboard import check_same_run, run_records
from bench.outputs.results import code_revision, device_text, rows_of
from bench.outputs.schema import validate_baseline
from bench.store import atomic_write_text
from metrics import METRICS

BASELINE_KIND = "genexbench-baseline"
BASELINE_SCHEMA = 1


def gated_metrics(record: dict) -> dict[tuple[str, str], float | None]:
    """(explainer, metric) -> value for every summary metric with a direction (timings and per-factor
    diagnostics are not gated)."""
    out = {}
    for r in rows_of(record):
        if r.error is not None or r.factor:
            continue
        info = METRICS.get(r.metric)
        if info is not None and info.higher_is_better is not None:
            out[(r.explainer, r.metric)] = r.value
    return out


def devices_of(records: Sequence[dict]) -> list[str]:
    """The devices ``records`` ran on, as text (:func:`bench.outputs.results.device_text`), sorted, each once."""
    return sorted({device_text(rec["metadata"].get("device", {})) for rec in records})


def make_baseline(records: Sequence[dict], *, tolerance: str | None = None) -> dict:
    """A baseline of ``records`` (one per seed). ``tolerance`` is stored and used by compare unless it is
    given one: the floor of the noise-calibrated rule or the tolerance of the fixed rule; ``None`` (stored as
    null) means the default of whichever rule decides (:data:`DEFAULT_FLOOR`, :data:`DEFAULT_TOLERANCE`)."""
    check_same_run(records)
    if tolerance is not None:
        Tolerance.parse(tolerance)
    meta = records[0]["metadata"]
    values: dict[str, dict[str, list]] = {}
    for rec in records:
        for (explainer, metric), value in gated_metrics(rec).items():
            values.setdefault(explainer, {}).setdefault(metric, []).append(value)
    failed = sorted({r.explainer for rec in records for r in rows_of(rec) if r.error is not None})
    if failed:
        raise UnusableInput(f"these explainers failed in the run, so it cannot be a baseline: {', '.join(failed)}")
    return {
        "kind": BASELINE_KIND, "baseline_schema": BASELINE_SCHEMA, "results_schema": meta.get("schema_version"),
        "suite": meta.get("suite"), "suite_version": meta.get("suite_version"), "profile": meta.get("profile"),
        "seeds": [r["metadata"].get("seed") for r in records],
        "code_revisions": sorted({str(r["metadata"].get("code_revision")) for r in records}),
        "devices": devices_of(records),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "made_by": code_revision(),
        "tolerance": tolerance, "values": values,
    }


def write_baseline(run_dirs: Sequence[str | Path], out: str | Path, *, tolerance: str | None = None) -> Path:
    baseline = make_baseline(run_records(run_dirs), tolerance=tolerance)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(baseline, indent=1, allow_nan=False) + "\n")
    return out


def load_baseline(path: str | Path) -> dict:
    """The baseline in ``path``, checked (kind, baseline schema, then every field's type by
    :func:`bench.outputs.schema.validate_baseline`); :class:`UnusableInput` (exit 2) naming the field otherwise."""
    path = Path(path)
    try:
        baseline = json.loads(path.read_text())
    except FileNotFoundError:
        raise UnusableInput(f"no baseline file {path}") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UnusableInput(f"{path} is not a readable JSON baseline ({exc})") from None
    if not isinstance(baseline, dict) or baseline.get("kind") != BASELINE_KIND:
        raise UnusableInput(f"{path} is not a genexbench baseline (write one with `python -m bench baseline`)")
    if baseline.get("baseline_schema") != BASELINE_SCHEMA:
        raise UnusableInput(f"{path} has baseline schema {baseline.get('baseline_schema')}; "
                            f"this genexbench reads {BASELINE_SCHEMA}")
    try:
        return validate_baseline(baseline, path)
    except BenchError as exc:
        raise UnusableInput(str(exc)) from None

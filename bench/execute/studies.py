"""``python -m bench study FILE.toml``: a parameter study (settings x seeds) in one resumable directory.

A study file states, before anything runs, its grid, its profile and every decision threshold it uses
(``bench/execute/study_files/*.toml`` are the built-in ones; the file's format is documented in
``gce-sensitivity.toml``). Two kinds:

- ``one-at-a-time``: around a centre, one setting moved at a time, each cell a whole run of the suite
  (every metric), over several seeds. The table puts each cell's move of each metric beside the spread over
  seeds; the figures draw each swept setting.
- ``gce-algorithm1``: GCE's Algorithm 1 (Section 3.2; App. Figs. 11 and 16) as a procedure on fits whose
  held-out -ELBO (-D) and information flow (C) are measured; the thresholds that decide its plateaus are the
  file's, and the procedure is replayed with each threshold moved one step (the measurements it already has
  are reused; a move that needs a new fit trains it).

Every cell is cached (its fit in the model cache, its measurements or run in the study directory), so an
interrupted study resumes where it stopped. ``study.json`` carries the file's SHA-256, the code revision,
versions and device, as a run's metadata does.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import torch

from bench.errors import BenchError

STUDY_DIR = Path(__file__).resolve().parent / "study_files"
KINDS = ("one-at-a-time", "gce-algorithm1")


@dataclass(frozen=True)
class Size:
    name: str
    profile: str
    seeds: tuple[int, ...]
    center: dict  # the settings every cell starts from
    vary: dict  # one-at-a-time: setting -> the values it takes, one at a time
    search: dict  # gce-algorithm1: total_latents (Step 1), lambdas (Step 2's ladder), max_causal
    note: str = ""


@dataclass(frozen=True)
class Study:
    name: str
    kind: str
    description: str
    suite: str
    explainer: str
    metrics: tuple[str, ...]
    thresholds: dict
    moved: dict  # threshold -> the values one step away (gce-algorithm1)
    sizes: dict[str, Size]
    path: Path
    sha256: str


def builtin_names() -> list[str]:
    return sorted(p.stem for p in STUDY_DIR.glob("*.toml"))


def load_study(name_or_path: str | Path) -> Study:
    """A built-in study by name, or a study file; a one-line BenchError for anything it cannot use."""
    path = Path(name_or_path)
    if not str(name_or_path).endswith(".toml"):
        if str(name_or_path) not in builtin_names():
            raise BenchError(f"unknown study {str(name_or_path)!r}; built-in: {', '.join(builtin_names())} "
                             "(or give a study file, NAME.toml)")
        path = STUDY_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        raise BenchError(f"study file {str(path)!r} does not exist")
    raw = path.read_bytes()
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BenchError(f"study file {path}: {exc}") from None
    where = f"study file {path}"
    for key in ("name", "kind", "suite", "explainer", "sizes"):
        if key not in data:
            raise BenchError(f"{where}: top level needs {key!r}")
    if data["kind"] not in KINDS:
        raise BenchError(f"{where}: kind must be one of {', '.join(KINDS)}, not {data['kind']!r}")
    sizes = {}
    for size_name, s in data["sizes"].items():
        for key in ("profile", "seeds", "center"):
            if key not in s:
                raise BenchError(f"{where}: [sizes.{size_name}] needs {key!r}")
        seeds = tuple(int(x) for x in s["seeds"])
        if not seeds or len(set(seeds)) != len(seeds):
            raise BenchError(f"{where}: [sizes.{size_name}] seeds must be distinct and at least one")
        sizes[size_name] = Size(size_name, s["profile"], seeds, dict(s["center"]), dict(s.get("vary", {})),
                                dict(s.get("search", {})), s.get("note", ""))
    thresholds = dict(data.get("thresholds", {}))
    moved = thresholds.pop("moved", {})
    if data["kind"] == "gce-algorithm1":
        for key in ("fidelity_plateau", "fidelity_within", "causal_plateau"):
            if key not in thresholds:
                raise BenchError(f"{where}: [thresholds] needs {key!r}")
        for size_name, size in sizes.items():
            for key in ("total_latents", "lambdas", "max_causal"):
                if key not in size.search:
                    raise BenchError(f"{where}: [sizes.{size_name}.search] needs {key!r}")
    elif "sensitive_ratio" not in thresholds:
        raise BenchError(f"{where}: [thresholds] needs 'sensitive_ratio'")
    return Study(data["name"], data["kind"], data.get("description", ""), data["suite"], data["explainer"],
                 tuple(data.get("metrics", ())), thresholds, dict(moved), sizes, path.resolve(),
                 hashlib.sha256(raw).hexdigest())


def _provenance(study: Study, size: Size, device) -> dict:
    from bench.inputs.suites import get_suite
    from bench.outputs.results import code_revision, device_info, versions

    return {"study": study.name, "kind": study.kind, "size": size.name, "file": str(study.path),
            "file_sha256": study.sha256, "suite": study.suite, "suite_version": get_suite(study.suite).version,
            "explainer": study.explainer,
            "profile": size.profile, "seeds": list(size.seeds), "center": size.center, "vary": size.vary,
            "search": size.search, "thresholds": study.thresholds, "moved_thresholds": study.moved,
            "note": size.note, "code_revision": code_revision(), "versions": versions(),
            "device": device_info(device)}


def _write_json(path: Path, obj) -> None:
    from bench.outputs.results import strict_json
    from bench.store import atomic_write_text

    atomic_write_text(path, json.dumps(strict_json(obj), indent=1) + "\n")


def _check_out(out: Path, study: Study, size: Size) -> None:
    """An existing study directory resumes only the same study file and size."""
    existing = out / "study.json"
    if existing.exists():
        meta = json.loads(existing.read_text())["provenance"]
        if meta.get("file_sha256") != study.sha256 or meta.get("size") != size.name:
            raise BenchError(f"{out} holds another study (file {meta.get('file_sha256', '?')[:12]}, size "
                             f"{meta.get('size')}); give another --out")


def with_session(previous: dict, session: dict) -> list[dict]:
    """The sessions of study.json ``previous`` and then ``session``. A session recorded without its code
    revision gets the one of the provenance it wrote last (provenance is rewritten at each session's end)."""
    sessions = [dict(s) for s in previous.get("sessions", [])]
    if sessions and "code_revision" in previous.get("provenance", {}):
        sessions[-1].setdefault("code_revision", previous["provenance"]["code_revision"])
    return [*sessions, session]


def run_study(name_or_path: str | Path, *, size: str = "small", out: Path | None = None, device: str = "auto",
              executor: str = "local", ray_address: str | None = None, log: Callable[[str], None] = print) -> Path:
    """Run (or resume) a study; returns its directory (default ``studies/<name>-<size>``)."""
    from bench.execute.config import device_from_option
    from bench.outputs.results import code_revision
    from bench.store import atomic_write_bytes, ensure_writable_dir

    study = load_study(name_or_path)
    if size not in study.sizes:
        raise BenchError(f"study {study.name} has no size {size!r}; it has {', '.join(study.sizes)}")
    chosen = study.sizes[size]
    out = Path(out or f"studies/{study.name}-{size}")
    _check_out(out, study, chosen)
    ensure_writable_dir(out)
    atomic_write_bytes(out / "study.toml", study.path.read_bytes())  # the file as run; its hash is in study.json
    torch_device = device_from_option(device)
    if not (out / "study.json").exists():  # before any cell: an interrupted first session resumes only this study
        _write_json(out / "study.json", {"provenance": _provenance(study, chosen, torch_device), "sessions": []})
    log(f"[study] {study.name} ({study.kind}), size {size}: profile {chosen.profile}, seeds {list(chosen.seeds)}; "
        f"thresholds {study.thresholds}; file sha256 {study.sha256[:12]}")
    start = time.perf_counter()
    if study.kind == "gce-algorithm1":
        if executor != "local":
            log("[study] Algorithm 1 runs in this process (each fit decides the next): --executor is not used")
        result = _algorithm1(study, chosen, out, device, log)
    else:
        result = _one_at_a_time(study, chosen, out, device, executor, ray_address, log)
    # every invocation (the first, and each resume) with its own wall time: a resumed study keeps the first's
    previous = json.loads((out / "study.json").read_text()) if (out / "study.json").exists() else {}
    sessions = with_session(previous, {"finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                       "seconds": round(time.perf_counter() - start, 1), "executor": executor,
                                       "code_revision": code_revision()})
    _write_json(out / "study.json", {"provenance": _provenance(study, chosen, torch_device), "sessions": sessions,
                                     **result})
    log(f"[study] wrote {out} in {time.perf_counter() - start:.0f}s")
    return out


# ------------------------------------------------------------------------------------- one at a time

def cells(size: Size) -> list[tuple[str, dict, tuple[str, object] | None]]:
    """The centre, then each setting of ``vary`` moved to each of its values with the others at the centre:
    ``(cell id, settings, (setting, value) or None for the centre)``."""
    out = [("center", dict(size.center), None)]
    for key, values in size.vary.items():
        for value in values:
            if size.center.get(key) == value:
                continue
            out.append((f"{key}={value}", {**size.center, key: value}, (key, value)))
    return out


def _one_at_a_time(study: Study, size: Size, out: Path, device: str, executor: str, ray_address: str | None,
                   log: Callable[[str], None]) -> dict:
    from bench.execute.runner import execute
    from bench.options import check_keywords
    from bench.outputs.results import load_record

    grid = cells(size)
    values: dict[str, dict[int, dict]] = {}  # cell -> seed -> metric -> value
    for i, (cell, settings, _) in enumerate(grid):
        values[cell] = {}
        for seed in size.seeds:
            run_dir = out / "cells" / cell / f"seed{seed}"
            record = None
            if (run_dir / "results.json").exists():  # resume: a finished cell of the same settings is kept
                record = load_record(run_dir)
                if record["metadata"].get("settings_over_profile", {}).get(study.explainer) != settings:
                    record = None
            if record is None:
                log(f"[study] cell {i + 1} of {len(grid)} ({cell}), seed {seed}")
                execute(check_keywords(dict(
                    suite=study.suite, explainers=[study.explainer], profile=size.profile, seed=seed, device=device,
                    out=run_dir, settings={study.explainer: settings}, executor=executor, ray_address=ray_address,
                    command=["study", study.name, size.name, cell])))
                record = load_record(run_dir)
            values[cell][seed] = {r["metric"]: r["value"] for r in record["results"]
                                  if r["explainer"] == study.explainer and r["factor"] is None
                                  and (not study.metrics or r["metric"] in study.metrics)}
            errors = [r.get("error") for r in record["results"] if r.get("error")]
            if errors:
                values[cell][seed]["error"] = errors[0]
    table = _pooled(study, size, grid, values)
    _write_table(out, study, table)
    _grid_figures(out, study, size, grid, values, table)
    return {"cells": [{"cell": c, "settings": s} for c, s, _ in grid], "values": values, "table": table}


def _mean_sd(xs: list[float]) -> tuple[float | None, float | None]:
    xs = [x for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    if not xs:
        return None, None
    mean = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else None
    return mean, sd


def _pooled(study: Study, size: Size, grid, values) -> list[dict]:
    """Per cell and metric: mean and s.d. over seeds, the move from the centre, and that move over the seed
    spread (the pooled s.d. of the centre and the cell); ``sensitive`` when the ratio is above the file's
    ``sensitive_ratio``."""
    metrics = list(study.metrics) or sorted({m for c in values.values() for v in c.values() for m in v
                                             if m is not None and m != "error"})
    ratio = float(study.thresholds["sensitive_ratio"])
    rows = []
    center = {m: _mean_sd([values["center"][s].get(m) for s in size.seeds]) for m in metrics}
    for cell, _, moved in grid:
        for m in metrics:
            mean, sd = _mean_sd([values[cell][s].get(m) for s in size.seeds])
            c_mean, c_sd = center[m]
            row = {"cell": cell, "setting": moved[0] if moved else None, "value": moved[1] if moved else None,
                   "metric": m, "mean": mean, "sd": sd, "n_seeds": len(size.seeds)}
            if moved and mean is not None and c_mean is not None:
                row["move"] = mean - c_mean
                spread = math.sqrt(((sd or 0) ** 2 + (c_sd or 0) ** 2) / 2)
                row["seed_sd"] = spread if (sd is not None and c_sd is not None) else None
                row["move_over_seed_sd"] = abs(row["move"]) / spread if row["seed_sd"] else None
                row["sensitive"] = (row["move_over_seed_sd"] is not None and row["move_over_seed_sd"] > ratio)
            rows.append(row)
    return rows


def _fmt(x, digits: int = 4) -> str:
    return "n/a" if x is None else f"{x:.{digits}g}"


def _write_table(out: Path, study: Study, table: list[dict]) -> None:
    import pandas as pd

    from bench.store import atomic_write_text

    frame = pd.DataFrame(table)
    atomic_write_text(out / "table.csv", frame.to_csv(index=False))
    metrics = list(dict.fromkeys(r["metric"] for r in table))
    cells_ = list(dict.fromkeys(r["cell"] for r in table))
    by = {(r["cell"], r["metric"]): r for r in table}
    lines = [f"# {study.name}: mean ± s.d. over seeds; [move / seed s.d.], * above "
             f"{study.thresholds['sensitive_ratio']}", "",
             "| cell | " + " | ".join(metrics) + " |", "|---|" + "---:|" * len(metrics)]
    for cell in cells_:
        parts = []
        for m in metrics:
            r = by[(cell, m)]
            text = f"{_fmt(r['mean'])} ± {_fmt(r['sd'], 2)}"
            if r.get("move_over_seed_sd") is not None:
                text += f" [{r['move_over_seed_sd']:.1f}{'*' if r['sensitive'] else ''}]"
            parts.append(text)
        lines.append(f"| {cell} | " + " | ".join(parts) + " |")
    atomic_write_text(out / "table.md", "\n".join(lines) + "\n")


def _grid_figures(out: Path, study: Study, size: Size, grid, values, table) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = list(dict.fromkeys(r["metric"] for r in table))
    (out / "figures").mkdir(exist_ok=True)
    for key in size.vary:
        points = [("center", size.center.get(key))] + [(c, m[1]) for c, _, m in grid if m and m[0] == key]
        points.sort(key=lambda p: p[1])
        cols = min(4, len(metrics))
        rows = math.ceil(len(metrics) / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
        for ax, m in zip(axes.flat, metrics):
            xs = list(range(len(points)))
            for x, (cell, _) in zip(xs, points):
                seeds = [values[cell][s].get(m) for s in size.seeds]
                seeds = [v for v in seeds if v is not None]
                ax.scatter([x] * len(seeds), seeds, s=10, color="0.6", zorder=2)
                mean, sd = _mean_sd(seeds)
                if mean is not None:
                    ax.errorbar([x], [mean], yerr=[sd or 0], fmt="o", color="C3" if cell == "center" else "C0",
                                capsize=3, zorder=3)
            ax.set_xticks(xs, [str(v) for _, v in points])
            ax.set_title(m, fontsize=8)
            ax.tick_params(labelsize=7)
        for ax in list(axes.flat)[len(metrics):]:
            ax.axis("off")
        fig.suptitle(f"{study.name}: {key} moved (red: the centre; grey: seeds; bars: ± 1 s.d.)", fontsize=9)
        fig.tight_layout()
        fig.savefig(out / "figures" / f"{key}.png", dpi=110)
        plt.close(fig)


# ----------------------------------------------------------------------------------- GCE Algorithm 1

@dataclass
class _Measure:
    """Fits GCE at (K, L, lambda) (cached) and measures -D (held-out -ELBO) and C (I(alpha;Y)), keeping every
    measurement in ``cells.json`` so that a resumed or replayed procedure reads it back."""

    study: Study
    size: Size
    out: Path
    device: str
    log: Callable[[str], None]
    seed: int = 0
    table: dict = field(default_factory=dict)
    _ready: object = None

    def __post_init__(self) -> None:
        path = self.out / "cells.json"
        self.table = json.loads(path.read_text()) if path.exists() else {}

    @staticmethod
    def key(k: int, total: int, lam: float) -> str:
        return f"K={k},L={total - k},lambda={lam:g}"

    def _setup(self):
        """The plan and the black box every fit of this seed shares."""
        if self._ready is None:
            from bench.execute.config import make_config
            from bench.execute.steps import plan, train_black_box
            from bench.options import check_keywords

            config = make_config(check_keywords(dict(suite=self.study.suite, profile=self.size.profile,
                                                     explainers=[self.study.explainer], seed=self.seed,
                                                     device=self.device, out=self.out / "unused"))).config
            planned = plan(config, lambda m: None, out=self.out)
            self._ready = (config, planned, train_black_box(config, planned))
        return self._ready

    def __call__(self, k: int, total: int, lam: float) -> dict:
        key = self.key(k, total, lam)
        if key in self.table:
            return self.table[key]
        from bench.execute.steps import fit as fit_step
        from metrics.information_flow import information_flow

        config, planned, black_box = self._setup()
        classifier = black_box.classifier
        settings = {**planned.profile.explainers.get(self.study.explainer, {}), **self.size.center,
                    "n_causal": k, "n_noncausal": total - k, "lam": lam}
        start = time.perf_counter()
        self.log(f"[study] fitting GCE {key} (fit {len(self.table) + 1})")
        explainer, fit = fit_step(self.study.explainer, config, planned, black_box, lambda m: None, settings=settings)
        val = planned.data.val.images
        neg_elbo = explainer.heldout_neg_elbo(val, generator=torch.Generator().manual_seed(self.seed))
        n_alpha, n_beta = planned.profile.info_flow_samples
        info = 0.0
        if k:
            with torch.no_grad():
                info = float(information_flow(explainer.decode, classifier, k, total - k, n_alpha, n_beta,
                                              generator=torch.Generator().manual_seed(self.seed),
                                              device=planned.device))
        row = {"K": k, "L": total - k, "lambda": lam, "neg_elbo": neg_elbo, "information_flow": info,
               "train_final_neg_elbo": fit["fit"].get("final_neg_elbo"),
               "train_final_information_flow": fit["fit"].get("final_information_flow"),
               "fit_seconds": fit["fit_seconds"], "cached_fit": fit["cached"],
               "seconds": time.perf_counter() - start, "settings": explainer.settings}
        self.log(f"[study] {key}: -ELBO {neg_elbo:.2f}, I(alpha;Y) {info:.3f} ({row['seconds']:.0f}s)")
        self.table[key] = row
        _write_json(self.out / "cells.json", self.table)
        return row


def algorithm1(measure: Callable[[int, int, float], dict], search: dict, thresholds: dict) -> dict:
    """GCE Algorithm 1 with explicit numbers (the study file's):

    1. K = 0 (C = 0; lambda only scales the loss): for each total L in ``total_latents`` in turn, fit and
       measure -D. Stop at the first L whose -D improves on the previous L's by less than
       ``fidelity_plateau`` (relative); the total is the previous L (the last that still improved enough).
    2. For K = 1, 2, ... (L = total - K): raise lambda along ``lambdas`` until -D is within
       ``fidelity_within`` (relative) of Step 1's -D at that total; C is I(alpha;Y) of that fit. (No lambda of
       the ladder reaching it: its largest.)
    3. Until C improves on the previous K's by less than ``causal_plateau`` (relative): use (K, L, lambda) from
       immediately before (the paper's "use (K, L, lambda) from immediately before plateau was reached").
       ``max_causal`` bounds K (then the last K is used).

    Returns the choice and the path: every measurement the procedure read, in order.
    """
    path = []
    totals = list(search["total_latents"])
    total, previous = None, None
    for t in totals:
        row = measure(0, t, 1.0)
        path.append(("step1", row))
        if previous is not None and (previous["neg_elbo"] - row["neg_elbo"]) / abs(previous["neg_elbo"]) \
                < thresholds["fidelity_plateau"]:
            total = previous["L"]
            break
        previous = row
    if total is None:
        total = totals[-1]
    target = next(r for s, r in path if s == "step1" and r["L"] == total)["neg_elbo"]
    chosen_per_k = []
    for k in range(1, min(int(search["max_causal"]), total) + 1):
        pick = None
        for lam in search["lambdas"]:
            row = measure(k, total, float(lam))
            path.append((f"step2 K={k}", row))
            pick = row
            if (row["neg_elbo"] - target) / abs(target) <= thresholds["fidelity_within"]:
                break
        chosen_per_k.append(pick)
        if len(chosen_per_k) >= 2:
            before, now = chosen_per_k[-2], chosen_per_k[-1]
            gain = (now["information_flow"] - before["information_flow"]) / max(abs(before["information_flow"]),
                                                                                 1e-12)
            if gain < thresholds["causal_plateau"]:
                choice = before
                break
    else:
        choice = chosen_per_k[-1]
    return {"K": choice["K"], "L": choice["L"], "lambda": choice["lambda"], "total": total,
            "step1_neg_elbo": target, "per_k": [{k: r[k] for k in ("K", "L", "lambda", "neg_elbo",
                                                                     "information_flow")} for r in chosen_per_k],
            "path": [{"step": s, **{k: r[k] for k in ("K", "L", "lambda", "neg_elbo", "information_flow")}}
                     for s, r in path]}


def _algorithm1(study: Study, size: Size, out: Path, device: str, log: Callable[[str], None]) -> dict:
    results = {}
    for seed in size.seeds:
        measure = _Measure(study, size, out / f"seed{seed}", device, log, seed=seed)
        (out / f"seed{seed}").mkdir(parents=True, exist_ok=True)
        main = algorithm1(measure, size.search, study.thresholds)
        log(f"[study] seed {seed}: Algorithm 1 chose K={main['K']}, L={main['L']}, lambda={main['lambda']:g} "
            f"(total {main['total']})")
        variants = []
        for name, values in study.moved.items():
            for value in values:
                moved = algorithm1(measure, size.search, {**study.thresholds, name: value})
                same = (moved["K"], moved["L"], moved["lambda"]) == (main["K"], main["L"], main["lambda"])
                variants.append({"threshold": name, "value": value, "K": moved["K"], "L": moved["L"],
                                 "lambda": moved["lambda"], "total": moved["total"], "same_choice": same})
                log(f"[study] seed {seed}: {name} = {value}: K={moved['K']}, L={moved['L']}, "
                    f"lambda={moved['lambda']:g}" + ("" if same else "  (a different choice)"))
        results[seed] = {"choice": main, "moved": variants, "cells": measure.table}
        _algorithm1_figure(study, size, main, measure.table, out / "figures" / f"algorithm1_seed{seed}.png")
    _algorithm1_table(study, results, out)
    return {"seeds": results}


def _algorithm1_table(study: Study, results: dict, out: Path) -> None:
    from bench.store import atomic_write_text

    lines = [f"# {study.name}", ""]
    for seed, r in results.items():
        c = r["choice"]
        lines += [f"## seed {seed}: K = {c['K']}, L = {c['L']}, lambda = {c['lambda']:g} (Step 1 total "
                  f"{c['total']}, -ELBO {c['step1_neg_elbo']:.2f}); the paper: K = 1, L = 7, lambda = 0.05", "",
                  "| threshold | value | K | L | lambda | same choice |", "|---|---:|---:|---:|---:|---|",
                  *[f"| {v['threshold']} | {v['value']:g} | {v['K']} | {v['L']} | {v['lambda']:g} | "
                    f"{'yes' if v['same_choice'] else '**no**'} |" for v in r["moved"]], "",
                  "| fit | K | L | lambda | held-out -ELBO | I(alpha;Y) |", "|---|---:|---:|---:|---:|---:|",
                  *[f"| {i + 1} | {p['K']} | {p['L']} | {p['lambda']:g} | {p['neg_elbo']:.2f} | "
                    f"{p['information_flow']:.3f} |" for i, p in enumerate(c["path"])], ""]
    atomic_write_text(out / "table.md", "\n".join(lines))


def _algorithm1_figure(study: Study, size: Size, choice: dict, table: dict, path: Path) -> None:
    """The analogue of GCE App. Fig. 11: (left) Step 1's -ELBO against K + L; (centre) C against K at each
    K's chosen lambda; (right) -ELBO against lambda for each K, with Step 1's value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(table.values())
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(11, 3.2))
    step1 = sorted((r for r in rows if r["K"] == 0), key=lambda r: r["L"])
    a.plot([r["L"] for r in step1], [r["neg_elbo"] for r in step1], "o-")
    a.axvline(choice["total"], color="C3", ls="--", lw=1)
    a.set_xticks([r["L"] for r in step1])
    a.set(xlabel="K + L (K = 0)", ylabel="held-out -ELBO (-D)", title="Step 1: total latents")
    per_k = choice["per_k"]
    b.plot([0] + [r["K"] for r in per_k], [0.0] + [r["information_flow"] for r in per_k], "o-")
    b.axvline(choice["K"], color="C3", ls="--", lw=1)
    b.set_xticks(range(0, len(per_k) + 1))
    b.set(xlabel=f"K (K + L = {choice['total']})", ylabel="I(alpha; Y) (C), nats", title="Steps 2-3: causal factors")
    for k in sorted({r["K"] for r in rows if r["K"] > 0}):
        pts = sorted((r for r in rows if r["K"] == k and r["K"] + r["L"] == choice["total"]), key=lambda r: r["lambda"])
        if pts:
            c.plot([r["lambda"] for r in pts], [r["neg_elbo"] for r in pts], "o-", label=f"K = {k}")
    c.axhline(choice["step1_neg_elbo"], color="0.4", ls=":", lw=1, label="Step 1")
    c.axhline(choice["step1_neg_elbo"] * (1 + study.thresholds["fidelity_within"]), color="0.7", ls=":", lw=1)
    c.set_xscale("log")
    c.set(xlabel="lambda", ylabel="held-out -ELBO (-D)", title="Step 2: lambda per K")
    c.legend(fontsize=7)
    fig.suptitle(f"{study.name} ({size.name}): chose K = {choice['K']}, L = {choice['L']}, lambda = "
                 f"{choice['lambda']:g} (paper: 1, 7, 0.05)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

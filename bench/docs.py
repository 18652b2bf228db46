"""Generated blocks in the documentation: every measured number on a page comes from the committed results.

``python -m bench.docs [--check]`` (and ``python -m bench docs``) rewrites the marked blocks of
``README.md``, ``docs/**/*.md`` and ``results/**/README.md`` from the files under ``results/``. A block is::

    <!-- docs: NAME key=value key="a value with spaces" -->
    ...generated text...
    <!-- /docs -->

or the same on one line, inside a sentence (``... MoRF AUC <!-- docs: cell run=mnist-quick
explainer=gce metric=removal_morf_auc -->0.607 ± 0.033<!-- /docs --> ...``): a block whose text starts with a
newline is regenerated as lines of its own, any other inline. ``NAME`` is one of :data:`GENERATORS`, each a
small function of the committed files (run records through :func:`bench.outputs.leaderboard.run_records`
and :func:`~bench.outputs.leaderboard.build_board`, baselines through :func:`bench.gate.load_baseline`,
``proxy_validity.json``, a study's ``study.json`` and ``table.csv``) that returns markdown: a table, a
sentence or one number. Everything else on a page is prose; ``tests/test_docs.py`` fails on a decimal number
or a time outside a block and fenced code unless it is one of :data:`CONSTANTS` (a paper's setting, a
default), on a page that differs from its regeneration, and on a ``results/`` path that git does not track.

A block naming a results file that does not exist is a one-line error (exit 2), unless it says
``if-missing=note`` (a study still running): then it reads "not committed yet" until the file is there.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import re
import shlex
import sys
from pathlib import Path
from typing import Callable

from bench.errors import BenchError
from bench.store import atomic_write_text

#: an opening marker, the generated text, the closing marker (blocks do not nest)
BLOCK = re.compile(r"<!-- docs: (?P<name>[\w-]+)(?P<args>[^>]*?) -->(?P<body>.*?)<!-- /docs -->", re.S)

#: Decimal numbers (and phrases holding them) the prose may state outside generated blocks: settings of the
#: papers and defaults of the code, never a measurement. ``tests/test_docs.py`` blanks each phrase out of a
#: page before it looks for numbers, so a phrase allows its number in that context only.
CONSTANTS: dict[str, str] = {
    "Python >= 3.11": "the required Python (tomllib)",
    "lambda = 0.05": "GCE's MNIST setting (K = 1, L = 7, lambda = 0.05; GCE App. E)",
    "lambda=0.05": "GCE's Fashion-MNIST setting (App. E.3)",
    "alpha 0.05": "the gate's family-wise error rate (bench.gate.ALPHA)",
    "lr 0.1": "GCE Table 1 classifier recipe (SGD lr 0.1)",
    "momentum 0.5": "GCE Table 1 classifier recipe",
    "decay 0.7": "GCE Table 1 classifier recipe",
    "beta1 0.5": "GCE's released code: Adam beta1",
    "[0.9, 1]": "the exaggeration paper's FID 'present' group",
    "[0, 0.1]": "the exaggeration paper's FID 'absent' group",
    "[0.1, 5]": "the invariance curve's sigma range (SVAE Fig. 2)",
    "4.9": "the invariance curve's sigma span (5 - 0.1), its trapezoid's normaliser",
    "Section 3.0.1": "SVAE paper section",
    "Section 3.1.1": "SVAE paper section",
    "Section 3.2": "GCE paper section (Algorithm 1)",
    "Sec. 4.3": "exaggeration paper section",
    "App. A.2": "GANMEX appendix section",
    "A.3": "GANMEX appendix section",
    "A.4": "exaggeration appendix section",
    "App. B.2": "GANMEX appendix section",
    "App. B.4": "GANMEX appendix section",
    "E.1": "GCE appendix section",
    "E.3": "GCE appendix section",
    "λ = 0.05": "GCE's released MNIST setting (design notes)",
    "λ=0.05": "GCE's MNIST and Fashion-MNIST settings (design notes)",
    "λ=0.1": "the authors' MNIST 1/4/9 setting (design notes)",
    "≤ 0.05 on [0, 1]": "the meaningful change of a [0, 1] metric (design notes)",
    "~99.4%": "the authors' reported classifier accuracy, MNIST 3/8 (design notes)",
    "~95.6%": "the authors' reported classifier accuracy, FMNIST 0/3/4 (design notes)",
    "NumPy ≥ 1.24": "the NumPy release that removed the aliases the GCE code uses",
    "p = 1.0": "the exaggeration code's top bin edge",
    "betas (0, 0.9)": "the exaggeration code's Adam betas",
    "gce.lam=0.1": "an example of --set's syntax",
    '"lam": 0.1': "an example of bench.run's settings keyword",
    "lambda_rec = 0.0": "an example of a suite file's [variants] table",
}

PAGES = ("README.md", "docs/**/*.md", "results/**/README.md")


class DocsError(BenchError):
    """A block that cannot be generated: an unknown generator, a bad argument, a missing results file."""


class MissingResults(DocsError):
    """A block names a results file or directory that is not there."""


# ----------------------------------------------------------------------------- reading the committed files


class Context:
    """The committed files of one checkout, each read once per regeneration."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._cache: dict = {}

    def path(self, relative: str) -> Path:
        path = self.root / relative
        if not path.exists():
            raise MissingResults(f"{relative} does not exist")
        return path

    def _once(self, key, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def records(self, run: str) -> list[dict]:
        from bench.outputs.leaderboard import run_records

        return self._once(("records", run), lambda: run_records([self.path(f"results/{run}")]))

    def record(self, run: str, seed: str | int | None) -> dict:
        records = self.records(run)
        if seed is None:
            return records[0]
        for rec in records:
            if str(rec["metadata"].get("seed")) == str(seed):
                return rec
        raise DocsError(f"results/{run} has no seed {seed} (seeds {[r['metadata'].get('seed') for r in records]})")

    def board(self, run: str):
        from bench.outputs.leaderboard import build_board

        return self._once(("board", run), lambda: build_board(self.records(run)))

    def json(self, relative: str):
        def load():
            path = self.path(relative)
            try:
                return json.loads(path.read_text())
            except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise DocsError(f"{relative} is not readable JSON ({exc})") from None

        return self._once(("json", relative), load)

    def baseline(self, name: str) -> dict:
        from bench.gate import load_baseline

        relative = f"results/baselines/{name}.json"
        return self._once(("baseline", name), lambda: load_baseline(self.path(relative)))

    def study(self, study: str) -> dict:
        data = self.json(f"results/studies/{study}/study.json")
        if "provenance" not in data:
            raise DocsError(f"results/studies/{study}/study.json has no provenance")
        return data

    def study_table(self, study: str):
        import pandas as pd

        relative = f"results/studies/{study}/table.csv"
        return self._once(("table", study), lambda: pd.read_csv(self.path(relative)))


# ----------------------------------------------------------------------------- formatting


def seconds_text(seconds: float) -> str:
    """``14 s`` under a minute, ``2:16`` (m:ss) under an hour, ``1 h 05 min`` above."""
    seconds = float(seconds)
    if seconds < 59.5:
        return f"{seconds:.0f} s"
    whole = int(round(seconds))
    if whole < 3600:
        return f"{whole // 60}:{whole % 60:02d}"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def _devices(records: list[dict]) -> str:
    from bench.gate import devices_of

    return ", ".join(devices_of(records))


def _list(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _number(value: float, decimals: str | None) -> str:
    return f"{value:.{int(decimals)}f}" if decimals is not None else f"{value:.3g}"


def _column(board, metric: str, factor: str | None = None) -> str:
    from bench.outputs.leaderboard import column_name

    column = column_name(metric, factor)
    if column not in board.mean.columns:
        raise DocsError(f"no metric {metric!r} in these results")
    return column


def _explainer(board, explainer: str) -> str:
    if explainer not in board.mean.index:
        raise DocsError(f"no explainer {explainer!r} in these results ({', '.join(board.mean.index)})")
    return explainer


def _mean(board, explainer: str, column: str) -> float:
    value = board.mean.at[_explainer(board, explainer), column]
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise DocsError(f"{explainer}'s {column} is undefined in these results")
    return float(value)


# ----------------------------------------------------------------------------- the generators

Generator = Callable[..., str]
GENERATORS: dict[str, Generator] = {}


def generator(name: str) -> Callable[[Generator], Generator]:
    def add(fn: Generator) -> Generator:
        GENERATORS[name] = fn
        return fn

    return add


@generator("cell")
def _cell(ctx: Context, run: str, explainer: str, metric: str, factor: str | None = None,
          part: str = "both") -> str:
    """One leaderboard cell of ``results/<run>``: ``mean ± s.d.`` over its seeds, as the leaderboard prints
    it (``part=mean``: the mean alone, at the same precision)."""
    from bench.outputs.leaderboard import cell_text

    board = ctx.board(run)
    text = cell_text(board, _explainer(board, explainer), _column(board, metric, factor))
    return text.split(" ± ")[0] if part == "mean" else text


@generator("table")
def _table(ctx: Context, run: str, metrics: str, explainers: str | None = None) -> str:
    """The leaderboard of ``results/<run>`` restricted to ``metrics`` (and ``explainers``, in that order),
    best in bold as the leaderboard marks it; explainers with no value in these columns left out."""
    from bench.outputs.leaderboard import cell_text

    board = ctx.board(run)
    columns = [_column(board, m) for m in _list(metrics)]
    names = [_explainer(board, e) for e in _list(explainers)] or list(board.mean.index)
    lines = ["| explainer | " + " | ".join(f"`{c}`" for c in columns) + " |",
             "| --- |" + " ---: |" * len(columns)]
    for name in names:
        if not board.mean.loc[name, columns].notna().any():
            continue
        cells = []
        for column in columns:
            text = cell_text(board, name, column)
            cells.append(f"**{text}**" if name in board.best.get(column, ()) else text)
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


@generator("per-seed")
def _per_seed(ctx: Context, run: str, explainer: str, metric: str, decimals: str = "3") -> str:
    """``metric`` of ``explainer`` on each seed of ``results/<run>``, in seed order: ``0.706, 0.348, 0.294``."""
    values = []
    for rec in ctx.records(run):
        found = [r.value for r in _rows(rec) if r.explainer == explainer and r.metric == metric and r.factor is None]
        if not found:
            raise DocsError(f"results/{run}: seed {rec['metadata'].get('seed')} has no {explainer} {metric}")
        values.append("n/a" if found[0] is None else f"{found[0]:.{int(decimals)}f}")
    return ", ".join(values)


def _rows(record: dict):
    from bench.outputs.results import rows_of

    return rows_of(record)


@generator("range")
def _range(ctx: Context, run: str, metric: str, explainers: str | None = None, decimals: str | None = None) -> str:
    """``low-high``: the smallest and largest mean of ``metric`` over ``explainers`` (default: every one
    with a value) in ``results/<run>``."""
    board = ctx.board(run)
    column = _column(board, metric)
    names = _list(explainers) or [e for e in board.mean.index if not math.isnan(board.mean.at[e, column])]
    values = [_mean(board, e, column) for e in names]
    return f"{_number(min(values), decimals)}-{_number(max(values), decimals)}"


@generator("seeds")
def _seeds(ctx: Context, run: str) -> str:
    """The seeds of ``results/<run>``, as ``0, 1 and 2``."""
    seeds = [str(r["metadata"].get("seed")) for r in ctx.records(run)]
    return seeds[0] if len(seeds) == 1 else ", ".join(seeds[:-1]) + " and " + seeds[-1]


@generator("device")
def _device(ctx: Context, run: str) -> str:
    """The device every seed of ``results/<run>`` ran on, as the leaderboard's footer names it."""
    return _devices(ctx.records(run))


@generator("versions")
def _versions(ctx: Context, run: str, packages: str = "torch,torchvision") -> str:
    """The library versions ``results/<run>`` recorded (``packages``), as ``torch 2.x and torchvision 0.y``."""
    found = {}
    for rec in ctx.records(run):
        for name in _list(packages):
            found.setdefault(name, set()).add(str((rec["metadata"].get("versions") or {}).get(name, "?")))
    parts = [f"{name} {' / '.join(sorted(v))}" for name, v in found.items()]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


@generator("meta")
def _meta(ctx: Context, run: str, key: str, seed: str | None = None, format: str = "text") -> str:
    """One value of a record's metadata (``key`` a dotted path, e.g. ``classifier.test_accuracy``) of
    ``results/<run>`` (seed ``seed``, default the first); ``format``: text, pct (two decimals), seconds."""
    value = ctx.record(run, seed)["metadata"]
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            raise DocsError(f"results/{run}: the metadata has no {key!r}")
        value = value[part]
    if format == "pct":
        return f"{float(value):.2%}"
    if format == "seconds":
        return seconds_text(float(value))
    return str(value)


def _fit_steps(meta: dict) -> list[tuple[str, float]]:
    """(step, seconds) of a seed's work when nothing is cached: the black box's and the FID feature
    network's training and each explainer fit (fits shared by several explainers counted once), with the
    training times the cache stored when they were made (cold), in the run's explainer order."""
    steps = [("black box", float((meta.get("classifier") or {}).get("fit_seconds") or 0.0))]
    if meta.get("fid_features"):
        steps.append(("FID feature network", float(meta["fid_features"].get("fit_seconds") or 0.0)))
    seen = set()
    for name, details in (meta.get("explainer_details") or {}).items():
        key = details.get("cache_key")
        seconds = float(details.get("fit_seconds") or 0.0)
        if key is None or key in seen or seconds < 0.1:  # nothing fitted (a baseline, a floor), or a shared fit
            continue
        seen.add(key)
        steps.append((name, seconds))
    return steps


def _scoring_seconds(meta: dict) -> float:
    """A seed's scoring: each explainer's time in its run minus the fit (or cache load) it began with."""
    timings = meta.get("timings") or {}
    return sum(max(0.0, float(timings.get(f"{name}_seconds", 0.0)) - float(timings.get(f"{name}_fit_seconds", 0.0)))
               for name in meta.get("explainers") or ())


@generator("cold-run")
def _cold_run(ctx: Context, run: str, seed: str = "0") -> str:
    """A seed's time cold, from what its record measured: the black box, the FID feature network and every
    fit as trained (cached fits keep their training time), and that run's scoring, on the recorded device."""
    meta = ctx.record(run, seed)["metadata"]
    steps = _fit_steps(meta)
    scoring = _scoring_seconds(meta)
    total = sum(s for _, s in steps) + scoring
    fits = ", ".join(f"{name} {seconds_text(s)}" for name, s in steps)
    return (f"{fits}, scoring {seconds_text(scoring)}: {seconds_text(total)} in all, the sum of the times "
            f"seed {meta.get('seed')} recorded (`results/{run}/seed{meta.get('seed')}/results.json`, "
            f"`timings` and each fit's `fit_seconds`) on {_devices([{'metadata': meta}])}")


@generator("run-times")
def _run_times(ctx: Context, run: str) -> str:
    """Each seed's wall time as its run recorded it (``timings.total_seconds``), their sum, the device, and
    how many of the seed's fits came from the cache (then its wall time is not a cold run's)."""
    records = ctx.records(run)
    parts, total, cached = [], 0.0, 0
    for rec in records:
        meta = rec["metadata"]
        seconds = float((meta.get("timings") or {}).get("total_seconds", 0.0))
        total += seconds
        fits: dict[str, bool] = {}  # fit cache key -> read from the cache (a fit two explainers share counts once)
        for d in (meta.get("explainer_details") or {}).values():
            if d.get("cache_key") is not None:
                fits[d["cache_key"]] = fits.get(d["cache_key"], True) and bool(d.get("cached"))
        cached += sum(fits.values())
        parts.append(f"seed {meta.get('seed')} {seconds_text(seconds)}")
    note = "every fit trained in its run" if not cached else f"{cached} explainer fits read from the cache"
    return f"{', '.join(parts)}; {seconds_text(total)} in all ({note}), on {_devices(records)}"


@generator("proxy-validity")
def _proxy_validity(ctx: Context, run: str) -> str:
    """The proxy-validity table of ``results/<run>/proxy_validity.json``, as the leaderboard prints it."""
    from bench.outputs.validity import to_markdown

    rows = ctx.json(f"results/{run}/proxy_validity.json")
    if not isinstance(rows, list) or not rows:
        raise DocsError(f"results/{run}/proxy_validity.json holds no rows")
    return to_markdown(rows, heading="#").split("\n", 2)[2].strip("\n")


@generator("proxy")
def _proxy(ctx: Context, run: str, proxy: str, truth: str, field: str = "agreement") -> str:
    """One number of ``results/<run>/proxy_validity.json``: ``field`` (rho, agreement, rho_explainers_only,
    interval) of the row ``proxy`` against ``truth``, signed to two decimals as the table prints it."""
    rows = [r for r in ctx.json(f"results/{run}/proxy_validity.json")
            if r.get("proxy") == proxy and r.get("truth") == truth]
    if not rows:
        raise DocsError(f"results/{run}/proxy_validity.json has no row {proxy} against {truth}")
    row = rows[0]
    if field == "interval":
        return "n/a" if row["low"] is None else f"[{row['low']:+.2f}, {row['high']:+.2f}]"
    if field not in row:
        raise DocsError(f"no field {field!r} in the proxy-validity rows")
    return "n/a" if row[field] is None else f"{row[field]:+.2f}"


@generator("ground-truth")
def _ground_truth(ctx: Context, run: str) -> str:
    """Each seed's verification of the planted truth on its black box (``metadata.ground_truth``), one line
    a seed, as the leaderboard's footer words it."""
    from bench.inputs.ground_truth import describe

    lines = []
    for rec in ctx.records(run):
        check = rec["metadata"].get("ground_truth")
        if not isinstance(check, dict):
            raise DocsError(f"results/{run}: seed {rec['metadata'].get('seed')} records no ground-truth check")
        lines.append(f"- seed {rec['metadata'].get('seed')}: {describe(check)}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- baselines


def _baseline_facts(ctx: Context, name: str) -> dict:
    """A committed baseline's seeds, gated metrics and, compared with the committed run it was made from,
    how many of them the calibrated rule tests (the Holm family) and the exit status."""
    from bench.gate import compare_records
    from bench.inputs.suites import SUITES

    def make():
        baseline = ctx.baseline(name)
        run = f"{baseline['suite']}-{baseline['profile']}"
        gated = sum(len(v) for v in baseline["values"].values())
        facts = {"run": run, "seeds": baseline.get("seeds") or [], "gated": gated, "tested": None, "exit": None,
                 "suite_version": str(baseline.get("suite_version")), "devices": baseline.get("devices") or [],
                 "current": str(SUITES[baseline["suite"]].version) if baseline["suite"] in SUITES else "?"}
        if (ctx.root / "results" / run).exists():
            comparison = compare_records(ctx.records(run), baseline)
            facts.update(tested=comparison.tests, exit=comparison.exit_code, rule=comparison.rule)
        return facts

    return ctx._once(("baseline-facts", name), make)


@generator("baselines")
def _baselines(ctx: Context) -> str:
    """Every committed baseline (``results/baselines/*.json``): the run it holds, suite version (and the
    suite's current one), seeds, gated metrics, how many the calibrated rule tests against its own run, and
    that run's verdict against it."""
    files = sorted((ctx.root / "results" / "baselines").glob("*.json"))
    if not files:
        raise MissingResults("results/baselines/*.json: no baseline committed")
    lines = ["| baseline | run | suite version (current) | seeds | gated metrics | tested | its own run |",
             "| --- | --- | --- | --- | ---: | ---: | --- |"]
    for path in files:
        f = _baseline_facts(ctx, path.stem)
        version = f["suite_version"] + ("" if f["suite_version"] == f["current"] else
                                        f" (current {f['current']}: superseded)")
        verdict = "n/a" if f["exit"] is None else f"exit {f['exit']}"
        tested = "n/a" if f["tested"] is None else str(f["tested"])
        lines.append(f"| `{path.name}` | `results/{f['run']}/` | {version} | {', '.join(map(str, f['seeds']))} "
                     f"| {f['gated']} | {tested} | {verdict} |")
    return "\n".join(lines)


@generator("baseline")
def _baseline(ctx: Context, name: str, field: str) -> str:
    """One fact of ``results/baselines/<name>.json``: ``seeds`` (their count), ``gated``, ``tested``, ``device``."""
    f = _baseline_facts(ctx, name)
    if field == "seeds":
        return str(len(f["seeds"]))
    if field == "device":
        return ", ".join(f["devices"])
    if field not in ("gated", "tested"):
        raise DocsError(f"baseline field {field!r}: one of seeds, gated, tested, device")
    return str(f[field])


@generator("constant")
def _constant(ctx: Context, name: str) -> str:
    """A constant of the code (``module:NAME``), in backticks: a default the docs state is the code's."""
    import importlib

    module, _, attr = name.partition(":")
    try:
        value = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):
        raise DocsError(f"no constant {name!r}") from None
    return f"`{value}`"


# ----------------------------------------------------------------------------- studies


@generator("algorithm1")
def _algorithm1(ctx: Context, study: str) -> str:
    """GCE Algorithm 1 from ``results/studies/<study>/study.json``: per seed, the choice against the paper's,
    Step 1's held-out -ELBO per total, each step-2 fit, and the choice with each threshold moved."""
    data = ctx.study(study)
    if "seeds" not in data:
        raise MissingResults(f"results/studies/{study}/study.json holds no finished procedure yet")
    prov = data["provenance"]
    lines = []
    for seed, result in data["seeds"].items():
        c = result["choice"]
        fits = len(result.get("cells") or {})
        step1 = [p for p in c["path"] if p["step"] == "step1"]
        lines += [f"Seed {seed}: **K = {c['K']}, L = {c['L']}, lambda = {c['lambda']:g}** (Step 1's total "
                  f"{c['total']}), from {fits} fits, the replays' included (profile {prov.get('profile')}, "
                  f"{', '.join(f'{k} {v}' for k, v in (prov.get('center') or {}).items())}).", "",
                  "| fit | step | K | L | lambda | held-out -ELBO | I(alpha;Y), nats |",
                  "| ---: | --- | ---: | ---: | ---: | ---: | ---: |",
                  *[f"| {i + 1} | {p['step']} | {p['K']} | {p['L']} | {p['lambda']:g} | {p['neg_elbo']:.2f} | "
                    f"{p['information_flow']:.3f} |" for i, p in enumerate(c["path"])], "",
                  "| threshold | moved to | K | L | lambda | same choice |", "| --- | ---: | ---: | ---: | ---: | --- |",
                  *[f"| `{v['threshold']}` (file: {prov['thresholds'].get(v['threshold'])}) | {v['value']:g} | "
                    f"{v['K']} | {v['L']} | {v['lambda']:g} | {'yes' if v['same_choice'] else '**no**'} |"
                    for v in result["moved"]], ""]
        if len(step1) > 1:
            gains = [(a["neg_elbo"] - b["neg_elbo"]) / abs(a["neg_elbo"]) for a, b in zip(step1, step1[1:])]
            lines += ["Step 1's gains per added latent: " + ", ".join(f"{g:.1%}" for g in gains)
                      + f" (plateau below {prov['thresholds'].get('fidelity_plateau'):.0%}).", ""]
    lines.append(f"(From `results/studies/{study}/study.json`.)")
    return "\n".join(lines).strip("\n")


@generator("study-table")
def _study_table(ctx: Context, study: str, metrics: str | None = None) -> str:
    """A one-at-a-time study's ``table.csv``: per cell and metric, mean ± s.d. over seeds and, for a moved
    cell, [move / pooled seed s.d.], marked * above the study file's ``sensitive_ratio``."""
    from bench.outputs.leaderboard import mean_sd_text

    table = ctx.study_table(study)
    ratio = ctx.study(study)["provenance"]["thresholds"].get("sensitive_ratio")
    chosen = _list(metrics) or list(dict.fromkeys(table["metric"]))
    missing = [m for m in chosen if m not in set(table["metric"])]
    if missing:
        raise DocsError(f"results/studies/{study}/table.csv has no metric {', '.join(missing)}")
    cells = list(dict.fromkeys(table["cell"]))
    lines = ["| cell | " + " | ".join(f"`{m}`" for m in chosen) + " |", "| --- |" + " ---: |" * len(chosen)]
    for cell in cells:
        parts = []
        for m in chosen:
            row = table[(table["cell"] == cell) & (table["metric"] == m)]
            if row.empty or math.isnan(row["mean"].iloc[0]):
                parts.append("n/a")
                continue
            r = row.iloc[0]
            text = mean_sd_text(r["mean"], r["sd"]) if not math.isnan(r["sd"]) else f"{r['mean']:.4g}"
            moved = r.get("move_over_seed_sd")
            if moved is not None and not math.isnan(moved):
                text += f" [{moved:.1f}{'*' if bool(r.get('sensitive')) else ''}]"
            parts.append(text)
        lines.append(f"| {cell} | " + " | ".join(parts) + " |")
    lines += ["", f"[move / seed s.d.]: the cell's mean minus the centre's over the pooled s.d. of the two; "
              f"* above `sensitive_ratio` = {ratio} (from `results/studies/{study}/table.csv`)."]
    return "\n".join(lines)


@generator("study-moves")
def _study_moves(ctx: Context, study: str) -> str:
    """Every move of a one-at-a-time study above its ``sensitive_ratio``, one bullet each, with the centre's
    and the cell's means; or a sentence saying there is none."""
    table = ctx.study_table(study)
    ratio = ctx.study(study)["provenance"]["thresholds"].get("sensitive_ratio")
    centre = {r["metric"]: r["mean"] for _, r in table[table["cell"] == "center"].iterrows()}
    moved = table[table["sensitive"].fillna(False).astype(bool)] if "sensitive" in table else table.iloc[0:0]
    if moved.empty:
        return f"No move exceeds {ratio} pooled seed s.d."
    return "\n".join(f"- {r['cell']}: `{r['metric']}` {centre.get(r['metric'], float('nan')):.3g} to "
                     f"{r['mean']:.3g} ({r['move_over_seed_sd']:.1f} seed s.d.)"
                     for _, r in moved.sort_values("move_over_seed_sd", ascending=False).iterrows())


@generator("study-range")
def _study_range(ctx: Context, study: str, metric: str, decimals: str | None = None) -> str:
    """``low-high``: the smallest and largest cell mean of ``metric`` in a one-at-a-time study."""
    table = ctx.study_table(study)
    values = table[table["metric"] == metric]["mean"].dropna()
    if values.empty:
        raise DocsError(f"results/studies/{study}/table.csv has no values of {metric!r}")
    return f"{_number(values.min(), decimals)}-{_number(values.max(), decimals)}"


def _study_dirs(ctx: Context) -> list[Path]:
    return sorted(p.parent for p in (ctx.root / "results" / "studies").glob("*/study.json"))


@generator("studies")
def _studies(ctx: Context) -> str:
    """Every committed study (``results/studies/*/study.json``): study, kind, size, suite (and its version
    where a cell's record holds it), profile, seeds, the code of each session, device, and the wall time of its
    sessions."""
    from bench.outputs.results import device_text

    dirs = _study_dirs(ctx)
    if not dirs:
        return "No study is committed yet."
    lines = ["| directory | study | size | suite | profile | seeds | code (each session's) | device | wall time |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | ---: |"]
    for path in dirs:
        data = ctx.study(path.name)
        p = data["provenance"]
        sessions = data.get("sessions") or []
        wall = seconds_text(sum(float(s.get("seconds", 0)) for s in sessions)) if sessions else "unfinished"
        version = study_suite_version(path)
        suite = p.get("suite") + (f" v{version}" if version else "")
        code = ", ".join(dict.fromkeys(str(s["code_revision"]) for s in sessions if s.get("code_revision"))) \
            or str(p.get("code_revision"))  # each session's code, in order; the provenance's where none is recorded
        lines.append(f"| `results/studies/{path.name}/` | {p.get('study')} ({p.get('kind')}) | {p.get('size')} | "
                     f"{suite} | {p.get('profile')} | {', '.join(map(str, p.get('seeds', [])))} | "
                     f"{code} | {device_text(p.get('device') or {})} | {wall} |")
    return "\n".join(lines)


def study_suite_version(study_dir: Path) -> str | None:
    """The suite version a committed study was run with: its provenance's ``suite_version``, else the oldest
    of its cells' run records (a one-at-a-time study); None where neither is recorded."""
    data = json.loads((Path(study_dir) / "study.json").read_text())
    if data.get("provenance", {}).get("suite_version") is not None:
        return str(data["provenance"]["suite_version"])
    versions = {str(json.loads(p.read_text())["metadata"].get("suite_version"))
                for p in sorted(Path(study_dir).glob("cells/*/seed*/results.json"))}
    return min(versions, key=lambda v: (len(v), v)) if versions else None


@generator("study-time")
def _study_time(ctx: Context, study: str) -> str:
    """A study's wall time (its sessions summed) and the device it ran on."""
    from bench.outputs.results import device_text

    data = ctx.study(study)
    sessions = data.get("sessions") or []
    if not sessions:
        raise MissingResults(f"results/studies/{study}/study.json records no finished session yet")
    return (f"{seconds_text(sum(float(s.get('seconds', 0)) for s in sessions))} on "
            f"{device_text(data['provenance'].get('device') or {})}")


# ----------------------------------------------------------------------------- hand-typed numbers

FENCE = re.compile(r"^```.*?^```", re.S | re.M)
#: a decimal number (``0.596``, ``1.5×``) or a time (``1:42``, ``15:05``)
NUMBER = re.compile(r"(?<![\w.])\d+\.\d+|(?<![\w:])\d{1,2}:\d{2}(?![\w:])")


def prose(text: str) -> str:
    """A page without its generated blocks and fenced code, whitespace runs folded to one space (so a
    constant's phrase matches across a line break)."""
    return re.sub(r"\s+", " ", FENCE.sub(" ", BLOCK.sub(" ", text)))


def hand_typed_numbers(text: str) -> list[str]:
    """Every decimal number or time in ``text`` outside generated blocks and fenced code that is not part of
    one of :data:`CONSTANTS`' phrases, with some context."""
    body = prose(text)
    for phrase in sorted(CONSTANTS, key=len, reverse=True):
        body = body.replace(phrase, " " * len(phrase))
    return [body[max(0, m.start() - 40):m.end() + 20].strip() for m in NUMBER.finditer(body)]


# ----------------------------------------------------------------------------- pages


def _arguments(text: str) -> dict[str, str]:
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise DocsError(f"cannot read the block's arguments {text.strip()!r} ({exc})") from None
    out = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep:
            raise DocsError(f"argument {word!r} is not key=value")
        out[key.replace("-", "_")] = value
    return out


def _note(args: dict) -> str:
    what = args.get("study") or args.get("run") or args.get("name") or "these results"
    return f"_Not committed yet ({what}); `python -m bench docs` fills this in once it is._"


def render_block(name: str, args: dict[str, str], ctx: Context) -> str:
    """The generated text of one block."""
    if name not in GENERATORS:
        raise DocsError(f"unknown generator {name!r}; known: {', '.join(sorted(GENERATORS))}")
    if_missing = args.pop("if_missing", None)
    try:
        return GENERATORS[name](ctx, **args)
    except TypeError as exc:
        raise DocsError(f"bad arguments {sorted(args)} ({exc})") from None
    except MissingResults:
        if if_missing == "note":
            return _note(args)
        raise


def render_page(text: str, root: Path, *, where: str = "page", context: Context | None = None) -> str:
    """``text`` with every marked block regenerated from the committed files under ``root``; a
    :class:`DocsError` naming ``where``, the block and the reason when one cannot be."""
    ctx = context or Context(root)

    def replace(match: re.Match) -> str:
        name = match.group("name")
        try:
            body = render_block(name, _arguments(match.group("args")), ctx)
        except BenchError as exc:
            line = text.count("\n", 0, match.start()) + 1
            raise DocsError(f"{where}:{line}: block {name!r}: {exc}") from None
        block = match.group("body").startswith("\n") or "\n" in body
        body = f"\n{body.strip(chr(10))}\n" if block else body.strip()
        return f"<!-- docs: {name}{match.group('args')} -->{body}<!-- /docs -->"

    return BLOCK.sub(replace, text)


def pages(root: Path) -> list[Path]:
    """The pages with generated blocks: ``README.md``, ``docs/**/*.md`` and ``results/**/README.md``."""
    root = Path(root)
    found = {p for pattern in PAGES for p in root.glob(pattern) if p.is_file()}
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def regenerate(root: Path, check: bool = False) -> list[Path]:
    """Regenerate every page's blocks; returns the pages whose text changed (with ``check``, the pages that
    differ from their regeneration, none written). Pages are written atomically."""
    root = Path(root)
    ctx, changed = Context(root), []
    for path in pages(root):
        old = path.read_text()
        new = render_page(old, root, where=path.relative_to(root).as_posix(), context=ctx)
        if new != old:
            changed.append(path)
            if not check:
                atomic_write_text(path, new)
    return changed


@functools.lru_cache(maxsize=1)
def _repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench docs",
                                     description="regenerate the marked blocks of README.md, docs/ and "
                                                 "results/**/README.md from the committed results")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a page is out of date")
    parser.add_argument("--root", type=Path, default=_repo_root(), help="the checkout (default: this one)")
    args = parser.parse_args(argv)
    try:
        changed = regenerate(args.root, check=args.check)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in changed:
        print(f"{'out of date' if args.check else 'rewrote'}: {path.relative_to(args.root)}")
    return 1 if (args.check and changed) else 0


if __name__ == "__main__":
    sys.exit(main())

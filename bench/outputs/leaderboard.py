"""Leaderboards rendered from stored results only: one or several seeds, four formats.

``python -m bench leaderboard RUN_DIR... [--format md|csv|html|latex]``. A run
directory is one seed (``results.json``) or a multi-seed run (``seed*/results.json``,
written by ``run --seeds``); several directories of the same suite and profile are
pooled. One row per explainer, one column per metric with its direction; with
several seeds a cell is mean ± sample standard deviation over seeds; ``n/a`` where an
explainer lacks the capability; the best mean of each column with a direction is
marked; a footer says suite, profile, seeds, FID features, device and code revision.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

from bench.errors import BenchError
from bench.outputs.results import RESULTS_FILE, device_text, load_record, rows_of
from metrics import METRICS

FORMATS = ("md", "csv", "html", "latex")


def run_records(paths: Iterable[str | Path]) -> list[dict]:
    """The completed single-seed records under ``paths`` (run directories, multi-seed run directories
    or ``results.json`` files), in the order given, seeds of a multi-seed run in seed order."""
    records = []
    for path in map(Path, paths):
        if path.is_dir() and not (path / RESULTS_FILE).exists():
            seeds = sorted(path.glob(f"seed*/{RESULTS_FILE}"), key=lambda p: seed_of_dir(p.parent))
            if not seeds:
                raise BenchError(f"no {RESULTS_FILE} in {path} or its seed*/ directories (not a completed run)")
            records += [load_record(p) for p in seeds]
        else:
            records.append(load_record(path))
    return records


def seed_of_dir(path: Path) -> int:
    digits = path.name.removeprefix("seed")
    return int(digits) if digits.isdigit() else 1 << 30


def black_box_name(metadata: dict) -> str:
    """The black box a record explains: an import path or file the user named, or ``gce-table1`` (a record
    that names no black box holds the suite's GCE Table 1)."""
    return str((metadata.get("classifier") or {}).get("name", "gce-table1"))


def check_same_run(records: Sequence[dict]) -> None:
    """Records pooled into one leaderboard must be one suite, profile and schema, each seed once."""
    if not records:
        raise BenchError("no results to render")
    keys = {(r["metadata"].get("suite"), r["metadata"].get("suite_version"), r["metadata"].get("profile"))
            for r in records}
    if len(keys) > 1:
        raise BenchError("these runs mix suites or profiles " + ", ".join(f"{s} v{v} {p}" for s, v, p in sorted(keys))
                         + ": render each one separately")
    boxes = sorted({black_box_name(r["metadata"]) for r in records})
    if len(boxes) > 1:
        raise BenchError(f"these runs explain different black boxes ({', '.join(boxes)}): render each one separately")
    seeds = [r["metadata"].get("seed") for r in records]
    if len(set(seeds)) < len(seeds):
        raise BenchError(f"seed given twice among the runs: {seeds}")


# ----------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Board:
    """The numbers of a leaderboard: per explainer x column, the mean, spread and count over seeds."""

    mean: pd.DataFrame
    spread: pd.DataFrame  # sample standard deviation over seeds (NaN with one seed)
    count: pd.DataFrame
    best: dict[str, list[str]]  # column -> explainers with the best mean
    errors: dict[str, str]  # explainer -> error of a failed fit or scoring (any seed)
    records: tuple[dict, ...]

    @property
    def n_seeds(self) -> int:
        return len(self.records)


def column_name(metric: str, factor: str | None = None) -> str:
    info = METRICS.get(metric)
    arrow = f" {info.arrow}" if info and info.arrow else ""
    return f"{metric}[{factor}]{arrow}" if factor else f"{metric}{arrow}"


def column_metric(column: str) -> str:
    return column.split("[")[0].split(" ")[0]


def _cached_fits(record: dict) -> set[str]:
    """The explainers whose fit a run loaded from the cache (its fit_seconds were measured another time)."""
    details = record["metadata"].get("explainer_details") or {}
    return {name for name, d in details.items() if isinstance(d, dict) and d.get("cached")}


def long_frame(records: Sequence[dict], *, factors: bool = False) -> pd.DataFrame:
    """All stored values as (seed, explainer, column, value), failed rows left out.

    ``fit_seconds`` of a fit loaded from the cache is left out of the pooling where another seed's fit of
    the same explainer ran in its run (a stored time is of another run, maybe of another machine); where
    every seed's fit came from the cache, the stored times are all there is, and are kept.
    """
    rows, from_cache = [], []
    for rec in records:
        cached = _cached_fits(rec)
        for r in rows_of(rec):
            if r.error is not None or (r.factor and not factors):
                continue
            rows.append({"seed": rec["metadata"].get("seed"), "explainer": r.explainer,
                         "column": column_name(r.metric, r.factor), "value": r.value})
            from_cache.append(r.metric == "fit_seconds" and r.explainer in cached)
    timed = {row["explainer"] for row, stale in zip(rows, from_cache) if row["column"] == "fit_seconds" and not stale}
    rows = [row for row, stale in zip(rows, from_cache) if not (stale and row["explainer"] in timed)]
    frame = pd.DataFrame(rows, columns=["seed", "explainer", "column", "value"])
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce")  # None (undefined) -> NaN
    return frame


def build_board(records: Sequence[dict], *, factors: bool = False) -> Board:
    check_same_run(records)
    frame = long_frame(records, factors=factors)
    explainers = list(dict.fromkeys(name for rec in records for name in rec["metadata"].get("explainers", [])))
    explainers += [e for e in dict.fromkeys(frame["explainer"]) if e not in explainers]
    order = [column_name(m) for m in METRICS]
    columns = sorted(dict.fromkeys(frame["column"]), key=lambda c: (order.index(c) if c in order else len(order), c))
    grouped = frame.groupby(["explainer", "column"], sort=False)["value"]
    shape = lambda s: s.unstack("column").reindex(index=explainers, columns=columns)  # noqa: E731
    mean, spread, count = shape(grouped.mean()), shape(grouped.std(ddof=1)), shape(grouped.count())
    best = {}
    for column in columns:
        info = METRICS.get(column_metric(column))
        values = mean[column].dropna()
        if info is None or info.higher_is_better is None or len(values) < 2:
            continue
        noise = _noise(mean, spread, column).reindex(values.index)
        leader = values.idxmax() if info.higher_is_better else values.idxmin()
        # the best, and every explainer whose difference from it lies inside either one's spread over seeds
        # or tie orders: a tie, not a win (docs/design.md, "Metric protocols")
        best[column] = [e for e, v in values.items()
                        if math.isclose(v, values[leader], rel_tol=1e-12, abs_tol=0.0)
                        or abs(v - values[leader]) <= max(noise[leader], noise[e])]
    errors = {}
    for rec in records:
        for r in rows_of(rec):
            if r.error is not None:
                errors.setdefault(r.explainer, f"seed {rec['metadata'].get('seed')}: {r.error}")
    return Board(mean=mean, spread=spread, count=count.fillna(0).astype(int), best=best, errors=errors,
                 records=tuple(records))


def _noise(mean: pd.DataFrame, spread: pd.DataFrame, column: str) -> pd.Series:
    """Per explainer, the spread a column's mean carries: the s.d. over seeds where there are several (it
    already holds the tie orders' variation, each seed drawing its own), else, where the metric has one
    (removal curves), the s.d. over random tie orders; 0 where neither is known."""
    tie_column = column.replace(column_metric(column), column_metric(column) + "_tie_sd", 1).split(" ")[0]
    ties = mean[tie_column] if tie_column in mean.columns else pd.Series(0.0, index=mean.index)
    return spread[column].fillna(ties).fillna(0.0)


def _number(value: float) -> str:
    return f"{value:.4g}"


def mean_sd_text(mean: float, sd: float) -> str:
    """``mean ± sd`` with the s.d. to two significant digits and the mean to the same decimal place
    (``0.643 ± 0.025``, not ``0.6431 ± 0.02485``): digits beyond the spread over seeds are noise."""
    if not math.isfinite(sd) or sd <= 0:
        return f"{_number(mean)} ± 0"
    decimals = max(0, 1 - math.floor(math.log10(sd)))
    if decimals > 6:  # tiny numbers: two significant digits of each, in exponent form
        return f"{mean:.2g} ± {sd:.2g}"
    return f"{mean:.{decimals}f} ± {sd:.{decimals}f}"


def cell_text(board: Board, explainer: str, column: str) -> str:
    mean = board.mean.at[explainer, column]
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "n/a"
    spread = board.spread.at[explainer, column]
    if board.n_seeds > 1 and not math.isnan(spread):
        return mean_sd_text(mean, spread)
    return _number(mean)


#: the leaderboard's tables, one per capability a metric needs (the report has the same)
CAPABILITY_TABLES = (("latent", "Latent explainers: information flow, accuracy drop, invariance"),
                     ("saliency", "Saliency maps: removal curves, sparsity, randomisation check"),
                     ("sweep", "Counterfactual sweeps: faithfulness to f and FID"),
                     ("fit", "Fit times"))


def capability_columns(board: Board) -> list[tuple[str, list[str]]]:
    """(caption, columns) of each capability table that has columns; columns of metrics we do not know go
    in a last table of their own."""
    tables, seen = [], set()
    for capability, caption in CAPABILITY_TABLES:
        columns = [c for c in board.mean.columns
                   if (info := METRICS.get(column_metric(c))) and info.capability == capability]
        seen.update(columns)
        if columns:
            tables.append((caption, columns))
    rest = [c for c in board.mean.columns if c not in seen]
    return tables + ([("Other", rest)] if rest else [])


def footer_text(board: Board) -> str:
    metas = [r["metadata"] for r in board.records]
    first = metas[0]
    seeds = ", ".join(str(m.get("seed")) for m in metas)
    features = sorted({(m.get("fid_features") or {}).get("name", "none") for m in metas})
    devices = sorted({device_text(m.get("device", {})) for m in metas})
    revisions = sorted({str(m.get("code_revision")) for m in metas})
    accuracy = [m.get("classifier", {}).get("test_accuracy") for m in metas]
    accuracy = [a for a in accuracy if a is not None]
    hashes = sorted({str(m.get("classifier", {}).get("weights_sha256", "?"))[:12] for m in metas})
    weights = (f"weights {hashes[0]}" if len(hashes) == 1 else f"{len(hashes)} weight sets (one per seed)") \
        if hashes != ["?"] else "weights not recorded"
    spread = " (mean ± s.d. over seeds)" if board.n_seeds > 1 else ""
    made_by = sorted({str(m.get("versions", {}).get("genexbench", "?")) for m in metas})
    return (f"genexbench {', '.join(made_by)}; suite {first.get('suite')} v{first.get('suite_version')}, "
            f"profile {first.get('profile')}, "
            f"seed{'s' if board.n_seeds > 1 else ''} {seeds}{spread}; FID features: {', '.join(features)}; "
            f"device: {', '.join(devices)}; code {', '.join(revisions)}"
            + f"; black box {black_box_name(first)} ({weights}"
            + (f", test accuracy {sum(accuracy) / len(accuracy):.4f})" if accuracy else ")")
            + _truth_text(metas)
            + ". ↑ higher is better, ↓ lower is better, no arrow: diagnostic (never marked); "
              "best mean of each column marked, with every explainer tied with it (a difference inside either "
              "one's spread over seeds or over random tie orders); n/a: capability missing, or undefined (an FID "
              "group without enough generated images, a randomisation check of a map that never calls f).")


def _truth_text(metas: list[dict]) -> str:
    """A ground-truth suite's verification on its black boxes (bench.inputs.ground_truth), for the footer."""
    checks = [m["ground_truth"] for m in metas if isinstance(m.get("ground_truth"), dict)]
    if not checks:
        return ""
    from bench.inputs.ground_truth import describe

    failed = sum(not c.get("passed") for c in checks)
    seeds = f" ({len(checks) - failed} of {len(checks)} seeds verified)" if len(checks) > 1 else ""
    return f"; ground truth {describe(checks[0])}{seeds}"


def _title(board: Board) -> str:
    meta = board.records[0]["metadata"]
    return f"genexbench leaderboard: {meta.get('suite')} ({meta.get('profile')})"


# ----------------------------------------------------------------------------- formats


def to_markdown(board: Board, *, title: str | None = None, footer: bool = True) -> str:
    """One table per capability (latent, saliency, sweep, fit times), each listing the explainers that
    have a value in it, then the errors of failed explainers and the footer."""
    lines = [f"## {title if title is not None else _title(board)}", ""] if title != "" else []
    for caption, columns in capability_columns(board):
        names = [n for n in board.mean.index if board.mean.loc[n, columns].notna().any()]
        if not names:
            continue
        lines += [f"### {caption}", "", "| " + " | ".join(["explainer", *columns]) + " |",
                  "|" + "|".join(["---"] + ["---:"] * len(columns)) + "|"]
        for name in names:
            cells = []
            for column in columns:
                text = cell_text(board, name, column)
                cells.append(f"**{text}**" if name in board.best.get(column, ()) else text)
            lines.append("| " + " | ".join([name, *cells]) + " |")
        lines.append("")
    if board.errors:
        lines += ["### Failed", "", "| explainer | error |", "|---|---|",
                  *(f"| {name} | {error} |" for name, error in board.errors.items()), ""]
    if footer:
        lines += [footer_text(board) + " Best in **bold**."]
    return "\n".join(lines).rstrip("\n") + "\n"


def to_csv(board: Board) -> str:
    """Numbers stay numbers: a mean column per metric, a ``<column> sd`` column beside it with several
    seeds, ``n_seeds``, and ``best_in`` naming the columns where the explainer has the best mean."""
    columns = {}
    for column in board.mean.columns:
        columns[column] = board.mean[column]
        if board.n_seeds > 1:
            columns[f"{column} sd"] = board.spread[column]
    out = pd.DataFrame(columns, index=board.mean.index)  # built at once: a column at a time fragments the frame
    out.index.name = "explainer"
    out["n_seeds"] = board.n_seeds
    out["best_in"] = [";".join(c for c, names in board.best.items() if name in names) for name in out.index]
    if board.errors:
        out["error"] = [board.errors.get(name, "") for name in out.index]
    return out.to_csv()


def to_html(board: Board, *, title: str | None = None, footer: bool = True,
            columns: Sequence[str] | None = None) -> str:
    """An HTML ``<table>`` (a fragment; the report embeds it). Best cells are ``<strong class="best">``.
    With ``columns``, only those, and only the explainers with a value in one of them."""
    esc = html.escape
    rows = list(board.mean.index)
    if columns is None:
        columns = list(board.mean.columns)
    else:
        columns = [c for c in columns if c in board.mean.columns]
        rows = [n for n in rows if board.mean.loc[n, columns].notna().any() or n in board.errors]
    head = "".join(f"<th>{esc(c)}</th>" for c in ["explainer", *columns, *(["error"] if board.errors else [])])
    body = []
    for name in rows:
        cells = [f"<th scope=\"row\">{esc(name)}</th>"]
        for column in columns:
            text = esc(cell_text(board, name, column))
            if name in board.best.get(column, ()):
                cells.append(f"<td class=\"best\"><strong>{text}</strong></td>")
            else:
                cells.append(f"<td class=\"{'na' if text == 'n/a' else 'num'}\">{text}</td>")
        if board.errors:
            cells.append(f"<td class=\"error\">{esc(board.errors.get(name, ''))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    caption = f"<caption>{esc(title if title is not None else _title(board))}</caption>" if title != "" else ""
    foot = (f"<tfoot><tr><td colspan=\"{len(columns) + 1 + bool(board.errors)}\">"
            f"{esc(footer_text(board))} Best in bold.</td></tr></tfoot>") if footer else ""
    return (f"<table class=\"leaderboard\">{caption}<thead><tr>{head}</tr></thead>{foot}"
            f"<tbody>{''.join(body)}</tbody></table>\n")


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def _latex(text: str) -> str:
    text = "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)
    return text.replace("↑", r"$\uparrow$").replace("↓", r"$\downarrow$").replace("±", r"$\pm$")


def to_latex(board: Board) -> str:
    """A booktabs ``table`` (needs ``\\usepackage{booktabs}``); best cells in ``\\textbf``."""
    columns = list(board.mean.columns)
    lines = [r"\begin{table}", r"\centering", r"\small",
             r"\begin{tabular}{l" + "r" * len(columns) + "}", r"\toprule",
             " & ".join(["explainer", *(_latex(c) for c in columns)]) + r" \\", r"\midrule"]
    for name in board.mean.index:
        cells = []
        for column in columns:
            text = _latex(cell_text(board, name, column))
            cells.append(rf"\textbf{{{text}}}" if name in board.best.get(column, ()) else text)
        lines.append(" & ".join([_latex(name), *cells]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{_latex(footer_text(board))} Best in bold.}}",
              r"\end{table}"]
    return "\n".join(lines) + "\n"


def factor_board(records: Sequence[dict]) -> pd.DataFrame:
    """Per latent factor (GCE Fig. 5a-b): one row per (explainer, factor), mean over seeds."""
    rows = [{"explainer": r.explainer, "factor": r.factor, "metric": r.metric, "value": r.value}
            for rec in records for r in rows_of(rec) if r.error is None and r.factor]
    if not rows:
        return pd.DataFrame()
    frame = pd.DataFrame(rows)
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce")
    return frame.pivot_table(index=["explainer", "factor"], columns="metric", values="value", aggfunc="mean",
                             sort=False)


def render(records: Sequence[dict], fmt: str = "md") -> str:
    """The leaderboard of ``records`` in ``fmt`` (md, csv, html or latex)."""
    if fmt not in FORMATS:
        raise BenchError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if fmt == "csv":  # every column, the per-factor diagnostics too
        return to_csv(build_board(records, factors=True))
    board = build_board(records)
    if fmt == "latex":
        return to_latex(board)
    if fmt == "html":
        return to_html(board)
    text = to_markdown(board)
    factors = factor_board(records)
    if not factors.empty:
        lines = ["", "## per latent factor (GCE Fig. 5a-b)" + (", mean over seeds" if len(records) > 1 else ""), "",
                 "| explainer factor | " + " | ".join(factors.columns) + " |",
                 "|---|" + "---:|" * len(factors.columns)]
        for (name, factor), values in factors.iterrows():
            lines.append(f"| {name} {factor} | " + " | ".join("n/a" if math.isnan(v) else _number(v) for v in values)
                         + " |")
        text += "\n".join(lines) + "\n"
    from bench.outputs import validity  # a ground-truth suite's records: which proxies agree with its truth

    if validity.has_points(records):
        text += "\n" + validity.to_markdown(validity.proxy_validity(records))
    return text

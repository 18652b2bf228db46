"""A static HTML report of a run: leaderboard, figures, timings, provenance.

``report.html`` is one self-contained file (the figures are embedded as data
URIs), so it opens from disk, survives being mailed or moved, and needs no
server. A few lines of script count the figures that decoded and write the
count on ``<body data-figures-loaded="N" data-figures-broken="M">``, which is
how the headless-Chromium check knows the page really rendered.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Sequence

from bench.outputs import leaderboard
from bench.outputs import validity
from bench.outputs.results import rows_of
from bench.store import atomic_write_text

REPORT_FILE = "report.html"

#: (heading, file-name patterns, what the figure shows) in the order the report shows them
SECTIONS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("Counterfactual sweeps", ("*_sweeps.png",),
     "Queries, then their sweep toward another class, f(x)[target] above each image (exaggeration Fig. 2)."),
    ("Compatibility with f", ("*_compatibility.png",),
     "Requested against obtained target probability along the sweeps (exaggeration Fig. 3)."),
    ("Saliency maps", ("saliency_maps.png",), "Four test images, every method's map side by side."),
    ("Saliency-removal curves", ("removal_curves.png",),
     "f's accuracy as the most (MoRF) or least (LeRF) relevant pixels are replaced by noise; the random map in black."),
    ("Information flow and accuracy drop per factor", ("*_factors.png",), "GCE Fig. 5a-b."),
    ("Latent sweeps", ("*_latent_sweeps.png",), "Every latent factor swept, the others kept (GCE Fig. 3)."),
    ("Proxy validity", ("proxy_validity.png",),
     "Each proxy metric against the ground truth of its capability, every explainer and its noise-blended "
     "degradations (ground-truth suites)."),
    ("Invariance", ("invariance_curves.png", "*_invariances_*.png"),
     "Fraction of test images keeping f's label as the noncausal latents are redrawn (SVAE Fig. 2), and two "
     "noncausal latents crossed around one image (SVAE Fig. 3)."),
)

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; font-size: 0.8em; margin: 1em 0; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.5em; }
thead th { background: #f4f4f4; position: sticky; top: 0; }
td.num, td.best { text-align: right; font-variant-numeric: tabular-nums; }
td.best { background: #e6f4ea; } td.na { color: #999; text-align: center; } td.error { color: #b00; }
caption { text-align: left; font-weight: bold; margin-bottom: 0.5em; }
tfoot td { font-size: 0.9em; color: #555; border: none; }
figure { display: inline-block; margin: 0.5em; vertical-align: top; }
figure img { max-width: 720px; border: 1px solid #eee; }
figcaption { font-size: 0.8em; color: #555; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em; font-size: 0.9em; }
dt { font-weight: bold; }
div.scroll { overflow-x: auto; } p.footer { font-size: 0.85em; color: #555; }
"""

_CHECK = """
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.querySelectorAll('img.figure'));
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.dataset.figuresLoaded = ok;
  document.body.dataset.figuresBroken = imgs.length - ok;
});
"""


def _figure_files(figures_dirs: Sequence[Path]) -> list[tuple[str, str, list[Path]]]:
    """The figures of ``figures_dirs`` by section; a file name found in an earlier folder hides a later one's
    (a pooled run's own figures, then its first seed's)."""
    by_name: dict[str, Path] = {}
    for folder in figures_dirs:
        for p in sorted(folder.glob("*.png")) if folder.is_dir() else ():
            by_name.setdefault(p.name, p)
    pool = sorted(by_name.values(), key=lambda p: p.name)
    seen: set[Path] = set()
    out = []
    for heading, patterns, text in SECTIONS:
        files = [p for pattern in patterns for p in pool if p.match(pattern) and p not in seen]
        files = [p for p in files if not (p.name.endswith("_latent_sweeps.png") and heading != "Latent sweeps")]
        seen.update(files)
        if files:
            out.append((heading, text, files))
    rest = [p for p in pool if p not in seen]
    if rest:
        out.append(("Other figures", "", rest))
    return out


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f"<figure><img class=\"figure\" alt=\"{html.escape(path.name)}\" src=\"data:image/png;base64,{data}\">"
            f"<figcaption>{html.escape(path.name)}</figcaption></figure>")


def _timings(records: Sequence[dict]) -> str:
    """Each explainer's fit and explanation times (mean over seeds), and the run's stages."""
    rows: dict[str, dict[str, list[float]]] = {}
    for rec in records:
        meta = rec["metadata"]
        for r in rows_of(rec):
            if r.error is None and r.metric.endswith("_seconds") and r.value is not None:
                rows.setdefault(r.explainer, {}).setdefault(r.metric, []).append(r.value)
        for name in meta.get("explainers", []):
            total = meta.get("timings", {}).get(f"{name}_seconds")
            if total is not None:
                rows.setdefault(name, {}).setdefault("fit, scoring and figures (this run)", []).append(total)
    columns = ["fit_seconds", "information_flow_seconds", "sweep_seconds", "saliency_seconds",
               "fit, scoring and figures (this run)"]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["explainer", *columns])
    body = []
    for name, values in rows.items():
        cells = "".join(f"<td class=\"num\">{sum(v) / len(v):.4g}</td>" if (v := values.get(c)) else
                        "<td class=\"na\">n/a</td>" for c in columns)
        body.append(f"<tr><th scope=\"row\">{html.escape(name)}</th>{cells}</tr>")
    stages = {}
    for rec in records:
        for key, value in rec["metadata"].get("timings", {}).items():
            if not any(key == f"{n}_seconds" for n in rec["metadata"].get("explainers", [])):
                stages.setdefault(key, []).append(value)
    stage_rows = "".join(f"<tr><th scope=\"row\">{html.escape(k)}</th><td class=\"num\">{sum(v) / len(v):.1f}</td></tr>"
                         for k, v in stages.items())
    return (f"<table><caption>Per explainer, seconds (fit: when it was trained, kept when loaded from the cache; "
            f"sweep and saliency: per image)</caption><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody>"
            f"</table><table><caption>Run stages, seconds</caption><tbody>{stage_rows}</tbody></table>")


def _provenance(records: Sequence[dict]) -> str:
    items = []
    for rec in records:
        m = rec["metadata"]
        facts = {
            "seed": m.get("seed"), "code revision": m.get("code_revision"), "finished": m.get("finished"),
            "device": json.dumps(m.get("device")),
            "versions": ", ".join(f"{k} {v}" for k, v in m.get("versions", {}).items()),
            "data": f"{m.get('data', {}).get('source')} (sha256 {m.get('data', {}).get('checksum')})",
            "black box": f"test accuracy {m.get('classifier', {}).get('test_accuracy')}",
            "FID features": (m.get("fid_features") or {}).get("description", "none"),
            "profile note": m.get("profile_note"), "command": " ".join(m.get("command") or []),
        }
        items.append("<dl>" + "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(str(v))}</dd>"
                                      for k, v in facts.items()) + "</dl>")
    return "".join(items)


def _factor_table(records: Sequence[dict]) -> str:
    factors = leaderboard.factor_board(records)
    if factors.empty:
        return ""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["explainer", "factor", *factors.columns])
    body = "".join("<tr><th scope=\"row\">" + html.escape(e) + "</th><td>" + html.escape(f) + "</td>"
                   + "".join(f"<td class=\"num\">{v:.4g}</td>" if v == v else "<td class=\"na\">n/a</td>"
                             for v in values) + "</tr>"
                   for (e, f), values in factors.iterrows())
    return (f"<h2>Per latent factor</h2><table><caption>GCE Fig. 5a-b"
            f"{', mean over seeds' if len(records) > 1 else ''}</caption><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table>")


def render_report(records: Sequence[dict], figures_dir: Path | Sequence[Path] | None, *,
                  seed_links: Sequence[str] = ()) -> str:
    board = leaderboard.build_board(records)
    meta = records[0]["metadata"]
    title = f"genexbench: {meta.get('suite')} ({meta.get('profile')})"
    parts = [f"<h1>{html.escape(title)}</h1>",
             f"<p>{html.escape(meta.get('suite_description', ''))}</p>",
             "<h2>Leaderboard</h2>"]
    for caption, columns in leaderboard.capability_columns(board):
        if columns:
            parts.append("<div class=\"scroll\">" + leaderboard.to_html(board, title=caption, footer=False,
                                                                         columns=columns) + "</div>")
    parts.append(f"<p class=\"footer\">{html.escape(leaderboard.footer_text(board))} Best in bold.</p>")
    if seed_links:
        parts.append("<p>Each seed's own report: " + ", ".join(
            f"<a href=\"{html.escape(link)}\">{html.escape(link)}</a>" for link in seed_links) + "</p>")
    parts.append(_factor_table(records))
    if validity.has_points(records):
        parts.append(validity.to_html(validity.proxy_validity(records)))
    dirs = [] if figures_dir is None else [figures_dir] if isinstance(figures_dir, Path) else list(figures_dir)
    if any(d.is_dir() for d in dirs):
        if len(records) > 1:
            parts.append(f"<p>Figures of seed {html.escape(str(meta.get('seed')))}, where not of every seed.</p>")
        for heading, text, files in _figure_files(dirs):
            parts.append(f"<h2>{html.escape(heading)}</h2><p>{html.escape(text)}</p>" + "".join(map(_img, files)))
    parts += ["<h2>Timings</h2>", _timings(records), "<h2>Provenance</h2>", _provenance(records)]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style><script>{_CHECK}</script></head>"
            f"<body>{''.join(parts)}</body></html>\n")


def write_report(run_dir: Path, records: Sequence[dict] | None = None) -> Path:
    """Write ``run_dir/report.html`` from the stored results (a single- or multi-seed run directory)."""
    run_dir = Path(run_dir)
    records = list(records) if records is not None else leaderboard.run_records([run_dir])
    seed_dirs = sorted((p.parent for p in run_dir.glob("seed*/results.json")), key=leaderboard.seed_of_dir)
    figures_dirs = [run_dir / "figures", *([seed_dirs[0] / "figures"] if seed_dirs else [])]
    links = [f"{p.name}/{REPORT_FILE}" for p in seed_dirs if (p / REPORT_FILE).exists()]
    path = run_dir / REPORT_FILE
    atomic_write_text(path, render_report(records, figures_dirs, seed_links=links))
    return path

"""Which proxy metrics can be trusted: their agreement with a planted ground truth.

On a ground-truth suite every explainer's run record holds *proxy points* (``explainer_details.<name>.
proxy_points``): its own values of the proxies and of the ground-truth metrics, and the same values for its
maps or sweeps blended with noise at fixed levels (``metrics.ground_truth.DEGRADATION_LEVELS``), so a
correlation across explainers rests on enough points (docs/design.md, "Metric protocols"). For each pair of a proxy
and the ground-truth metric of the same capability this module gives the Spearman correlation across those
points, averaged over the seeds given, with a bootstrap interval over explainers, and ``n/a`` below 8 points.

A proxy *agrees* with the truth when it ranks explainers as the truth does: a positive rho for a proxy with the
truth's direction (both higher-is-better), a negative one for a lower-is-better proxy (MoRF AUC, proximity, FID,
randomisation correlation). ``agreement`` is rho signed that way, so +1 is perfect agreement for every row.
"""

from __future__ import annotations

import functools
import json
import math
from typing import Sequence

from metrics import METRICS
from metrics.ground_truth import MIN_POINTS, proxy_correlation

#: capability -> (proxies, the ground-truth metrics they are checked against)
PAIRS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "saliency": (("removal_morf_auc", "removal_lerf_auc", "removal_gap", "saliency_gini", "randomisation_correlation"),
                 ("ground_truth_mass",)),
    "sweep": (("sweep_compatibility_pearson", "sweep_compatibility_mae", "sweep_validity", "sweep_monotonicity",
               "sweep_proximity", "fid"),
              ("ground_truth_change", "content_kept", "mode_preservation")),
}


def has_points(records: Sequence[dict]) -> bool:
    return any(d.get("proxy_points") for r in records
               for d in (r["metadata"].get("explainer_details") or {}).values())


def points(record: dict) -> dict[tuple[str, str, float], dict]:
    """(capability, explainer, level) -> values, of one seed's record."""
    out = {}
    for name, details in (record["metadata"].get("explainer_details") or {}).items():
        for p in details.get("proxy_points") or ():
            out[(p["capability"], name, float(p["level"]))] = p["values"]
    return out


def proxy_validity(records: Sequence[dict], *, n_boot: int = 1000) -> list[dict]:
    """One row per (proxy, ground-truth metric) with points in ``records`` (one per seed): rho (mean over
    seeds), its bootstrap interval, the agreement, and the same over the explainers alone (no degradations).
    Computed once per set of points (the leaderboard, the JSON file, the figure and the report of one run
    share it; the bootstrap is seeded, so the rows depend on the points alone)."""
    seeds = [sorted([*k, v] for k, v in points(r).items()) for r in records]
    return [dict(r) for r in _proxy_validity(json.dumps(seeds, sort_keys=True), n_boot)]


@functools.lru_cache(maxsize=8)
def _proxy_validity(seeds_json: str, n_boot: int) -> tuple[dict, ...]:
    seeds = [{(c, e, float(level)): v for c, e, level, v in s} for s in json.loads(seeds_json)]

    def column(metric: str, chosen: list) -> list[list[float]]:
        return [[_number(s.get(k, {}).get(metric)) for k in chosen] for s in seeds]

    rows = []
    for capability, (proxies, truths) in PAIRS.items():
        keys = sorted({k for s in seeds for k in s if k[0] == capability})
        originals = [k for k in keys if k[2] == 0.0]
        for truth in truths:
            if not any(s.get(k, {}).get(truth) is not None for s in seeds for k in keys):
                continue
            for proxy in proxies:
                every = proxy_correlation(column(proxy, keys), column(truth, keys), [k[1] for k in keys],
                                          n_boot=n_boot)
                alone = proxy_correlation(column(proxy, originals), column(truth, originals),
                                          [k[1] for k in originals], n_boot=n_boot)
                same = METRICS[proxy].higher_is_better == METRICS[truth].higher_is_better
                rows.append({
                    "capability": capability, "proxy": proxy, "truth": truth, "expected_sign": "+" if same else "-",
                    "rho": every.rho, "low": every.low, "high": every.high,
                    "agreement": None if every.rho is None else (1.0 if same else -1.0) * every.rho,
                    "n_points": every.n_points, "n_explainers": every.n_explainers,
                    "rho_explainers_only": alone.rho, "n_explainers_only": alone.n_points, "n_seeds": len(seeds)})
    return tuple(rows)


def _number(value) -> float:
    return float("nan") if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.2f}"


def to_markdown(rows: Sequence[dict], *, heading: str = "## Proxy validity") -> str:
    """The proxy-validity table (module docstring)."""
    if not rows:
        return ""
    n_seeds = rows[0]["n_seeds"]
    lines = [heading, "",
             f"Spearman rho across explainers and their noise-blended degradations (levels 0.25, 0.5, 0.75), mean over "
             f"{n_seeds} seed{'s' if n_seeds > 1 else ''}; 95% bootstrap interval resampling explainers; agreement = "
             f"rho signed so that +1 means the proxy ranks as the ground truth does; n/a below {MIN_POINTS} points. "
             "The last column is rho over the explainers alone (no degradations).", "",
             "| proxy | ground truth | rho | 95% interval | agreement | points (explainers) | rho, explainers only (n) |",
             "|---|---|---:|---|---:|---:|---:|"]
    for r in rows:
        interval = "n/a" if r["low"] is None else f"[{r['low']:+.2f}, {r['high']:+.2f}]"
        lines.append(f"| {r['proxy']} {METRICS[r['proxy']].arrow} | {r['truth']} {METRICS[r['truth']].arrow} | "
                     f"{_fmt(r['rho'])} | {interval} | {_fmt(r['agreement'])} | {r['n_points']} ({r['n_explainers']}) "
                     f"| {_fmt(r['rho_explainers_only'])} ({r['n_explainers_only']}) |")
    return "\n".join(lines) + "\n"


def to_html(rows: Sequence[dict]) -> str:
    """The proxy-validity table for the report."""
    import html

    if not rows:
        return ""
    head = "".join(f"<th>{c}</th>" for c in ("proxy", "ground truth", "rho", "95% interval", "agreement",
                                             "points (explainers)", "rho, explainers only (n)"))
    body = []
    for r in rows:
        interval = "n/a" if r["low"] is None else f"[{r['low']:+.2f}, {r['high']:+.2f}]"
        cells = [f"{r['proxy']} {METRICS[r['proxy']].arrow}", f"{r['truth']} {METRICS[r['truth']].arrow}",
                 _fmt(r["rho"]), interval, _fmt(r["agreement"]), f"{r['n_points']} ({r['n_explainers']})",
                 f"{_fmt(r['rho_explainers_only'])} ({r['n_explainers_only']})"]
        body.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    caption = to_markdown(rows).split("\n")[2]
    return (f"<h2>Proxy validity</h2><p>{html.escape(caption)}</p><table><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")

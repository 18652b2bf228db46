"""Leaderboards from stored results: pooling seeds, marking the best, four formats, the HTML report."""

from __future__ import annotations

import io
import math
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from bench.cli import main
from bench.errors import BenchError
from bench.outputs.leaderboard import build_board, render, run_records
from bench.outputs.report import write_report
from bench.outputs.results import write_record


SEED0 = {("gce", "information_flow"): 0.5, ("gce", "removal_morf_auc"): 0.6, ("gce", "saliency_seconds"): 0.001,
         ("saliency", "removal_morf_auc"): 0.4, ("saliency", "saliency_seconds"): 0.002, ("gce", "fid"): None}
SEED1 = {**SEED0, ("gce", "information_flow"): 0.7, ("saliency", "removal_morf_auc"): 0.5,
         ("gce", "removal_morf_auc"): 0.8, ("gce", "fid"): 100.0}


def test_seeds_pool_to_mean_and_sample_sd_and_the_best_is_marked_by_direction(record):
    board = build_board([record(0, SEED0), record(1, SEED1)])
    assert board.mean.at["gce", "information_flow ↑"] == pytest.approx(0.6)
    assert board.spread.at["gce", "information_flow ↑"] == pytest.approx(math.sqrt(0.02))  # s.d. of 0.5, 0.7
    # lower is better: saliency (mean 0.45) beats gce (0.7); one explainer alone in a column is not "best"
    assert board.best["removal_morf_auc ↓"] == ["saliency"] and "information_flow ↑" not in board.best
    assert "saliency_seconds" not in board.best  # diagnostics are never marked
    assert board.mean.at["gce", "fid ↓"] == 100.0 and board.count.at["gce", "fid ↓"] == 1  # None is undefined
    text = render([record(0, SEED0), record(1, SEED1)], "md")
    assert "| gce | 0.60 ± 0.14 |" in text and "**0.450 ± 0.071**" in text  # mean to the s.d.'s precision
    assert "seeds 0, 1 (mean ± s.d. over seeds)" in text and "featurenet-mnist10" in text and "code abc123" in text
    assert text.count("n/a") >= 1  # saliency has no information flow


def test_csv_keeps_numbers_numeric_and_names_the_best(record):
    frame = pd.read_csv(io.StringIO(render([record(0, SEED0), record(1, SEED1)], "csv")), index_col=0)
    assert frame.at["saliency", "removal_morf_auc ↓"] == pytest.approx(0.45)
    assert frame.at["saliency", "removal_morf_auc ↓ sd"] == pytest.approx(math.sqrt(0.005))
    assert math.isnan(frame.at["saliency", "information_flow ↑"])
    assert frame.at["saliency", "best_in"] == "removal_morf_auc ↓" and (frame["n_seeds"] == 2).all()


def test_latex_is_a_booktabs_table_with_escapes_and_bold_best(record):
    text = render([record(0, SEED0)], "latex")
    assert text.startswith("\\begin{table}") and "\\toprule" in text and text.rstrip().endswith("\\end{table}")
    assert "removal\\_morf\\_auc $\\downarrow$" in text and "\\textbf{0.4}" in text
    body = [line for line in text.splitlines() if line.startswith("gce &")][0]
    assert body.count("&") == text.splitlines()[5].count("&")  # every row has as many cells as the header


def test_html_table_is_well_formed_and_marks_the_best(record):
    class Check(HTMLParser):
        def __init__(self):
            super().__init__()
            self.stack, self.best = [], []

        def handle_starttag(self, tag, attrs):
            self.stack.append(tag)
            if ("class", "best") in attrs:
                self.best.append(tag)

        def handle_endtag(self, tag):
            assert self.stack.pop() == tag

    check = Check()
    check.feed(render([record(0, SEED0), record(1, SEED1)], "html"))
    assert check.stack == [] and check.best == ["td"]


def test_mixed_suites_or_a_repeated_seed_are_refused(record, tmp_path):
    with pytest.raises(BenchError, match="mix suites"):
        build_board([record(0, SEED0), record(1, SEED0, suite="fmnist")])
    with pytest.raises(BenchError, match="seed given twice"):
        build_board([record(0, SEED0), record(0, SEED1)])
    assert main(["leaderboard", str(tmp_path / "nothing")]) == 2


def test_a_multi_seed_directory_and_the_cli(record, tmp_path, capsys):
    for seed, values in ((0, SEED0), (2, SEED1), (10, SEED1)):
        (tmp_path / "run" / f"seed{seed}").mkdir(parents=True)
        write_record(tmp_path / "run" / f"seed{seed}", record(seed, values))
    records = run_records([tmp_path / "run"])
    assert [r["metadata"]["seed"] for r in records] == [0, 2, 10]  # numeric order (by name: 0, 10, 2)
    for fmt in ("md", "csv", "html", "latex"):
        assert main(["leaderboard", str(tmp_path / "run"), "--format", fmt, "--out", str(tmp_path / f"b.{fmt}")]) == 0
        assert (tmp_path / f"b.{fmt}").read_text() == render(records, fmt)
    assert main(["leaderboard", str(tmp_path / "run" / "seed0" / "results.json")]) == 0
    assert "| gce | 0.5 |" in capsys.readouterr().out


def _figures(directory: Path, names: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True)
    for name in names:
        fig, ax = plt.subplots(figsize=(2, 2))
        ax.plot([0, 1], [1, 0])
        fig.savefig(directory / name)
        plt.close(fig)


def test_report_embeds_every_figure_and_the_timings(record, tmp_path):
    run_dir = tmp_path / "run"
    write_record(run_dir, record(0, SEED0))
    names = ["gce_sweeps.png", "gce_latent_sweeps.png", "saliency_maps.png", "removal_curves.png", "odd.png"]
    _figures(run_dir / "figures", names)
    text = write_report(run_dir).read_text()
    assert text.count("<img class=\"figure\"") == len(names)  # each once, none lost ("odd" under Other figures)
    assert text.index("gce_sweeps.png") < text.index("saliency_maps.png") < text.index("gce_latent_sweeps.png")
    assert "Other figures" in text and "Timings" in text and "abc123" in text
    assert "src=\"figures/" not in text  # self-contained: it still opens after being moved
    shutil.move(str(run_dir / "report.html"), tmp_path / "moved.html")
    shutil.rmtree(run_dir / "figures")
    assert (tmp_path / "moved.html").read_text() == text


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium not installed (.ci/run installs it)")
def test_report_renders_in_headless_chromium(record, tmp_path):
    """Opened from disk, every figure decodes: the report's own check writes the count on <body>."""
    run_dir = tmp_path / "run"
    for seed, values in ((0, SEED0), (1, SEED1)):
        write_record(run_dir / f"seed{seed}", record(seed, values))
    _figures(run_dir / "seed0" / "figures", ["gce_sweeps.png", "removal_curves.png", "invariance_curves.png"])
    path = write_report(run_dir)
    proc = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
                           "--dump-dom", path.resolve().as_uri()], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'data-figures-loaded="3"' in proc.stdout and 'data-figures-broken="0"' in proc.stdout
    assert "0.60 ± 0.14" in proc.stdout and "Figures of seed 0" in proc.stdout



def test_a_difference_inside_the_spread_over_tie_orders_or_seeds_is_a_tie(record):
    values = {("ig", "removal_morf_auc"): 0.60, ("ig", "removal_morf_auc_tie_sd"): 0.05,
              ("deeplift", "removal_morf_auc"): 0.62, ("deeplift", "removal_morf_auc_tie_sd"): 0.05,
              ("gce", "removal_morf_auc"): 0.75, ("gce", "removal_morf_auc_tie_sd"): 0.0}
    board = build_board([record(0, values, explainers=("ig", "deeplift", "gce"))])
    assert board.best["removal_morf_auc ↓"] == ["ig", "deeplift"]  # 0.02 apart, tie orders move each by 0.05
    assert "removal_morf_auc_tie_sd" not in board.best  # the spread itself is a diagnostic
    # over seeds: 0.60 ± 0.1 vs 0.70 ± 0.0 tie, 0.60 ± 0.01 vs 0.70 ± 0.0 do not
    noisy = [record(s, {("a", "information_flow"): v, ("b", "information_flow"): 0.5}, explainers=("a", "b"))
             for s, v in enumerate((0.5, 0.7))]
    assert build_board(noisy).best["information_flow ↑"] == ["a", "b"]
    steady = [record(s, {("a", "information_flow"): v, ("b", "information_flow"): 0.5}, explainers=("a", "b"))
              for s, v in enumerate((0.6, 0.61))]
    assert build_board(steady).best["information_flow ↑"] == ["a"]


def test_a_mean_is_shown_to_the_precision_of_its_spread():
    from bench.outputs.leaderboard import mean_sd_text

    assert mean_sd_text(0.6431, 0.02485) == "0.643 ± 0.025"
    assert mean_sd_text(123.4, 12.3) == "123 ± 12"
    assert mean_sd_text(0.5, 0.0) == "0.5 ± 0"
    assert mean_sd_text(-2.5e-8, 4.1e-8) == "-2.5e-08 ± 4.1e-08"


def test_the_markdown_board_is_one_table_per_capability(record):
    text = render([record(0, SEED0), record(1, SEED1)], "md")
    sections = [line for line in text.splitlines() if line.startswith("### ")]
    assert sections[:3] == ["### Latent explainers: information flow, accuracy drop, invariance",
                            "### Saliency maps: removal curves, sparsity, randomisation check",
                            "### Counterfactual sweeps: faithfulness to f and FID"]
    latent = text.split("### Saliency")[0]
    assert "information_flow ↑" in latent and "removal_morf_auc" not in latent
    assert "| saliency |" not in latent  # an explainer with no value in a table is not a row of it

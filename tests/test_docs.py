"""The docs say only what the committed results say: every measured number on a page is a generated
block (``python -m bench docs``, :mod:`bench.docs`), a page equals its regeneration, no decimal number
or time is typed by hand outside blocks and fenced code (but the listed constants), every cited ``results/``
path is tracked by git, and every committed study was run by its suite's current version."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bench.inputs.suites import SUITES
from bench import docs

ROOT = Path(__file__).resolve().parent.parent
PAGES = docs.pages(ROOT)
#: a path under results/ as the pages cite it: in backticks, a link, or a command's argument
RESULTS_PATH = re.compile(r"(?<![\w./-])results/[\w.\-/]*[\w/]")


def page_id(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def test_the_pages_are_there():
    names = {page_id(p) for p in PAGES}
    assert {"README.md", "results/README.md", "results/baselines/README.md", "results/studies/README.md",
            *(f"docs/{n}.md" for n in ("cli", "python-api", "metrics", "ground-truth", "studies", "ray",
                                        "performance", "design", "extending"))} <= names
    assert len((ROOT / "README.md").read_text().splitlines()) <= 160  # a front door, not the manual


def test_regenerating_every_page_changes_nothing():
    stale = docs.regenerate(ROOT, check=True)
    assert not stale, f"out of date (run `python -m bench docs`): {[page_id(p) for p in stale]}"


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_no_number_is_typed_by_hand(page):
    hits = docs.hand_typed_numbers(page.read_text())
    assert not hits, (f"{page_id(page)}: numbers outside generated blocks (generate them, or list a paper's "
                      f"setting or a default in bench.docs.CONSTANTS): {hits}")


def test_every_constant_is_used_on_some_page():
    text = " ".join(docs.prose(p.read_text()) for p in PAGES)
    unused = [phrase for phrase in docs.CONSTANTS if phrase not in text]
    assert not unused, f"constants no page states (drop them from CONSTANTS): {unused}"


def _tracked(path: str) -> bool:
    out = subprocess.run(["git", "ls-files", "--", path.rstrip("/")], cwd=ROOT, capture_output=True, text=True)
    return out.returncode == 0 and bool(out.stdout.strip())


def test_every_cited_results_path_is_tracked_by_git():
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    untracked = sorted({f"{page_id(p)}: {m.group(0)}" for p in PAGES for m in RESULTS_PATH.finditer(p.read_text())
                        if not _tracked(m.group(0))})
    assert not untracked, f"cited but not tracked by git (commit the file, or cite another): {untracked}"


def test_a_cited_path_that_git_does_not_track_is_caught():
    assert _tracked("results/mnist-quick/seed0/results.json") and _tracked("results/mnist-quick/")
    assert not _tracked("results/mnist-quick/seed9/results.json")
    assert RESULTS_PATH.findall("see `results/mnist-quick/leaderboard.md`, and results/baselines/.") == \
        ["results/mnist-quick/leaderboard.md", "results/baselines/"]


@pytest.mark.parametrize("study", sorted((ROOT / "results" / "studies").glob("*/study.json")),
                         ids=lambda p: p.parent.name)
def test_a_committed_study_was_run_by_its_suites_current_version(study):
    suite = json.loads(study.read_text())["provenance"]["suite"]
    recorded = docs.study_suite_version(study.parent)
    assert recorded is not None, f"{study.parent.name}: no suite version recorded, and none found at its code revision"
    current = SUITES[suite].version
    assert int(recorded) >= int(current), (f"{study.parent.name} was run by {suite} suite version {recorded}; the "
                                           f"suite is at {current}: re-run the study")


# ----------------------------------------------------------------------------- the checks can fail


@pytest.fixture
def checkout(tmp_path):
    """A copy of the pages beside the committed results (linked), to doctor."""
    def link(source: Path, target: Path) -> None:  # real folders down to each page, links to everything else
        target.mkdir(parents=True)
        for entry in source.iterdir():
            if entry.is_dir() and any(p.is_relative_to(entry) for p in PAGES):
                link(entry, target / entry.name)
            elif entry not in PAGES:
                (target / entry.name).symlink_to(entry)

    link(ROOT / "results", tmp_path / "results")
    for page in PAGES:
        (tmp_path / page.relative_to(ROOT)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(page, tmp_path / page.relative_to(ROOT))
    return tmp_path


def test_a_number_changed_inside_a_block_is_caught_and_regenerated(checkout, capsys):
    readme = checkout / "README.md"
    text = readme.read_text()
    block = re.search(r"(<!-- docs: cold-run [^>]*-->)(.*?)(<!-- /docs -->)", text, re.S)
    doctored = text.replace(block.group(0), block.group(0).replace(" in all", "0 in all", 1))
    assert doctored != text
    readme.write_text(doctored)
    assert docs.regenerate(checkout, check=True) == [readme]
    assert docs.main(["--check", "--root", str(checkout)]) == 1
    assert "out of date: README.md" in capsys.readouterr().out
    assert docs.render_page(doctored, checkout) == text  # the committed results put the number back
    assert docs.regenerate(checkout) == [readme] and readme.read_text() == text
    assert docs.regenerate(checkout, check=True) == []


def test_a_number_changed_inside_a_table_is_caught(checkout):
    page = checkout / "docs" / "ground-truth.md"
    text = page.read_text()
    cell = re.search(r"\| `ganmex_ig` \| \*\*(\d\.\d+)", text)
    page.write_text(text.replace(cell.group(0), cell.group(0).replace(cell.group(1), "0.123"), 1))
    assert docs.regenerate(checkout, check=True) == [page]


def test_a_hand_typed_number_is_caught():
    hits = docs.hand_typed_numbers("exaggeration MoRF 0.569, the smoke seeds 1:42 cold, at 10:15.")
    assert len(hits) == 3 and "0.569" in hits[0] and "1:42" in hits[1] and "10:15" in hits[2]
    inside = ("MoRF <!-- docs: cell run=mnist-quick explainer=exaggeration metric=removal_morf_auc -->0.596 ± "
              "0.068<!-- /docs -->, GCE with lambda = 0.05.\n\n```bash\npython -m bench run --set gce.lam=0.3\n```\n")
    assert docs.hand_typed_numbers(inside) == []
    assert docs.hand_typed_numbers("GCE with lambda = 0.07") == ["GCE with lambda = 0.07"]  # not the paper's


def test_a_block_naming_a_missing_results_file_is_one_clear_line(tmp_path):
    text = "x <!-- docs: cell run=mnist-huge explainer=gce metric=fid -->1<!-- /docs -->\n"
    with pytest.raises(docs.DocsError) as err:
        docs.render_page(text, ROOT, where="README.md")
    message = str(err.value)
    assert "\n" not in message and "README.md:1" in message and "results/mnist-huge does not exist" in message
    (tmp_path / "README.md").write_text(text)
    assert docs.main(["--root", str(tmp_path)]) == 2
    pending = "<!-- docs: algorithm1 study=nothing-small if-missing=note -->\n<!-- /docs -->"
    assert "Not committed yet (nothing-small)" in docs.render_page(pending, ROOT)
    with pytest.raises(docs.DocsError, match="unknown generator 'nope'"):
        docs.render_page("<!-- docs: nope -->x<!-- /docs -->", ROOT)


def test_generated_numbers_are_the_committed_ones():
    """Numbers on the pages are regenerated from the committed reference run, not a superseded one."""
    ctx = docs.Context(ROOT)
    assert docs.render_block("cell", {"run": "mnist-quick", "explainer": "exaggeration",
                                      "metric": "removal_morf_auc"}, ctx) == "0.596 ± 0.068"
    assert docs.render_block("cell", {"run": "mnist-quick", "explainer": "svae", "metric": "information_flow",
                                      "part": "mean"}, ctx) == "0.111"
    assert docs.render_block("baseline", {"name": "mnist-quick", "field": "seeds"}, ctx) == "3"
    assert docs.seconds_text(102) == "1:42" and docs.seconds_text(27.9) == "28 s"


def test_the_study_generators_read_the_format_studies_write(tmp_path):
    """A one-at-a-time study's table.csv as bench.execute.studies writes it, rendered by the docs' generators."""
    from bench.execute import studies

    study = studies.load_study("gce-sensitivity")
    size = study.sizes["small"]
    grid = studies.cells(size)
    values = {cell: {seed: {"information_flow": 0.6 + 0.01 * seed + (0.2 if cell == "lam=0.01" else 0.0),
                            "fid": 200.0 + seed} for seed in size.seeds} for cell, _, _ in grid}
    out = tmp_path / "results" / "studies" / "gce-sensitivity-small"
    out.mkdir(parents=True)
    two = dataclasses.replace(study, metrics=("information_flow", "fid"))
    studies._write_table(out, two, studies._pooled(two, size, grid, values))
    (out / "study.json").write_text(json.dumps({"provenance": {"thresholds": study.thresholds, "suite": "mnist"},
                                                "sessions": [{"seconds": 65.0}]}))
    ctx = docs.Context(tmp_path)
    table = docs.render_block("study-table", {"study": "gce-sensitivity-small"}, ctx)
    assert "| lam=0.01 | 0.810 ± 0.010 [20.0*] | 201.0 ± 1.0 [0.0] |" in table
    moves = docs.render_block("study-moves", {"study": "gce-sensitivity-small"}, ctx)
    assert moves == "- lam=0.01: `information_flow` 0.61 to 0.81 (20.0 seed s.d.)"
    assert docs.render_block("study-time", {"study": "gce-sensitivity-small"}, ctx).startswith("1:05 on ")

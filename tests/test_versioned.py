"""Citable and versioned: CITATION.cff names the package's version, and every leaderboard and report names
the genexbench version and the suite version its results were made with."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path

from bench.outputs import leaderboard
from bench.outputs.report import render_report
from bench.outputs.results import load_record

ROOT = Path(__file__).resolve().parent.parent


def _version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def test_citation_file_names_this_version():
    text = (ROOT / "CITATION.cff").read_text()
    fields = dict(line.split(": ", 1) for line in text.splitlines() if ": " in line and not line.startswith(" "))
    assert fields["cff-version"] == "1.2.0"
    assert fields["title"].strip("\"'") == "genexbench"
    assert fields["version"].strip("\"'") == _version()


def test_every_rendering_names_the_versions_it_was_made_with():
    record = load_record(ROOT / "results" / "mnist-smoke" / "seed0")
    made = copy.deepcopy(record)
    made["metadata"]["versions"]["genexbench"] = "9.8.7"
    made["metadata"]["suite_version"] = "42"
    for text in [leaderboard.render([made], fmt) for fmt in ("md", "html", "latex")] + [render_report([made], None)]:
        assert "genexbench 9.8.7" in text and "suite mnist v42" in text, text[:300]

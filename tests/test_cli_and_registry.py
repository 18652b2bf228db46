"""Command line errors are one line and exit 2; registries reject bad entries and suggest names."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import torch

from bench.cli import main
from explainers.base import Capability, Explainer, MissingCapability
from explainers.registry import EXPLAINERS, Registry, register


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args, message", [
    (("run", "--suite", "mnsit"), "error: unknown suite 'mnsit'; did you mean 'mnist'?"),
    (("run", "--explainers", "gcee"), "error: unknown explainer 'gcee'; did you mean 'gce'?"),
    (("run", "--profile", "papr"), "error: unknown profile 'papr'; did you mean 'paper'?"),
])
def test_bad_names_are_one_line_errors(args, message):
    proc = run_cli(*args)
    assert proc.returncode == 2
    assert proc.stderr.strip() == message  # one line, no traceback


def test_unwritable_output_directory(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["run", "--out", str(blocker / "sub")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: output directory") and "not writable" in err and "\n" not in err


def test_cuda_request_without_cuda_is_an_error(capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(["run", "--device", "cuda"]) == 2
    assert "no CUDA device" in capsys.readouterr().err


def test_list_shows_suites_explainers_and_metric_directions(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "mnist" in out and "gce" in out
    assert re.search(r"\n  information_flow +↑ ", out) and re.search(r"\n  information_flow_noncausal +↓ ", out)


def test_registry_rejects_duplicates_and_wrong_base():
    registry = Registry("thing", Explainer)

    class Good(Explainer):
        pass

    class Other(Explainer):
        pass

    registry.register("good", Good)
    registry.register("good", Good)  # the same class again (a module imported twice): a no-op
    with pytest.raises(ValueError, match="'good' from .* clashes with the one from"):
        registry.register("good", Other)
    assert registry.get("good") is Good
    with pytest.raises(TypeError):
        registry.register("bad", dict)
    with pytest.raises(LookupError, match="did you mean 'good'"):
        registry.get("goood")


class Double(Explainer):
    """A test double registered for one block."""

    paper = "test double"
    capabilities = frozenset({Capability.SALIENCY})


def test_a_temporary_registration_is_gone_after_its_block_and_restores_what_it_shadowed():
    builtin = EXPLAINERS.get("random")
    with EXPLAINERS.temporarily("random", Double, origin="a test") as registered:
        assert registered is Double and EXPLAINERS.get("random") is Double and EXPLAINERS.origin("random") == "a test"
    assert EXPLAINERS.get("random") is builtin and EXPLAINERS.origin("random") == "built-in"

    with EXPLAINERS.temporarily("saliency_double", Double):
        assert "saliency_double" in EXPLAINERS.names() and EXPLAINERS.origin("saliency_double") == __name__
    assert "saliency_double" not in EXPLAINERS and "saliency_double" not in EXPLAINERS.names()
    with pytest.raises(LookupError, match="unknown explainer 'saliency_double'; did you mean 'saliency'"):
        EXPLAINERS.get("saliency_double")

    with pytest.raises(RuntimeError, match="inside"), EXPLAINERS.temporarily("saliency_double", Double):
        raise RuntimeError("inside")  # an error in the block: removed all the same
    assert "saliency_double" not in EXPLAINERS
    with pytest.raises(TypeError, match="must be a subclass of Explainer"), EXPLAINERS.temporarily("bad", dict):
        pass
    assert "bad" not in EXPLAINERS


def test_what_an_isolated_block_registers_does_not_outlast_it():
    before = {name: EXPLAINERS.origin(name) for name in EXPLAINERS.names()}
    with EXPLAINERS.isolated() as registry:
        register("isolated_double")(type("IsolatedDouble", (Double,), {}))  # a plugin's @register, say
        assert "isolated_double" in registry
    assert {name: EXPLAINERS.origin(name) for name in EXPLAINERS.names()} == before


def test_explainer_rejects_unknown_settings(black_box):
    with pytest.raises(ValueError, match="unknown setting"):
        EXPLAINERS.get("gce")(black_box, {"stpes": 10})


def test_missing_capability_is_a_clear_error(black_box):
    class SaliencyOnly(Explainer):
        name = "saliency-only"
        capabilities = frozenset({Capability.SALIENCY})

    explainer = SaliencyOnly(black_box)
    assert not explainer.supports("latent") and explainer.supports(Capability.SALIENCY)
    with pytest.raises(MissingCapability, match="saliency-only has no latent capability"):
        explainer.encode(torch.zeros(1, 1, 28, 28))


def test_inception_fid_without_its_weights_fails_before_any_work(tmp_path, capsys):
    missing = tmp_path / "nowhere.pth"
    assert main(["run", "--fid-features", "inception", "--inception-weights", str(missing),
                 "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: Inception FID asked for") and str(missing) in err and "\n" not in err
    assert not (tmp_path / "run").exists()  # checked before the run directory, data or training


def test_explainers_and_metrics_import_nothing_from_bench():
    """Dependencies point one way (docs/design.md): bench -> explainers -> metrics. Explainers and metrics raise
    standard exceptions; the runner and the command line turn them into one-line errors."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    modules = sorted(f"{p.parent.name}.{p.stem}" for d in ("explainers", "metrics") for p in (root / d).glob("*.py")
                     if p.stem != "__init__")
    code = ("import sys\n" + "".join(f"import {m}\n" for m in modules)
            + "from explainers.registry import EXPLAINERS\nEXPLAINERS.names()\n"
            + "print(sorted(m for m in sys.modules if m == 'bench' or m.startswith('bench.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", f"{len(modules)} modules import {out.stdout.strip()}"

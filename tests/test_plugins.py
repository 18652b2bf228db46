"""Explainers from outside the repository: ``--plugin file.py|module`` and installed entry points."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

import bench
from bench.cli import main
from explainers.registry import EXPLAINERS

PLUGIN = '''
import torch

from explainers.base import Capability, Explainer
from explainers.registry import register


@register("{name}")
class GradientTimesSign(Explainer):
    """The input gradient of f's class probability, a map that calls f (a plugin explainer of the test)."""

    paper = "test plugin"
    capabilities = frozenset({{Capability.SALIENCY}})

    def saliency(self, x, target):
        x = x.to(self.device).detach().requires_grad_(True)
        chosen = self.classifier(x).gather(1, target.to(self.device).view(-1, 1)).sum()
        return torch.autograd.grad(chosen, x)[0].abs()
'''


@pytest.fixture
def registry():
    """Whatever a test registers is gone after it (the registry's entries and origins restored)."""
    with EXPLAINERS.isolated():
        yield EXPLAINERS


def test_a_plugin_file_puts_its_explainer_on_the_leaderboard(smoke_run, in_a_project, registry, capsys):
    (in_a_project / "my_plugin.py").write_text(textwrap.dedent(PLUGIN.format(name="abs_gradient")))
    assert main(["list", "--plugin", "my_plugin.py", "--json"]) == 0
    listed = {e["name"]: e for e in json.loads(capsys.readouterr().out)["explainers"]}
    assert listed["abs_gradient"]["origin"] == "my_plugin.py" and listed["gce"]["origin"] == "built-in"
    assert main(["run", "--plugin", "my_plugin.py", "--profile", "smoke", "--seed", "3", "--device", "cpu",
                 "--explainers", "abs_gradient,random", "--out", "runs/plugin"]) == 0
    frame = bench.load("runs/plugin").frame
    gap = frame[frame.metric == "removal_gap"].set_index("explainer").value
    assert gap["abs_gradient"] > gap["random"] + 0.2  # a real map: removing its pixels first hurts f more
    corr = frame[frame.metric == "randomisation_correlation"].set_index("explainer").value
    assert corr.notna()["abs_gradient"]  # it calls f, so the randomisation check applies
    assert "abs_gradient" in (in_a_project / "runs" / "plugin" / "leaderboard.md").read_text()


@pytest.mark.parametrize("plugin, message", [
    ("clash.py", "explainer 'saliency' from clash.py clashes with the one from built-in"),
    ("missing.py", "--plugin 'missing.py': no such file"),
    ("no_such_plugin_module", "--plugin 'no_such_plugin_module': cannot import it"),
    ("broken.py", "--plugin 'broken.py' failed to import: ZeroDivisionError"),
])
def test_a_bad_plugin_is_one_line(in_a_project, registry, capsys, plugin, message):
    (in_a_project / "clash.py").write_text(textwrap.dedent(PLUGIN.format(name="saliency")))
    (in_a_project / "broken.py").write_text("1 / 0\n")
    assert main(["list", "--plugin", plugin]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err


def test_an_installed_package_registers_through_its_entry_point(tmp_path, registry, monkeypatch):
    """A distribution on sys.path whose entry_points.txt names a class under genexbench.explainers."""
    (tmp_path / "their_pkg.py").write_text(textwrap.dedent(PLUGIN.format(name="their_gradient")).replace(
        '@register("their_gradient")\n', ""))
    info = tmp_path / "their_pkg-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: their-pkg\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[genexbench.explainers]\ntheir_gradient = their_pkg:GradientTimesSign\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with registry.isolated(rediscover=True):  # a new session: discovery runs again
            assert "their_gradient" in registry.names()
            assert registry.origin("their_gradient").startswith("entry point their_gradient = their_pkg:")
            assert "their-pkg" in registry.origin("their_gradient")
        assert "their_gradient" not in registry
    finally:
        sys.modules.pop("their_pkg", None)

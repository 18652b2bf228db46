"""Studies: GCE Algorithm 1's decisions on known curves, the one-at-a-time grid, study files, resuming."""

from __future__ import annotations

import json
import shutil

import pytest

from bench.cli import main
from bench.errors import BenchError
from bench.execute.studies import STUDY_DIR, Size, algorithm1, builtin_names, cells, load_study

THRESHOLDS = {"fidelity_plateau": 0.05, "fidelity_within": 0.05, "causal_plateau": 0.05}
SEARCH = {"total_latents": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], "lambdas": [0.01, 0.05, 0.2, 1.0], "max_causal": 4}


class Curves:
    """Known -ELBO and I(alpha;Y) surfaces (the paper's shapes): -ELBO falls with L to a plateau after 8
    latents (relative gains 20%, 12%, ... then 2%); with K causal factors it is worse by a gap that lambda closes;
    C rises with K to a plateau after K = 2. Counts the fits the procedure asks for."""

    def __init__(self) -> None:
        self.asked: list[tuple[int, int, float]] = []

    def __call__(self, k: int, total: int, lam: float) -> dict:
        self.asked.append((k, total, lam))
        step1 = {1: 60.0, 2: 48.0, 3: 42.0, 4: 38.0, 5: 35.5, 6: 33.6, 7: 32.2, 8: 30.9, 9: 30.3, 10: 30.0}[total]
        gap = 0.0 if k == 0 else k * 0.2 / (1 + 20 * lam)  # 0.2k at lambda 0, shrinking as lambda grows
        info = {0: 0.0, 1: 0.50, 2: 0.60, 3: 0.615, 4: 0.62}[k]
        return {"K": k, "L": total - k, "lambda": lam, "neg_elbo": step1 * (1 + gap), "information_flow": info}


def test_algorithm1_follows_its_stated_thresholds_on_known_curves():
    curves = Curves()
    chosen = algorithm1(curves, SEARCH, THRESHOLDS)
    # Step 1: gains 20, 12.5, 9.5, 6.6, 5.4, 4.2% -> the 7th latent is the first to gain < 5%: total 6
    assert chosen["total"] == 6
    assert [a for a in curves.asked if a[0] == 0] == [(0, t, 1.0) for t in range(1, 8)]
    # Step 2: K = 1 reaches within 5% at lambda 0.2 (gap 0.2/5 = 4%), K = 2 at lambda 1 (0.4/21 = 1.9%);
    # C gains 20% from K = 1 to 2, then 2.5% to K = 3: the plateau; the choice is K = 2 (before the plateau)
    assert (chosen["K"], chosen["L"], chosen["lambda"]) == (2, 4, 1.0)
    assert [p["lambda"] for p in chosen["per_k"]] == [0.2, 1.0, 1.0]
    assert all(p["neg_elbo"] <= chosen["step1_neg_elbo"] * 1.05 for p in chosen["per_k"])


def test_algorithm1_choice_moves_with_a_threshold():
    # a looser fidelity plateau (5% -> 6%) stops Step 1 one latent earlier: total 5, and the whole choice moves
    looser = algorithm1(Curves(), SEARCH, {**THRESHOLDS, "fidelity_plateau": 0.06})
    assert looser["total"] == 5 and (looser["K"], looser["L"]) == (2, 3)
    # a causal plateau above C's 20% gain from K = 1 to 2 stops at K = 1
    early = algorithm1(Curves(), SEARCH, {**THRESHOLDS, "causal_plateau": 0.25})
    assert (early["K"], early["L"], early["lambda"]) == (1, 5, 0.2)
    # a fidelity tolerance tighter than every lambda on the ladder reaches: its largest lambda
    tight = algorithm1(Curves(), SEARCH, {**THRESHOLDS, "fidelity_within": 0.001})
    assert all(p["lambda"] == 1.0 for p in tight["per_k"])


def test_one_at_a_time_cells_move_one_setting_from_the_centre():
    size = Size("small", "quick", (0,), {"n_causal": 1, "lam": 0.05}, {"n_causal": [1, 2], "lam": [0.01, 0.2]}, {})
    grid = cells(size)
    assert [c for c, _, _ in grid] == ["center", "n_causal=2", "lam=0.01", "lam=0.2"]  # the centre's own value once
    for cell, settings, moved in grid[1:]:
        changed = {k for k in settings if settings[k] != size.center[k]}
        assert changed == {moved[0]} and settings[moved[0]] == moved[1]


def test_builtin_study_files_state_grid_profile_and_thresholds():
    assert builtin_names() == ["ganmex-lambda", "gce-algorithm1", "gce-sensitivity"]
    for name in builtin_names():
        study = load_study(name)
        assert {"small", "full"} <= set(study.sizes) and study.sha256 == __import__("hashlib").sha256(
            (STUDY_DIR / f"{name}.toml").read_bytes()).hexdigest()
        assert study.thresholds  # every decision threshold is in the file
    alg = load_study("gce-algorithm1")
    assert alg.moved == {k: pytest.approx([v - 0.01, v + 0.01]) for k, v in alg.thresholds.items()}
    assert load_study("ganmex-lambda").metrics[:2] == ("sweep_validity", "sweep_validity_independent")


@pytest.mark.parametrize("text, message", [
    ('name = "x"\nkind = "grid"\nsuite = "mnist"\nexplainer = "gce"\n[sizes.small]\n', "kind must be one of"),
    ('name = "x"\nkind = "one-at-a-time"\nsuite = "mnist"\nexplainer = "gce"\n[sizes.small]\nprofile = "smoke"\n'
     'seeds = [0]\ncenter = {}\n', "needs 'sensitive_ratio'"),
    ('name = "x"\nkind = "gce-algorithm1"\nsuite = "mnist"\nexplainer = "gce"\n[thresholds]\nfidelity_plateau = 0.05\n'
     'fidelity_within = 0.05\ncausal_plateau = 0.05\n[sizes.small]\nprofile = "smoke"\nseeds = [0]\ncenter = {}\n',
     "needs 'total_latents'"),
])
def test_a_study_file_missing_a_decision_is_refused(tmp_path, text, message):
    path = tmp_path / "study.toml"
    path.write_text(text)
    with pytest.raises(BenchError, match=message):
        load_study(path)


def test_unknown_study_and_size_are_one_line_errors(capsys, tmp_path):
    assert main(["study", "no-such-study"]) == 2
    assert "unknown study 'no-such-study'" in capsys.readouterr().err
    assert main(["study", "gce-sensitivity", "--size", "huge", "--out", str(tmp_path / "s")]) == 2
    assert "has no size 'huge'" in capsys.readouterr().err


TINY = '''
name = "tiny"
kind = "one-at-a-time"
suite = "mnist"
explainer = "gce"
metrics = ["information_flow", "reencoded_accuracy", "sweep_validity"]
[thresholds]
sensitive_ratio = 2.0
[sizes.small]
profile = "smoke"
seeds = [0, 1]
center = { steps = 15, n_causal = 1 }
vary = { n_causal = [2] }
'''


def test_a_grid_study_runs_each_cell_and_resumes(tmp_path, mnist38, capsys):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    out = tmp_path / "study"
    assert main(["-q", "study", str(path), "--out", str(out)]) == 0
    study = json.loads((out / "study.json").read_text())
    assert study["provenance"]["file_sha256"] == load_study(path).sha256
    runs = sorted(p.parent.relative_to(out).as_posix() for p in out.glob("cells/*/*/results.json"))
    assert runs == ["cells/center/seed0", "cells/center/seed1", "cells/n_causal=2/seed0", "cells/n_causal=2/seed1"]
    meta = json.loads((out / "cells/n_causal=2/seed1/results.json").read_text())["metadata"]
    assert meta["explainer_details"]["gce"]["settings"]["n_causal"] == 2 and meta["seed"] == 1
    rows = {(r["cell"], r["metric"]): r for r in study["table"]}
    infos = [study["values"]["n_causal=2"][s]["information_flow"] for s in ("0", "1")]
    assert rows[("n_causal=2", "information_flow")]["mean"] == pytest.approx(sum(infos) / 2)
    assert (out / "figures" / "n_causal.png").stat().st_size > 1000
    assert "| n_causal=2 |" in (out / "table.md").read_text()
    # interrupted after one cell: the finished cells are kept, the missing one runs again
    shutil.rmtree(out / "cells" / "n_causal=2" / "seed1")
    stamp = (out / "cells/center/seed0/results.json").stat().st_mtime_ns
    assert main(["-q", "study", str(path), "--out", str(out)]) == 0
    assert (out / "cells/center/seed0/results.json").stat().st_mtime_ns == stamp
    assert (out / "cells/n_causal=2/seed1/results.json").exists()
    assert len(json.loads((out / "study.json").read_text())["sessions"]) == 2  # the first run's time is kept
    # another study file in the same directory is refused
    path.write_text(TINY.replace("seeds = [0, 1]", "seeds = [0]"))
    assert main(["-q", "study", str(path), "--out", str(out)]) == 2
    assert "holds another study" in capsys.readouterr().err


def test_each_session_keeps_the_code_revision_it_ran():
    from bench.execute.studies import with_session

    first = {"provenance": {"code_revision": "aaa"}, "sessions": [{"seconds": 10.0}]}
    sessions = with_session(first, {"seconds": 1.0, "code_revision": "bbb"})
    assert [s["code_revision"] for s in sessions] == ["aaa", "bbb"]
    assert "code_revision" not in first["sessions"][0]  # the record read is not changed
    again = with_session({"provenance": {"code_revision": "bbb"}, "sessions": sessions}, {"code_revision": "ccc"})
    assert [s["code_revision"] for s in again] == ["aaa", "bbb", "ccc"]

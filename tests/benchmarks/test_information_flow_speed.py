"""Information-flow estimator: batched vs the loops of Algorithm 2, on the Table 1/2 networks.

Compare in one run (timings off by default in the test suite):

    pytest tests/benchmarks --benchmark-enable --benchmark-group-by=param:shape

Three implementations of the same estimate (same draws, same result):
``batched`` (metrics.information_flow.information_flow), ``beta_loop`` (one
pass of N_beta per alpha: the authors' code) and ``double_loop`` (one sample
per pass: Algorithm 2 as written). Networks in eval mode, no autograd, in the
layout the package runs them (channels-last conv weights).
"""

from __future__ import annotations

import pytest
import torch

from bench.inputs.classifier import BlackBox, Table1Classifier
from explainers.gce import GCE
from metrics.information_flow import information_flow, information_flow_loop, resolve_device

SHAPES = {"100x25": (100, 25), "25x100": (25, 100)}
IMPLEMENTATIONS = ("batched", "beta_loop", "double_loop")


@pytest.fixture(scope="module")
def networks():
    device = resolve_device(None)
    torch.manual_seed(0)
    classifier = BlackBox(Table1Classifier(2).to(device), 2)
    assert classifier.use_channels_last(torch.rand(8, 1, 28, 28, device=device))
    decoder = GCE(classifier, device=device).decoder.eval()
    return decoder, classifier, device


def estimate(networks, implementation: str, n_alpha: int, n_beta: int) -> float:
    decoder, classifier, device = networks
    gen = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        if implementation == "batched":
            value = information_flow(decoder, classifier, 1, 7, n_alpha, n_beta, generator=gen, device=device)
        else:
            value = information_flow_loop(decoder, classifier, 1, 7, n_alpha, n_beta, generator=gen, device=device,
                                          batch_beta=implementation == "beta_loop")
        return float(value)  # float() synchronises CUDA inside the timed region


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("shape", SHAPES)
def test_information_flow_speed(benchmark, networks, shape, implementation):
    n_alpha, n_beta = SHAPES[shape]
    if implementation == "double_loop" and not benchmark.enabled:
        n_alpha, n_beta = 4, 3  # keep the default (untimed) test run short
    value = benchmark.pedantic(estimate, args=(networks, implementation, n_alpha, n_beta),
                               rounds=3, warmup_rounds=1, iterations=1)
    reference = estimate(networks, "beta_loop", n_alpha, n_beta)
    assert value == pytest.approx(reference, abs=1e-5)  # same estimate, whatever the loop

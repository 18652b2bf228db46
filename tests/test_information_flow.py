"""Information flow against closed forms, and its batching invariances."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import ndtr

from bench.classifier import BlackBox, Table1Classifier
from explainers.gce import Decoder
from metrics.information_flow import (information_flow, information_flow_loop, information_flow_per_factor,
                                      mutual_information_from_probs)


def binary_entropy(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-300, 1 - 1e-16)
    return -(p * np.log(p) + (1 - p) * np.log1p(-p))


def probit_mi(slope: float) -> float:
    """I(alpha; Y) when p(Y=1 | alpha) = Phi(slope * alpha), alpha ~ N(0, 1): log 2 - E[h_b(Phi(slope * alpha))].

    H(Y) = log 2 by symmetry; the expectation by Gauss-Hermite quadrature.
    """
    nodes, weights = np.polynomial.hermite_e.hermegauss(200)
    cond = np.sum(weights * binary_entropy(ndtr(slope * nodes))) / np.sqrt(2 * np.pi)
    return math.log(2) - cond


def linear_gaussian(w_alpha: torch.Tensor, w_beta: torch.Tensor, a: torch.Tensor, gamma: float):
    """GCE Section 4: x = W [alpha; beta] + eps, eps ~ N(0, gamma I); classifier Phi(a^T x).

    Returns (decode, classify, slope) with slope from Lemma 8:
    p(Y=1 | alpha) = Phi(alpha <a, w_alpha> / sqrt(1 + a^T W_b W_b^T a + gamma |a|^2)).
    """
    w = torch.cat([w_alpha, w_beta], dim=1).double()
    noise = torch.Generator().manual_seed(123)

    def decode(z):
        return z.double() @ w.T + math.sqrt(gamma) * torch.randn(z.shape[0], w.shape[0], generator=noise,
                                                                  dtype=torch.float64)

    def classify(x):
        p1 = torch.special.ndtr(x @ a.double())
        return torch.stack([1 - p1, p1], dim=1)

    slope = float(a @ w_alpha[:, 0]) / math.sqrt(1 + float((w_beta.T @ a).pow(2).sum()) + gamma * float(a @ a))
    return decode, classify, slope


@pytest.mark.parametrize("w_alpha, w_beta", [
    # Proposition 3's optimum: w_alpha along a, W_beta orthogonal to a
    ([[0.8], [0.0], [0.0]], [[0.0, 0.0], [0.8, 0.0], [0.0, 0.8]]),
    # a generic, non-optimal map: beta leaks into the classifier's direction
    ([[0.5], [0.3], [-0.2]], [[0.4, -0.1], [0.2, 0.6], [0.1, 0.3]]),
])
def test_information_flow_matches_lemma8_closed_form(w_alpha, w_beta):
    a = torch.tensor([2.0, 0.5, -1.0])
    decode, classify, slope = linear_gaussian(torch.tensor(w_alpha), torch.tensor(w_beta), a, gamma=0.1)
    estimate = information_flow(decode, classify, 1, 2, 4000, 400, device="cpu",
                                generator=torch.Generator().manual_seed(0))
    assert float(estimate) == pytest.approx(probit_mi(slope), abs=0.01)


def test_information_flow_is_zero_when_alpha_is_orthogonal_to_the_boundary():
    a = torch.tensor([1.0, 0.0])
    decode, classify, slope = linear_gaussian(torch.tensor([[0.0], [0.9]]), torch.tensor([[0.9], [0.0]]), a, 0.1)
    assert slope == 0.0
    estimate = information_flow(decode, classify, 1, 1, 2000, 400, device="cpu",
                                generator=torch.Generator().manual_seed(1))
    assert abs(float(estimate)) < 5e-3  # only the plug-in bias of finite N_beta remains


def test_deterministic_sign_classifier_gives_log_m():
    decode = lambda z: z[:, :1]  # noqa: E731
    classify = lambda x: torch.cat([(x > 0).float(), (x <= 0).float()], 1)  # noqa: E731
    value = information_flow(decode, classify, 1, 3, 500, 8, device="cpu", generator=torch.Generator().manual_seed(0))
    assert float(value) == pytest.approx(math.log(2), abs=0.01)


def test_per_factor_matches_closed_form_for_each_coordinate():
    # Y depends on z_0 only, through a probit of slope 1.5: factor 0 carries probit_mi(1.5), the others 0
    decode = lambda z: z  # noqa: E731

    def classify(x):
        p1 = torch.special.ndtr(1.5 * x[:, 0])
        return torch.stack([1 - p1, p1], 1)

    values = information_flow_per_factor(decode, classify, 3, 3000, 200, device="cpu",
                                         generator=torch.Generator().manual_seed(2))
    assert values.shape == (3,)
    assert float(values[0]) == pytest.approx(probit_mi(1.5), abs=0.01)
    assert torch.all(values[1:].abs() < 5e-3)


def test_mutual_information_from_probs_bounds():
    # every alpha gives a different certain class: I = H(Y) = log M
    m = 4
    probs = torch.eye(m).repeat_interleave(5, 0).view(m * 5, 1, m).expand(m * 5, 3, m)
    assert float(mutual_information_from_probs(probs)) == pytest.approx(math.log(m), abs=1e-6)
    # the output ignores alpha: I = 0
    same = torch.full((10, 3, m), 1.0 / m)
    assert float(mutual_information_from_probs(same)) == pytest.approx(0.0, abs=1e-6)


@pytest.fixture(scope="module")
def table_networks():
    torch.manual_seed(0)
    decoder = Decoder(8).eval()
    classifier = BlackBox(Table1Classifier(2), 2)
    return decoder, classifier


@torch.no_grad()
def test_chunk_size_does_not_change_the_estimate(table_networks):
    decoder, classifier = table_networks
    values = [float(information_flow(decoder, classifier, 1, 7, 20, 10, chunk_size=c, device="cpu",
                                     generator=torch.Generator().manual_seed(5))) for c in (1, 7, 64, 200)]
    assert max(values) - min(values) < 1e-6
    per = [information_flow_per_factor(decoder, classifier, 8, 6, 5, chunk_size=c, device="cpu",
                                       generator=torch.Generator().manual_seed(5)) for c in (3, 240)]
    torch.testing.assert_close(per[0], per[1], atol=1e-6, rtol=0)


@torch.no_grad()
def test_batched_estimate_equals_algorithm2_loops(table_networks):
    decoder, classifier = table_networks
    kwargs = dict(device="cpu")
    batched = information_flow(decoder, classifier, 1, 7, 12, 6, generator=torch.Generator().manual_seed(9), **kwargs)
    for batch_beta in (False, True):
        loop = information_flow_loop(decoder, classifier, 1, 7, 12, 6, batch_beta=batch_beta,
                                     generator=torch.Generator().manual_seed(9), **kwargs)
        assert float(loop) == pytest.approx(float(batched), abs=1e-6)


def test_estimate_is_differentiable_in_the_decoder(table_networks):
    decoder, classifier = table_networks
    decoder.zero_grad()
    value = information_flow(decoder, classifier, 1, 7, 8, 4, device="cpu", generator=torch.Generator().manual_seed(0))
    value.backward()
    grads = [p.grad for p in decoder.parameters()]
    assert all(g is not None for g in grads) and any(float(g.abs().sum()) > 0 for g in grads)


def test_seed_reproduces_and_bad_arguments_raise():
    decode = lambda z: z  # noqa: E731
    classify = lambda x: torch.softmax(x[:, :2], 1)  # noqa: E731
    runs = [float(information_flow(decode, classify, 1, 1, 50, 5, device="cpu",
                                   generator=torch.Generator().manual_seed(3))) for _ in range(2)]
    assert runs[0] == runs[1]
    with pytest.raises(ValueError):
        information_flow(decode, classify, 0, 1, 10, 10, device="cpu")
    with pytest.raises(ValueError):
        information_flow(decode, classify, 1, 1, 0, 10, device="cpu")

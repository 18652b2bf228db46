"""Information flow against closed forms, and its batching invariances."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import ndtr

from bench.inputs.classifier import BlackBox, Table1Classifier
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


# --- bias correction: delete-one-beta jackknife --------------------------------------------------------------------
# Tolerances below come from the spread over 20 seeds measured on this code (reported with each test); each test was
# also run on a second, disjoint seed set (seeds 100-119) of the same code and passed.

def _hard_sign(x):
    p1 = (x[:, 0] > 0).double()
    return torch.stack([1 - p1, p1], 1)


def _soft_sigmoid(x):
    p1 = torch.sigmoid(3 * x[:, 0].double())
    return torch.stack([1 - p1, p1], 1)


def plugin_bias_first_order(mean_p1: float, var_p1: float, n_beta: int) -> float:
    """Delta-method O(1/N_beta) bias of the plug-in when p(y|x) does not depend on alpha, M = 2:
    sum_y Var_beta p(y|x) / (2 N_beta p(y)); (M-1)/(2 N_beta) for a hard classifier of a balanced class."""
    return (var_p1 / mean_p1 + var_p1 / (1 - mean_p1)) / (2 * n_beta)


def _flows(decode, classify, n_alpha, n_beta, seeds, n_causal=1, n_noncausal=1):
    """Plug-in and jackknife estimates on the same draws, one pair per seed -> two arrays."""
    out = {bc: [] for bc in ("none", "jackknife")}
    for s in seeds:
        for bc in out:
            out[bc].append(float(information_flow(decode, classify, n_causal, n_noncausal, n_alpha, n_beta,
                                                  device="cpu", chunk_size=n_alpha * n_beta, bias_correction=bc,
                                                  generator=torch.Generator().manual_seed(s))))
    return np.array(out["none"]), np.array(out["jackknife"])


@pytest.mark.parametrize("classify, single_tol", [
    # measured at N_alpha=100, N_beta=25 over 20 seeds (jackknife mean +- s.d.):
    (_hard_sign, 0.010),  # -0.0006 +- 0.0028; plug-in 0.0201 +- 0.0029
    (_soft_sigmoid, 0.006),  # -0.0002 +- 0.0018; plug-in 0.0108 +- 0.0017
])
def test_jackknife_is_zero_on_an_alpha_blind_decoder(classify, single_tol):
    decode = lambda z: z[:, 1:2]  # noqa: E731  x = beta: the image ignores alpha, I(alpha; Y) = 0
    plugin, jack = _flows(decode, classify, 100, 25, range(20))
    # p(Y=1|beta) moments: Bernoulli(1/2) for the hard classifier, by quadrature for the soft one
    nodes, weights = np.polynomial.hermite_e.hermegauss(200)
    p1 = classify(torch.from_numpy(nodes)[:, None]).numpy()[:, 1]
    w = weights / np.sqrt(2 * np.pi)
    mean_p1, var_p1 = float(w @ p1), float(w @ p1 ** 2 - (w @ p1) ** 2)
    # the plug-in is biased as the delta method says (0.020 hard, 0.011 soft); the jackknife is not
    assert plugin.mean() == pytest.approx(plugin_bias_first_order(mean_p1, var_p1, 25), rel=0.2)
    assert plugin.mean() > 0.01 if classify is _hard_sign else plugin.mean() > 0.005
    assert abs(jack.mean()) < 0.005
    assert abs(jack[0]) < single_tol  # one realistic estimate: ~3.5 s.d.
    assert np.all(jack < plugin)


@pytest.mark.parametrize("classify, slope", [
    # Y = 1[alpha + beta > 0] hard: p(Y=1|alpha) = Phi(alpha)
    (_hard_sign, 1.0),
    # soft p(Y=1|x) = Phi(2x), x = alpha + beta: p(Y=1|alpha) = Phi(2 alpha / sqrt(5)) (probit integral)
    (lambda x: torch.stack([1 - torch.special.ndtr(2 * x[:, 0].double()),
                            torch.special.ndtr(2 * x[:, 0].double())], 1), 2 / math.sqrt(5)),
])
def test_jackknife_is_unbiased_on_a_decoder_with_known_flow(classify, slope):
    decode = lambda z: z[:, :1] + z[:, 1:2]  # noqa: E731  x = alpha + beta
    truth = probit_mi(slope)  # 0.1932 hard, 0.1672 soft
    plugin, jack = _flows(decode, classify, 2000, 25, range(20))
    # measured over 20 seeds, N_alpha=2000, N_beta=25 (error vs truth, mean +- s.d.):
    # hard: plug-in +0.0205 +- 0.0056, jackknife -0.0009 +- 0.0056; soft: +0.0111 +- 0.0048, -0.0002 +- 0.0048.
    # The spread is the alpha sampling (shared by both); s.e. of the 20-seed mean ~0.0013, tolerance ~4 s.e.
    assert abs(jack.mean() - truth) < 0.005
    assert plugin.mean() - truth > 0.008
    assert abs(jack.mean() - truth) < abs(plugin.mean() - truth)


def _jackknife_loop_reference(probs: torch.Tensor) -> torch.Tensor:
    """I_jack = N_b I_full - (N_b - 1) mean_j I_(-j), with each I_(-j) a plug-in on a copy without beta column j."""
    n_beta = probs.shape[-2]
    full = mutual_information_from_probs(probs)
    minus_j = [mutual_information_from_probs(torch.cat([probs[..., :j, :], probs[..., j + 1:, :]], dim=-2))
               for j in range(n_beta)]
    return n_beta * full - (n_beta - 1) * torch.stack(minus_j).mean(0)


@pytest.mark.parametrize("shape", [(7, 5, 4), (3, 6, 2, 3), (2, 4, 9, 10, 2)])
def test_batched_jackknife_equals_leave_one_out_loop(shape):
    torch.manual_seed(sum(shape))
    probs = torch.softmax(2 * torch.randn(shape, dtype=torch.float64), dim=-1)
    batched = mutual_information_from_probs(probs, bias_correction="jackknife")
    assert batched.shape == shape[:-3] and batched.dtype == torch.float64
    torch.testing.assert_close(batched, _jackknife_loop_reference(probs), rtol=1e-10, atol=1e-12)
    # float32 input: computed in float64, returned in float32
    single = mutual_information_from_probs(probs.float(), bias_correction="jackknife")
    assert single.dtype == torch.float32
    torch.testing.assert_close(single.double(), batched, rtol=0, atol=1e-5)


def test_default_is_the_unchanged_plugin_bit_for_bit():
    # GCE trains on information_flow's default: it must stay the plug-in of Algorithm 2 exactly
    torch.manual_seed(0)
    probs = torch.softmax(torch.randn(2, 30, 8, 3), -1).requires_grad_()
    p_y_given_alpha = probs.mean(dim=-2)
    p_y = p_y_given_alpha.mean(dim=-2)
    reference = ((p_y_given_alpha * torch.log(p_y_given_alpha + 1e-8)).sum(-1).mean(-1)
                 - (p_y * torch.log(p_y + 1e-8)).sum(-1))
    assert torch.equal(mutual_information_from_probs(probs), reference)
    assert torch.equal(mutual_information_from_probs(probs, bias_correction="none"), reference)
    # the jackknife is differentiable too
    mutual_information_from_probs(probs, bias_correction="jackknife").sum().backward()
    assert probs.grad is not None and float(probs.grad.abs().sum()) > 0
    decode, classify = (lambda z: z), (lambda x: torch.softmax(x[:, :2], 1))
    values = [information_flow(decode, classify, 1, 1, 20, 5, device="cpu", generator=torch.Generator().manual_seed(4),
                               **kw) for kw in ({}, {"bias_correction": "none"})]
    assert torch.equal(values[0], values[1])


def test_per_factor_jackknife_removes_the_bias_of_each_factor():
    # Y = 1[z_0 + z_1 > 0]: factors 0 and 1 each carry probit_mi(1) = 0.193, factor 2 is ignored (0)
    decode = lambda z: z[:, :1] + z[:, 1:2]  # noqa: E731
    runs = {bc: torch.stack([information_flow_per_factor(decode, _hard_sign, 3, 400, 25, device="cpu",
                                                         chunk_size=3 * 400 * 25, bias_correction=bc,
                                                         generator=torch.Generator().manual_seed(s))
                             for s in range(20)]).double() for bc in ("none", "jackknife")}
    plugin, jack = runs["none"].mean(0), runs["jackknife"].mean(0)
    truth = torch.tensor([probit_mi(1.0), probit_mi(1.0), 0.0], dtype=torch.float64)
    # measured over 20 seeds: ignored factor plug-in 0.0201 +- 0.0013, jackknife ~0 +- 0.0013;
    # causal factors: jackknife error +0.0001 and -0.0022, plug-in +0.021 and +0.019, s.d. 0.012-0.014 over seeds
    # (alpha sampling, shared by both), s.e. of the 20-seed mean ~0.003; tolerance ~4 s.e.
    assert float(plugin[2]) > 0.01
    assert abs(float(jack[2])) < 0.003
    assert torch.all((jack[:2] - truth[:2]).abs() < 0.012)
    assert torch.all((plugin[:2] - truth[:2]) > 0.008)


def test_bias_correction_arguments_are_checked():
    decode, classify = (lambda z: z), (lambda x: torch.softmax(x[:, :2], 1))
    probs = torch.full((4, 3, 2), 0.5)
    for bad in ("miller-madow", "Jackknife", None):
        with pytest.raises(ValueError, match="bias_correction"):
            mutual_information_from_probs(probs, bias_correction=bad)
        with pytest.raises(ValueError, match="bias_correction"):
            information_flow(decode, classify, 1, 1, 4, 3, device="cpu", bias_correction=bad)
        with pytest.raises(ValueError, match="bias_correction"):
            information_flow_per_factor(decode, classify, 2, 4, 3, device="cpu", bias_correction=bad)
    # the jackknife needs two beta draws to leave one out
    with pytest.raises(ValueError, match="n_beta >= 2"):
        mutual_information_from_probs(probs[:, :1], bias_correction="jackknife")
    with pytest.raises(ValueError, match="n_beta >= 2"):
        information_flow(decode, classify, 1, 1, 4, 1, device="cpu", bias_correction="jackknife")
    with pytest.raises(ValueError, match="n_beta >= 2"):
        information_flow_per_factor(decode, classify, 2, 4, 1, device="cpu", bias_correction="jackknife")
    assert float(mutual_information_from_probs(probs[:, :1])) == pytest.approx(0.0, abs=1e-6)  # plug-in allows 1

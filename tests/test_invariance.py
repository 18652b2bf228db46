"""The invariance curve (SVAE Section 3.0.1) against closed forms on a toy latent model."""

from __future__ import annotations

import math

import pytest
import torch

from metrics.invariance import InvarianceCurve, invariance_curve


def identity(z: torch.Tensor) -> torch.Tensor:
    return z


def threshold_on(coordinate: int, at: float):
    """f: class 1 iff z[coordinate] > at, as probabilities."""
    def classify(z: torch.Tensor) -> torch.Tensor:
        one = (z[:, coordinate] > at).float()
        return torch.stack([1 - one, one], dim=1)
    return classify


def normal_cdf(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def test_a_classifier_that_ignores_the_noncausal_latents_keeps_every_label():
    z = torch.randn(500, 3)
    curve = invariance_curve(identity, identity, threshold_on(0, 0.0), z, n_causal=1,
                             generator=torch.Generator().manual_seed(0))
    assert curve.kept.tolist() == [1.0] * len(curve.sigmas)
    assert curve.reencoded == 1.0 and curve.area == pytest.approx(1.0)


def test_a_classifier_reading_a_noncausal_latent_follows_the_normal_tail():
    # every image starts in class 0 (z1 = -10); redrawn z1 ~ N(0, s^2) stays in class 0 iff z1 <= 1:
    # kept(s) = Phi(1 / s)
    z = torch.zeros(40000, 2)
    z[:, 1] = -10.0
    curve = invariance_curve(identity, identity, threshold_on(1, 1.0), z, n_causal=1,
                             generator=torch.Generator().manual_seed(0))
    expected = torch.tensor([normal_cdf(1 / s) for s in curve.sigmas.tolist()], dtype=torch.float64)
    assert torch.allclose(curve.kept, expected, atol=0.01), (curve.kept, expected)
    assert curve.at(1.0) == pytest.approx(normal_cdf(1.0), abs=0.01)


def test_area_is_the_normalised_trapezoid():
    curve = InvarianceCurve(sigmas=torch.tensor([0.0, 1.0, 3.0]), kept=torch.tensor([1.0, 1.0, 0.0]), reencoded=1.0)
    assert curve.area == pytest.approx((1.0 + 1.0) / 3.0)  # 1 on [0, 1], a triangle of 1 on [1, 3]
    with pytest.raises(KeyError):
        curve.at(2.0)


def test_bad_input_is_refused():
    z = torch.randn(4, 2)
    with pytest.raises(ValueError, match="increasing"):
        invariance_curve(identity, identity, threshold_on(0, 0.0), z, 1, sigmas=(1.0, 0.5))
    with pytest.raises(ValueError, match="no noncausal"):
        invariance_curve(identity, identity, threshold_on(0, 0.0), z, 2)
    with pytest.raises(ValueError, match="images"):
        invariance_curve(identity, identity, threshold_on(0, 0.0), z[:0], 1)

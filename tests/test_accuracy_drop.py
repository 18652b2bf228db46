"""Accuracy drop against a case with a known answer."""

from __future__ import annotations

import pytest
import torch

from metrics.accuracy_drop import accuracy_drop


def sign_of_first_coordinate(x: torch.Tensor) -> torch.Tensor:
    positive = (x[:, 0] > 0).float()
    return torch.stack([1 - positive, positive], dim=1)


def test_only_the_factor_the_classifier_reads_drops_accuracy():
    # identity encoder/decoder; f reads z_0 only. Resampling z_0 from N(0, 1) makes the
    # prediction a coin flip (drop 1/2); resampling z_1 or z_2 changes nothing (drop exactly 0).
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(4000, 3, generator=gen)
    labels = (images[:, 0] > 0).long()
    identity = lambda z: z  # noqa: E731
    result = accuracy_drop(identity, identity, sign_of_first_coordinate, images, labels,
                           generator=torch.Generator().manual_seed(1), chunk_size=333)
    assert result.original == 1.0 and result.reencoded == 1.0
    assert float(result.drop[0]) == pytest.approx(0.5, abs=0.03)
    assert result.drop[1:].tolist() == [0.0, 0.0]
    torch.testing.assert_close(result.drop, result.reencoded - result.per_factor)


def test_chunk_size_does_not_change_the_result():
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(300, 4, generator=gen)
    labels = (images[:, 0] > 0).long()
    identity = lambda z: z  # noqa: E731
    results = [accuracy_drop(identity, identity, sign_of_first_coordinate, images, labels,
                             generator=torch.Generator().manual_seed(2), chunk_size=c).drop for c in (1, 17, 300)]
    torch.testing.assert_close(results[0], results[1])
    torch.testing.assert_close(results[0], results[2])


def test_mismatched_inputs_raise():
    identity = lambda z: z  # noqa: E731
    with pytest.raises(ValueError):
        accuracy_drop(identity, identity, sign_of_first_coordinate, torch.randn(5, 2), torch.zeros(4).long())

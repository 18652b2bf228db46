"""Sweep faithfulness metrics against closed forms and scipy."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch

from metrics import sweep as sm


def test_requested_ramp_goes_from_the_start_probability_to_one():
    ramp = sm.requested_ramp(torch.tensor([0.0, 0.2, 1.0]), 5)
    assert torch.allclose(ramp[0], torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0]))
    assert torch.allclose(ramp[1], torch.tensor([0.2, 0.4, 0.6, 0.8, 1.0]))
    assert torch.allclose(ramp[2], torch.ones(5))


def test_ranks_and_correlations_match_scipy_with_ties():
    gen = torch.Generator().manual_seed(0)
    a = torch.randint(0, 6, (4, 30), generator=gen).double()  # many ties
    b = torch.rand(4, 30, generator=gen).double()
    for i in range(4):
        assert np.allclose(sm.average_ranks(a[i]).numpy() + 1, scipy.stats.rankdata(a[i].numpy()))
        assert sm.spearman(a[i], b[i]).item() == pytest.approx(scipy.stats.spearmanr(a[i], b[i]).statistic)
        assert sm.pearson(a[i], b[i]).item() == pytest.approx(np.corrcoef(a[i], b[i])[0, 1])
    batched = sm.spearman(a, b)  # one call over the batch = row by row
    assert torch.allclose(batched, torch.stack([sm.spearman(a[i], b[i]) for i in range(4)]))


def test_compatibility_closed_forms():
    requested = torch.linspace(0, 1, 11).repeat(3, 1)
    perfect = sm.compatibility(requested, requested.clone())
    assert perfect.pearson == pytest.approx(1) and perfect.spearman == pytest.approx(1) and perfect.mae == 0
    # an affine response: still perfectly correlated, mean error |0.5 r + 0.25 - r| averaged
    affine = sm.compatibility(requested, 0.5 * requested + 0.25)
    assert affine.pearson == pytest.approx(1) and affine.spearman == pytest.approx(1)
    assert affine.mae == pytest.approx((0.25 - 0.5 * requested).abs().mean().item())
    # ignoring the request entirely: no correlation
    flat = sm.compatibility(requested, torch.full_like(requested, 0.3))
    assert flat.pearson == 0 and flat.spearman == 0
    reversed_ = sm.compatibility(requested, 1 - requested)
    assert reversed_.pearson == pytest.approx(-1) and reversed_.mae == pytest.approx(requested.sub(0.5).abs().mean().item() * 2)
    with pytest.raises(ValueError, match="differ in shape"):
        sm.compatibility(requested, requested[:, :5])


def test_validity_counts_sweeps_ending_in_the_target_class():
    end = torch.tensor([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.7, 0.3]])
    assert sm.validity(end, torch.tensor([0, 1, 0, 1])) == pytest.approx(0.5)
    assert sm.validity(end, torch.tensor([0, 1, 1, 0])) == 1.0


def test_monotonicity_is_the_mean_rank_correlation_with_the_step():
    rising = torch.tensor([0.1, 0.2, 0.5, 0.9])
    assert sm.monotonicity(rising[None]) == pytest.approx(1)
    assert sm.monotonicity(rising.flip(0)[None]) == pytest.approx(-1)
    assert sm.monotonicity(torch.full((1, 4), 0.5)) == 0  # a sweep that does nothing is not monotone
    # a rise that overshoots and comes back: Spearman of (0, 1, 3, 2) with (0, 1, 2, 3) = 0.8
    bumpy = torch.tensor([[0.1, 0.2, 0.9, 0.5]])
    assert sm.monotonicity(bumpy) == pytest.approx(0.8)
    assert sm.monotonicity(torch.cat([rising[None], bumpy])) == pytest.approx(0.9)


def test_proximity_is_the_mean_absolute_pixel_change():
    x = torch.zeros(2, 1, 4, 4)
    end = x.clone()
    end[0, 0, 0, :] = 1.0  # 4 of 32 pixels changed by 1
    assert sm.proximity(x, end) == pytest.approx(4 / 32)


def test_noncausal_change_tracks_the_class_f_gives_the_reference():
    reference = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    probs = torch.tensor([[[0.9, 0.1], [0.7, 0.3]],  # class 0 moves 0, 0.2
                          [[0.2, 0.8], [0.2, 0.8]]])  # class 1 does not move
    assert sm.noncausal_change(probs, reference) == pytest.approx(0.05)
    assert sm.noncausal_change(reference[:, None].expand(-1, 3, -1), reference) == 0

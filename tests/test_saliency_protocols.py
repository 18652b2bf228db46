"""The leaderboard protocols of metrics.saliency (docs/design.md, "Metric protocols").

- Cascading randomisation on the input's support: the all-pixel rank correlation of |map| is
  dominated by the pixels that are zero in both maps (the black background under a zero baseline);
  the support correlation is not.
- Removal curves rank the positive part of the map (exaggeration paper §4.3), averaged over random
  orders of the tied pixels, with the spread over tie orders reported.
- Where Quantus computes the same quantity (PixelFlipping), ours agrees on identical inputs.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from metrics.saliency import (cascading_randomisation, cascading_randomisation_scores, input_support,
                              masked_spearman_rows, removal_curves, removal_relevance, spearman_rows)

# --- cascading randomisation on the support ---------------------------------------------------------


def digit_like_images(n=12, side=28, coverage=0.2, seed=0):
    """Binary images lit on ~``coverage`` of the pixels (a different set per image), zero elsewhere."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 1, side, side, generator=g) < coverage).float()


def test_support_correlation_ignores_the_shared_zero_background():
    # Input x Gradient of a linear f: exactly zero off the digit, whatever the weights; on the digit
    # the map is the weight, and re-initialising the layer draws independent weights.
    torch.manual_seed(123)  # not the randomisation's seed: that would redraw the very same weights
    x = digit_like_images()
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 2))

    def input_x_gradient(m):
        return x[:, 0] * m[1].weight[1].detach().view(28, 28)

    maps = input_x_gradient(model)
    support = input_support(x, maps)
    assert support.shape == maps.shape and 0.15 < support.double().mean() < 0.25
    (layer,) = cascading_randomisation_scores(model, input_x_gradient, support, seed=0)
    assert layer.layer == "1"
    assert layer.absolute_all.shape == layer.absolute_support.shape == layer.signed_support.shape == (12,)
    assert float(layer.absolute_all.min()) > 0.9  # the measured failure: 80% shared zeros
    # independent maps on the digit (~157 pixels: each image's r has s.d. ~0.08 around 0)
    for r in (layer.absolute_support, layer.signed_support):
        assert abs(float(r.mean())) < 0.05 and float(r.abs().max()) < 0.3
    # the all-pixel column is the former diagnostic, same seed, same draws
    ((name, former),) = cascading_randomisation(model, input_x_gradient, seed=0)
    assert name == "1" and torch.equal(former, layer.absolute_all)


def test_support_correlation_of_a_monotone_function_is_one_whatever_lies_off_the_support():
    g = torch.Generator().manual_seed(1)
    a = torch.randn(6, 100, generator=g)
    mask = torch.rand(6, 100, generator=g) < 0.3
    b = torch.where(mask, torch.exp(2 * a) + 5, torch.randn(6, 100, generator=g))  # anything off the mask
    r = masked_spearman_rows(a, b, mask)
    assert torch.allclose(r, torch.ones(6, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(masked_spearman_rows(a, -b, mask), -torch.ones(6, dtype=torch.float64), atol=1e-12)
    assert float(spearman_rows(a, b).max()) < 0.9  # over all entries it is not


def test_batched_support_correlation_equals_scipy_per_image():
    g = torch.Generator().manual_seed(2)
    n, p = 10, 50
    a = torch.randint(0, 4, (n, p), generator=g).float()  # many ties
    b = torch.randn(n, p, generator=g).round(decimals=1)
    mask = torch.rand(n, p, generator=g) < torch.linspace(0.1, 0.9, n).unsqueeze(1)  # a support per image
    mask[0] = False
    mask[0, :2] = True  # 2 support pixels: undefined
    mask[1] = True
    a[1] = 3.0  # constant on its support: undefined (scipy says NaN too)
    ours = masked_spearman_rows(a, b, mask)
    assert math.isnan(ours[0]) and math.isnan(ours[1])
    for i in range(2, n):
        m = mask[i]
        expected = stats.spearmanr(a[i, m].double().numpy(), b[i, m].double().numpy()).statistic
        assert float(ours[i]) == pytest.approx(expected, abs=1e-10)


def test_input_support_follows_the_layout_of_the_maps():
    x = torch.zeros(2, 3, 4, 4)
    x[0, 1, 0, 0] = 0.5  # lit in one channel only
    x[1, :, 2, 3] = 1.0
    per_entry = input_support(x, torch.zeros(2, 3, 4, 4))
    assert per_entry.sum() == 4 and per_entry[0, 1, 0, 0] and not per_entry[0, 0, 0, 0]
    per_position = input_support(x, torch.zeros(2, 4, 4))
    assert per_position.sum() == 2 and per_position[0, 0, 0] and per_position[1, 2, 3]
    assert input_support(x, torch.zeros(2, 1, 4, 4)).shape == (2, 1, 4, 4)
    with pytest.raises(ValueError, match="do not match"):
        input_support(x, torch.zeros(2, 5, 5))


# --- removal curves: positive relevance, tie orders -------------------------------------------------

CAUSAL = torch.tensor([3, 10, 17, 28, 35, 44, 51, 60])  # the only pixels f reads, of an 8x8 image


class CausalPixels(nn.Module):
    """A linear f on 2 classes whose logit is the sum of 8 known pixels: class 1 iff they sum above 4."""

    def __init__(self, softmax=True):
        super().__init__()
        self.softmax = softmax

    def forward(self, x):
        z = 4 * (x.flatten(1)[:, CAUSAL].sum(1) - 4)
        logits = torch.stack([-z, z], 1)
        return logits.softmax(1) if self.softmax else logits


def causal_images(n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 8, 8, generator=g)
    flat = x.view(n, 64)
    flat[: n // 2, CAUSAL] = 1.0  # class 1
    flat[n // 2:, CAUSAL] = 0.0  # class 0
    return x


def causal_map(n=200):
    w = torch.zeros(n, 64)
    w[:, CAUSAL] = 1.0
    return w.view(n, 8, 8)


def curves(x, maps, **kwargs):
    return removal_curves(CausalPixels(), x, maps, generator=torch.Generator().manual_seed(1), **kwargs)


def test_removal_relevance_clips_after_summing_channels_and_normalises_to_unit_range():
    maps = torch.zeros(2, 2, 2, 2)
    maps[0, 0, 0, 0], maps[0, 1, 0, 0] = 1.0, -2.0  # sums to -1: no positive relevance
    maps[0, 0, 1, 1] = 4.0
    maps[0, 0, 0, 1] = 2.0
    rel = removal_relevance(maps)
    assert rel.shape == (2, 2, 2)
    assert rel[0].tolist() == [[0.0, 0.5], [0.0, 1.0]] and rel[1].tolist() == [[0.0, 0.0], [0.0, 0.0]]
    assert removal_relevance(maps, "absolute")[0].tolist() == [[0.25, 0.5], [0.0, 1.0]]
    assert removal_relevance(maps, "signed")[0].tolist() == [[-0.25, 0.5], [0.0, 1.0]]
    with pytest.raises(ValueError, match="relevance"):
        removal_relevance(maps, "squared")


def test_negative_relevance_is_no_relevance_and_leaves_the_causal_pixels_to_chance():
    x = causal_images()
    w = causal_map()
    good = curves(x, w)
    negated = curves(x, -w)
    flat = curves(x, torch.zeros_like(w))
    random_map = curves(x, torch.rand(w.shape, generator=torch.Generator().manual_seed(3)))
    # the oracle map: the 8 causal pixels go first, f is at chance once they are noise
    assert good.relevance == "positive" and good.morf_auc < 0.56 and good.morf_auc < random_map.morf_auc - 0.3
    assert good.lerf_accuracy[:17].min() == 1.0  # the 56 irrelevant pixels go first and change nothing
    # all relevance negative = none at all: exactly the all-zero map (all ties, the same tie draws)
    for field in ("morf_accuracy_by_order", "lerf_accuracy_by_order", "morf_probability_by_order"):
        assert torch.equal(getattr(negated, field), getattr(flat, field))
    # ... which scores like a random map, within the spread over tie orders
    assert negated.morf_auc_sd > 0 and negated.lerf_auc_sd > 0
    assert abs(negated.morf_auc - random_map.morf_auc) < 4 * negated.morf_auc_sd
    assert abs(negated.lerf_auc - random_map.lerf_auc) < 4 * negated.lerf_auc_sd
    # LeRF does not take the large negative (causal) pixels first: f still right at 15% removed
    assert float(negated.lerf_accuracy[3]) > 0.9
    # the signed variant stays reachable, and does exactly that
    signed = curves(x, -w, relevance="signed")
    assert float(signed.lerf_accuracy[3]) < 0.6 and signed.lerf_auc < negated.lerf_auc - 0.3
    # |map| ranks the negated map like the oracle
    assert torch.equal(curves(x, -w, relevance="absolute").morf_accuracy, good.morf_accuracy)


def test_tie_orders_spread_and_independence_of_chunk_size():
    x = causal_images(60)
    ties = torch.zeros(60, 8, 8)
    ties[:, 0, :4] = torch.rand(60, 4, generator=torch.Generator().manual_seed(4))  # 60 of 64 pixels tied
    no_ties = torch.randperm(60 * 64, generator=torch.Generator().manual_seed(5)).float().view(60, 8, 8) + 1
    tied = curves(x, ties, n_tie_orders=6)
    assert tied.n_tie_orders == 6 and tied.morf_accuracy_by_order.shape == (6, 21)
    assert tied.morf_auc_sd > 0 and tied.lerf_auc_sd > 0 and tied.gap_sd > 0
    assert tied.morf_aucs.std().item() == pytest.approx(tied.morf_auc_sd)
    assert tied.morf_auc == pytest.approx(float(tied.morf_aucs.mean()), abs=1e-12)
    assert torch.allclose(tied.morf_accuracy, tied.morf_accuracy_by_order.mean(0))
    untied = curves(x, no_ties, n_tie_orders=6)
    assert untied.morf_auc_sd == 0.0 and untied.lerf_auc_sd == 0.0 and untied.gap_sd == 0.0
    assert math.isnan(curves(x, ties, n_tie_orders=1).morf_auc_sd)  # one order: no spread to report
    # one noise draw per image for every fraction, direction and tie order: nothing removed and
    # everything removed give the same images whatever the order
    for field in ("accuracy", "probability"):
        morf, lerf = getattr(tied, f"morf_{field}_by_order"), getattr(tied, f"lerf_{field}_by_order")
        for q in (0, -1):
            assert torch.equal(morf[:, q], morf[:1, q].expand(6)) and torch.equal(lerf[:, q], morf[:, q])
    small = curves(x, ties, n_tie_orders=6, chunk_size=7)
    assert torch.equal(small.morf_accuracy_by_order, tied.morf_accuracy_by_order)
    assert torch.equal(small.lerf_accuracy_by_order, tied.lerf_accuracy_by_order)
    assert torch.allclose(small.morf_probability_by_order, tied.morf_probability_by_order, atol=1e-12)
    assert small.morf_auc_sd == pytest.approx(tied.morf_auc_sd, abs=1e-12)


def test_black_baseline_replaces_removed_pixels_by_zeros():
    x = causal_images(40)
    w = causal_map(40)
    black = curves(x, w, baseline=torch.zeros_like(x), n_tie_orders=2)
    # the causal pixels black: every image reads as class 0, so the class-1 half is wrong
    assert float(black.morf_accuracy[-1]) == 0.5 and float(black.morf_accuracy[3]) == 0.5
    with pytest.raises(ValueError, match="baseline"):
        curves(x, w, baseline=torch.zeros(40, 1, 7, 7))
    with pytest.raises(ValueError, match="n_tie_orders"):
        curves(x, w, n_tie_orders=0)


# --- agreement with Quantus PixelFlipping ---------------------------------------------------------


@pytest.mark.filterwarnings("ignore")
def test_removal_curve_agrees_with_quantus_pixel_flipping():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantus = pytest.importorskip("quantus")
    n, step = 40, 4  # 64 pixels, 4 per step: Quantus's 16 steps are our fractions 1/16 ... 1
    x = causal_images(n, seed=6)
    maps = torch.rand(n, 8, 8, generator=torch.Generator().manual_seed(7)) + 0.01  # positive, no ties
    labels = CausalPixels()(x).argmax(1)
    noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(8))
    replacement = noise.flatten(1).numpy()

    def replace_by_noise(arr, indices, **kwargs):  # the same replacement values as ours
        out = arr.copy()
        rows = np.arange(len(arr))[:, None]
        out[rows, indices] = replacement[rows, indices]
        return out

    metric = quantus.PixelFlipping(features_in_step=step, normalise=False, abs=False, perturb_func=replace_by_noise,
                                   disable_warnings=True)
    theirs = np.asarray(metric(model=CausalPixels(softmax=False).eval(), x_batch=x.numpy(), y_batch=labels.numpy(),
                               a_batch=maps.unsqueeze(1).numpy(), softmax=True, device="cpu", batch_size=n))
    ours = removal_curves(CausalPixels(), x, maps, labels, fractions=tuple(i / 16 for i in range(17)),
                          baseline=noise, n_tie_orders=3)
    assert theirs.shape == (n, 16) and ours.morf_auc_sd == 0.0
    assert np.allclose(ours.morf_probability[1:].numpy(), theirs.mean(0), atol=1e-6)
    assert ours.morf_probability[1:].std() > 0.05  # a curve that moves, not a constant


@pytest.mark.filterwarnings("ignore")
def test_all_pixel_randomisation_correlation_agrees_with_quantus_mprt_layer_by_layer():
    # Quantus re-seeds torch with its seed + 1 before each layer's reset; we re-seed with our seed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantus = pytest.importorskip("quantus")
    torch.manual_seed(123)  # not the randomisation's seed: that would redraw the very same weights
    x = digit_like_images(8)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 16), nn.Tanh(), nn.Linear(16, 2)).eval()

    def input_x_gradient_of(m, inputs, targets):
        inputs = torch.as_tensor(inputs).clone().requires_grad_(True)
        score = m(inputs).gather(1, torch.as_tensor(targets).view(-1, 1)).sum()
        (grad,) = torch.autograd.grad(score, inputs)
        return (inputs * grad).detach()

    def explain(model, inputs, targets, **kwargs):
        return input_x_gradient_of(model, inputs, targets).numpy()

    targets = np.ones(8, dtype=int)
    theirs = quantus.MPRT(seed=41, normalise=False, abs=True, disable_warnings=True)(
        model=model, x_batch=x.numpy(), y_batch=targets, a_batch=None, explain_func=explain,
        device="cpu", batch_size=8)
    maps_of = lambda m: input_x_gradient_of(m, x, targets)  # noqa: E731
    ours = cascading_randomisation_scores(model, maps_of, input_support(x, maps_of(model)), seed=42)
    assert list(theirs) == ["original", "3", "1"]  # top layer first, cumulative
    assert [layer.layer for layer in ours] == ["3", "1"]
    for layer in ours:
        assert np.allclose(layer.absolute_all.numpy(), theirs[layer.layer], atol=1e-10)

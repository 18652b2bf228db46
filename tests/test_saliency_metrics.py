"""Saliency scores against closed forms and a toy classifier whose answer is known."""

from __future__ import annotations

import pytest
import torch
from scipy import stats
from torch import nn

from metrics.saliency import (cascading_randomisation, gini, parameterised_layers, relevance_order, removal_curves,
                              spearman_rows)


def test_relevance_order_is_descending_and_breaks_ties_at_random():
    maps = torch.tensor([[0.1, 0.9, 0.5, 0.3]])
    assert relevance_order(maps).tolist() == [[1, 2, 3, 0]]
    flat = torch.zeros(1, 64)
    orders = {tuple(relevance_order(flat, generator=torch.Generator().manual_seed(s))[0].tolist()) for s in range(5)}
    assert len(orders) == 5 and all(sorted(o) == list(range(64)) for o in orders)


class RegionClassifier(nn.Module):
    """f reads only the top-left 4x4 block of an 8x8 image: class 1 iff its mean is above 0.5."""

    def forward(self, x):
        logit = 40 * (x[:, 0, :4, :4].mean((1, 2)) - 0.5)
        return torch.stack([-logit, logit], 1).softmax(1)


def region_images(n=400):
    x = torch.zeros(n, 1, 8, 8)
    x[: n // 2, :, :4, :4] = 1.0  # class 1: the block lit; class 0: dark
    return x


def test_oracle_map_beats_the_random_map_by_a_wide_margin():
    f, x = RegionClassifier(), region_images()
    oracle = torch.zeros(len(x), 8, 8)
    oracle[:, :4, :4] = 1.0
    random_map = torch.rand(len(x), 8, 8, generator=torch.Generator().manual_seed(0))
    good = removal_curves(f, x, oracle, generator=torch.Generator().manual_seed(1))
    rand = removal_curves(f, x, random_map, generator=torch.Generator().manual_seed(1))
    assert good.morf_accuracy[0] == 1.0 and good.lerf_accuracy[0] == 1.0
    # the whole block is noise once a quarter of the pixels are gone: f is at chance from there on
    assert abs(float(good.morf_accuracy[5]) - 0.5) < 0.1
    assert good.lerf_accuracy[:15].min() == 1.0  # the 48 irrelevant pixels go first and change nothing
    assert good.morf_auc < rand.morf_auc - 0.25 and good.gap > rand.gap + 0.3
    # everything removed: the same noise image whatever the order
    assert good.morf_accuracy[-1] == good.lerf_accuracy[-1] and rand.morf_probability[-1] == good.morf_probability[-1]


def test_removal_curves_refuse_mismatched_maps():
    f, x = RegionClassifier(), region_images(4)
    with pytest.raises(ValueError, match="maps for"):
        removal_curves(f, x, torch.zeros(3, 8, 8))
    with pytest.raises(ValueError, match="do not match"):
        removal_curves(f, x, torch.zeros(4, 7, 7))
    with pytest.raises(ValueError, match="fractions"):
        removal_curves(f, x, torch.zeros(4, 8, 8), fractions=(0.5, 0.2))


def test_gini_closed_forms():
    p = 100
    flat, single = torch.ones(1, p), torch.zeros(1, p)
    single[0, 7] = -3.0  # the sign does not matter: |map|
    assert float(gini(flat)) == pytest.approx(0.0, abs=1e-12)
    assert float(gini(single)) == pytest.approx(1 - 1 / p)
    # two values: a = (1, 3), sorted; G = 1 - 2 * (1/4 * 1.5/2 + 3/4 * 0.5/2) = 0.25
    assert float(gini(torch.tensor([[3.0, 1.0]]))) == pytest.approx(0.25)
    m = torch.rand(3, 50)
    assert torch.allclose(gini(m), gini(7 * m)) and float(gini(torch.zeros(1, 5))) == 0.0


def test_spearman_rows_matches_scipy():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randint(0, 5, (4, 30), generator=g).float(), torch.rand(4, 30, generator=g)
    ours = spearman_rows(a, b)
    for i in range(4):
        assert float(ours[i]) == pytest.approx(stats.spearmanr(a[i], b[i]).statistic, abs=1e-9)


def test_cascading_randomisation_flags_a_map_that_ignores_the_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 16), nn.Tanh(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 2))
    x = torch.randn(32, 20)
    assert parameterised_layers(model) == ["0", "2", "4"]

    def gradient(m):
        xi = x.clone().requires_grad_(True)
        m(xi)[:, 1].sum().backward()
        return xi.grad

    def edge_detector(m):  # a "saliency" that never looks at the model
        return x.abs()

    faithful = cascading_randomisation(model, gradient)
    blind = cascading_randomisation(model, edge_detector)
    assert [name for name, _ in faithful] == ["4", "2", "0"]  # from the top
    assert float(faithful[-1][1].mean()) < 0.5  # the map changes once f is destroyed
    assert all(torch.allclose(c, torch.ones_like(c)) for _, c in blind)  # it never does
    assert torch.equal(gradient(model), gradient(model))  # the model itself is untouched

"""GANMEX: the StarGAN generator with f as its class critic, its losses, and one-vs-one attributions
whose baseline really is the counterfactual (checked by the completeness of IG and DeepLIFT)."""

from __future__ import annotations

import pytest
import torch

from explainers.base import Capability
from explainers.ganmex import GANMEX, ScoreDelta, StarGenerator, random_other_class
from explainers.registry import EXPLAINERS
from metrics import sweep as sweep_metrics


def test_registered_variants_share_one_fit():
    ig, dl = EXPLAINERS.get("ganmex_ig"), EXPLAINERS.get("ganmex_deeplift")
    assert issubclass(ig, GANMEX) and issubclass(dl, GANMEX)
    assert ig.fit_identity() == dl.fit_identity() == "ganmex"
    assert ig.capabilities == {Capability.FIT, Capability.SWEEP, Capability.SALIENCY}


def test_generator_shape_range_and_conditioning():
    torch.manual_seed(0)
    g = StarGenerator(3, ch=8, n_res=1).eval()
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        a, b = g(x, torch.tensor([0, 1, 2, 0])), g(x, torch.tensor([1, 1, 2, 0]))
    assert a.shape == x.shape and 0 <= float(a.min()) and float(a.max()) <= 1
    assert not torch.allclose(a[0], b[0]) and torch.allclose(a[1:], b[1:])  # only the changed class moves


def test_random_other_class_never_returns_the_class():
    c = torch.arange(5).repeat(200)
    other = random_other_class(c, 5, torch.Generator().manual_seed(0))
    assert bool((other != c).all()) and set(other.tolist()) == set(range(5))


def test_losses_use_f_as_the_class_critic(black_box, mnist38):
    torch.manual_seed(0)
    gmx = EXPLAINERS.get("ganmex_ig")(black_box, {"channels": 8, "n_res": 1})
    x = mnist38.test.images[:8]
    c_o = black_box(x).argmax(1)
    terms = gmx.losses(x, c_o, 1 - c_o)
    assert set(terms) == {"adv", "cls", "rec", "sim"} and all(t.ndim == 0 for t in terms.values())
    # the class loss is f's cross-entropy of the translation: pointing it at c_o instead changes it
    assert gmx.losses(x, c_o, c_o)["cls"].item() != pytest.approx(terms["cls"].item())
    before = [None if p.grad is None else p.grad.clone() for p in black_box.parameters()]
    terms["cls"].backward()
    after = [p.grad for p in black_box.parameters()]
    assert all(a is b or torch.equal(a, b) for a, b in zip(before, after))  # f stays frozen
    assert any(p.grad is not None for p in gmx.generator.parameters())


@pytest.fixture(scope="module")
def fitted(mnist38, black_box):
    torch.manual_seed(0)
    gmx = EXPLAINERS.get("ganmex_ig")(black_box, {"steps": 150, "channels": 16})
    gmx.fit(mnist38.train.images, generator=torch.Generator().manual_seed(1), log=lambda m: None)
    return gmx


def test_counterfactuals_are_classified_as_the_target(fitted, black_box, mnist38):
    x = mnist38.test.images[:200]
    c = black_box(x).argmax(1)
    sw = fitted.sweep(x, 1 - c, 5)
    assert torch.equal(sw[:, 0], x) and torch.allclose(sw[:, -1], fitted.counterfactual(x, 1 - c))
    with torch.no_grad():
        last = black_box(sw[:, -1])
    assert sweep_metrics.validity(last, 1 - c) > 0.8
    assert sweep_metrics.proximity(x, sw[:, -1]) < 0.15  # the similarity loss keeps it close to x


@pytest.mark.parametrize("variant", ["ganmex_ig", "ganmex_deeplift"])
def test_attributions_add_up_to_the_score_delta_from_the_counterfactual(fitted, black_box, mnist38, variant):
    explainer = EXPLAINERS.get(variant)(black_box, {"channels": 16, "ig_steps": 300})
    explainer.load_state_dict(fitted.state_dict())
    x = mnist38.test.images[:6]
    c_o = black_box(x).argmax(1)
    maps = explainer.saliency(x, c_o)
    delta = ScoreDelta(black_box.network)
    c_t = 1 - c_o
    with torch.no_grad():
        expected = delta(x, c_o, c_t) - delta(fitted.counterfactual(x, c_t), c_o, c_t)
    # completeness (IG) / summation-to-delta (DeepLIFT) with G(x, c_t) as the baseline (GANMEX A.3);
    # Captum's DeepLIFT is not exactly complete through max-pooling (measured: within 4-16%)
    total = maps.flatten(1).sum(1)
    tolerance = 0.05 if variant == "ganmex_ig" else 0.25
    assert torch.allclose(total, expected, rtol=tolerance, atol=0.05), (total, expected)
    assert float(expected.min()) > 0  # f prefers c_o on x over its counterfactual


def test_gradient_penalty_closed_form_and_the_paper_profiles_wgan_gp_fit(mnist38, black_box):
    from torch import nn

    from bench.inputs.suites import SUITES
    from explainers.ganmex import gradient_penalty

    critic = nn.Sequential(nn.Flatten(), nn.Linear(784, 1, bias=False))  # D(x) = w.x: |grad| = |w| everywhere
    with torch.no_grad():
        critic[1].weight.fill_(0.1)
    real, fake = torch.rand(5, 1, 28, 28), torch.rand(5, 1, 28, 28)
    penalty = gradient_penalty(critic, real, fake, torch.Generator().manual_seed(0))
    assert float(penalty.detach()) == pytest.approx((0.1 * 28 - 1) ** 2, rel=1e-5)
    # the paper profile is the authors' code: WGAN-GP on a plain critic with their loss weights
    paper = SUITES["mnist"].profile("paper").explainers["ganmex_ig"]
    assert (paper["adversarial"], paper["lambda_cls"], paper["lambda_sim"], paper["lambda_rec"], paper["lr"],
            paper["lr_d"]) == ("wgan-gp", 1000.0, 100.0, 0.0, 2e-5, 1e-4)
    explainer = EXPLAINERS.get("ganmex_ig")(black_box, {**paper, "steps": 3, "channels": 8, "n_res": 1})
    assert not any("weight_orig" in n for n, _ in explainer.discriminator.named_parameters())  # no spectral norm
    record = explainer.fit(mnist38.train.images[:200], generator=torch.Generator().manual_seed(0), log=lambda m: None)
    assert record["steps"] == 3 and all(torch.isfinite(torch.tensor(v)) for v in record.values())
    with pytest.raises(Exception, match="adversarial"):
        EXPLAINERS.get("ganmex_ig")(black_box, {"adversarial": "lsgan"})

"""The progressive-exaggeration explainer: each loss term of Eq. 4-9 against its closed form, the
conditioning, and the sweep/saliency contracts."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import Bernoulli, kl_divergence

from bench.inputs.classifier import BlackBox, Table1Classifier
from explainers.base import MissingCapability
from explainers.exaggeration import (ConditionalBatchNorm2d, ProgressiveExaggeration, ProjectionDiscriminator,
                                     bernoulli_kl, bin_index, discriminator_hinge_loss,
                                     generator_adversarial_loss, l1)
from explainers.registry import EXPLAINERS


def test_bins_cut_the_unit_interval_evenly():
    p = torch.tensor([0.0, 0.05, 0.1, 0.5, 0.99, 1.0])
    assert bin_index(p, 10).tolist() == [0, 0, 1, 5, 9, 9]
    assert bin_index(p, 2).tolist() == [0, 0, 0, 1, 1, 1]


def test_hinge_losses_closed_form():
    d_real, d_fake = torch.tensor([2.0, 0.0]), torch.tensor([-2.0, 0.5])
    # Eq. 7: mean(max(0, 1 - D_real)) + mean(max(0, 1 + D_fake)) = (0 + 1)/2 + (0 + 1.5)/2
    assert discriminator_hinge_loss(d_real, d_fake).item() == pytest.approx(1.25)
    # a discriminator that separates with margin pays nothing
    assert discriminator_hinge_loss(torch.tensor([3.0]), torch.tensor([-3.0])).item() == 0
    # Eq. 8: the generator's loss falls as D scores its images as real
    assert generator_adversarial_loss(d_fake).item() == pytest.approx(0.75)
    assert generator_adversarial_loss(d_fake + 1) < generator_adversarial_loss(d_fake)


def test_bernoulli_kl_matches_torch_and_pulls_f_toward_the_request():
    p = torch.tensor([0.1, 0.5, 0.9, 0.3, 0.0, 1.0])
    q = torch.tensor([0.2, 0.5, 0.4, 0.95, 0.3, 0.6])
    expected = kl_divergence(Bernoulli(probs=p), Bernoulli(probs=q)).mean()
    assert bernoulli_kl(p, q.log(), (1 - q).log()).item() == pytest.approx(expected.item(), rel=1e-5)
    assert bernoulli_kl(p[:4], p[:4].log(), (1 - p[:4]).log()).item() == pytest.approx(0, abs=1e-6)
    logits = torch.tensor([[3.0, -2.0], [0.5, 0.1], [-20.0, 20.0]], requires_grad=True)  # the last: saturated
    log_q = torch.log_softmax(logits, 1)
    target = torch.tensor([0.2, 0.5, 0.9])
    bernoulli_kl(target, log_q[:, 1], log_q[:, 0]).backward()
    q1 = torch.softmax(logits, 1)[:, 1].detach()
    # descent moves f(x_delta) toward f(x) + delta, even where f is saturated (q = 1 - 4e-18)
    assert ((-logits.grad[:, 1]).sign() == (target - q1).sign()).all() and logits.grad[2, 1] > 1e-3


def test_l1_is_the_mean_absolute_error():
    assert l1(torch.zeros(2, 4), torch.ones(2, 4) * 0.5).item() == 0.5


def test_ordinal_projection_adds_one_v_per_bin():
    """Eq. 4: r(c = k | x) = sum_{i<k} v_i^T phi(x), so D(x, k) - D(x, k - 1) = v_{k-1}^T phi(x)."""
    d = ProjectionDiscriminator(ch=8, n_bins=5)
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        for _ in range(20):  # spectral norm's power iteration runs in train mode
            d(x, torch.zeros(3, dtype=torch.long))
        d.eval()
        phi = d.phi(x)
        scores = torch.stack([d(x, torch.full((3,), k)) for k in range(5)], dim=1)  # (3, 5)
        assert torch.allclose(scores[:, 0], d.psi(phi).squeeze(1), rtol=1e-4, atol=1e-4)
        assert torch.allclose(scores.diff(dim=1), phi @ d.v.T, rtol=1e-3, atol=1e-3)


def test_conditional_batch_norm_looks_up_scale_and_shift_per_condition():
    cbn = ConditionalBatchNorm2d(4, n_conditions=3).eval()
    with torch.no_grad():
        cbn.gamma.weight[2] = 2.0
        cbn.beta.weight[2] = 1.0
    x = torch.randn(2, 4, 5, 5)
    base = cbn(x, torch.tensor([0, 0]))
    assert torch.allclose(cbn(x, torch.tensor([2, 2])), 2 * base + 1, atol=1e-6)


@pytest.fixture
def untrained():
    torch.manual_seed(0)
    return ProgressiveExaggeration(BlackBox(Table1Classifier(2), 2), {"channels": 8, "n_bins": 10})


def test_losses_are_nonnegative_scalars_and_train_only_the_explainer(untrained):
    x = torch.rand(6, 1, 28, 28)
    for net in (untrained.encoder, untrained.generator, untrained.discriminator):
        net.train()
    terms = untrained.losses(x, torch.rand(6))
    for name in ("gan", "f", "rec", "cyc"):
        assert terms[name].ndim == 0 and torch.isfinite(terms[name])
    assert terms["f"] >= 0 and terms["rec"] >= 0 and terms["cyc"] >= 0
    assert terms["x_delta"].shape == x.shape and 0 <= terms["x_delta"].min() and terms["x_delta"].max() <= 1
    (terms["f"] + terms["rec"] + terms["cyc"]).backward()
    assert all(p.grad is None for p in untrained.classifier.parameters())  # f stays frozen
    assert untrained.generator.out.weight.grad.abs().sum() > 0
    assert untrained.encoder.stem.weight.grad.abs().sum() > 0


def test_sweep_starts_at_the_reconstruction_and_saliency_compares_the_extremes(untrained):
    x = torch.rand(4, 1, 28, 28)
    target = torch.tensor([0, 1, 0, 1])
    with torch.no_grad():
        sweep = untrained.sweep(x, target, 6)
        assert sweep.shape == (4, 6, 1, 28, 28)
        p = untrained.classifier(x)[:, 1]
        assert torch.allclose(sweep[:, 0], untrained.explain(x, p), atol=1e-6)  # delta = 0
        # toward class 1 the last step is the top bin, toward class 0 the bottom bin
        top, bottom = untrained.explain(x, torch.ones(4)), untrained.explain(x, torch.zeros(4))
        assert torch.allclose(sweep[1, -1], top[1], atol=1e-6) and torch.allclose(sweep[0, -1], bottom[0], atol=1e-6)
        assert torch.allclose(untrained.saliency(x, target), (top - bottom).abs(), atol=1e-6)


def test_multiclass_sweeps_only_toward_the_explained_class():
    e = ProgressiveExaggeration(BlackBox(Table1Classifier(3), 3), {"channels": 8})
    assert e.explained == 2
    with torch.no_grad():
        assert e.sweep(torch.rand(2, 1, 28, 28), torch.tensor([2, 2]), 3).shape == (2, 3, 1, 28, 28)
        with pytest.raises(MissingCapability, match="against the rest"):
            e.sweep(torch.rand(2, 1, 28, 28), torch.tensor([0, 2]), 3)


def test_registered_with_sweep_and_saliency_but_no_latent():
    cls = EXPLAINERS.get("exaggeration")
    assert {c.value for c in cls.capabilities} == {"fit", "sweep", "saliency"}
    with pytest.raises(MissingCapability):
        cls(BlackBox(Table1Classifier(2), 2), {"channels": 8}).encode(torch.rand(1, 1, 28, 28))


@pytest.mark.slow
def test_a_short_fit_moves_f_along_the_requested_posteriors(mnist38, black_box):
    """Trained on real MNIST 3/8 against a real black box, the sweeps really change f's output the way
    they were asked to: up toward the requested class, step by step (a few hundred steps suffice)."""
    from explainers.base import counterfactual_targets
    from metrics import sweep as sm

    explainer = ProgressiveExaggeration(black_box, {"channels": 8, "steps": 250, "lambda_f": 30.0})
    explainer.fit(mnist38.train.images, generator=torch.Generator().manual_seed(0), log=lambda m: None)
    queries = mnist38.test.images[:100]
    with torch.no_grad():
        probs0 = black_box(queries)
        index, target = counterfactual_targets(probs0.argmax(1), 2)
        sweeps = explainer.sweep(queries[index], target, 6)
        probs = black_box(sweeps.flatten(0, 1)).unflatten(0, sweeps.shape[:2])
    obtained = probs.gather(2, target.view(-1, 1, 1).expand(-1, 6, 1)).squeeze(2)
    requested = sm.requested_ramp(probs0.gather(1, target.view(-1, 1)).squeeze(1), 6)
    assert obtained[:, 0].mean() < 0.2 and obtained[:, -1].mean() > 0.6  # from the query's class to the other
    assert sm.monotonicity(obtained) > 0.8
    assert sm.compatibility(requested, obtained).pearson > 0.6
    # the training state is restored as eval mode, with batch-independent (standing) statistics
    assert not explainer.generator.training and not explainer.encoder.training
    single = explainer.explain(queries[:1], torch.tensor([0.7]))
    assert torch.allclose(single, explainer.explain(queries[:8], torch.full((8,), 0.7))[:1], atol=1e-5)

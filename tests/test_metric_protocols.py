"""The metric protocols that live in the scoring layer: the trivial sweep floor
(``pixel_blend``), FID on generated images only with equal sample sizes, validity judged by a classifier
the explainers never trained against, latent probes from the aggregate posterior, latent sweeps around
the query's own code, and the randomisation check's ``n/a`` for maps that never call f."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats
from torch import nn

from bench.execute.scoring import SaliencySetup, SweepSetup, fid_by_group, score_saliency, score_sweeps
from explainers.base import Capability, Explainer, LatentSplit
from explainers.pixel_blend import PixelBlend
from metrics.accuracy_drop import accuracy_drop
from metrics.information_flow import information_flow
from metrics.posterior import aggregate_posterior_map


@pytest.fixture(scope="module")
def blend(mnist38, black_box):
    explainer = PixelBlend(black_box, {"pool_size": 300})
    explainer.fit(mnist38.train.images, generator=torch.Generator().manual_seed(0), log=lambda m: None)
    return explainer


@torch.no_grad()
def test_pixel_blend_fades_into_a_real_training_image_of_the_target(blend, mnist38, black_box):
    x = mnist38.test.images[:50]
    target = 1 - black_box(x).argmax(1)
    sweep = blend.sweep(x, target, 11)
    assert sweep.shape == (50, 11, 1, 28, 28)
    assert torch.equal(sweep[:, 0], x)  # the query itself
    assert torch.equal(sweep, blend.sweep(x, target, 11))  # the same queries meet the same targets
    ends = sweep[:, -1].flatten(1)
    train = mnist38.train.images.flatten(1)
    # every end is a training image (never a test image: the test split is FID's reference set) ...
    distance = torch.cdist(ends, train).min(1).values
    assert float(distance.max()) < 1e-4
    assert float(torch.cdist(ends, mnist38.test.images.flatten(1)).min(1).values.min()) > 1e-3
    # ... that f assigns to the target, so validity is won without explaining anything
    assert torch.equal(black_box(sweep[:, -1]).argmax(1), target)
    middle = sweep[:, 5]
    assert torch.allclose(middle, 0.5 * (x + sweep[:, -1]), atol=1e-6)  # a pixel-wise blend, nothing generated


class CopyExtractor(nn.Module):
    """Features = a fixed random projection of the pixels (16-d); a 10-class head from a fixed linear map."""

    def __init__(self):
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.register_buffer("projection", torch.randn(784, 16, generator=gen))
        self.lin = nn.Linear(16, 10)
        self.head = self.lin  # has a head: independent validity can be judged

    def features(self, x):
        return x.flatten(1) @ self.projection

    def forward(self, x):
        return self.lin(self.features(x))


def test_fid_groups_use_a_fixed_number_of_generated_images_or_say_na():
    torch.manual_seed(0)
    d, n_real = 4, 400
    real = torch.randn(n_real, d)
    setup = SweepSetup(queries=torch.zeros(1, 1, 2, 2), real_features=real, real_positive=torch.rand(n_real),
                       extractor=nn.Identity(), positive_class=1, fid_samples=100)
    fake = torch.randn(500, d) + 1.0
    positive = torch.cat([torch.full((300,), 0.95), torch.full((60,), 0.05), torch.full((140,), 0.5)])
    rows, counts = fid_by_group(fake, positive, setup, "x")
    values = {r.metric: r.value for r in rows}
    assert counts["fid"]["used"] == 100 and counts["fid_present"]["used"] == 100  # subsampled to the same size
    assert values["fid_absent"] is None and counts["fid_absent"]["generated"] == 60  # 60 < 100: not a number
    assert "60 generated (need 100)" in next(r.note for r in rows if r.metric == "fid_absent")
    assert values["fid"] > 0 and values["fid_present"] > 0
    # fewer images than the feature dimension + 1 on the generated side: undefined whatever fid_samples says
    small = SweepSetup(queries=setup.queries, real_features=real, real_positive=setup.real_positive,
                       extractor=nn.Identity(), positive_class=1, fid_samples=3)
    rows, _ = fid_by_group(fake[:4], torch.full((4,), 0.5), small, "x")
    assert all(r.value is None for r in rows)


class Scripted(Explainer):
    """Sweeps whose step 0 is ``first`` and whose other steps are given real images: FID must not see step 0."""

    name = "scripted"
    capabilities = frozenset({Capability.SWEEP})

    def __init__(self, classifier, ends, first):
        super().__init__(classifier)
        self.ends, self.first = ends, first

    def sweep(self, x, target, n_steps):
        out = self.ends[:len(x)].unsqueeze(1).repeat(1, n_steps, 1, 1, 1)
        if self.first == "query":
            out[:, 0] = x
        else:
            out[:, 0] = 1.0  # a white square: nothing like a digit
        return out


@torch.no_grad()
def test_fid_reads_generated_steps_only_and_validity_is_also_judged_independently(mnist38, black_box):
    queries = mnist38.test.images[:60]
    reference = mnist38.test.images[60:]
    extractor = CopyExtractor()
    pred = black_box(queries).argmax(1)
    # sweep ends: training images f assigns to the other class
    train_pred = black_box(mnist38.train.images[:2000]).argmax(1)
    ends = torch.stack([mnist38.train.images[:2000][(train_pred == 1 - int(p)).nonzero()[i, 0]]
                        for i, p in enumerate(pred)])
    setup = SweepSetup(queries=queries, real_features=extractor.features(reference),
                       real_positive=black_box(reference)[:, 1], extractor=extractor, positive_class=1,
                       fid_samples=200, class_ids=(3, 8))
    a, _ = score_sweeps(Scripted(black_box, ends, "query"), black_box, setup, device=torch.device("cpu"))
    b, _ = score_sweeps(Scripted(black_box, ends, "white"), black_box, setup, device=torch.device("cpu"))
    fid = lambda rows: next(r.value for r in rows if r.metric == "fid")  # noqa: E731
    assert fid(a) == pytest.approx(fid(b), rel=1e-9)  # step 0 does not enter FID
    validity = {r.metric: r.value for r in a if "validity" in r.metric}
    assert validity["sweep_validity"] == 1.0
    # the independent head (an untrained linear map here) has its own verdict on the same ends
    head_says = extractor(ends).argmax(1)
    expected = float((head_says == torch.tensor([3, 8])[1 - pred]).float().mean())
    assert validity["sweep_validity_independent"] == pytest.approx(expected)


def test_aggregate_posterior_draws_follow_the_codes_and_change_the_flow():
    """A model whose causal codes sit at z ~ N(3, 0.5) and whose class flips at z = 3: from the prior N(0, 1)
    the class is almost never reached (flow ~0); from the aggregate posterior it is a fair coin (log 2)."""
    gen = torch.Generator().manual_seed(0)
    codes = torch.cat([3 + 0.5 * torch.randn(4000, 1, generator=gen), torch.randn(4000, 1, generator=gen)], 1)
    q = aggregate_posterior_map(codes, 1)
    draws = q(torch.randn(20000, 2, generator=gen))
    for d in range(2):  # each coordinate's draws follow that coordinate's codes
        assert stats.ks_2samp(draws[:, d].numpy(), codes[:, d].numpy()).pvalue > 0.01
    decode = lambda z: z[:, :1]  # noqa: E731
    classify = lambda x: torch.cat([(x <= 3).float(), (x > 3).float()], 1)  # noqa: E731
    kwargs = dict(n_causal=1, n_noncausal=1, n_alpha=400, n_beta=10, bias_correction="jackknife", device="cpu")
    prior = information_flow(decode, classify, generator=torch.Generator().manual_seed(1), **kwargs)
    posterior = information_flow(lambda z: decode(q(z)), classify, generator=torch.Generator().manual_seed(1),
                                 **kwargs)
    assert float(prior) < 0.02 and abs(float(posterior) - math.log(2)) < 0.02


def test_aggregate_posterior_keeps_each_blocks_pairing_and_the_blocks_independent():
    """Two causal coordinates that sit together at (+3, +3) or (-3, -3): every draw's causal block is a real
    code's (never (+3, -3)), and the noncausal block comes from another, independent code."""
    gen = torch.Generator().manual_seed(0)
    sign = torch.randint(0, 2, (2000, 1), generator=gen).float() * 2 - 1
    codes = torch.cat([3 * sign + 0.1 * torch.randn(2000, 2, generator=gen), sign], 1)  # beta = the same sign
    q = aggregate_posterior_map(codes, 2)
    z = torch.randn(5000, 3, generator=gen)
    draws = q(z)
    assert bool((torch.sign(draws[:, 0]) == torch.sign(draws[:, 1])).all())  # pairs kept within alpha
    agree = float((torch.sign(draws[:, 0]) == draws[:, 2]).float().mean())
    assert 0.45 < agree < 0.55  # beta drawn from another code: independent of alpha
    z2 = z.clone()
    z2[:, 2:] = torch.randn(5000, 1, generator=gen)  # redraw beta's coordinates, alpha's kept
    assert torch.equal(q(z2)[:, :2], draws[:, :2])  # the estimator's inner loop keeps one causal code
    with pytest.raises(ValueError):
        aggregate_posterior_map(codes, 0)


@torch.no_grad()
def test_accuracy_drop_from_the_posterior_swaps_in_other_images_codes():
    codes = torch.arange(12.0).view(6, 2)  # image i's code
    seen = []

    def decode(z):
        seen.append(z.clone())
        return z

    classify = lambda z: torch.nn.functional.one_hot((z[:, 0] > 5).long(), 2).float()  # noqa: E731
    labels = (codes[:, 0] > 5).long()
    accuracy_drop(lambda x: x, decode, classify, codes, labels, generator=torch.Generator().manual_seed(0),
                  resample="posterior", chunk_size=100)
    resampled = seen[-1].view(2, 6, 2)  # block d has factor d replaced
    for d in range(2):
        assert sorted(resampled[d, :, d].tolist()) == sorted(codes[:, d].tolist())  # a permutation of real codes
        assert torch.equal(resampled[d, :, 1 - d], codes[:, 1 - d])  # the other factor untouched
    with pytest.raises(ValueError, match="resample"):
        accuracy_drop(lambda x: x, decode, classify, codes, labels, resample="uniform")


class Shifted(Explainer):
    """A latent explainer with an identity 'decoder' (latents are 1x2x1 images)."""

    name = "shifted"
    capabilities = frozenset({Capability.LATENT})
    latent_split = LatentSplit(1, 1)

    def encode(self, x):
        return x.flatten(1)

    def decode(self, z):
        return z.view(-1, 1, 2, 1)


def test_latent_sweeps_move_around_the_querys_own_code():
    explainer = Shifted(nn.Identity())
    x = torch.tensor([[5.0, -1.0], [2.0, 0.5]]).view(2, 1, 2, 1)
    sweep = explainer.sweep_factor(x, 0, torch.tensor([-3.0, 0.0, 3.0]))
    assert torch.equal(sweep[:, 1], x)  # offset 0: the reconstruction, in the centre
    assert sweep[:, :, 0, 0, 0].tolist() == [[2.0, 5.0, 8.0], [-1.0, 2.0, 5.0]]  # [z - 3, z + 3]
    assert torch.equal(sweep[:, :, 0, 1], x[:, None, 0, 1].expand(2, 3, 1))  # the other factor kept


class Inked(Explainer):
    """A map that never calls f: the image itself."""

    name = "inked"
    capabilities = frozenset({Capability.SALIENCY})

    def saliency(self, x, target):
        return x.clone()


def test_randomisation_check_is_na_for_a_map_that_never_calls_f(mnist38, black_box):
    setup = SaliencySetup(images=mnist38.test.images[:6], labels=black_box.predict(mnist38.test.images[:6]),
                          n_randomisation=3)
    rows, arrays = score_saliency(Inked(black_box), black_box, setup, seed=0, device=torch.device("cpu"))
    check = next(r for r in rows if r.metric == "randomisation_correlation")
    assert check.value is None and "never calls f" in check.note


def test_randomisation_check_sees_igs_dependence_on_f_over_real_digits(mnist38, black_box):
    """Over all 784 pixels IG with every layer of f re-initialised still correlates 0.99 with IG of
    f (the shared black background); on the digit's own pixels the dependence on f shows."""
    from explainers.registry import EXPLAINERS

    ig = EXPLAINERS.get("integrated_gradients")(black_box, {}, "cpu")
    images = mnist38.test.images[:10]
    setup = SaliencySetup(images=images, labels=black_box.predict(images), n_randomisation=10, n_tie_orders=1)
    rows, _ = score_saliency(ig, black_box, setup, seed=0, device=torch.device("cpu"))
    value = {r.metric: r.value for r in rows}
    assert value["randomisation_correlation_all_pixels"] > 0.9  # the artefact, kept as a diagnostic
    assert value["randomisation_correlation"] < 0.7  # |IG| on the support
    assert abs(value["randomisation_correlation_signed"]) < 0.4


def test_gce_trains_with_the_authors_adam_betas(mnist38, black_box, monkeypatch):
    from explainers.gce import GCE

    seen = []
    adam = torch.optim.Adam

    def recording_adam(params, **kwargs):
        seen.append(kwargs)
        return adam(params, **kwargs)

    monkeypatch.setattr(torch.optim, "Adam", recording_adam)
    GCE(black_box, {"steps": 1, "n_alpha": 2, "n_beta": 2}).fit(mnist38.train.images[:128],
                                                                generator=torch.Generator().manual_seed(0),
                                                                log=lambda m: None)
    assert seen and seen[0]["betas"] == (0.5, 0.999)  # GCE.train(b1=0.5, b2=0.999) in the authors' code

"""GCE on real MNIST 3/8: shapes, sweeps that really move f, and a causal factor that is causal."""

from __future__ import annotations

import pytest
import torch

from explainers.base import Capability
from explainers.gce import GCE, Decoder, Encoder, vae_loss
from explainers.registry import EXPLAINERS
from metrics.accuracy_drop import accuracy_drop
from metrics.information_flow import information_flow_per_factor


@torch.no_grad()
def test_table2_shapes():
    enc, dec = Encoder(8), Decoder(8)
    mu, logvar = enc(torch.rand(5, 1, 28, 28))
    assert mu.shape == logvar.shape == (5, 8)
    out = dec(mu)
    assert out.shape == (5, 1, 28, 28) and float(out.min()) >= 0 and float(out.max()) <= 1


def test_vae_loss_closed_form():
    x = torch.zeros(2, 1, 2, 2)
    x_hat = torch.full_like(x, 0.5)
    mu, logvar = torch.tensor([[1.0, 0.0], [0.0, 0.0]]), torch.zeros(2, 2)
    # SSE = 2 images * 4 px * 0.25 = 2; KL = 0.5 * 1^2 = 0.5; per batch element: 1.25
    assert float(vae_loss(x, x_hat, mu, logvar)) == pytest.approx(1.25)


def test_gce_is_registered_with_all_capabilities():
    cls = EXPLAINERS.get("gce")
    assert cls is GCE
    assert cls.capabilities == {Capability.FIT, Capability.SWEEP, Capability.SALIENCY, Capability.LATENT}


@pytest.fixture(scope="module")
def trained_gce(mnist38, black_box):
    gce = GCE(black_box, {"steps": 300, "n_alpha": 8, "n_beta": 8, "batch_size": 32})
    record = gce.fit(mnist38.train.images, generator=torch.Generator().manual_seed(1), log=lambda m: None)
    return gce, record


@pytest.mark.slow
def test_trained_causal_factor_dominates_every_noncausal_factor(trained_gce, mnist38, black_box):
    gce, record = trained_gce
    assert record["final_information_flow"] > 0.2
    with torch.no_grad():
        flow = information_flow_per_factor(gce.decode, black_box, 8, 100, 25, device="cpu",
                                           generator=torch.Generator().manual_seed(0))
        drop = accuracy_drop(gce.encode, gce.decode, black_box, mnist38.val.images, mnist38.val.labels,
                             generator=torch.Generator().manual_seed(0)).drop
    # clearly larger: the causal factor beats the strongest noncausal one by a wide margin
    assert float(flow[0]) > 3 * float(flow[1:].max()) and float(flow[0]) > 0.1
    assert float(drop[0]) > 3 * float(drop[1:].max()) and float(drop[0]) > 0.1


@pytest.mark.slow
@torch.no_grad()
def test_sweep_moves_the_classifier_toward_the_target(trained_gce, mnist38, black_box):
    gce, _ = trained_gce
    x = mnist38.val.images[:64]
    target = 1 - black_box.predict(x)  # toward the other class
    path = gce.sweep(x, target, n_steps=7)
    assert path.shape == (64, 7, 1, 28, 28)
    probs = black_box(path.flatten(0, 1)).unflatten(0, (64, 7))  # (N, S, M)
    p_target = probs.gather(2, target.view(-1, 1, 1).expand(-1, 7, 1)).squeeze(2)
    assert float(p_target[:, -1].mean()) > float(p_target[:, 0].mean()) + 0.5
    assert float((probs[:, -1].argmax(-1) == target).float().mean()) > 0.8


@pytest.mark.slow
@torch.no_grad()
def test_saliency_and_latent_roundtrip(trained_gce, mnist38):
    gce, _ = trained_gce
    x = mnist38.val.images[:16]
    maps = gce.saliency(x, torch.zeros(16, dtype=torch.long))
    assert maps.shape == x.shape and float(maps.min()) >= 0 and float(maps.sum()) > 0
    z = gce.encode(x)
    assert z.shape == (16, 8)
    assert torch.equal(gce.encode(x), z)  # posterior means: no sampling noise in explanations
    # the sweep starts at x's reconstruction
    start = gce.sweep(x, torch.ones(16, dtype=torch.long), 3)[:, 0]
    torch.testing.assert_close(start, gce.decode(z))

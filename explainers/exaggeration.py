"""Explanation by progressive exaggeration (Singla et al., ICLR 2020).

The explainer I_f(x, delta) = G(E(x), c_f(x, delta)) (Eq. 2): an encoder E, and
a generator G conditioned (conditional batch norm in every residual block,
App. A.1) on the bin index of the requested posterior f(x) + delta, the [0, 1]
range cut into ``n_bins`` = floor(1 / delta) equal bins. It is trained against
a projection discriminator whose class term is ordinal (Eq. 3-4) with

    lambda_cGAN * hinge adversarial (Eq. 7-8)
    + lambda_f  * KL(f(x) + delta || f(I_f(x, delta)))     (Sec. 2.2)
    + lambda_rec * (||x - G(E(x), c_f(x, 0))||_1             (Eq. 5)
                    + ||x - G(E(x_delta), c_f(x, 0))||_1)     (Eq. 6)

as Eq. 9, with the ablation defaults lambda_cGAN = 1, lambda_f = 1,
lambda_rec = 100 (App. A.4). ||.||_1 is the mean absolute error, as the
authors' code.

The paper is binary. Here ``f(x)`` is the probability ``f`` gives the
*explained class* (the suite's last class by default); in a multi-class suite
that class is explained against the rest, so it can sweep only toward it (a
sweep toward another class raises ``MissingCapability``).

Architecture scaled to 28x28 grey images (fully convolutional: C channels and any H, W multiple of 4) (the paper's is 128x128, five residual
blocks each; sized for a CPU): two downsampling blocks in E (embedding
2*channels x 7 x 7), two upsampling conditional blocks in G, three blocks with
spectral norm in D.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable

import torch
from torch import nn
import torch.nn.functional as F
from torch.nn.utils import spectral_norm

from explainers.base import Capability, Explainer, MissingCapability, check_image_shape
from explainers.registry import register
from explainers.training import LossHistory, autocast, float32, minibatches
from metrics.sweep import requested_ramp


# ----------------------------------------------------------------------------- networks


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm whose scale and shift are looked up per condition (Miyato & Koyama 2018; App. A.1)."""

    def __init__(self, channels: int, n_conditions: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gamma = nn.Embedding(n_conditions, channels)
        self.beta = nn.Embedding(n_conditions, channels)
        nn.init.ones_(self.gamma.weight)
        nn.init.zeros_(self.beta.weight)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.gamma(c)[:, :, None, None] * self.bn(x) + self.beta(c)[:, :, None, None]


class GeneratorBlock(nn.Module):
    """CBN-ReLU-(up)-Conv3-CBN-ReLU-Conv3 with a (up)-Conv1 shortcut (App. A.1)."""

    def __init__(self, c_in: int, c_out: int, n_conditions: int, up: bool) -> None:
        super().__init__()
        self.up = up
        self.bn1 = ConditionalBatchNorm2d(c_in, n_conditions)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.bn2 = ConditionalBatchNorm2d(c_out, n_conditions)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.shortcut = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(x, c))
        if self.up:
            h, x = F.interpolate(h, scale_factor=2), F.interpolate(x, scale_factor=2)
        h = self.conv2(F.relu(self.bn2(self.conv1(h), c)))
        return h + self.shortcut(x)


class EncoderBlock(nn.Module):
    """BN-ReLU-Conv3-BN-ReLU-Conv3, then 2x2 average pooling, with a Conv1-pool shortcut."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.BatchNorm2d(c_in), nn.ReLU(), nn.Conv2d(c_in, c_out, 3, padding=1),
                                  nn.BatchNorm2d(c_out), nn.ReLU(), nn.Conv2d(c_out, c_out, 3, padding=1))
        self.shortcut = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(self.body(x) + self.shortcut(x), 2)


class DiscriminatorBlock(nn.Module):
    """(ReLU)-Conv3-ReLU-Conv3, optional 2x2 average pooling, spectral norm (App. A.1; Miyato & Koyama)."""

    def __init__(self, c_in: int, c_out: int, down: bool, first: bool = False) -> None:
        super().__init__()
        self.down, self.first = down, first
        self.conv1 = spectral_norm(nn.Conv2d(c_in, c_out, 3, padding=1))
        self.conv2 = spectral_norm(nn.Conv2d(c_out, c_out, 3, padding=1))
        self.shortcut = spectral_norm(nn.Conv2d(c_in, c_out, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(x if self.first else F.relu(x))
        h = self.conv2(F.relu(h))
        s = self.shortcut(x)
        if self.down:
            h, s = F.avg_pool2d(h, 2), F.avg_pool2d(s, 2)
        return h + s


class Encoder(nn.Module):
    """x (N, C, H, W) -> embedding (N, 2*ch, H/4, W/4) (28x28 -> 7x7)."""

    def __init__(self, ch: int, in_ch: int = 1) -> None:
        super().__init__()
        self.stem = nn.Conv2d(in_ch, ch, 3, padding=1)
        self.blocks = nn.Sequential(EncoderBlock(ch, 2 * ch), EncoderBlock(2 * ch, 2 * ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(x))


class Generator(nn.Module):
    """embedding (N, 2*ch, H/4, W/4) and bin index c (N,) -> image (N, C, H, W) in [0, 1]."""

    def __init__(self, ch: int, n_bins: int, out_ch: int = 1) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([GeneratorBlock(2 * ch, 2 * ch, n_bins, up=True),
                                     GeneratorBlock(2 * ch, ch, n_bins, up=True)])
        self.out_bn = nn.BatchNorm2d(ch)
        self.out = nn.Conv2d(ch, out_ch, 3, padding=1)

    def forward(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            z = block(z, c)
        return torch.sigmoid(float32(self.out(F.relu(self.out_bn(z)))))


class ProjectionDiscriminator(nn.Module):
    """D(x, c) = psi(phi(x)) + r(c | x), with the ordinal class term r(c = k | x) = sum_{i<k} v_i^T phi(x) (Eq. 3-4)."""

    def __init__(self, ch: int, n_bins: int, in_ch: int = 1) -> None:
        super().__init__()
        self.blocks = nn.Sequential(DiscriminatorBlock(in_ch, ch, down=True, first=True),
                                    DiscriminatorBlock(ch, 2 * ch, down=True),
                                    DiscriminatorBlock(2 * ch, 2 * ch, down=False))
        self.psi = spectral_norm(nn.Linear(2 * ch, 1))
        self.v = nn.Parameter(torch.randn(n_bins - 1, 2 * ch) * 0.02)  # v_1 .. v_{n_bins - 1}

    def phi(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.blocks(x)).sum(dim=(2, 3))  # global sum pooling, (N, 2*ch)

    def ordinal_weights(self) -> torch.Tensor:
        """Row k is sum_{i<k} v_i, for k = 0 .. n_bins - 1: ``(n_bins, 2*ch)``."""
        return torch.cat([torch.zeros_like(self.v[:1]), self.v.cumsum(0)])

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        phi = float32(self.phi(x))
        return float32(self.psi(phi)).squeeze(1) + (self.ordinal_weights()[c] * phi).sum(1)


# ----------------------------------------------------------------------------- losses


def bin_index(p: torch.Tensor, n_bins: int) -> torch.Tensor:
    """c_f: the bin of a probability in [0, 1] cut into ``n_bins`` equal bins (1.0 in the top bin)."""
    return (p * n_bins).long().clamp_(0, n_bins - 1)


def discriminator_hinge_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """Eq. 7: E[max(0, 1 - D(x, c_f(x, 0)))] + E[max(0, 1 + D(G(E(x), c_f(x, delta)), c_f(x, delta)))]."""
    return F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()


def generator_adversarial_loss(d_fake: torch.Tensor) -> torch.Tensor:
    """Eq. 8: -E[D(G(E(x), c_f(x, delta)), c_f(x, delta))]."""
    return -d_fake.mean()


def bernoulli_kl(p: torch.Tensor, log_q: torch.Tensor, log_1mq: torch.Tensor) -> torch.Tensor:
    """Mean KL(Bern(p) || Bern(q)) from log q and log(1 - q): the compatibility term
    D_KL(f(x) + delta || f(x_delta)) of Sec. 2.2.

    Taking the logs from f's logits (log-softmax) keeps the gradient alive where f
    is saturated; clamping probabilities would zero it exactly where the generator
    has the most to learn (a confident f on a digit it must change).
    """
    entropy_terms = torch.special.xlogy(p, p) + torch.special.xlogy(1 - p, 1 - p)  # 0 log 0 = 0
    return (entropy_terms - p * log_q - (1 - p) * log_1mq).mean()


def l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """||a - b||_1 of Eq. 5-6 as the mean absolute error."""
    return (a - b).abs().mean()


# ----------------------------------------------------------------------------- explainer


@register("exaggeration")
class ProgressiveExaggeration(Explainer):
    sized_by_image = True
    state_modules = ("encoder", "generator", "discriminator")
    # fits stay float32: bf16 trains 1.26x faster but makes the counterfactuals measurably worse (measured on
    # mnist quick, 3 seeds each: sweep proximity 0.0579 +- 0.0007 in float32 against 0.0636 +- 0.0033 in bf16,
    # compatibility 0.920 -> 0.897)
    bf16_fit = False
    paper = "Singla et al., Explanation by progressive exaggeration, ICLR 2020"
    capabilities = frozenset({Capability.FIT, Capability.SWEEP, Capability.SALIENCY})
    defaults: dict[str, Any] = {
        "n_bins": 10,  # floor(1 / delta)
        "explained_class": -1,  # index into f's classes; -1: the last
        "channels": 16,
        "lambda_gan": 1.0,  # Eq. 9, App. A.4 defaults
        "lambda_f": 1.0,
        "lambda_rec": 100.0,
        "steps": 20000,
        "batch_size": 32,
        "lr": 2e-4,  # Adam(0, 0.9): the projection-GAN settings
    }

    def __init__(self, classifier: nn.Module, settings: dict[str, Any] | None = None,
                 device: torch.device | str = "cpu") -> None:
        super().__init__(classifier, settings, device)
        s = self.settings
        self.n_bins = int(s["n_bins"])
        if self.n_bins < 2:
            raise ValueError(f"n_bins must be at least 2, got {self.n_bins}")
        self.explained = int(s["explained_class"]) % classifier.n_classes
        ch = int(s["channels"])
        c = check_image_shape(self.name, classifier.image_shape)[0]  # fully convolutional: any H, W multiple of 4
        # channels-last networks and inputs (``_input``): oneDNN's convolutions, batch norms and poolings then
        # skip a layout reorder per call; a quick-profile training step took 91 ms with NCHW inputs and 39 ms
        # channels-last on 2 cores (AVX-512; tests/benchmarks/test_training_step_speed.py)
        self.encoder = Encoder(ch, c).to(self.device, memory_format=torch.channels_last)
        self.generator = Generator(ch, self.n_bins, c).to(self.device, memory_format=torch.channels_last)
        self.discriminator = ProjectionDiscriminator(ch, self.n_bins, c).to(self.device,
                                                                            memory_format=torch.channels_last)
        for net in (self.encoder, self.generator, self.discriminator):
            net.eval()

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        """Images on the device, channels-last like the networks (the same values, a faster layout)."""
        return x.to(self.device).contiguous(memory_format=torch.channels_last)

    def _p(self, x: torch.Tensor) -> torch.Tensor:
        """f(x): the probability of the explained class, (N,)."""
        return self.classifier(x)[:, self.explained]

    def _log_p(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(log f(x), log(1 - f(x))) for the explained class, from the black box's logits (numerically stable)."""
        log_probs = torch.log_softmax(self.classifier.logits(x), dim=1)
        others = torch.cat([log_probs[:, :self.explained], log_probs[:, self.explained + 1:]], dim=1)
        return log_probs[:, self.explained], torch.logsumexp(others, dim=1)

    def explain(self, x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """I_f(x, delta) for requested explained-class probabilities ``p = f(x) + delta``, ``(N,)`` or ``(N, S)``.

        Returns ``(N, C, H, W)`` or ``(N, S, C, H, W)``; E(x) is computed once per image.
        """
        x, p = self._input(x), p.to(self.device)
        z = self.encoder(x)
        if p.ndim == 1:
            return self.generator(z, bin_index(p, self.n_bins))
        n, s = p.shape
        zs = z.unsqueeze(1).expand(-1, s, -1, -1, -1).flatten(0, 1)
        return self.generator(zs, bin_index(p.flatten(), self.n_bins)).unflatten(0, (n, s))

    # -- fit --------------------------------------------------------------------------------
    def losses(self, x: torch.Tensor, requested: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every term of Eq. 9 for one batch; ``requested`` = f(x) + delta, (N,) in [0, 1]."""
        with torch.no_grad(), torch.autocast(self.device.type, enabled=False):  # a label: f's own, in float32
            c0 = bin_index(self._p(x), self.n_bins)
        ct = bin_index(requested, self.n_bins)
        z = self.encoder(x)
        x_delta = self.generator(z, ct)
        d_fake = self.discriminator(x_delta, ct)
        return {
            "x_delta": x_delta,
            "gan": generator_adversarial_loss(d_fake),
            "f": bernoulli_kl(requested, *self._log_p(x_delta)),
            "rec": l1(x, self.generator(z, c0)),
            "cyc": l1(x, self.generator(self.encoder(x_delta), c0)),
            "c0": c0, "ct": ct,
        }

    def fit(self, train_images: torch.Tensor, *, generator: torch.Generator,
            log: Callable[[str], None] = print) -> dict:
        s = self.settings
        opt_g = torch.optim.Adam(itertools.chain(self.encoder.parameters(), self.generator.parameters()),
                                 lr=s["lr"], betas=(0.0, 0.9))
        opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=s["lr"], betas=(0.0, 0.9))
        for net in (self.encoder, self.generator, self.discriminator):
            net.train()
        steps, bs = int(s["steps"]), int(s["batch_size"])
        losses = LossHistory("exaggeration", steps, log, {"d_loss": ("D", ".3f"), "g_adversarial": ("G_adv", ".3f"),
                                                          "kl_f": ("KL", ".3f"), "rec": ("rec", ".4f"),
                                                          "cyc": ("cyc", ".4f")})
        for step, idx in minibatches(len(train_images), bs, steps, generator):
            x = self._input(train_images[idx])
            requested = torch.rand(bs, generator=generator).to(self.device)  # f(x) + delta, uniform over [0, 1]
            with autocast(self.device):
                terms = self.losses(x, requested)
                g_loss = (s["lambda_gan"] * terms["gan"] + s["lambda_f"] * terms["f"]
                          + s["lambda_rec"] * (terms["rec"] + terms["cyc"]))  # Eq. 9, E and G side
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
            # Eq. 9, D side (the discriminator maximises: minimise the hinge loss of Eq. 7)
            with autocast(self.device):
                d_fake = self.discriminator(terms["x_delta"].detach(), terms["ct"])
                d_loss = s["lambda_gan"] * discriminator_hinge_loss(self.discriminator(x, terms["c0"]), d_fake)
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            losses.add(step, d_loss=d_loss.item(), g_adversarial=terms["gan"].item(), kl_f=terms["f"].item(),
                       rec=terms["rec"].item(), cyc=terms["cyc"].item())
        self.standing_statistics(train_images, generator=generator)
        return losses.record()

    @torch.no_grad()
    def standing_statistics(self, images: torch.Tensor, *, generator: torch.Generator, n_batches: int = 200) -> None:
        """Recompute the batch-norm statistics of E and G as the average over many training batches
        ("standing statistics", Brock et al. 2019, BigGAN App. C.1), then switch to eval mode.

        Training normalises with each batch's own statistics, while explanations must
        not depend on their batch; the running averages a GAN ends training with lag
        the generator and measurably mis-calibrate f(x_delta) (on MNIST 3/8 they cut
        the compatibility correlation from 0.88 to 0.85).
        """
        norms = [m for net in (self.encoder, self.generator) for m in net.modules()
                 if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the passes below
        self.encoder.train()
        self.generator.train()
        bs, n = int(self.settings["batch_size"]), len(images)
        for _ in range(n_batches):
            x = self._input(images[torch.randint(n, (bs,), generator=generator)])
            c = torch.randint(self.n_bins, (bs,), generator=generator).to(self.device)
            self.generator(self.encoder(x), c)  # the explanation path: G(E(x), c) for any bin
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        for net in (self.encoder, self.generator, self.discriminator):
            net.eval()

    # -- explanations -----------------------------------------------------------------------
    def sweep(self, x: torch.Tensor, target: torch.Tensor, n_steps: int) -> torch.Tensor:
        """x_delta for the requested target-class probabilities f(x)_t .. 1 (``requested_ramp``): toward the
        explained class its probability rises to 1; toward the other class (binary f) it falls to 0."""
        x, target = x.to(self.device), target.to(self.device)
        probs = self.classifier(x)
        if probs.shape[1] > 2 and bool((target != self.explained).any()):
            raise MissingCapability(f"{self.name} explains class {self.explained} against the rest; with "
                                    f"{probs.shape[1]} classes it can only sweep toward class {self.explained}")
        ramp = requested_ramp(probs.gather(1, target.view(-1, 1)).squeeze(1), n_steps)  # (N, S)
        toward = (target == self.explained).unsqueeze(1)
        return self.explain(x, torch.where(toward, ramp, 1 - ramp))

    def sweep_targets(self, pred: torch.Tensor, n_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Binary f: every query toward the other class. More classes: the cGAN is conditioned on f(x) of the
        explained class only, so it sweeps only toward that class (the queries f assigns elsewhere)."""
        if n_classes <= 2:
            return super().sweep_targets(pred, n_classes)
        index = (pred.cpu() != self.explained).nonzero().flatten()
        return index, torch.full_like(index, self.explained)

    def saliency(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """|I_f(x) at the top bin - I_f(x) at the bottom bin| (Sec. 4.3); the same map for every target."""
        ends = self.explain(x, torch.tensor([[0.0, 1.0]], device=self.device).expand(len(x), -1))
        return (ends[:, 1] - ends[:, 0]).abs()

"""GANMEX: one-vs-one attributions guided by GAN-made counterfactual baselines (Shih et al.;
appendix A.2-A.3, B.2, B.4 in ``ganmex-appendix.txt``).

A StarGAN (Choi et al. 2018) generator G(x, c_t) translates an image into a target class, with two
changes (GANMEX Eq. 9 as the appendix describes it):

1. StarGAN's class discriminator is replaced by the classifier under test, ``f``: the generator's
   classification loss is f's cross-entropy of G(x, c_t) against c_t;
2. a similarity loss ||G(x, c_t) - x||_1 keeps the counterfactual close to x.

With StarGAN's adversarial and reconstruction (cycle) loss ||G(G(x, c_t), c_o) - x||_1, the
generator minimises  L_adv + lambda_cls L_cls + lambda_rec L_rec + lambda_sim L_sim.
c_o is the class ``f`` gives x (we explain f, not the dataset). The discriminator has the
adversarial head only.

Explanations:
- sweep: the straight path in pixel space from x to its counterfactual G(x, c_t), judged by f;
- saliency: a one-vs-one attribution of the score delta S_co - S_ct (f's logits) with G(x, c_t) as
  the baseline (A.3), by Integrated Gradients (``ganmex_ig``) or DeepLIFT (``ganmex_deeplift``).
  Both variants share one fit (``fit_name``).

Scaled to 28x28 for a CPU: StarGAN's generator (7x7 conv, two stride-2 downsamplings, six residual
blocks, two upsamplings) becomes one downsampling to 14x14 and three residual blocks at 32/64
channels, with a sigmoid output for images in [0, 1]. The ``quick`` profile replaces StarGAN's WGAN-GP
loss by the hinge loss with a spectrally normalised discriminator (as our exaggeration explainer), which
needs no gradient penalty and one discriminator step per generator step. ``adversarial="wgan-gp"`` (the
``paper`` profile) is the authors' code: WGAN with gradient penalty 10 on a plain (not spectrally
normalised) critic, classification weight 1000, similarity 100, reconstruction 0, generator lr 2e-5,
critic lr 1e-4 (``docs/design.md``, notes from the authors' code).
"""

from __future__ import annotations

import abc
from typing import Any, Callable, ClassVar

import torch
from torch import nn
import torch.nn.functional as F
from torch.nn.utils import spectral_norm
from captum.attr import DeepLift, IntegratedGradients

from explainers.base import Capability, Explainer, check_image_shape
from explainers.registry import register
from explainers.training import LossHistory, autocast, float32, minibatches
from explainers.captum_baselines import quiet_deeplift, score_module
from explainers.exaggeration import discriminator_hinge_loss, generator_adversarial_loss, l1


class ResidualBlock(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(ch, ch, 3, padding=1, bias=False), nn.InstanceNorm2d(ch, affine=True),
                                  nn.ReLU(), nn.Conv2d(ch, ch, 3, padding=1, bias=False),
                                  nn.InstanceNorm2d(ch, affine=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class StarGenerator(nn.Module):
    """G(x, c): the image with the one-hot target class as extra constant channels (StarGAN Fig. 3)."""

    def __init__(self, n_classes: int, ch: int = 32, n_res: int = 3, in_ch: int = 1) -> None:
        super().__init__()
        self.n_classes = n_classes
        self.net = nn.Sequential(
            nn.Conv2d(in_ch + n_classes, ch, 7, padding=3, bias=False), nn.InstanceNorm2d(ch, affine=True), nn.ReLU(),
            nn.Conv2d(ch, 2 * ch, 4, stride=2, padding=1, bias=False), nn.InstanceNorm2d(2 * ch, affine=True),
            nn.ReLU(),  # (N, 2ch, 14, 14)
            *[ResidualBlock(2 * ch) for _ in range(n_res)],
            nn.ConvTranspose2d(2 * ch, ch, 4, stride=2, padding=1, bias=False), nn.InstanceNorm2d(ch, affine=True),
            nn.ReLU(),  # (N, ch, 28, 28)
            nn.Conv2d(ch, in_ch, 7, padding=3))  # then a sigmoid, in float32 (forward)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        onehot = F.one_hot(c, self.n_classes).to(x).view(len(x), -1, 1, 1).expand(-1, -1, *x.shape[2:])
        return torch.sigmoid(float32(self.net(torch.cat([x, onehot], dim=1))))


class PatchDiscriminator(nn.Module):
    """StarGAN's PatchGAN D_src (its D_cls head removed: ``f`` plays that part), spectrally normalised."""

    def __init__(self, ch: int = 32, in_ch: int = 1, spectral: bool = True) -> None:
        super().__init__()
        sn = spectral_norm if spectral else (lambda m: m)  # WGAN-GP's critic is constrained by its penalty instead
        self.net = nn.Sequential(
            sn(nn.Conv2d(in_ch, ch, 4, stride=2, padding=1)), nn.LeakyReLU(0.01),  # 14x14
            sn(nn.Conv2d(ch, 2 * ch, 4, stride=2, padding=1)), nn.LeakyReLU(0.01),  # 7x7
            sn(nn.Conv2d(2 * ch, 4 * ch, 3, stride=2, padding=1)), nn.LeakyReLU(0.01),  # 4x4
            sn(nn.Conv2d(4 * ch, 1, 3, padding=1)))  # a 4x4 patch of real/fake scores

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return float32(self.net(x)).flatten(1).mean(1)


class ScoreDelta(nn.Module):
    """S_co(x) - S_ct(x) of f's logits, per image (A.3): the output one-vs-one attributions explain."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor, c_o: torch.Tensor, c_t: torch.Tensor) -> torch.Tensor:
        s = self.network(x)
        return s.gather(1, c_o.view(-1, 1)).squeeze(1) - s.gather(1, c_t.view(-1, 1)).squeeze(1)


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator
                     ) -> torch.Tensor:
    """WGAN-GP's penalty (Gulrajani et al. 2017, Eq. 3): E[(||grad D(x_hat)||_2 - 1)^2] at random points
    x_hat on the lines between real and generated images."""
    eps = torch.rand(len(real), 1, 1, 1, generator=generator).to(real)
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    grad, = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()


def random_other_class(c: torch.Tensor, n_classes: int, generator: torch.Generator) -> torch.Tensor:
    """A uniformly drawn class different from each entry of ``c``."""
    shift = torch.randint(1, n_classes, c.shape, generator=generator).to(c.device)
    return (c + shift) % n_classes


class GANMEX(Explainer):
    sized_by_image = True
    state_modules = ("generator", "discriminator")
    paper = "Shih, Tien & Karnin, GANMEX: one-vs-one attributions using GAN-based model explainability, ICML 2021"
    capabilities = frozenset({Capability.FIT, Capability.SWEEP, Capability.SALIENCY})
    fit_name: ClassVar[str] = "ganmex"
    explain_settings: ClassVar[frozenset[str]] = frozenset({"ig_steps", "internal_batch_size"})
    randomisation_unscorable: ClassVar[str | None] = (
        "the counterfactual baseline G was fitted to f and would have to be refitted to every randomised f "
        "(GANMEX App. B.4); at one GAN fit per layer that is too costly to score")
    defaults: dict[str, Any] = {
        "channels": 32,
        "n_res": 3,
        "lambda_cls": 1.0,  # StarGAN's default
        "lambda_rec": 10.0,  # StarGAN's default
        "lambda_sim": 10.0,
        "steps": 3000,
        "batch_size": 32,
        "lr": 1e-4,  # StarGAN: Adam(1e-4, beta1 0.5, beta2 0.999); the generator's
        "lr_d": None,  # the discriminator's; None: as the generator's
        "adversarial": "hinge",  # or "wgan-gp" (StarGAN and the authors' code)
        "lambda_gp": 10.0,  # gradient penalty weight (wgan-gp only)
        "ig_steps": 50,  # the paper: 200 (the paper profile)
        "internal_batch_size": 1000,
    }

    def __init__(self, classifier: nn.Module, settings: dict[str, Any] | None = None,
                 device: torch.device | str = "cpu") -> None:
        super().__init__(classifier, settings, device)
        s = self.settings
        self.n_classes = int(classifier.n_classes)
        c = check_image_shape(self.name, classifier.image_shape)[0]  # fully convolutional: any H, W multiple of 4
        self.generator = StarGenerator(self.n_classes, int(s["channels"]), int(s["n_res"]), c).to(self.device)
        if s["adversarial"] not in ("hinge", "wgan-gp"):
            raise ValueError(f"{self.name}: adversarial must be 'hinge' or 'wgan-gp', not {s['adversarial']!r}")
        self.discriminator = PatchDiscriminator(int(s["channels"]), c,
                                                spectral=s["adversarial"] == "hinge").to(self.device)
        self.generator.eval()

    # -- fit --------------------------------------------------------------------------------
    def losses(self, x: torch.Tensor, c_o: torch.Tensor, c_t: torch.Tensor) -> dict[str, torch.Tensor]:
        """The generator's terms (GANMEX Eq. 9) for images x of f-class c_o sent to c_t."""
        fake = self.generator(x, c_t)
        return {"adv": generator_adversarial_loss(self.discriminator(fake)),
                "cls": F.cross_entropy(score_module(self.classifier)(fake), c_t),  # f as StarGAN's D_cls
                "rec": l1(self.generator(fake, c_o), x),  # cycle back to the original class
                "sim": l1(fake, x)}  # GANMEX's similarity loss

    def fit(self, train_images: torch.Tensor, *, generator: torch.Generator,
            log: Callable[[str], None] = print) -> dict:
        s = self.settings
        labels = self.classifier.predict(train_images)
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=s["lr"], betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=s["lr_d"] or s["lr"], betas=(0.5, 0.999))
        self.generator.train()
        self.discriminator.train()
        steps = int(s["steps"])
        losses = LossHistory(self.fit_name, steps, log, {"d": ("D", ".3f"), "adv": ("G_adv", ".3f"),
                                                         "cls": ("cls", ".3f"), "rec": ("rec", ".4f"),
                                                         "sim": ("sim", ".4f")})
        for step, idx in minibatches(len(train_images), int(s["batch_size"]), steps, generator):
            x, c_o = train_images[idx].to(self.device), labels[idx].to(self.device)
            c_t = random_other_class(c_o, self.n_classes, generator)
            # discriminator: real images vs translations
            with torch.no_grad(), autocast(self.device):
                fake = self.generator(x, c_t)
            with autocast(self.device):
                if s["adversarial"] == "hinge":
                    d_loss = discriminator_hinge_loss(self.discriminator(x), self.discriminator(fake))
                else:  # WGAN-GP critic: E[D(fake)] - E[D(real)] + lambda_gp * penalty
                    d_loss = self.discriminator(fake).mean() - self.discriminator(x).mean()
            if s["adversarial"] != "hinge":  # its double backward outside autocast, in float32
                d_loss = d_loss + s["lambda_gp"] * gradient_penalty(self.discriminator, x, fake, generator)
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            # generator
            with autocast(self.device):
                terms = self.losses(x, c_o, c_t)
                g_loss = (terms["adv"] + s["lambda_cls"] * terms["cls"] + s["lambda_rec"] * terms["rec"]
                          + s["lambda_sim"] * terms["sim"])
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
            losses.add(step, d=d_loss.item(), **{k: v.item() for k, v in terms.items()})
        self.generator.eval()
        self.discriminator.eval()
        return losses.record()

    # -- explanations -----------------------------------------------------------------------
    @torch.no_grad()
    def counterfactual(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """G(x, c_t): the GANMEX baseline of x for class ``target``."""
        return self.generator(x.to(self.device), target.to(self.device))

    def sweep(self, x: torch.Tensor, target: torch.Tensor, n_steps: int) -> torch.Tensor:
        """The straight pixel path from x to G(x, target); (N, n_steps, C, H, W)."""
        x = x.to(self.device)
        end = self.counterfactual(x, target)
        t = torch.linspace(0, 1, n_steps, device=self.device).view(1, -1, 1, 1, 1)
        return x.unsqueeze(1) + t * (end - x).unsqueeze(1)

    def contrast_class(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """c_t of a one-vs-one map explaining ``target`` (c_o): f's most likely other class."""
        with torch.no_grad():
            scores = score_module(self.classifier)(x).clone()
        scores.scatter_(1, target.view(-1, 1), float("-inf"))
        return scores.argmax(1)

    @abc.abstractmethod
    def attribute(self, model: nn.Module, x: torch.Tensor, baseline: torch.Tensor, c_o: torch.Tensor,
                  c_t: torch.Tensor) -> torch.Tensor:
        """Attributions of ``model`` (the score delta, called with ``c_o, c_t``) at x from ``baseline``."""

    def saliency(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """One-vs-one attribution of S_target - S_c_t with G(x, c_t) as the baseline (A.3)."""
        x, c_o = x.to(self.device).detach().requires_grad_(True), target.to(self.device)
        c_t = self.contrast_class(x, c_o)
        baseline = self.counterfactual(x, c_t)
        return self.attribute(ScoreDelta(score_module(self.classifier)), x, baseline, c_o, c_t).detach()


@register("ganmex_ig")
class GANMEXIntegratedGradients(GANMEX):
    def attribute(self, model, x, baseline, c_o, c_t):
        return IntegratedGradients(model).attribute(x, baselines=baseline, additional_forward_args=(c_o, c_t),
                                                    n_steps=int(self.settings["ig_steps"]),
                                                    internal_batch_size=int(self.settings["internal_batch_size"]))


@register("ganmex_deeplift")
class GANMEXDeepLift(GANMEX):
    def attribute(self, model, x, baseline, c_o, c_t):
        with quiet_deeplift():
            return DeepLift(model).attribute(x, baselines=baseline, additional_forward_args=(c_o, c_t))


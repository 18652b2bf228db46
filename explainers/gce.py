"""GCE: generative causal explanations (O'Shaughnessy et al., NeurIPS 2020).

A VAE whose latent z = (alpha, beta) has K causal factors alpha and L noncausal
factors beta, trained to maximise (Eq. 3)

    C(alpha; Y) + lambda * D,   C = I(alpha; Y) (Eq. 2, Algorithm 2),  D = ELBO,

so that moving alpha changes the classifier's output while beta only changes
style. Networks: GCE Table 2 (encoder/decoder for 28x28). As in the authors'
code, the VAE term is (summed squared error + KL) / batch, and Adam (beta1 = 0.5,
beta2 = 0.999) updates the encoder and decoder only; the classifier is frozen and
in eval mode. Latent sweeps move a factor around the query's own code, as the
authors' ``explain`` (z_d + offset).

Unlike the authors' code, explanations (sweeps, saliency, accuracy drop) use
the posterior *mean* of z, not a sample, so they are not noisy.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable

import torch
from torch import nn
import torch.nn.functional as F

from explainers.base import Capability, Explainer, LatentSplit, check_image_shape
from explainers.registry import register
from explainers.training import LossHistory, autocast, float32, minibatches
from metrics.information_flow import information_flow


class Encoder(nn.Module):
    """GCE Table 2, left: three 4x4 convs of 64 filters -> 64x7x7 -> linear heads (mu, log var).

    Sizes in the comments are for the table's 28x28 images; for ``(C, H, W)`` (H, W multiples of 4) the
    first conv reads C channels and the trunk ends at 64 x H/4 x W/4.
    """

    def __init__(self, n_latent: int, image_shape: tuple[int, int, int] = (1, 28, 28)) -> None:
        super().__init__()
        c, h, w = image_shape
        self.conv1 = nn.Conv2d(c, 64, 4, stride=2, padding=1)  # (N, 64, 14, 14)
        self.conv2 = nn.Conv2d(64, 64, 4, stride=2, padding=1)  # (N, 64, 7, 7)
        self.conv3 = nn.Conv2d(64, 64, 4, stride=1)  # after a (1, 2, 1, 2) pad: (N, 64, 7, 7)
        self.mu = nn.Linear(64 * (h // 4) * (w // 4), n_latent)
        self.logvar = nn.Linear(64 * (h // 4) * (w // 4), n_latent)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = F.relu(self.conv1(x))
        h = F.relu(self.conv2(h))
        h = F.relu(self.conv3(F.pad(h, (1, 2, 1, 2)))).flatten(1)
        return float32(self.mu(h)), float32(self.logvar(h))


class Decoder(nn.Module):
    """GCE Table 2, right: linear 3136 -> three 4x4 transposed convs -> sigmoid, (N, 1, 28, 28).

    For ``(C, H, W)``: linear to 64 x H/4 x W/4, then H/4 + 1, H/2 and H (the same three layers), C channels out.
    """

    def __init__(self, n_latent: int, image_shape: tuple[int, int, int] = (1, 28, 28)) -> None:
        super().__init__()
        c, h, w = image_shape
        self.grid = (h // 4, w // 4)
        self.fc = nn.Linear(n_latent, 64 * self.grid[0] * self.grid[1])
        self.deconv1 = nn.ConvTranspose2d(64, 64, 4, stride=1, padding=1)  # (N, 64, 8, 8)
        self.deconv2 = nn.ConvTranspose2d(64, 64, 4, stride=2, padding=2)  # (N, 64, 14, 14)
        self.deconv3 = nn.ConvTranspose2d(64, c, 4, stride=2, padding=1)  # (N, 1, 28, 28)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.fc(z)).view(-1, 64, *self.grid)
        h = F.relu(self.deconv1(h))
        h = F.relu(self.deconv2(h))
        return torch.sigmoid(float32(self.deconv3(h)))


def vae_loss(x: torch.Tensor, x_hat: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """-ELBO per batch element: summed squared error + KL(q(z|x) || N(0, I)), averaged over the batch.

    The Gaussian-likelihood form used by the GCE authors' code (squared error, not BCE).
    """
    sse = (x_hat - x).pow(2).sum()
    kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum()
    return (sse + kl) / x.shape[0]


@register("gce")
class GCE(Explainer):
    sized_by_image = True
    state_modules = ("encoder", "decoder")
    paper = "O'Shaughnessy et al., Generative causal explanations of black-box classifiers, NeurIPS 2020"
    capabilities = frozenset({Capability.FIT, Capability.SWEEP, Capability.SALIENCY, Capability.LATENT})
    fit_depends = ("metrics.information_flow",)  # training runs through the estimator
    defaults: dict[str, Any] = {
        "n_causal": 1,  # K
        "n_noncausal": 7,  # L
        "lam": 0.05,  # lambda, weight of the ELBO term (Eq. 3)
        "steps": 8000,
        "batch_size": 64,
        "lr": 5e-4,
        "n_alpha": 25,  # authors' released MNIST 3/8 model (the appendix says 100)
        "n_beta": 100,
        "sweep_range": 3.0,  # sweeps and saliency move alpha within +-3 prior std
    }

    def __init__(self, classifier: nn.Module, settings: dict[str, Any] | None = None,
                 device: torch.device | str = "cpu") -> None:
        super().__init__(classifier, settings, device)
        s = self.settings
        self.latent_split = LatentSplit(int(s["n_causal"]), int(s["n_noncausal"]))
        n = self.latent_split.n_latent
        # channels-last conv weights: ~1.5x faster decoding on CPU (oneDNN), same numbers
        shape = check_image_shape(self.name, classifier.image_shape)
        self.encoder = Encoder(n, shape).to(self.device, memory_format=torch.channels_last)
        self.decoder = Decoder(n, shape).to(self.device, memory_format=torch.channels_last)

    # -- fit --------------------------------------------------------------------------------
    def fit(self, train_images: torch.Tensor, *, generator: torch.Generator,
            log: Callable[[str], None] = print) -> dict:
        s, split = self.settings, self.latent_split
        params = itertools.chain(self.encoder.parameters(), self.decoder.parameters())
        opt = torch.optim.Adam(params, lr=s["lr"], betas=(0.5, 0.999))  # the authors' GCE.train: b1=0.5, b2=0.999
        self.encoder.train()
        self.decoder.train()
        steps = int(s["steps"])
        losses = LossHistory("gce", steps, log, {"information_flow": ("I(alpha;Y)", ".3f"),
                                                 "neg_elbo": ("-ELBO", ".1f")})
        for step, idx in minibatches(len(train_images), s["batch_size"], steps, generator):
            x = train_images[idx].to(self.device)
            with autocast(self.device):
                mu, logvar = self.encoder(x)
                z = mu + torch.randn(mu.shape, generator=generator).to(self.device) * (0.5 * logvar).exp()
                elbo_loss = vae_loss(x, self.decoder(z), mu, logvar)
                if split.n_causal:
                    info = information_flow(self.decoder, self.classifier, split.n_causal, split.n_noncausal,
                                            s["n_alpha"], s["n_beta"], generator=generator, device=self.device)
                else:  # K = 0: Algorithm 1's Step 1 "optimizing only D" (lam then only scales the loss)
                    info = elbo_loss.new_zeros(())
                loss = -info + s["lam"] * elbo_loss  # maximise C + lambda * D (Eq. 3)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.add(step, information_flow=info.item(), neg_elbo=elbo_loss.item())
        self.encoder.eval()
        self.decoder.eval()
        return losses.record()

    @torch.no_grad()
    def heldout_neg_elbo(self, images: torch.Tensor, *, generator: torch.Generator, batch: int = 512) -> float:
        """-D of Eq. 3 on held-out images: the -ELBO the fit minimises (:func:`vae_loss`, one posterior sample
        per image from ``generator``), averaged over ``images``. Algorithm 1 reads its plateaus from it."""
        total = 0.0
        for i in range(0, len(images), batch):
            x = images[i:i + batch].to(self.device)
            mu, logvar = self.encoder(x)
            z = mu + torch.randn(mu.shape, generator=generator).to(self.device) * (0.5 * logvar).exp()
            total += float(vae_loss(x, self.decoder(z), mu, logvar)) * len(x)
        return total / len(images)

    # -- latent -----------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x.to(self.device))[0]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z.to(self.device))

    # -- sweeps -----------------------------------------------------------------------------
    def _alpha_corners(self) -> torch.Tensor:
        """All 2^K corners of the alpha box [-r, r]^K, (2^K, K)."""
        r, k = float(self.settings["sweep_range"]), self.latent_split.n_causal
        return torch.tensor(list(itertools.product((-r, r), repeat=k)), device=self.device)

    def sweep(self, x: torch.Tensor, target: torch.Tensor, n_steps: int) -> torch.Tensor:
        """From x's reconstruction, move alpha in a straight line to the corner of [-r, r]^K
        where ``f`` gives ``target`` the highest probability (beta kept); (N, n_steps, 1, 28, 28)."""
        k = self.latent_split.n_causal
        z = self.encode(x)  # (N, D)
        corners = self._alpha_corners()  # (C, K)
        zc = z.unsqueeze(1).repeat(1, len(corners), 1)  # (N, C, D)
        zc[:, :, :k] = corners
        probs = self.classifier(self.decode(zc.flatten(0, 1))).unflatten(0, zc.shape[:2])  # (N, C, M)
        best = probs.gather(2, target.to(self.device).view(-1, 1, 1).expand(-1, len(corners), 1)).squeeze(2).argmax(1)
        end = corners[best]  # (N, K)
        t = torch.linspace(0, 1, n_steps, device=self.device).view(1, -1, 1)  # (1, S, 1)
        zs = z.unsqueeze(1).repeat(1, n_steps, 1)  # (N, S, D)
        zs[:, :, :k] = z[:, None, :k] + t * (end[:, None, :] - z[:, None, :k])
        return self.decode(zs.flatten(0, 1)).unflatten(0, zs.shape[:2])

    def saliency(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """|g(alpha_d + r) - g(alpha_d - r)| summed over causal factors d, around x's own code (beta kept)."""
        k, r = self.latent_split.n_causal, float(self.settings["sweep_range"])
        values = torch.tensor([-r, r])
        maps = [self.sweep_factor(x, i, values) for i in range(k)]  # each (N, 2, 1, 28, 28)
        return sum((m[:, 1] - m[:, 0]).abs() for m in maps)

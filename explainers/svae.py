"""Supervised VAE invariance explainer (Nguyen & Rodriguez Martinez, "Learning invariances for
interpretability using supervised VAE").

A VAE whose latent z = (z1, z2) is split a priori (Section 2.2): a classification head reads z1
only (Eq. 7), so z2 is free to carry the nuisance, i.e. the transformations the classifier is
invariant to. It is trained by minimising the negative of Eq. 6 with the classifier term weighted
alpha (the paragraph after Eq. 6):

    beta * [ -log p(x | z) + KL(q(z|x,y) || N(0, I)) ]         (6b, 6c)
    + (1 - beta) * KL(q(z|x,y) || q(z|x))                       (6d, "sufficiency")
    + alpha * -log p(y | z1),   z ~ q(z|x,y)                     (6e with Eq. 7)

To *explain a black box* rather than learn a classifier of its own, y is the label ``f`` predicts,
never the dataset's label, and everything the explainer generates is judged by ``f`` (the runner's
metrics), not by the head. The head's agreement with ``f`` is reported (``surrogate``).

Encoders and decoder are GCE Table 2's (the same networks as the GCE explainer, so the two latent
explainers differ in their objective, not their capacity). q(z|x) and q(z|x,y) share the
convolutional trunk and have their own linear heads; q(z|x,y) sees y as a one-hot vector
concatenated to the trunk's features. The likelihood is Bernoulli (pixels in [0, 1]). Explanations
use q(z|x)'s mean, the only encoder usable without a label (Eq. 4).
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn
import torch.nn.functional as F
from captum.attr import GradientShap

from explainers.base import Capability, Explainer, LatentSplit, check_image_shape
from explainers.registry import register
from explainers.training import LossHistory, autocast, fixed_randomness, float32, minibatches
from explainers.gce import Decoder


def gaussian_kl(mu_q: torch.Tensor, logvar_q: torch.Tensor, mu_p: torch.Tensor, logvar_p: torch.Tensor
                ) -> torch.Tensor:
    """KL(N(mu_q, exp logvar_q) || N(mu_p, exp logvar_p)) of diagonal Gaussians, summed over the last dim."""
    return 0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p).pow(2)) / logvar_p.exp() - 1).sum(-1)


class Encoders(nn.Module):
    """GCE Table 2's encoder trunk with two Gaussian heads: q(z|x) and q(z|x,y)."""

    def __init__(self, n_latent: int, n_classes: int, image_shape: tuple[int, int, int] = (1, 28, 28)) -> None:
        super().__init__()
        self.n_classes = n_classes
        c, h, w = image_shape  # sizes below for 28x28; as gce.Encoder for (C, H, W)
        self.conv1 = nn.Conv2d(c, 64, 4, stride=2, padding=1)  # (N, 64, 14, 14)
        self.conv2 = nn.Conv2d(64, 64, 4, stride=2, padding=1)  # (N, 64, 7, 7)
        self.conv3 = nn.Conv2d(64, 64, 4, stride=1)  # after a (1, 2, 1, 2) pad: (N, 64, 7, 7)
        self.x_head = nn.Linear(64 * (h // 4) * (w // 4), 2 * n_latent)
        self.xy_head = nn.Linear(64 * (h // 4) * (w // 4) + n_classes, 2 * n_latent)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.conv1(x))
        h = F.relu(self.conv2(h))
        return F.relu(self.conv3(F.pad(h, (1, 2, 1, 2)))).flatten(1)

    def q_x(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, logvar) of q(z|x) from trunk features."""
        return float32(self.x_head(h)).chunk(2, dim=1)

    def q_xy(self, h: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, logvar) of q(z|x,y) from trunk features and labels (N,)."""
        return float32(self.xy_head(torch.cat([h, F.one_hot(y, self.n_classes).to(h)], dim=1))).chunk(2, dim=1)


def svae_loss(x: torch.Tensor, y: torch.Tensor, encoders: Encoders, decoder: nn.Module, head: nn.Module,
              n_z1: int, *, alpha: float, beta: float, generator: torch.Generator | None = None
              ) -> tuple[torch.Tensor, dict[str, float]]:
    """Negative Eq. 6 (with alpha on 6e), averaged over the batch; and its terms for the log."""
    h = encoders.trunk(x)
    mu_xy, logvar_xy = encoders.q_xy(h, y)
    mu_x, logvar_x = encoders.q_x(h)
    eps = torch.randn(mu_xy.shape, generator=generator).to(mu_xy)
    z = mu_xy + eps * (0.5 * logvar_xy).exp()  # z ~ q(z|x,y): the expectations of Eq. 6
    x_hat = decoder(z)
    with torch.autocast(x.device.type, enabled=False):  # CUDA autocast refuses BCE; CPU autocast ran it in float32
        rec = F.binary_cross_entropy(float32(x_hat), x.float(), reduction="none").flatten(1).sum(1)  # -log p(x|z) (6b)
    prior = gaussian_kl(mu_xy, logvar_xy, torch.zeros_like(mu_xy), torch.zeros_like(logvar_xy))  # (6c)
    sufficiency = gaussian_kl(mu_xy, logvar_xy, mu_x, logvar_x)  # (6d)
    nll_y = F.cross_entropy(float32(head(z[:, :n_z1])), y, reduction="none")  # -log p(y|z1)   (6e, Eq. 7)
    loss = (beta * (rec + prior) + (1 - beta) * sufficiency + alpha * nll_y).mean()
    terms = {"rec": rec.mean().item(), "kl": prior.mean().item(), "sufficiency": sufficiency.mean().item(),
             "nll_y": nll_y.mean().item()}
    return loss, terms


@register("svae")
class SupervisedVAE(Explainer):
    sized_by_image = True
    state_modules = ("encoders", "decoder", "head")
    paper = "Nguyen & Rodriguez Martinez, Learning invariances for interpretability using supervised VAE, 2020"
    capabilities = frozenset({Capability.FIT, Capability.SWEEP, Capability.SALIENCY, Capability.LATENT})
    defaults: dict[str, Any] = {
        "n_causal": 2,  # |z1|, read by the head (Fig. 7 uses one per class)
        "n_noncausal": 6,  # |z2|, the nuisance dimensions
        "alpha": 6000.0,  # weight of the latent classifier (Table 1, MNIST alpha_2)
        "beta": 0.9,  # generative vs. sufficiency trade-off (Eq. 6; Section 3.1 uses 0.9)
        "steps": 3000,
        "batch_size": 64,
        "lr": 1e-3,
        "sweep_range": 3.0,  # latent sweeps of single factors: +-3 prior std
        "saliency_samples": 16,  # GradientShap samples per image (Fig. 6)
        "saliency_stdev": 0.1,  # GradientShap input noise
        "saliency_invariants": 4,  # generated invariant samples x~ per image whose Eq. 9 maps are averaged (Fig. 6: 3)
    }

    def __init__(self, classifier: nn.Module, settings: dict[str, Any] | None = None,
                 device: torch.device | str = "cpu") -> None:
        super().__init__(classifier, settings, device)
        s = self.settings
        self.latent_split = LatentSplit(int(s["n_causal"]), int(s["n_noncausal"]), "z1_", "z2_")
        self.n_classes = int(classifier.n_classes)
        n = self.latent_split.n_latent
        shape = check_image_shape(self.name, classifier.image_shape)
        self.encoders = Encoders(n, self.n_classes, shape).to(self.device, memory_format=torch.channels_last)
        self.decoder = Decoder(n, shape).to(self.device, memory_format=torch.channels_last)
        self.head = nn.Linear(self.latent_split.n_causal, self.n_classes).to(self.device)  # p(y|z1)
        # class centroids of q(z1|x) over the training images f assigns to each class: where sweeps go
        self.centroids = torch.zeros(self.n_classes, self.latent_split.n_causal, device=self.device)

    def _modules(self) -> list[nn.Module]:
        return [self.encoders, self.decoder, self.head]

    # -- fit --------------------------------------------------------------------------------
    def fit(self, train_images: torch.Tensor, *, generator: torch.Generator,
            log: Callable[[str], None] = print) -> dict:
        s = self.settings
        labels = self.classifier.predict(train_images)  # y = f(x): the SVAE explains f, not the dataset
        params = [p for m in self._modules() for p in m.parameters()]
        opt = torch.optim.Adam(params, lr=s["lr"])
        for m in self._modules():
            m.train()
        n, steps = len(train_images), int(s["steps"])
        losses = LossHistory("svae", steps, log, {"rec": ("-log p(x|z)", ".1f"), "kl": ("KL", ".1f"),
                                                  "sufficiency": ("sufficiency", ".2f"),
                                                  "nll_y": ("-log p(y|z1)", ".4f")})
        for step, idx in minibatches(n, int(s["batch_size"]), steps, generator):
            with autocast(self.device):
                loss, terms = svae_loss(train_images[idx].to(self.device), labels[idx].to(self.device), self.encoders,
                                        self.decoder, self.head, self.latent_split.n_causal, alpha=s["alpha"],
                                        beta=s["beta"], generator=generator)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.add(step, **terms)
        for m in self._modules():
            m.eval()
        with torch.no_grad():
            z1 = torch.cat([self.encode(train_images[i:i + 1024])[:, :self.latent_split.n_causal].cpu()
                            for i in range(0, n, 1024)])
            self.centroids = torch.stack([z1[labels == c].mean(0) if (labels == c).any()
                                          else torch.zeros(z1.shape[1]) for c in range(self.n_classes)]).to(self.device)
            agreement = float((torch.cat([self.surrogate(train_images[i:i + 1024]).argmax(1).cpu()
                                          for i in range(0, n, 1024)]) == labels).float().mean())
        return {**losses.record(), "train_head_agreement": agreement}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "centroids": {"value": self.centroids.cpu()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.centroids = state["centroids"]["value"].to(self.device)

    # -- the head, for reporting its agreement with f -----------------------------------------
    def surrogate(self, x: torch.Tensor) -> torch.Tensor:
        """The SVAE's own class probabilities p(y|z1) at q(z1|x)'s mean (Eq. 7): (N, n_classes)."""
        return self.head(self.encode(x)[:, :self.latent_split.n_causal]).softmax(1)

    # -- latent -----------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoders.q_x(self.encoders.trunk(x.to(self.device)))[0]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z.to(self.device))

    # -- sweep ------------------------------------------------------------------------------
    def sweep(self, x: torch.Tensor, target: torch.Tensor, n_steps: int) -> torch.Tensor:
        """Counterfactuals by moving z1 (Section 3.1.2): a straight line from x's z1 to the centroid
        of ``target``'s z1 codes, z2 kept; (N, n_steps, 1, 28, 28)."""
        k = self.latent_split.n_causal
        z = self.encode(x)
        end = self.centroids[target.to(self.device)]  # (N, k)
        t = torch.linspace(0, 1, n_steps, device=self.device).view(1, -1, 1)
        zs = z.unsqueeze(1).repeat(1, n_steps, 1)
        zs[:, :, :k] = z[:, None, :k] + t * (end[:, None, :] - z[:, None, :k])
        return self.decode(zs.flatten(0, 1)).unflatten(0, zs.shape[:2])

    # -- saliency ---------------------------------------------------------------------------
    def divergence(self, x_tilde: torch.Tensor, mu_ref: torch.Tensor, logvar_ref: torch.Tensor) -> torch.Tensor:
        """Eq. 9 with k = 1: KL(q(z1|x) || q(z1|x_tilde)), x given by its q(z1|x) ``(mu_ref, logvar_ref)``; (N,)."""
        k = self.latent_split.n_causal
        mu, logvar = self.encoders.q_x(self.encoders.trunk(x_tilde))
        return gaussian_kl(mu_ref, logvar_ref, mu[:, :k], logvar[:, :k])

    def invariant_samples(self, x: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
        """Generated invariant samples of x (Section 2): x's z1 kept at q(z|x)'s mean, z2 redrawn from the
        prior N(0, I) and decoded; ``(N, n, C, H, W)``."""
        k = self.latent_split.n_causal
        z = self.encode(x)  # (N, D)
        zs = z.unsqueeze(1).repeat(1, n, 1)  # (N, n, D)
        zs[:, :, k:] = torch.randn(zs[:, :, k:].shape, generator=generator).to(zs)
        return self.decode(zs.flatten(0, 1)).unflatten(0, zs.shape[:2])

    def saliency(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """GradientShap attribution of Eq. 9 (k = 1) as a function of generated invariant samples x~ of x,
        x held fixed (Section 3.1.1, Fig. 6), against a black image; the mean over
        ``saliency_invariants`` samples.

        At an invariant sample d(x, x~) is ~0, so the attributions sum to about -d(x, black): a pixel's
        share of what keeps x~'s class code at x's rather than a blank image's. Returned negated, so
        larger = more relevant. Eq. 9 compares x's own code, so ``target`` does not enter. The samples
        (z2 draws) and GradientShap's draws are seeded: the same map every call.
        """
        k, s = self.latent_split.n_causal, self.settings
        n_inv = int(s["saliency_invariants"])
        x = x.to(self.device)
        with torch.no_grad():
            mu, logvar = self.encoders.q_x(self.encoders.trunk(x))
            x_tilde = self.invariant_samples(x, n_inv, torch.Generator().manual_seed(0)).flatten(0, 1)  # (N*n, C, H, W)
        mu_ref = mu[:, :k].repeat_interleave(n_inv, 0)  # x's code, once per invariant sample
        logvar_ref = logvar[:, :k].repeat_interleave(n_inv, 0)
        with fixed_randomness(0, self.device):  # GradientShap draws points and noise: same map every call
            attr = GradientShap(self.divergence).attribute(
                x_tilde, baselines=torch.zeros_like(x[:1]), n_samples=int(s["saliency_samples"]),
                stdevs=float(s["saliency_stdev"]), additional_forward_args=(mu_ref, logvar_ref))
        return -attr.detach().unflatten(0, (len(x), n_inv)).mean(1)

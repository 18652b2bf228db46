"""Invariance curve (supervised-VAE paper, Section 3.0.1 and Fig. 2).

Test images are encoded, their noncausal latents (SVAE's nuisance z2, GCE's beta) are redrawn from
N(0, sigma^2), the latents are decoded, and ``f`` classifies the result. The curve is the fraction
of images whose label is unchanged (against ``f`` on the original image), as a function of sigma;
a latent explainer whose noncausal factors really are invariances of ``f`` keeps it near 1 up to
sigma ~ 1, the prior's scale. The area under the curve over [sigma_min, sigma_max], divided by the
width, summarises it in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from metrics.declaration import Metric
from metrics.information_flow import classify_latents

#: sigma from 0.1 to 5, as Fig. 2; 1.0 (the prior's scale) included
DEFAULT_SIGMAS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0)


@dataclass(frozen=True)
class InvarianceCurve:
    sigmas: torch.Tensor  # (S,)
    kept: torch.Tensor  # (S,) fraction of images whose f-label survives the resampling
    reencoded: float  # the same fraction with nothing resampled: decode(encode(x)) alone

    @property
    def area(self) -> float:
        """Trapezoid area under ``kept`` over sigma, divided by the sigma range: in [0, 1]."""
        return float(torch.trapezoid(self.kept, self.sigmas) / (self.sigmas[-1] - self.sigmas[0]))

    def at(self, sigma: float) -> float:
        hit = (self.sigmas - sigma).abs() < 1e-9
        if not hit.any():
            raise KeyError(f"sigma {sigma} is not on the curve ({self.sigmas.tolist()})")
        return float(self.kept[hit][0])


@torch.no_grad()
def invariance_curve(encode: Callable[[torch.Tensor], torch.Tensor], decode: Callable[[torch.Tensor], torch.Tensor],
                     classify: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, n_causal: int,
                     sigmas: tuple[float, ...] | torch.Tensor = DEFAULT_SIGMAS, *,
                     generator: torch.Generator | None = None, chunk_size: int = 512) -> InvarianceCurve:
    """Fraction of ``images`` (N, C, H, W) whose ``classify`` label survives redrawing latents
    ``[n_causal:]`` from N(0, sigma^2), for each sigma. All S * N latents go through one batched
    decode-and-classify pass (in chunks of ``chunk_size``); the same standard-normal draw is scaled
    by every sigma, so the curve is smooth in sigma rather than noisy."""
    sigmas = torch.as_tensor(sigmas, dtype=torch.float64)  # recorded as given (0.1, not 0.10000000149)
    if len(images) == 0 or sigmas.ndim != 1 or len(sigmas) < 2:
        raise ValueError("need images and at least two sigmas")
    if bool((sigmas[1:] <= sigmas[:-1]).any()) or bool((sigmas <= 0).any()):
        raise ValueError(f"sigmas must be positive and increasing, got {sigmas.tolist()}")
    z = torch.cat([encode(images[i:i + chunk_size]) for i in range(0, len(images), chunk_size)])  # (N, D)
    n, d = z.shape
    if not 0 <= n_causal < d:
        raise ValueError(f"n_causal={n_causal} leaves no noncausal latent of {d}")
    labels = torch.cat([classify(images[i:i + chunk_size].to(z.device)).argmax(-1) for i in range(0, n, chunk_size)])
    reencoded = classify_latents(decode, classify, z, chunk_size).argmax(-1) == labels
    noise = torch.randn((n, d - n_causal), generator=generator).to(z)
    resampled = z.unsqueeze(0).repeat(len(sigmas), 1, 1)  # (S, N, D)
    resampled[:, :, n_causal:] = sigmas.to(z).view(-1, 1, 1) * noise
    pred = classify_latents(decode, classify, resampled.flatten(0, 1), chunk_size).argmax(-1).view(len(sigmas), n)
    kept = (pred == labels).double().mean(1).cpu()
    return InvarianceCurve(sigmas=sigmas, kept=kept, reencoded=float(reencoded.float().mean()))


@torch.no_grad()
def head_agreement(head: Callable[[torch.Tensor], torch.Tensor], classify: Callable[[torch.Tensor], torch.Tensor],
                   images: torch.Tensor, chunk_size: int = 1024) -> torch.Tensor:
    """Fraction of ``images`` (N, C, H, W) on which an explainer's own classification ``head`` and ``classify``
    (both images -> class scores) pick the same class (SVAE Eq. 7), as a 0-d tensor."""
    agree = torch.cat([(head(images[i:i + chunk_size]).argmax(1) == classify(images[i:i + chunk_size]).argmax(1))
                       for i in range(0, len(images), chunk_size)])
    return agree.float().mean()


#: the invariance rows (bench.execute.scoring.score_invariance), in column order
DECLARED = (
    Metric("invariance_area", capability="latent", unit="fraction", higher_is_better=True,
           aggregation="per-seed", function=invariance_curve,
           description="area under the invariance curve over sigma in [0.1, 5] / 4.9: fraction of test images "
                       "whose f-label survives redrawing the noncausal latents from N(0, sigma^2) (SVAE Section "
                       "3.0.1, Fig. 2)"),
    Metric("invariance_sigma1", capability="latent", unit="fraction", higher_is_better=True,
           aggregation="mean", function=invariance_curve,
           description="the invariance curve at sigma = 1, the prior's scale"),
    Metric("head_agreement", capability="latent", unit="fraction", higher_is_better=True,
           aggregation="mean", function=head_agreement,
           description="test images on which an explainer's own classification head agrees with f (SVAE Eq. 7)"),
)

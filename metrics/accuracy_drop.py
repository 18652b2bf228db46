"""Accuracy drop when one latent factor is removed (GCE Fig. 5b).

Validation images are encoded (posterior means), one latent coordinate is
replaced by a fresh draw from its prior N(0, 1) (or, ``resample="posterior"``,
by another image's code of that coordinate), the latents are decoded and
classified by ``f``. The drop is measured against the *re-encoded* accuracy
(images encoded and decoded unchanged), so the VAE's own reconstruction error
is not charged to the factor. A causal factor should drop accuracy a lot
(higher = the factor matters more to ``f``); a noncausal factor ~0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from metrics.declaration import Metric
from metrics.information_flow import classify_latents


@dataclass(frozen=True)
class AccuracyDrop:
    original: float  # accuracy of f on the images themselves
    reencoded: float  # accuracy of f on decode(encode(x))
    per_factor: torch.Tensor  # (D,) accuracy with factor d resampled
    drop: torch.Tensor  # (D,) reencoded - per_factor; higher = factor matters more


@torch.no_grad()
def accuracy_drop(encode: Callable[[torch.Tensor], torch.Tensor], decode: Callable[[torch.Tensor], torch.Tensor],
                  classify: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, labels: torch.Tensor,
                  *, generator: torch.Generator | None = None, chunk_size: int = 256,
                  resample: str = "prior") -> AccuracyDrop:
    """Per-factor accuracy drop of ``classify`` on ``images`` (N, C, H, W) with ``labels`` (N,).

    ``resample``: where the replaced factor is drawn from. ``"prior"`` (GCE Fig. 5b): N(0, 1).
    ``"posterior"``: the aggregate posterior, i.e. the same factor's code of another image of the
    batch (a random permutation per factor), for a model whose codes do not fill its prior.
    All N * D modified latents are decoded and classified in one batched pass
    (in chunks of ``chunk_size``).
    """
    if resample not in ("prior", "posterior"):
        raise ValueError(f"resample must be 'prior' or 'posterior', got {resample!r}")
    if len(images) != len(labels) or len(images) == 0:
        raise ValueError("images and labels must be non-empty and of the same length")
    device = labels.device
    z = torch.cat([encode(images[i:i + chunk_size]) for i in range(0, len(images), chunk_size)])  # (N, D)
    n, d = z.shape
    labels_dev = labels.to(z.device)
    original = torch.cat([classify(images[i:i + chunk_size].to(z.device)).argmax(-1)
                          for i in range(0, n, chunk_size)]) == labels_dev
    reencoded = classify_latents(decode, classify, z, chunk_size).argmax(-1) == labels_dev
    resampled = z.unsqueeze(0).repeat(d, 1, 1)  # (D, N, D): block d has factor d redrawn
    if resample == "prior":
        draws = torch.randn((d, n), generator=generator).to(z.device)
    else:  # factor f of image i takes factor f's code of image perm_f[i]
        perm = torch.rand((d, n), generator=generator).argsort(1).to(z.device)  # (D, N) a permutation per factor
        draws = z.T.gather(1, perm)
    factor = torch.arange(d, device=z.device)
    resampled[factor, :, factor] = draws
    correct = classify_latents(decode, classify, resampled.flatten(0, 1), chunk_size).argmax(-1)
    per_factor = (correct.view(d, n) == labels_dev).float().mean(1)
    re_acc = reencoded.float().mean()
    return AccuracyDrop(original=float(original.float().mean()), reencoded=float(re_acc),
                        per_factor=per_factor.to(device), drop=(re_acc - per_factor).to(device))


#: the accuracy-drop rows (bench.execute.scoring.score_latent), in column order
DECLARED = (
    Metric("accuracy_drop_causal", capability="latent", unit="fraction", higher_is_better=True,
           aggregation="mean", function=accuracy_drop,
           description="accuracy drop when a causal factor is resampled from its prior, mean over the causal "
                       "factors (GCE Fig. 5b)"),
    Metric("accuracy_drop_noncausal", capability="latent", unit="fraction", higher_is_better=False,
           aggregation="max", function=accuracy_drop,
           description="accuracy drop when a noncausal factor is resampled from its prior, the largest over the "
                       "noncausal factors: should be ~0"),
    Metric("accuracy_drop_causal_posterior", capability="latent", unit="fraction", higher_is_better=True,
           aggregation="mean", function=accuracy_drop,
           description="accuracy_drop_causal with the factor replaced by another validation image's code "
                       "(aggregate posterior)"),
    Metric("accuracy_drop_noncausal_posterior", capability="latent", unit="fraction", higher_is_better=False,
           aggregation="max", function=accuracy_drop,
           description="accuracy_drop_noncausal with the factor replaced by another validation image's code"),
    Metric("accuracy_drop_factor", capability="latent", unit="fraction", higher_is_better=None,
           aggregation="per-factor", function=accuracy_drop,
           description="accuracy drop of each single latent factor (GCE Fig. 5b)"),
    Metric("reencoded_accuracy", capability="latent", unit="fraction", higher_is_better=True,
           aggregation="mean", function=accuracy_drop,
           description="accuracy of f on decode(encode(x)) of the validation images"),
)

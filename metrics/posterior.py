"""Probing a latent explainer from its aggregate posterior instead of its prior.

The information-flow estimator (GCE Algorithm 2) draws alpha and beta independently from N(0, I), the
prior GCE is trained under. A model whose codes do not fill that prior (the supervised VAE's z1 sits near
class centroids at about +-3 with s.d. 2-3.5) is then probed off its data. Decoding ``q(z)`` with ``q``
from :func:`aggregate_posterior_map` probes it where real images put it, with the estimator unchanged:
``information_flow(lambda z: decode(q(z)), ...)``.
"""

from __future__ import annotations

from typing import Callable

import torch


def aggregate_posterior_map(codes: torch.Tensor, n_causal: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """A map from standard-normal latents ``(N, D)`` to draws of the aggregate posterior, block by block.

    ``codes`` ``(n, D)``: the encodings of real images. The causal block ``[0, n_causal)`` of a draw is the
    causal block of one real code, the noncausal block ``[n_causal, D)`` that of another, independently
    chosen: row floor(n * Phi(z_0)) for the first, floor(n * Phi(z_k)) for the second. The blocks stay
    independent, as the estimator assumes (alpha independent of beta), while the coordinates within a
    block keep the pairings real images give them (the SVAE's two z1 coordinates sit together near one
    class centroid; drawing them apart would probe combinations no image has). A block's draw depends only
    on that block's first coordinate, so a latent whose alpha block is fixed across the beta draws (the
    estimator's inner loop) keeps one causal code.
    """
    if codes.ndim != 2 or len(codes) < 2:
        raise ValueError(f"need codes of shape (n >= 2, D), got {tuple(codes.shape)}")
    if not 1 <= n_causal <= codes.shape[1]:
        raise ValueError(f"n_causal must be in [1, {codes.shape[1]}], got {n_causal}")
    codes = codes.detach()
    n, k = len(codes), n_causal

    def row(z: torch.Tensor) -> torch.Tensor:  # (N,) standard normal -> (N,) row index, uniform over codes
        return (torch.special.ndtr(z) * n).long().clamp_(0, n - 1)

    def to_posterior(z: torch.Tensor) -> torch.Tensor:
        z = z.to(codes)
        out = codes[row(z[:, 0]), :].clone()  # (N, D): the causal block (and a placeholder noncausal one)
        if k < codes.shape[1]:
            out[:, k:] = codes[row(z[:, k]), k:]  # the noncausal block of an independently drawn code
        return out

    return to_posterior

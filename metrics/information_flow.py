"""Information flow I(alpha; Y) of a generative explainer's latent factors.

GCE (O'Shaughnessy et al., 2020), Eq. 2 and Algorithm 2 (App. D) with N_x = 1:

    I(alpha; Y) = E_alpha[ sum_y p(y|alpha) log p(y|alpha) ] - sum_y p(y) log p(y),
    p(y|alpha) ~= 1/N_beta sum_j f(g(alpha, beta_j)),   p(y) ~= 1/N_alpha sum_i p(y|alpha_i),

with alpha ~ N(0, I_K), beta ~ N(0, I_L), Y the classifier's output. In nats;
higher means the factors control the classifier more; bounded by log M.

Algorithm 2 is a double loop over samples; here all N_alpha * N_beta latents
are decoded and classified as one batch, split into chunks only to bound
memory. The result is differentiable in ``decode``'s parameters, so GCE trains
through it.

Bias. This plug-in estimate is biased upwards at finite N_beta: the noise of
the N_beta-sample mean p(y|alpha_i) looks like dependence on alpha, about
(M-1)/(2 N_beta) nats on a decoder that ignores alpha (0.020, 0.005, 0.001
at N_beta = 25, 100, 400 with M = 2). ``bias_correction="jackknife"`` removes
the 1/N_beta term with a delete-one-beta jackknife (Quenouille 1956; Tukey
1958; Efron & Stein 1981). Not Miller-Madow: its (M-1)/(2N) is derived for
hard counts and over-corrects when the classifier outputs soft probabilities
(docs/design.md, "Metric protocols"); the jackknife assumes nothing about how
p(y|x) is distributed. The leaderboard reports the jackknife value; the default
stays ``"none"`` (the plug-in) so GCE's training objective is unchanged.
"""

from __future__ import annotations

from typing import Callable

import torch

from metrics.declaration import Metric

Decode = Callable[[torch.Tensor], torch.Tensor]
Classify = Callable[[torch.Tensor], torch.Tensor]

#: guard inside the logs (as the GCE code): p log p -> 0 as p -> 0, but log 0 = -inf
EPS = 1e-8

#: values of ``bias_correction``: "none" = the plug-in of Algorithm 2, "jackknife" = delete-one-beta jackknife
BIAS_CORRECTIONS = ("none", "jackknife")

#: CPU chunk size. For the GCE Table 1/2 networks (channels-last weights) on 2
#: cores the time per sample is lowest at 25-32 samples a pass and grows from
#: ~100 up, where the activations (64x24x24 floats per sample in the
#: classifier) spill L2 (tests/benchmarks/test_information_flow_speed.py).
CPU_CHUNK = 32
#: budget of activation memory per CUDA chunk, as a fraction of free memory
CUDA_MEMORY_FRACTION = 0.5
#: bytes one sample needs through the Table 1/2 networks without autograd (measured upper bound)
CUDA_BYTES_PER_SAMPLE = 1 << 20


def resolve_device(device: torch.device | str | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def auto_chunk_size(n_samples: int, device: torch.device) -> int:
    """How many latents to decode and classify at once on ``device``."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return max(1, min(n_samples, int(free * CUDA_MEMORY_FRACTION) // CUDA_BYTES_PER_SAMPLE))
    return min(n_samples, CPU_CHUNK)


def classify_latents(decode: Decode, classify: Classify, z: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """``classify(decode(z))`` for ``z`` of shape (N, D), ``chunk_size`` rows at a time -> (N, M)."""
    return torch.cat([classify(decode(z[i:i + chunk_size])) for i in range(0, z.shape[0], chunk_size)])


def _check_bias_correction(bias_correction: str, n_beta: int) -> None:
    if bias_correction not in BIAS_CORRECTIONS:
        raise ValueError(f"bias_correction must be one of {BIAS_CORRECTIONS}, got {bias_correction!r}")
    if bias_correction == "jackknife" and n_beta < 2:
        raise ValueError(f"the jackknife leaves out one beta draw at a time: needs n_beta >= 2, got {n_beta}")


def _check_counts(n_causal: int, n_noncausal: int, n_alpha: int, n_beta: int) -> None:
    if n_causal < 1 or n_noncausal < 0 or n_alpha < 1 or n_beta < 1:
        raise ValueError("need n_causal >= 1, n_noncausal >= 0, n_alpha >= 1, n_beta >= 1")


def _plugin_mi(p_y_given_alpha: torch.Tensor) -> torch.Tensor:
    """Plug-in I(alpha; Y) from p(y|alpha_i) of shape (..., N_alpha, M) -> (...) in nats."""
    p_y = p_y_given_alpha.mean(dim=-2)  # (..., M)
    neg_cond_entropy = (p_y_given_alpha * torch.log(p_y_given_alpha + EPS)).sum(-1).mean(-1)
    entropy = -(p_y * torch.log(p_y + EPS)).sum(-1)
    return neg_cond_entropy + entropy


def mutual_information_from_probs(probs: torch.Tensor, *, bias_correction: str = "none") -> torch.Tensor:
    """I(alpha; Y) from class probabilities grouped by alpha sample.

    ``probs``: (..., N_alpha, N_beta, M), the classifier's probabilities for
    each (alpha_i, beta_ij); leading dimensions are independent estimates.
    Returns (...) in nats; higher means Y depends more on alpha.

    ``bias_correction``:
        ``"none"`` (default): the plug-in of GCE Eq. 2 / the last two steps of
        Algorithm 2. Biased upwards by about (M-1)/(2 N_beta), never negative.
        This is what GCE trains on; the default must stay bit-identical.
        ``"jackknife"``: delete-one-beta jackknife (Quenouille 1956; Tukey
        1958; Efron & Stein 1981). With I_(-j) the plug-in on the tensor
        without beta column j (beta_ij left out of every alpha group i),

            I_jack = N_beta I_full - (N_beta - 1) mean_j I_(-j),

        which cancels the O(1/N_beta) bias term (an O(1/N_beta^2) remains).
        It does not remove the O(1/N_alpha) downward bias of the H(Y) term,
        about -sum_y Var_alpha p(y|alpha) / (2 p(y) N_alpha) (-0.0017 nats
        for p(Y=1|alpha) = Phi(alpha) at N_alpha = 100): keep N_alpha large.
        Needs N_beta >= 2. Unlike the plug-in it can come out slightly below
        0 (alpha-blind decoder) or above log M; it is not clipped, since
        clipping would bias it again. Computed batched, in float64, and
        returned in ``probs``' dtype; differentiable like the plug-in.
    """
    _check_bias_correction(bias_correction, probs.shape[-2])
    if bias_correction == "none":
        return _plugin_mi(probs.mean(dim=-2))  # p(y|alpha): (..., N_alpha, M)
    n_beta = probs.shape[-2]
    # float64: the jackknife multiplies the difference I_full - mean_j I_(-j) by N_beta - 1
    p = probs.to(torch.float64) if probs.dtype != torch.float64 else probs
    total = p.sum(dim=-2, keepdim=True)  # (..., N_alpha, 1, M)
    leave_one_out = (total - p) / (n_beta - 1)  # (..., N_alpha, N_beta, M): p(y|alpha_i) without beta_ij
    # the left-out index j becomes a batch dimension ahead of alpha: (..., N_beta, N_alpha, M)
    i_minus_j = _plugin_mi(leave_one_out.transpose(-3, -2))  # (..., N_beta)
    i_full = _plugin_mi(p.mean(dim=-2))  # (...)
    return (n_beta * i_full - (n_beta - 1) * i_minus_j.mean(dim=-1)).to(probs.dtype)


def _normal(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    # draw on the generator's device (CPU by default) so a seed gives the same
    # latents whatever device the networks run on
    gen_device = generator.device if generator is not None else torch.device("cpu")
    return torch.randn(shape, generator=generator, device=gen_device).to(device)


def information_flow(decode: Decode, classify: Classify, n_causal: int, n_noncausal: int,
                     n_alpha: int, n_beta: int, *, generator: torch.Generator | None = None,
                     device: torch.device | str | None = None, chunk_size: int | None = None,
                     bias_correction: str = "none") -> torch.Tensor:
    """Sample-based estimate of I(alpha; Y) in nats (GCE Eq. 2, Algorithm 2 with N_x = 1).

    Args:
        decode: maps latents ``(N, n_causal + n_noncausal)`` to inputs ``(N, C, H, W)``;
            may be stochastic (a sample of p(x | alpha, beta)).
        classify: maps inputs to class probabilities ``(N, M)``.
        n_causal: K, the number of leading latent coordinates that form alpha.
        n_noncausal: L, the remaining coordinates (beta).
        n_alpha, n_beta: numbers of alpha samples and of beta samples per alpha.
        generator: source of the latent draws (CPU generator: same draws on any device).
        device: where to decode and classify; default CUDA when available, else CPU.
        chunk_size: latents per forward pass; ``None`` chooses one that fits memory.
            The result does not depend on it beyond float rounding.
        bias_correction: ``"none"`` (default, the plug-in GCE trains on; biased up by
            about (M-1)/(2 n_beta)) or ``"jackknife"`` (delete-one-beta jackknife over the
            beta draws, for reporting; needs n_beta >= 2). See :func:`mutual_information_from_probs`.

    Returns:
        A 0-dim tensor, differentiable w.r.t. whatever ``decode`` depends on.
        Higher is better for a causal factor; 0 <= I <= log M up to sampling error
        (the jackknife value may stray slightly outside).

    >>> import torch
    >>> decode = lambda z: z[:, :1]                       # x = alpha
    >>> classify = lambda x: torch.cat([(x > 0).float(), (x <= 0).float()], 1)
    >>> round(float(information_flow(decode, classify, 1, 1, 400, 4, device="cpu",
    ...       generator=torch.Generator().manual_seed(0))), 2)   # Y = sign(alpha): log 2
    0.69
    """
    _check_counts(n_causal, n_noncausal, n_alpha, n_beta)
    _check_bias_correction(bias_correction, n_beta)  # before any decoding
    probs = latent_class_probs(decode, classify, n_causal, n_noncausal, n_alpha, n_beta, generator=generator,
                               device=device, chunk_size=chunk_size)
    return mutual_information_from_probs(probs, bias_correction=bias_correction)


def latent_class_probs(decode: Decode, classify: Classify, n_causal: int, n_noncausal: int, n_alpha: int,
                       n_beta: int, *, generator: torch.Generator | None = None,
                       device: torch.device | str | None = None, chunk_size: int | None = None) -> torch.Tensor:
    """The classifier's probabilities ``(n_alpha, n_beta, M)`` for the latents :func:`information_flow`
    draws (the same draws for the same generator): several estimates from one decoding, e.g. the plug-in
    and the jackknife, through :func:`mutual_information_from_probs`."""
    _check_counts(n_causal, n_noncausal, n_alpha, n_beta)
    device = resolve_device(device)
    alpha = _normal((n_alpha, 1, n_causal), generator, device).expand(n_alpha, n_beta, n_causal)
    beta = _normal((n_alpha, n_beta, n_noncausal), generator, device)
    z = torch.cat([alpha, beta], dim=-1).reshape(n_alpha * n_beta, n_causal + n_noncausal)
    chunk = chunk_size or auto_chunk_size(z.shape[0], device)
    probs = classify_latents(decode, classify, z, chunk)  # (n_alpha * n_beta, M)
    return probs.view(n_alpha, n_beta, -1)


def information_flow_per_factor(decode: Decode, classify: Classify, n_latent: int, n_alpha: int, n_beta: int,
                                *, generator: torch.Generator | None = None,
                                device: torch.device | str | None = None,
                                chunk_size: int | None = None, bias_correction: str = "none") -> torch.Tensor:
    """I(z_d; Y) for each single latent coordinate d, the others averaged over (GCE Fig. 5a).

    For factor d the outer samples fix z_d and the inner samples redraw every
    other coordinate. All factors are estimated in one batched pass of
    ``n_latent * n_alpha * n_beta`` latents. Returns ``(n_latent,)`` in nats.
    ``bias_correction`` as in :func:`information_flow`; the jackknife leaves out
    one inner draw at a time, separately for each factor.
    """
    if n_latent < 1 or n_alpha < 1 or n_beta < 1:
        raise ValueError("need n_latent, n_alpha, n_beta >= 1")
    _check_bias_correction(bias_correction, n_beta)
    device = resolve_device(device)
    z = _normal((n_latent, n_alpha, n_beta, n_latent), generator, device)
    fixed = _normal((n_latent, n_alpha, 1), generator, device).expand(n_latent, n_alpha, n_beta)
    factor = torch.arange(n_latent, device=device)
    z[factor, :, :, factor] = fixed[factor]  # coordinate d of block d is shared within each alpha group
    z = z.reshape(-1, n_latent)  # (n_latent * n_alpha * n_beta, n_latent)
    chunk = chunk_size or auto_chunk_size(z.shape[0], device)
    probs = classify_latents(decode, classify, z, chunk)
    # (n_latent, n_alpha, n_beta, M): one independent estimate per factor
    return mutual_information_from_probs(probs.view(n_latent, n_alpha, n_beta, -1), bias_correction=bias_correction)


def information_flow_loop(decode: Decode, classify: Classify, n_causal: int, n_noncausal: int,
                          n_alpha: int, n_beta: int, *, batch_beta: bool, generator: torch.Generator | None = None,
                          device: torch.device | str | None = None) -> torch.Tensor:
    """Algorithm 2 as written, for checking and timing :func:`information_flow`.

    ``batch_beta=False`` is the per-sample double loop of the paper;
    ``batch_beta=True`` runs one pass of N_beta samples per alpha (the authors'
    code). Draws the same latents as :func:`information_flow` for the same
    generator, so the three agree up to float rounding.
    """
    device = resolve_device(device)
    alpha = _normal((n_alpha, 1, n_causal), generator, device)
    beta = _normal((n_alpha, n_beta, n_noncausal), generator, device)
    p_y_given_alpha = []
    for i in range(n_alpha):
        z = torch.cat([alpha[i].expand(n_beta, n_causal), beta[i]], dim=-1)  # (n_beta, D)
        if batch_beta:
            p_y_given_alpha.append(classify(decode(z)).mean(0))
        else:
            p_y_given_alpha.append(sum(classify(decode(z[j:j + 1]))[0] for j in range(n_beta)) / n_beta)
    probs = torch.stack(p_y_given_alpha).unsqueeze(1)  # (n_alpha, 1, M): already averaged over beta
    return mutual_information_from_probs(probs)


#: the information-flow rows (bench.execute.scoring.score_latent), in column order
DECLARED = (
    Metric("information_flow", capability="latent", unit="nats", higher_is_better=True,
           aggregation="per-seed", function=mutual_information_from_probs,
           description="I(alpha; Y) of the causal factors jointly (GCE Eq. 2, Algorithm 2), alpha and beta from "
                       "the prior N(0, I), jackknife-corrected over the beta draws"),
    Metric("information_flow_noncausal", capability="latent", unit="nats", higher_is_better=False,
           aggregation="per-seed", function=mutual_information_from_probs,
           description="I(beta; Y) of the noncausal factors jointly, jackknife-corrected: should be ~0"),
    Metric("information_flow_plugin", capability="latent", unit="nats", higher_is_better=None,
           aggregation="per-seed", function=mutual_information_from_probs,
           description="information_flow without the bias correction (Algorithm 2's plug-in; biased up by "
                       "~(M-1)/(2 N_beta))"),
    Metric("information_flow_noncausal_plugin", capability="latent", unit="nats", higher_is_better=None,
           aggregation="per-seed", function=mutual_information_from_probs,
           description="information_flow_noncausal without the bias correction"),
    Metric("information_flow_posterior", capability="latent", unit="nats", higher_is_better=True,
           aggregation="per-seed", function=mutual_information_from_probs,
           description="information_flow with the latents drawn from the aggregate posterior (the causal block of "
                       "one validation image's code, the noncausal block of another) instead of the prior"),
    Metric("information_flow_noncausal_posterior", capability="latent", unit="nats", higher_is_better=False,
           aggregation="per-seed", function=mutual_information_from_probs,
           description="information_flow_noncausal with the latents drawn from the aggregate posterior"),
    Metric("information_flow_factor", capability="latent", unit="nats", higher_is_better=None,
           aggregation="per-factor", function=information_flow_per_factor,
           description="I(z_d; Y) of each single latent factor, others averaged over (GCE Fig. 5a), "
                       "jackknife-corrected"),
)

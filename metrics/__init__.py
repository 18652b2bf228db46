"""Pure scoring functions, and the thin record of what each leaderboard number means.

The functions live in the submodules (``information_flow``, ``accuracy_drop``)
and take tensors and callables; they do not need the runner.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricInfo:
    name: str
    higher_is_better: bool | None  # None: a diagnostic with no better direction
    capability: str  # the explainer capability it needs
    unit: str
    description: str

    @property
    def arrow(self) -> str:
        return {True: "↑", False: "↓", None: ""}[self.higher_is_better]


METRICS: dict[str, MetricInfo] = {m.name: m for m in [
    MetricInfo("information_flow", True, "latent", "nats",
               "I(alpha; Y) of the causal factors jointly (GCE Eq. 2, Algorithm 2)"),
    MetricInfo("information_flow_noncausal", False, "latent", "nats",
               "I(beta; Y) of the noncausal factors jointly: should be ~0"),
    MetricInfo("information_flow_factor", None, "latent", "nats",
               "I(z_d; Y) of each single latent factor, others averaged over (GCE Fig. 5a)"),
    MetricInfo("accuracy_drop_causal", True, "latent", "fraction",
               "mean accuracy drop when a causal factor is resampled from its prior (GCE Fig. 5b)"),
    MetricInfo("accuracy_drop_noncausal", False, "latent", "fraction",
               "largest accuracy drop when a noncausal factor is resampled: should be ~0"),
    MetricInfo("accuracy_drop_factor", None, "latent", "fraction",
               "accuracy drop of each single latent factor (GCE Fig. 5b)"),
    MetricInfo("reencoded_accuracy", True, "latent", "fraction",
               "accuracy of f on decode(encode(x)) of the validation images"),
    MetricInfo("fit_seconds", None, "fit", "s", "time the fit took when it was trained (kept when loaded from the cache)"),
    MetricInfo("information_flow_seconds", None, "latent", "s",
               "time of one information-flow estimate at the suite's (N_alpha, N_beta), on the run's device"),
]}

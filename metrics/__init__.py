"""Pure scoring functions, and the thin record of what each leaderboard number means.

The functions live in the submodules (``information_flow``, ``accuracy_drop``, ``fid``, ``sweep``)
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
               "I(alpha; Y) of the causal factors jointly (GCE Eq. 2, Algorithm 2), alpha and beta from the prior "
               "N(0, I), jackknife-corrected over the beta draws"),
    MetricInfo("information_flow_noncausal", False, "latent", "nats",
               "I(beta; Y) of the noncausal factors jointly, jackknife-corrected: should be ~0"),
    MetricInfo("information_flow_plugin", None, "latent", "nats",
               "information_flow without the bias correction (Algorithm 2's plug-in; biased up by ~(M-1)/(2 N_beta))"),
    MetricInfo("information_flow_noncausal_plugin", None, "latent", "nats",
               "information_flow_noncausal without the bias correction"),
    MetricInfo("information_flow_posterior", True, "latent", "nats",
               "information_flow with the latents drawn from the aggregate posterior (the causal block of one "
               "validation image's code, the noncausal block of another) instead of the prior"),
    MetricInfo("information_flow_noncausal_posterior", False, "latent", "nats",
               "information_flow_noncausal with the latents drawn from the aggregate posterior"),
    MetricInfo("information_flow_factor", None, "latent", "nats",
               "I(z_d; Y) of each single latent factor, others averaged over (GCE Fig. 5a), jackknife-corrected"),
    MetricInfo("accuracy_drop_causal", True, "latent", "fraction",
               "accuracy drop when a causal factor is resampled from its prior, mean over the causal factors "
               "(GCE Fig. 5b)"),
    MetricInfo("accuracy_drop_noncausal", False, "latent", "fraction",
               "accuracy drop when a noncausal factor is resampled from its prior, the largest over the noncausal "
               "factors: should be ~0"),
    MetricInfo("accuracy_drop_causal_posterior", True, "latent", "fraction",
               "accuracy_drop_causal with the factor replaced by another validation image's code (aggregate posterior)"),
    MetricInfo("accuracy_drop_noncausal_posterior", False, "latent", "fraction",
               "accuracy_drop_noncausal with the factor replaced by another validation image's code"),
    MetricInfo("accuracy_drop_factor", None, "latent", "fraction",
               "accuracy drop of each single latent factor (GCE Fig. 5b)"),
    MetricInfo("reencoded_accuracy", True, "latent", "fraction",
               "accuracy of f on decode(encode(x)) of the validation images"),
    MetricInfo("invariance_area", True, "latent", "fraction",
               "area under the invariance curve over sigma in [0.1, 5] / 4.9: fraction of test images whose f-label "
               "survives redrawing the noncausal latents from N(0, sigma^2) (SVAE Section 3.0.1, Fig. 2)"),
    MetricInfo("invariance_sigma1", True, "latent", "fraction",
               "the invariance curve at sigma = 1, the prior's scale"),
    MetricInfo("head_agreement", True, "latent", "fraction",
               "test images on which an explainer's own classification head agrees with f (SVAE Eq. 7)"),
    MetricInfo("removal_morf_auc", False, "saliency", "fraction",
               "area under f's accuracy as the most relevant pixels (by the map's positive part, the exaggeration "
               "paper's protocol) are replaced by uniform noise, 0 to 100% (Samek et al. 2016; exaggeration Fig. 4c), "
               "mean over random orders of tied pixels: low = the map found what f uses"),
    MetricInfo("removal_lerf_auc", True, "saliency", "fraction",
               "area under f's accuracy as the least relevant pixels are replaced first: high = the pixels the "
               "map calls irrelevant are"),
    MetricInfo("removal_gap", True, "saliency", "fraction", "removal_lerf_auc - removal_morf_auc"),
    MetricInfo("removal_morf_probability_auc", False, "saliency", "probability",
               "area under f's mean probability of the original class, most relevant pixels removed first"),
    MetricInfo("removal_morf_auc_tie_sd", None, "saliency", "fraction",
               "s.d. of removal_morf_auc over the random orders of tied pixels"),
    MetricInfo("removal_lerf_auc_tie_sd", None, "saliency", "fraction",
               "s.d. of removal_lerf_auc over the random orders of tied pixels"),
    MetricInfo("removal_gap_tie_sd", None, "saliency", "fraction",
               "s.d. of removal_gap over the random orders of tied pixels"),
    MetricInfo("saliency_gini", True, "saliency", "index",
               "mean Gini index of |map|: sparsity (GANMEX App. B.2; 0 flat, 1 - 1/P a single pixel)"),
    MetricInfo("randomisation_correlation", False, "saliency", "correlation",
               "Spearman correlation of |map| on the input's non-zero pixels, before and after every layer of f is "
               "re-initialised (cascading from the top; Adebayo et al. 2018, GANMEX App. B.4): near 1 = the map "
               "does not depend on f; n/a for a map that never calls f"),
    MetricInfo("randomisation_correlation_signed", None, "saliency", "correlation",
               "the same on the signed maps (Adebayo et al. report both); a diagnostic, since a map whose sign "
               "flips under the randomised f correlates negatively and also depends on f"),
    MetricInfo("randomisation_correlation_all_pixels", None, "saliency", "correlation",
               "the same for |map| over all pixels, as Quantus MPRT: dominated by the pixels both maps leave at 0"),
    MetricInfo("saliency_seconds", None, "saliency", "s", "time to make one saliency map, on the run's device"),
    MetricInfo("fid", False, "sweep", "FID",
               "Frechet distance of generated sweep images (steps 1..S-1, a fixed number per explainer) to real "
               "test images that are not queries (exaggeration Table 1 'overall')"),
    MetricInfo("fid_present", False, "sweep", "FID",
               "FID of generated images and real images with f(x)[positive class] in [0.9, 1] (Table 1 'present')"),
    MetricInfo("fid_absent", False, "sweep", "FID",
               "FID of generated images and real images with f(x)[positive class] in [0, 0.1] (Table 1 'absent')"),
    MetricInfo("sweep_compatibility_pearson", True, "sweep", "correlation",
               "Pearson correlation of requested vs obtained target probability along counterfactual sweeps (Fig. 3)"),
    MetricInfo("sweep_compatibility_spearman", True, "sweep", "correlation",
               "Spearman correlation of requested vs obtained target probability (Fig. 3)"),
    MetricInfo("sweep_compatibility_mae", False, "sweep", "probability",
               "mean |requested - obtained| target probability along counterfactual sweeps"),
    MetricInfo("sweep_validity", True, "sweep", "fraction",
               "fraction of counterfactual sweeps whose last image f assigns to the target class"),
    MetricInfo("sweep_validity_independent", True, "sweep", "fraction",
               "fraction of counterfactual sweeps whose last image the FID feature network's own head (a classifier "
               "no explainer trained against) assigns to the target's dataset class"),
    MetricInfo("sweep_monotonicity", True, "sweep", "correlation",
               "mean Spearman correlation of the target probability with the step index"),
    MetricInfo("sweep_proximity", False, "sweep", "mean |pixel change|",
               "mean absolute pixel difference between the query and its counterfactual (the sweep's end)"),
    MetricInfo("sweep_noncausal_change", False, "latent", "probability",
               "mean |change of f's predicted-class probability| along sweeps of the noncausal factors: ~0"),
    MetricInfo("sweep_change_factor", None, "latent", "probability",
               "mean |change of f's predicted-class probability| along a sweep of each latent factor"),
    MetricInfo("ground_truth_mass", True, "saliency", "fraction",
               "ground-truth suites: share of |map| inside the planted region f uses (relevance mass accuracy, "
               "Arras et al. 2022), on the images that carry it"),
    MetricInfo("ground_truth_rank", True, "saliency", "fraction",
               "ground-truth suites: fraction of the region's pixels among the map's |region| most relevant pixels "
               "(relevance rank accuracy, Arras et al. 2022; ties counted in expectation)"),
    MetricInfo("ground_truth_change", True, "sweep", "fraction",
               "ground-truth suites: share of the total |pixel change| from the query to the sweep's end that lies "
               "inside the planted region"),
    MetricInfo("ground_truth_change_from_start", None, "sweep", "fraction",
               "ground_truth_change measured from the sweep's own first image (a reconstruction, for GCE and the "
               "SVAE) instead of the query: the sweep's edit without the reconstruction's error"),
    MetricInfo("content_kept", True, "sweep", "fraction",
               "ground-truth suites: fraction of sweeps whose end the FID feature network's head puts in the "
               "query's digit (a sweep should move the marker and leave the digit)"),
    MetricInfo("mode_preservation", True, "sweep", "fraction",
               "colored-mnist: fraction of sweeps whose end keeps the query's colour (dominant channel; GANMEX "
               "App. Fig. 9B)"),
    MetricInfo("ground_truth_change_causal", True, "latent", "fraction",
               "ground-truth suites: share of the change between the ends of a causal factor's latent sweep "
               "inside the planted region, mean over the causal factors (does alpha control the marker?)"),
    MetricInfo("ground_truth_change_factor", None, "latent", "fraction",
               "ground_truth_change_causal of each single latent factor"),
    MetricInfo("content_kept_causal", True, "latent", "fraction",
               "ground-truth suites: fraction of a causal factor's latent-sweep ends that keep the query's digit "
               "(the feature network's head), mean over the causal factors"),
    MetricInfo("content_kept_factor", None, "latent", "fraction", "content_kept_causal of each single latent factor"),
    MetricInfo("sweep_seconds", None, "sweep", "s", "time to make one sweep (per query image), on the run's device"),
    MetricInfo("fit_seconds", None, "fit", "s", "time the fit took when it was trained (kept when loaded from the cache)"),
    MetricInfo("information_flow_seconds", None, "latent", "s",
               "time of one information-flow estimate at the suite's (N_alpha, N_beta), on the run's device"),
]}

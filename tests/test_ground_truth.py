"""Ground-truth suites: each metric against closed forms, the constructions, the verification of the
planted truth on small trained black boxes (and its failure on black boxes that use something else), the
suite-file variants, the proxy-validity statistics, and one end-to-end spurious-mnist run with an oracle."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from bench.inputs import ground_truth
from bench.inputs.classifier import BlackBox, ClassifierConfig, train_classifier
from bench.inputs.data import load_dataset
from bench.errors import BenchError
from bench.inputs.suites import get_suite, load_suite_file
from explainers.base import Capability, Explainer
from explainers.registry import EXPLAINERS
from metrics import ground_truth as gt

REGION = ground_truth.marker_region((1, 28, 28))
SHARE = 9 / 784  # the marker's 3x3 pixels of a 28x28 image


# ----------------------------------------------------------------------------- metrics against closed forms


def test_a_map_inside_the_region_scores_mass_and_rank_1():
    maps = torch.rand(5, 1, 28, 28) * REGION  # relevance only inside the region (some pixels of it 0 or not)
    maps[:, :, 2, 2] += 0.1  # never an all-zero map
    assert torch.allclose(gt.relevance_mass(maps, REGION), torch.ones(5))
    inside = REGION.float().expand(5, 1, 28, 28) * (1 + torch.rand(5, 1, 28, 28))  # every region pixel > 0
    assert torch.allclose(gt.relevance_rank(inside, REGION), torch.ones(5))


def test_a_uniform_map_scores_the_regions_share_of_the_image():
    uniform = torch.full((3, 1, 28, 28), 0.7)
    assert torch.allclose(gt.relevance_mass(uniform, REGION), torch.full((3,), SHARE))
    assert torch.allclose(gt.relevance_rank(uniform, REGION), torch.full((3,), SHARE))  # ties in expectation
    zero = torch.zeros(2, 1, 28, 28)  # constant too: no pixel ranked above another
    assert torch.allclose(gt.relevance_mass(zero, REGION), torch.full((2,), SHARE))
    assert torch.allclose(gt.relevance_rank(zero, REGION), torch.full((2,), SHARE))


def test_mass_counts_absolute_relevance_summed_over_channels():
    maps = torch.zeros(1, 3, 28, 28)
    maps[0, 0, 1, 1], maps[0, 2, 1, 1] = -2.0, 1.0  # a pixel in the region, its channels of both signs: 3
    maps[0, 1, 20, 20] = 1.0  # outside: 1
    assert gt.relevance_mass(maps, REGION).item() == pytest.approx(0.75)


def test_rank_counts_ties_at_the_threshold_in_expectation():
    maps = torch.zeros(1, 1, 28, 28)
    maps[0, 0, 1, 1:4] = 2.0  # 3 region pixels clearly on top
    maps[0, 0, 2, 1:4] = 1.0  # 3 more region pixels tied with ...
    maps[0, 0, 20, 0:9] = 1.0  # ... 9 outside pixels, for the 6 places left of the top 9
    # expected hits: 3 + 6 * 3 / 12 = 4.5 of 9
    assert gt.relevance_rank(maps, REGION).item() == pytest.approx(4.5 / 9)


def test_a_sweep_that_changes_only_the_region_scores_change_1():
    start = torch.rand(4, 1, 28, 28)
    end = torch.where(REGION, torch.rand(4, 1, 28, 28), start)
    assert torch.allclose(gt.change_share(start, end, REGION), torch.ones(4))
    assert torch.allclose(gt.change_share(start, start + 0.1, REGION), torch.full((4,), SHARE))
    assert torch.equal(gt.change_share(start, start, REGION), torch.zeros(4))  # nothing changed: not the region


def test_mode_preservation_compares_the_dominant_channel():
    grey = torch.rand(6, 1, 28, 28)
    colour = torch.tensor([0, 1, 2, 0, 1, 2])
    start = ground_truth.colourise(grey, colour)
    assert gt.mode_preservation(start, start * 0.5) == 1.0
    assert gt.mode_preservation(start, ground_truth.colourise(grey, (colour + 1) % 3)) == 0.0
    half = torch.cat([start[:3], ground_truth.colourise(grey[3:], (colour[3:] + 2) % 3)])
    assert gt.mode_preservation(start, half) == 0.5


def test_map_degradations_move_the_mass_linearly_to_chance():
    maps = torch.zeros(4, 1, 28, 28)
    maps[:, :, 1:4, 1:4] = torch.rand(4, 1, 3, 3) + 0.1  # every relevance in the region: mass 1
    noise = torch.rand(4, 1, 28, 28)
    chance = gt.relevance_mass(noise, REGION)
    for level in (0.0, 0.25, 0.5, 0.75, 1.0):
        degraded = gt.degrade_maps(maps, level, noise)
        assert torch.allclose(gt.relevance_mass(degraded, REGION), (1 - level) + level * chance, atol=1e-6)
    assert torch.allclose(gt.degrade_maps(maps, 0.0, noise).flatten(1).sum(1), torch.ones(4))


def test_sweep_degradations_move_the_change_share_towards_chance():
    start = torch.rand(3, 1, 1, 28, 28) * 0.2 + 0.4  # away from 0 and 1: no clipping
    end = torch.where(REGION, start[:, 0] + 0.3, start[:, 0])  # changes the region only: share 1
    sweeps = start + torch.linspace(0, 1, 5).view(1, -1, 1, 1, 1) * (end.unsqueeze(1) - start)
    noise = torch.rand(3, 1, 28, 28)
    shares = [gt.change_share(start[:, 0], gt.degrade_sweeps(sweeps, level, noise)[:, -1], REGION).mean().item()
              for level in (0.0, 0.25, 0.5, 0.75)]
    assert shares[0] == pytest.approx(1.0) and shares == sorted(shares, reverse=True)
    assert shares[2] < 0.6 and shares[3] > SHARE  # graded, not swamped by the noise at the first level
    degraded = gt.degrade_sweeps(sweeps, 0.5, noise)
    assert torch.equal(degraded[:, 0], sweeps[:, 0])  # the start is left
    still = start.expand(-1, 5, -1, -1, -1)
    assert torch.equal(gt.degrade_sweeps(still, 0.5, noise), still)  # nothing changed: nothing to degrade


# ----------------------------------------------------------------------------- proxy validity


def test_spearman_agrees_with_scipy_on_ties():
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 4, 30).astype(float), rng.normal(size=30)
    assert gt.spearman(x, y) == pytest.approx(spearmanr(x, y).statistic)
    assert gt.spearman(np.ones(5), y[:5]) is None


def test_proxy_correlation_is_1_for_a_monotone_proxy_and_na_below_8_points():
    truth = np.arange(12.0)
    clusters = [f"e{i // 4}" for i in range(12)]
    exact = gt.proxy_correlation([truth ** 3], [truth], clusters, n_boot=200)
    assert exact.rho == pytest.approx(1.0) and exact.low == pytest.approx(1.0) and exact.n_explainers == 3
    reversed_ = gt.proxy_correlation([-truth, -truth], [truth, truth], clusters, n_boot=200)
    assert reversed_.rho == pytest.approx(-1.0)
    few = gt.proxy_correlation([truth[:7]], [truth[:7]], clusters[:7])
    assert few.rho is None and few.n_points == 7
    missing = np.where(np.arange(12) < 5, np.nan, truth)  # points without a value do not count
    assert gt.proxy_correlation([missing], [truth], clusters).rho is None


def test_proxy_correlation_interval_reflects_the_spread_over_explainers():
    rng = np.random.default_rng(1)
    truth = rng.normal(size=40)
    noisy = truth + rng.normal(scale=1.0, size=40)
    c = gt.proxy_correlation([noisy], [truth], [f"e{i // 4}" for i in range(40)], n_boot=500)
    assert c.low < c.rho < c.high and c.high - c.low > 0.1


def test_proxy_validity_table_signs_agreement_by_direction():
    from bench.outputs.validity import proxy_validity, to_markdown

    def record(offset: float) -> dict:
        details = {}
        for e in range(4):
            details[f"e{e}"] = {"proxy_points": [
                {"capability": "saliency", "level": level,
                 "values": {"ground_truth_mass": e + level + offset, "removal_morf_auc": -(e + level),
                            "removal_lerf_auc": e + level, "removal_gap": None, "saliency_gini": 1.0,
                            "randomisation_correlation": None}}
                for level in (0.0, 0.25, 0.5, 0.75)]}
        return {"metadata": {"explainer_details": details}}

    rows = {r["proxy"]: r for r in proxy_validity([record(0.0), record(0.1)], n_boot=100)}
    assert rows["removal_morf_auc"]["rho"] == pytest.approx(-1.0)  # lower-is-better proxy: agrees
    assert rows["removal_morf_auc"]["agreement"] == pytest.approx(1.0)
    assert rows["removal_lerf_auc"]["agreement"] == pytest.approx(1.0)
    assert rows["removal_gap"]["rho"] is None and rows["saliency_gini"]["rho"] is None  # no values / constant
    assert rows["removal_morf_auc"]["rho_explainers_only"] is None  # 4 explainers alone: below 8 points
    assert "n/a" in to_markdown(list(rows.values()))


# ----------------------------------------------------------------------------- constructions


@pytest.fixture(scope="module")
def spurious(mnist38):
    return load_dataset("spurious-mnist", (3, 8))


@pytest.fixture(scope="module")
def colored(mnist38):
    return load_dataset("colored-mnist", (3, 8))


def test_spurious_mnist_label_is_the_marker_and_independent_of_the_digit(spurious, mnist38):
    for split in ("train", "test"):
        data, truth = getattr(spurious, split), spurious.truth.splits[split]
        marked = (data.images[:, :, 1:4, 1:4] == 1.0).flatten(1).all(1)
        assert torch.equal(marked, truth["marker"]) and torch.equal(data.labels, truth["marker"].long())
        for digit in (3, 8):  # half of each digit marked: the digit says nothing about the label
            assert abs(truth["marker"][truth["digit"] == digit].float().mean().item() - 0.5) < 0.04
        assert torch.equal(truth["clean"], getattr(mnist38, split).images)  # the digits as MNIST has them
    assert spurious.classes == ("no-marker", "marker") and REGION.sum() == 9


def test_a_ground_truth_image_is_the_same_whichever_classes_are_kept(spurious):
    every = load_dataset("spurious-mnist", None)
    keep = torch.isin(every.truth.splits["test"]["digit"], torch.tensor([3, 8]))
    assert torch.equal(every.test.images[keep], spurious.test.images)
    with pytest.raises(BenchError, match="no digit 11"):
        load_dataset("colored-mnist", (3, 11))


def test_colored_mnist_draws_each_digit_in_one_random_colour(colored, mnist38):
    x, colour = colored.train.images, colored.truth.splits["train"]["colour"]
    assert colored.image_shape == (3, 28, 28) and colored.classes == (3, 8)
    assert torch.equal(gt.dominant_channel(x), colour)
    assert torch.equal(x.sum(1, keepdim=True), mnist38.train.images)  # one channel holds the digit, the others 0
    for label in (0, 1):  # colour independent of the label: each about a third within each class
        share = torch.bincount(colour[colored.train.labels == label], minlength=3).float() / (colored.train.labels == label).sum()
        assert (share - 1 / 3).abs().max() < 0.03


# ----------------------------------------------------------------------------- verification on trained black boxes


def _trained(data, epochs: int) -> BlackBox:
    network = train_classifier(data.train, 2, ClassifierConfig(epochs=epochs), seed=0, device=torch.device("cpu"),
                               log=lambda m: None)
    return BlackBox(network, 2, image_shape=data.image_shape)


def test_a_black_box_trained_on_spurious_mnist_follows_the_marker(spurious_run):
    """The run's own black box (GCE Table 1, one epoch: the smoke recipe), verified before anything is scored."""
    record = spurious_run[1]["metadata"]["ground_truth"]
    assert record["passed"] and record["n_images"] == 1984, record
    assert record["marker_flip"] >= 0.95 and record["digit_swap_flip"] <= 0.05


def test_the_verification_fails_a_black_box_that_reads_the_digit(spurious, black_box):
    """The mnist 3-vs-8 black box reads the digit: the check must say the planted truth is not what it uses."""
    record = ground_truth.verify(black_box, spurious, torch.device("cpu"))
    assert not record["passed"]
    assert record["marker_flip"] < 0.2 and record["digit_swap_flip"] > 0.8


def test_a_black_box_trained_on_colored_mnist_is_colour_blind(colored):
    record = ground_truth.verify(_trained(colored, 3), colored, torch.device("cpu"))  # the quick recipe
    assert record["passed"] and record["recolour_flip"] < 0.01, record


def test_the_verification_fails_a_black_box_that_reads_the_colour(colored):
    class ByColour(torch.nn.Module):  # class 1 iff the digit is red
        def forward(self, x):
            red = (gt.dominant_channel(x) == 0).float()
            return torch.stack([1 - red, red], 1) * 10

    record = ground_truth.verify(BlackBox(ByColour(), 2, image_shape=(3, 28, 28)), colored, torch.device("cpu"))
    assert not record["passed"] and record["recolour_flip"] > 0.5


# ----------------------------------------------------------------------------- suite files and variants


def test_the_built_in_ground_truth_suites_and_their_variants():
    colored_suite = get_suite("colored-mnist")
    assert colored_suite.dataset == "colored-mnist" and colored_suite.classes == (3, 8)
    cls = colored_suite.explainer_class("ganmex_sim_only")
    base = EXPLAINERS.get("ganmex_ig")
    assert issubclass(cls, base) and cls.name == "ganmex_sim_only" and cls.variant_of == "ganmex_ig"
    assert cls.fit_identity() == base.fit_identity()  # one fit family: the same seed as ganmex's
    assert cls.defaults["lambda_rec"] == 0.0 and cls.defaults["lambda_sim"] == base.defaults["lambda_sim"]
    neither = colored_suite.explainer_class("ganmex_neither").defaults
    assert neither["lambda_rec"] == neither["lambda_sim"] == 0.0
    assert get_suite("spurious-mnist").dataset == "spurious-mnist"


def test_a_variant_with_an_unknown_setting_or_base_is_a_one_line_error(tmp_path):
    path = tmp_path / "v.toml"
    path.write_text('name = "v"\n[dataset]\nsource = "mnist"\nclasses = [3, 8]\n[profiles.quick]\n'
                    '[variants.ig_short]\nof = "integrated_gradients"\nsettings = { n_stepz = 3 }\n')
    with pytest.raises(ValueError, match="unknown setting.*n_stepz"):
        load_suite_file(path).explainer_class("ig_short")
    path.write_text(path.read_text().replace('"integrated_gradients"', '"integrated_gradientz"')
                    .replace("n_stepz", "n_steps"))
    with pytest.raises(LookupError, match="integrated_gradients"):
        load_suite_file(path).explainer_class("ig_short")
    path.write_text(path.read_text().replace('of = "integrated_gradientz"\n', ""))
    with pytest.raises(BenchError, match="variants.ig_short.*needs 'of'"):
        load_suite_file(path)


# ----------------------------------------------------------------------------- end to end, with an oracle


class MarkerOracle(Explainer):
    """The right explanation of a spurious-mnist black box: the marker region as the map, and sweeps that
    paint the marker in (or take it out) and touch nothing else."""

    name = "marker_oracle"
    capabilities = frozenset({Capability.SWEEP, Capability.SALIENCY})

    def sweep(self, x, target, n_steps):
        marked = ground_truth.add_marker(x)
        unmarked = torch.where(REGION.to(x.device), torch.zeros_like(x), x)
        end = torch.where((target == 1).view(-1, 1, 1, 1), marked, unmarked)
        t = torch.linspace(0, 1, n_steps).view(1, -1, 1, 1, 1)
        return x.unsqueeze(1) + t * (end - x).unsqueeze(1)

    def saliency(self, x, target):
        return REGION.float().expand(len(x), *x.shape[1:]).clone()


@pytest.fixture(scope="module")
def spurious_run(mnist38, tmp_path_factory):
    from bench.execute.config import RunConfig
    from bench.execute.runner import run

    out = tmp_path_factory.mktemp("spurious") / "run"
    with EXPLAINERS.temporarily("marker_oracle", MarkerOracle):
        run(RunConfig(suite="spurious-mnist", profile="smoke", seed=0, device="cpu", out=out,
                      explainers=("marker_oracle", "pixel_blend", "saliency", "random")), log=lambda m: None)
    from bench.outputs.results import load_record

    return out, load_record(out)


def _value(record, explainer, metric):
    found = [r["value"] for r in record["results"] if r["explainer"] == explainer and r["metric"] == metric]
    assert len(found) == 1, (explainer, metric)
    return found[0]


def test_the_oracle_scores_perfectly_and_the_random_map_at_chance(spurious_run):
    out, record = spurious_run
    assert record["metadata"]["ground_truth"]["passed"]
    assert _value(record, "marker_oracle", "ground_truth_mass") == pytest.approx(1.0)
    assert _value(record, "marker_oracle", "ground_truth_rank") == pytest.approx(1.0)
    assert _value(record, "marker_oracle", "ground_truth_change") == pytest.approx(1.0)
    assert _value(record, "marker_oracle", "ground_truth_change_from_start") == pytest.approx(1.0)
    assert _value(record, "marker_oracle", "sweep_validity") == 1.0  # the marker alone moves f
    # the oracle leaves the digit: the judge keeps it about as often as it classifies a digit right
    assert _value(record, "marker_oracle", "content_kept") > 0.9
    # pixel_blend fades into another image: its change is mostly outside the marker, and the digit is a coin flip
    assert _value(record, "pixel_blend", "ground_truth_change") < 0.2
    assert _value(record, "pixel_blend", "content_kept") < _value(record, "marker_oracle", "content_kept")
    assert _value(record, "random", "ground_truth_mass") == pytest.approx(SHARE, rel=0.15)
    assert _value(record, "random", "ground_truth_rank") < 0.1


def test_a_ground_truth_run_writes_the_proxy_validity_table(spurious_run):
    out, record = spurious_run
    details = record["metadata"]["explainer_details"]
    oracle = [p for p in details["marker_oracle"]["proxy_points"] if p["capability"] == "saliency"]
    assert [p["level"] for p in oracle] == [0.0, 0.25, 0.5, 0.75]
    masses = [p["values"]["ground_truth_mass"] for p in oracle]
    assert masses == sorted(masses, reverse=True)  # more noise, less mass in the region
    text = (out / "leaderboard.md").read_text()
    assert "## Proxy validity" in text and "ground_truth_mass" in text
    assert "ground truth verified" in text
    assert (out / "proxy_validity.json").exists()
    assert math.isfinite(_value(record, "saliency", "ground_truth_mass"))


def test_mass_and_rank_agree_with_quantus_on_maps_without_ties():
    """Quantus' RelevanceMassAccuracy and RelevanceRankAccuracy (Arras et al.'s definitions) on the same
    |maps| and region: equal where no two pixels tie (Quantus breaks ties by sort order, we count them in
    expectation)."""
    quantus = pytest.importorskip("quantus")
    maps = torch.randn(6, 1, 28, 28)
    maps[:3, :, 1:4, 1:4] += 10.0  # some maps point at the region, some do not
    a = maps.abs().numpy().astype(np.float64)
    s = REGION.expand(6, 1, 28, 28).numpy()
    mass = quantus.RelevanceMassAccuracy(abs=True, normalise=False, disable_warnings=True).evaluate_batch(
        a_batch=a, s_batch=s)
    rank = quantus.RelevanceRankAccuracy(abs=True, normalise=False, disable_warnings=True).evaluate_batch(
        a_batch=a, s_batch=s)
    assert np.allclose(gt.relevance_mass(maps, REGION).numpy(), mass, atol=1e-6)
    assert np.allclose(gt.relevance_rank(maps, REGION).numpy(), rank)
    assert rank[:3].min() == 1.0 and rank[3:].max() < 0.5

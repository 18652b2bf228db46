"""FID against closed forms, and the Inception path's plumbing without the real weights."""

from __future__ import annotations

import warnings

import pytest
import torch

from metrics.fid import (FeatureNet, InceptionFeatures, extract_features, feature_statistics,
                         fid_inception_architecture, frechet_distance)


def test_equal_covariances_leave_the_squared_mean_difference():
    x = torch.randn(500, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    shift = torch.linspace(-1, 2, 8, dtype=torch.float64)
    # x + shift has exactly the sample covariance of x: the trace term is 0
    assert frechet_distance(x + shift, x) == pytest.approx(shift.pow(2).sum().item(), rel=1e-6)
    assert frechet_distance(x, x) == pytest.approx(0, abs=1e-6)


def test_scaled_covariance_closed_form():
    # b = 2a + 1 has S_b = 4 S_a, so Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) = Tr(5 S_a - 4 S_a) = Tr(S_a)
    a = torch.randn(1000, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) @ \
        torch.tensor([[1.0, 0.3, 0.0], [0.0, 0.8, -0.2], [0.1, 0.0, 1.5]], dtype=torch.float64)
    b = 2 * a + 1
    mean_gap = (a.mean(0) - b.mean(0)).pow(2).sum().item()
    expected = mean_gap + torch.cov(a.T).trace().item()
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(b, a) == pytest.approx(expected, rel=1e-6)  # symmetric


def test_fid_runs_on_a_scipy_whose_sqrtm_has_no_disp(monkeypatch):
    """SciPy after 1.16 drops sqrtm's ``disp``, which pytorch-fid 0.3 passes (there every FID would
    fail); the distance is then computed from SciPy's root, equal to the last digit here to the one with ``disp``."""
    import scipy.linalg

    a = torch.randn(400, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    b = 1.5 * a[:, [1, 0, 2, 3, 5, 4]] + 0.3
    before = frechet_distance(a, b)
    real = scipy.linalg.sqrtm

    def sqrtm(A):  # the newer signature: no disp
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return real(A, disp=True)

    monkeypatch.setattr(scipy.linalg, "sqrtm", sqrtm)
    assert frechet_distance(a, b) == before


def test_bad_feature_shapes_are_refused():
    with pytest.raises(ValueError, match="feature sizes differ"):
        frechet_distance(torch.randn(10, 3), torch.randn(10, 4))
    with pytest.raises(ValueError, match="N >= 2"):
        feature_statistics(torch.randn(1, 3))


def test_feature_net_gives_128_d_features_in_batches():
    net = FeatureNet(10).eval()
    images = torch.rand(70, 1, 28, 28)
    features = extract_features(net, images, batch_size=32)
    assert features.shape == (70, FeatureNet.feature_dim)
    assert torch.allclose(features, net.features(images), atol=1e-5)


def test_inception_path_reads_a_local_weights_file(tmp_path):
    """The plumbing of Inception FID: a (random) weights file with pytorch-fid's layout is loaded from
    disk, never downloaded, and grey 28x28 images give 2048-d pool3 features."""
    weights = tmp_path / "inception.pth"
    reference = fid_inception_architecture()
    torch.save(reference.state_dict(), weights)
    net = InceptionFeatures(weights)
    assert torch.equal(net.net.blocks[0][0].conv.weight, reference.Conv2d_1a_3x3.conv.weight)
    features = extract_features(net, torch.rand(3, 1, 28, 28))
    assert features.shape == (3, 2048) and torch.isfinite(features).all()


def test_inception_without_weights_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("GENEXBENCH_INCEPTION_WEIGHTS", str(tmp_path / "missing.pth"))
    with pytest.raises(FileNotFoundError, match="cannot be downloaded"):
        InceptionFeatures()
    garbage = tmp_path / "garbage.pth"
    torch.save({"not": torch.zeros(1)}, garbage)
    with pytest.raises(ValueError, match="not pytorch-fid's Inception weights"):
        InceptionFeatures(garbage)

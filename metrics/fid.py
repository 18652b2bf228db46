"""Fréchet distance between image sets (FID; Heusel et al. 2017), as in the exaggeration paper's Table 1.

FID(A, B) = |mu_A - mu_B|^2 + Tr(S_A + S_B - 2 (S_A S_B)^(1/2)) of the Gaussian
statistics of *features* of the two sets; the distance itself is
``pytorch_fid.fid_score.calculate_frechet_distance``.

Which features matter as much as the formula: FID values are comparable only
under the same feature extractor, so every result names it.

- ``FeatureNet``: the default. Inception weights cannot be downloaded here, so
  the suite trains this small CNN on all classes of its dataset (a broader task
  than the black box's, as Inception's ImageNet is) and FID uses its 128-d
  penultimate layer. It is never the classifier under test.
- ``InceptionFeatures``: pytorch-fid's FID Inception (pool3, 2048-d) when its
  weights file is on disk.
"""

from __future__ import annotations

import os
import warnings
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from metrics.declaration import Metric


INCEPTION_WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"


def feature_statistics(features: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(D,)`` and covariance ``(D, D)`` (unbiased, as pytorch-fid) of features ``(N, D)``, float64."""
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"need features of shape (N >= 2, D), got {tuple(features.shape)}")
    f = features.detach().double().cpu().numpy()
    return f.mean(axis=0), np.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1])


class _Linalg:
    """``scipy.linalg`` as pytorch-fid 0.3 calls it: ``sqrtm(A, disp=False)`` returning ``(sqrt, error)``.
    SciPy 1.16 deprecated ``disp`` and later SciPy has none (pytorch-fid's call then fails with a TypeError,
    so every FID does); there the square root is SciPy's own, returned as pytorch-fid expects."""

    def __getattr__(self, name: str):
        import scipy.linalg

        return getattr(scipy.linalg, name)

    @staticmethod
    def sqrtm(a, disp: bool = True, **kwargs):
        import inspect

        import scipy.linalg

        if "disp" in inspect.signature(scipy.linalg.sqrtm).parameters:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="The `disp` argument is deprecated",
                                        category=DeprecationWarning)
                return scipy.linalg.sqrtm(a, disp=disp, **kwargs)
        root = scipy.linalg.sqrtm(a, **kwargs)
        return root if disp else (root, None)


def frechet_distance(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """FID between two feature sets ``(N_a, D)`` and ``(N_b, D)``: pytorch-fid's computation, on any SciPy."""
    from pytorch_fid import fid_score

    if features_a.shape[1] != features_b.shape[1]:
        raise ValueError(f"feature sizes differ: {features_a.shape[1]} vs {features_b.shape[1]}")
    mu_a, sigma_a = feature_statistics(features_a)
    mu_b, sigma_b = feature_statistics(features_b)
    with mock.patch.object(fid_score, "linalg", _Linalg()):
        return float(fid_score.calculate_frechet_distance(mu_a, sigma_a, mu_b, sigma_b))


class FeatureNet(nn.Module):
    """Small CNN for 28x28 grey images: two conv blocks -> 128-d features -> class logits (for ``(C, H, W)``
    images: C input channels, features from 64 x H/4 x W/4).

    Trained by the suite (``bench.inputs.features``) on every class of its dataset; FID
    reads the 128-d pre-activation of the penultimate layer (dense: no dead ReLU units).
    """

    feature_dim = 128

    def __init__(self, n_classes: int, image_shape: tuple[int, int, int] = (1, 28, 28)) -> None:
        super().__init__()
        c, h, w = image_shape
        self.conv1 = nn.Conv2d(c, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.fc = nn.Linear(64 * (h // 4) * (w // 4), self.feature_dim)
        self.head = nn.Linear(self.feature_dim, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = F.max_pool2d(F.relu(self.conv1(x)), 2)  # (N, 32, 14, 14)
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)  # (N, 64, 7, 7)
        return self.fc(h.flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.relu(self.features(x)))


def default_inception_weights() -> Path:
    """Where pytorch-fid's weights would be: ``$GENEXBENCH_INCEPTION_WEIGHTS`` or torch hub's checkpoint cache."""
    if os.environ.get("GENEXBENCH_INCEPTION_WEIGHTS"):
        return Path(os.environ["GENEXBENCH_INCEPTION_WEIGHTS"])
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS_NAME


def inception_weights(weights: str | Path | None = None) -> Path:
    """The weights file Inception FID would read (``weights`` or the default); a clear error if it is absent."""
    path = Path(weights) if weights else default_inception_weights()
    if not path.is_file():
        raise FileNotFoundError(f"Inception FID asked for, but its weights are not at {path} (they cannot be "
                         f"downloaded here; put {INCEPTION_WEIGHTS_NAME} there or set "
                         "$GENEXBENCH_INCEPTION_WEIGHTS)")
    return path


@contextmanager
def _weights_from(path: Path):
    """Make pytorch-fid read its Inception weights from ``path`` instead of downloading them."""
    from pytorch_fid import inception

    def load(url, *args, **kwargs):
        return torch.load(path, map_location="cpu", weights_only=True)

    with mock.patch.object(inception, "load_state_dict_from_url", load):
        yield


def fid_inception_architecture() -> nn.Module:
    """pytorch-fid's FID Inception, randomly initialised (the structure its weights file fits).

    ``fid_inception_v3`` always loads the released weights last; here that load is
    given the model's own (random) state instead of a download.
    """
    from pytorch_fid import inception

    built: list[nn.Module] = []
    make = inception._inception_v3

    def keep(*args, **kwargs):
        built.append(make(*args, **kwargs))
        return built[-1]

    with mock.patch.object(inception, "_inception_v3", keep), \
            mock.patch.object(inception, "load_state_dict_from_url", lambda *a, **k: built[-1].state_dict()):
        return inception.fid_inception_v3()


class InceptionFeatures(nn.Module):
    """pytorch-fid's pool3 features (2048-d) of grey images in [0, 1], from a local weights file."""

    feature_dim = 2048

    def __init__(self, weights: str | Path | None = None) -> None:
        super().__init__()
        from pytorch_fid.inception import InceptionV3

        path = inception_weights(weights)
        try:
            with _weights_from(path):
                self.net = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]], resize_input=True,
                                       normalize_input=True)
        except (RuntimeError, OSError, KeyError, ValueError) as exc:
            raise ValueError(f"{path} is not pytorch-fid's Inception weights file ({exc})") from None
        self.net.eval()
        self.weights = path

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.expand(-1, 3, -1, -1))[0].flatten(1)  # grey -> RGB, resized to 299 inside


@torch.no_grad()
def extract_features(extractor: nn.Module, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """``extractor.features`` over ``images`` in batches, on the extractor's device, returned on the CPU."""
    device = next(extractor.parameters()).device
    return torch.cat([extractor.features(images[i:i + batch_size].to(device)).cpu()
                      for i in range(0, len(images), batch_size)]) if len(images) else torch.empty(0, 0)


#: FID of the generated sweep images by group (bench.execute.scoring.fid_by_group), in column order
DECLARED = (
    Metric("fid", capability="sweep", unit="FID", higher_is_better=False,
           aggregation="per-seed", function=frechet_distance,
           description="Frechet distance of generated sweep images (steps 1..S-1, a fixed number per explainer) to "
                       "real test images that are not queries (exaggeration Table 1 'overall')"),
    Metric("fid_present", capability="sweep", unit="FID", higher_is_better=False,
           aggregation="per-seed", function=frechet_distance,
           description="FID of generated images and real images with f(x)[positive class] in [0.9, 1] (Table 1 "
                       "'present')"),
    Metric("fid_absent", capability="sweep", unit="FID", higher_is_better=False,
           aggregation="per-seed", function=frechet_distance,
           description="FID of generated images and real images with f(x)[positive class] in [0, 0.1] (Table 1 "
                       "'absent')"),
)

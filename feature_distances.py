"""Distances between two sets of image features: Fréchet distance and KID.

* Fréchet distance: ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^1/2) between Gaussians
  fitted to the two sets. Tr((S1 S2)^1/2) is computed as the sum of square roots of
  the eigenvalues of S1^1/2 S2 S1^1/2, which is symmetric positive semi-definite, so
  it stays real and finite where a general matrix square root of S1 S2 can go complex
  or blow up (few samples, near-singular covariances).
* KID: the unbiased squared MMD with the cubic polynomial kernel
  k(x, y) = (x.y / d + 1)^3, averaged over random subsets (the estimator of
  Bińkowski et al. 2018, as in clean-fid and torch-fidelity).
* InceptionV3 pool features (2048-d) for the conventional versions of both numbers,
  from Keras' ImageNet weights: downloaded when online, or a weights file the user
  names. Numbers made with other Inception weights (e.g. the TF-slim graph that
  pytorch-fid ports) are not comparable with these.

Which images to compare, and against what baseline, is evaluate.py's job.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from scipy import linalg

from cli import CommandError
from quiet_keras import keras

INCEPTION_SIZE = 299
INCEPTION_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"


class WeightsError(CommandError):
    """The Inception weights can be neither loaded nor downloaded."""


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to feature rows ``a`` and ``b``."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    root_a = _psd_sqrt(cov_a)
    middle = root_a @ cov_b @ root_a
    eigenvalues = linalg.eigvalsh((middle + middle.T) / 2)
    trace_root = np.sqrt(np.clip(eigenvalues, 0, None)).sum()
    distance = ((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root
    return float(max(distance, 0.0))


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    d, m = x.shape[1], len(x)
    k_xx = (x @ x.T / d + 1) ** 3
    k_yy = (y @ y.T / d + 1) ** 3
    k_xy = (x @ y.T / d + 1) ** 3
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2 * k_xy.mean())


def kernel_inception_distance(
    a: np.ndarray, b: np.ndarray, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """(mean, standard deviation) of the unbiased MMD^2 over random subsets.

    Subsets hold min(len(a), len(b), subset_size) rows; when that is all of both sets
    there is only one subset to draw, and the result is exact and order-invariant.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    m = min(len(a), len(b), subset_size)
    if m < 2:
        raise ValueError(f"KID needs at least 2 rows per set, got {len(a)} and {len(b)}")
    if m == len(a) == len(b):
        return _mmd2_unbiased(a, b), 0.0
    rng = np.random.default_rng(seed)
    values = [
        _mmd2_unbiased(a[rng.choice(len(a), m, replace=False)], b[rng.choice(len(b), m, False)])
        for _ in range(subsets)
    ]
    return float(np.mean(values)), float(np.std(values))


# ------------------------------------------------------------------- Inception


def inception_model(weights: str = "imagenet") -> tuple[keras.Model, str]:
    """(model: image in [-1, 1] at any size -> 2048 pool features, description of the
    weights). ``weights`` is "imagenet" (Keras' file, downloaded once into ~/.keras)
    or the path of that file or a ``.weights.h5`` of the same network."""
    if weights != "imagenet" and not Path(weights).is_file():
        raise WeightsError(f"--inception-weights {weights}: no such file")
    try:
        backbone = keras.applications.InceptionV3(
            include_top=False,
            weights=weights,
            input_shape=(INCEPTION_SIZE, INCEPTION_SIZE, 3),
            pooling="avg",
        )
    except Exception as error:  # Keras raises a bare Exception for a failed download
        if weights == "imagenet":
            raise WeightsError(
                f"Inception metrics skipped: the ImageNet weights could not be downloaded "
                f"(offline?); pass --inception-weights with a copy of {INCEPTION_FILE}"
            ) from error
        raise WeightsError(f"--inception-weights {weights}: {error}") from error
    # Our images and Inception's preprocessing share the [-1, 1] range: only resize.
    image = keras.Input((None, None, 3))
    resized = keras.layers.Resizing(INCEPTION_SIZE, INCEPTION_SIZE, interpolation="bilinear")(image)
    model = keras.Model(image, backbone(resized), name="inception_features")
    if weights == "imagenet":
        return model, f"Keras applications InceptionV3, ImageNet ({INCEPTION_FILE})"
    digest = hashlib.sha256(Path(weights).read_bytes()).hexdigest()[:16]
    return model, f"InceptionV3 from {Path(weights).name} (sha256 {digest}…)"

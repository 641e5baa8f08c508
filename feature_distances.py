"""Distances between two sets of image features: Fréchet distance and KID.

* Fréchet distance: ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^1/2) between Gaussians
  fitted to the two sets. Tr((S1 S2)^1/2) is computed as the sum of square roots of
  the eigenvalues of S1^1/2 S2 S1^1/2, which is symmetric positive semi-definite, so
  it stays real and finite where a general matrix square root of S1 S2 can go complex
  or blow up (few samples, near-singular covariances).
* KID: the unbiased squared MMD with the cubic polynomial kernel
  k(x, y) = (x.y / d + 1)^3, averaged over random subsets (the estimator of
  Bińkowski et al. 2018, as in clean-fid and torch-fidelity).

Any features will do: the attribute classifier's (evaluate.py) or the standard FID
Inception's (fid_inception.py). Which images to compare, and against what baseline, is
evaluate.py's job.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg


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

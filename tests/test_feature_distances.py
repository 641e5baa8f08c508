"""feature_distances.py: Fréchet distance and KID against direct computations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import linalg

import feature_distances as fdist


def gaussian(rng, n: int, d: int, shift: float = 0.0) -> np.ndarray:
    """n draws of one correlated d-dimensional Gaussian (the same for every call with
    this d), moved by ``shift`` along every axis."""
    mixing = np.random.default_rng(d).normal(size=(d, d)) / np.sqrt(d)
    return rng.normal(size=(n, d)) @ mixing + shift


def scipy_frechet(a: np.ndarray, b: np.ndarray) -> float:
    """The textbook formula with scipy's general matrix square root."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(cov_a @ cov_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))


def loop_kid(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with the cubic kernel, written pair by pair."""
    d, m = x.shape[1], len(x)

    def k(u, v):
        return (u @ v / d + 1) ** 3

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_frechet_distance_matches_scipy_on_random_gaussians():
    rng = np.random.default_rng(0)
    a, b = gaussian(rng, 600, 12), gaussian(rng, 500, 12, shift=0.3)
    assert fdist.frechet_distance(a, b) == pytest.approx(scipy_frechet(a, b), rel=1e-6)


def test_frechet_distance_is_zero_for_identical_sets_and_ignores_order():
    rng = np.random.default_rng(1)
    a, b = gaussian(rng, 400, 8), gaussian(rng, 400, 8, shift=1.0)
    assert fdist.frechet_distance(a, a) == pytest.approx(0, abs=1e-8)
    shuffled = rng.permutation(a)
    assert fdist.frechet_distance(shuffled, b) == pytest.approx(
        fdist.frechet_distance(a, b), rel=1e-9
    )


def test_frechet_distance_stays_finite_with_fewer_rows_than_features():
    rng = np.random.default_rng(2)
    a, b = gaussian(rng, 20, 64), gaussian(rng, 20, 64, shift=0.5)
    distance = fdist.frechet_distance(a, b)
    assert np.isfinite(distance) and distance > 0


def test_kid_matches_a_pairwise_loop_when_one_subset_holds_everything():
    rng = np.random.default_rng(3)
    x, y = gaussian(rng, 30, 5), gaussian(rng, 30, 5, shift=0.4)
    mean, spread = fdist.kernel_inception_distance(x, y)
    assert mean == pytest.approx(loop_kid(x, y), rel=1e-9) and spread == 0
    assert fdist.kernel_inception_distance(rng.permutation(x), y)[0] == pytest.approx(mean)


def test_kid_is_near_zero_for_one_distribution_and_positive_when_shifted():
    rng = np.random.default_rng(4)
    a, b = gaussian(rng, 1500, 16), gaussian(rng, 1500, 16)
    shifted = gaussian(rng, 1500, 16, shift=0.5)
    same, same_std = fdist.kernel_inception_distance(a, b, subsets=20, subset_size=500)
    apart, apart_std = fdist.kernel_inception_distance(a, shifted, subsets=20, subset_size=500)
    assert abs(same) < 3 * same_std + 1e-3
    assert apart > 10 * max(abs(same), apart_std)

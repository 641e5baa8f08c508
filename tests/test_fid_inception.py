"""fid_inception.py: the standard FID Inception from the installed wheel, and its absence."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import fid_inception
from feature_distances import frechet_distance

installed = importlib.util.find_spec("torch") is not None
needs_torch = pytest.mark.skipif(
    not installed, reason=f"PyTorch is not installed ({fid_inception.INSTALL})"
)


@pytest.fixture(scope="module")
def network():
    if not installed:
        pytest.skip(f"PyTorch is not installed ({fid_inception.INSTALL})")
    return fid_inception.FidInception(batch_size=8)


def faces(rng, n: int, tint: float = 0.0) -> np.ndarray:
    """Smooth random images in [-1, 1] at 32x32, optionally tinted red."""
    base = rng.uniform(-0.8, 0.8, (n, 4, 4, 3)).repeat(8, axis=1).repeat(8, axis=2)
    base[..., 0] += tint
    return np.clip(base, -1, 1).astype(np.float32)


@needs_torch
def test_features_are_2048_per_image_whatever_the_size_and_batching(network):
    rng = np.random.default_rng(0)
    images = faces(rng, 10)
    features = network.features(images)
    assert features.shape == (10, fid_inception.FEATURES) and np.isfinite(features).all()
    alone = fid_inception.FidInception(batch_size=3).features(images[:3])
    np.testing.assert_allclose(alone, features[:3], rtol=1e-4, atol=1e-4)
    bigger = network.features(images.repeat(2, axis=1).repeat(2, axis=2))  # 64x64
    assert bigger.shape == features.shape


@needs_torch
def test_fid_is_zero_for_the_same_images_and_grows_with_a_tint(network):
    reference = faces(np.random.default_rng(1), 16)
    ref = network.features(reference)
    tint = np.array([1.0, 0.0, -1.0], np.float32)
    fid = [
        frechet_distance(network.features(np.clip(reference + t * tint, -1, 1)), ref)
        for t in (0.0, 0.2, 0.5)
    ]
    assert fid[0] == pytest.approx(0, abs=1e-3) and 1 < fid[1] < fid[2]


def test_without_torch_the_error_is_one_line_naming_the_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(fid_inception.InceptionMissingError) as error:
        fid_inception.network_file()
    message = str(error.value)
    assert "\n" not in message and fid_inception.INSTALL in message


@needs_torch
def test_a_network_file_that_is_not_the_fid_inception_is_refused(monkeypatch):
    monkeypatch.setattr(fid_inception, "NETWORK_SHA1", "0" * 40)
    with pytest.raises(fid_inception.InceptionMissingError, match="SHA-1"):
        fid_inception.network_file()

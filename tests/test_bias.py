"""The bias measures: the typology angle of known skin colours, read from the cheeks
only; Chardon's bands; over- and under-production against the real faces."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import bias
from attributes import ATTRIBUTES


def colour(lightness: float, a: float, b: float) -> np.ndarray:
    """The uint8 RGB of a CIELAB colour."""
    lab = np.array([[[lightness, a, b]]], np.float32)
    return np.rint(cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)[0, 0] * 255).astype(np.uint8)


def faces(skin: np.ndarray, elsewhere: np.ndarray, count: int = 2, side: int = 64) -> np.ndarray:
    """Faces of one colour with another colour painted on the cheek patches."""
    images = np.broadcast_to(elsewhere, (count, side, side, 3)).copy()
    for left, top, size in bias.CHEEKS:
        x, y, s = (round(v * side) for v in (left, top, size))
        images[:, y : y + s, x : x + s] = skin
    return images


@pytest.mark.parametrize(("lightness", "b"), [(75, 15), (60, 20), (45, 20), (30, 15)])
def test_the_angle_of_a_known_skin_colour_is_chardons_formula(lightness, b):
    skin = colour(lightness, 12, b)
    lab = cv2.cvtColor(skin[None, None].astype(np.float32) / 255, cv2.COLOR_RGB2LAB)[0, 0]
    expected = np.degrees(np.arctan((lab[0] - 50) / lab[2]))
    angles = bias.typology_angle(faces(skin, colour(20, 0, 0)))
    np.testing.assert_allclose(angles, expected, atol=1e-3)
    assert abs(expected - np.degrees(np.arctan((lightness - 50) / b))) < 2  # rounding to uint8


def test_only_the_cheeks_count_and_lighter_skin_scores_higher():
    light, dark = colour(70, 10, 15), colour(35, 12, 20)
    on_black = bias.typology_angle(faces(light, np.zeros(3, np.uint8)))
    on_white = bias.typology_angle(faces(light, np.full(3, 255, np.uint8)))
    np.testing.assert_array_equal(on_black, on_white)
    assert bias.typology_angle(faces(dark, np.zeros(3, np.uint8)))[0] < on_black[0]


def test_any_size_of_face_reads_the_same_patches():
    skin = colour(65, 10, 18)
    small, large = (bias.typology_angle(faces(skin, colour(20, 0, 0), side=s)) for s in (32, 128))
    np.testing.assert_allclose(small, large, atol=1e-4)


def test_every_angle_falls_in_one_band():
    angles = np.array([90, 60, 55, 50, 41, 30, 28, 20, 10, 0, -30, -31, -90.0])
    shares = bias.band_shares(angles)
    counts = {name: round(share * len(angles)) for name, share in shares.items()}
    assert counts == {
        "very light": 2,
        "light": 2,
        "intermediate": 2,
        "tan": 2,
        "brown": 2,
        "dark": 3,
    }
    assert [name for name, *_ in bias.bands()] == list(shares)
    assert bias.bands()[-1][1] == bias.BINS[0] and bias.bands()[0][2] == bias.BINS[-1]


def test_production_gap_is_generated_minus_real_per_attribute():
    rng = np.random.default_rng(0)
    generated = rng.random((400, 40)) < np.linspace(0.1, 0.9, 40)
    real = rng.random((300, 40)) < 0.5
    labels = np.full(40, 0.3)
    found = bias.production(generated, real, labels)
    assert list(found) == list(ATTRIBUTES)
    first, last = found[ATTRIBUTES[0]], found[ATTRIBUTES[-1]]
    assert first["gap"] == pytest.approx(generated[:, 0].mean() - real[:, 0].mean())
    assert first["gap"] < -0.25 and last["gap"] > 0.25 and last["labels"] == 0.3

"""The data's biases made visible: how the generator's faces compare with the data's
own make-up, attribute by attribute and in skin tone.

* Production: for faces made to requests that follow the data's joint distribution,
  the share the attribute classifier sees each attribute on, against the share it
  sees on held-out real faces (the same classifier on both sides, so its own errors
  cancel) and the labels' frequency. A positive gap is over-production.
* Skin tone: the individual typology angle (ITA, Chardon et al. 1991), arctan((L* - 50)
  / b*) in degrees in CIELAB, of the median colour of two cheek patches (``CHEEKS``, in
  the CelebA face crop: just below the eyes, either side of the nose), for real and
  generated faces, with the share of faces in each of Chardon's bands. A face turned
  to one side puts a patch on hair or background, so the measure is for comparing
  sets, not for judging one face.

What it is not: the classifier or the sampling of requests (evaluate.py), the charts
(figures.py).
"""

from __future__ import annotations

import cv2
import numpy as np

from attributes import ATTRIBUTES

# (left, top, side) of each cheek patch as fractions of the square face crop.
CHEEKS = ((0.22, 0.58, 0.14), (0.64, 0.58, 0.14))
# Chardon's ITA bands: each name holds the angles above its bound (degrees).
BANDS = (
    ("very light", 55.0),
    ("light", 41.0),
    ("intermediate", 28.0),
    ("tan", 10.0),
    ("brown", -30.0),
    ("dark", -np.inf),
)
BINS = np.linspace(-90, 90, 37)


def cheek_colour(images: np.ndarray) -> np.ndarray:
    """(n, 3) CIELAB (L* in [0, 100]) median of the cheek patches of uint8 RGB faces."""
    side = images.shape[1]
    patches = []
    for left, top, size in CHEEKS:
        x, y, s = (round(v * side) for v in (left, top, size))
        patches.append(images[:, y : y + s, x : x + s].reshape(len(images), -1, 3))
    pixels = np.concatenate(patches, axis=1).astype(np.float32) / 255
    lab = cv2.cvtColor(pixels.reshape(-1, 1, 3), cv2.COLOR_RGB2LAB).reshape(pixels.shape)
    return np.median(lab, axis=1)


def typology_angle(images: np.ndarray) -> np.ndarray:
    """(n,) the individual typology angle of each uint8 RGB face, in degrees."""
    lab = cheek_colour(images)
    with np.errstate(divide="ignore", invalid="ignore"):  # b* = 0 is +-90 degrees
        angle = np.degrees(np.arctan((lab[:, 0] - 50) / lab[:, 2]))
    return np.nan_to_num(angle, nan=0.0)


def bands() -> list[tuple[str, float, float]]:
    """(name, low, high) of each ITA band within the histogram's range."""
    highs = (BINS[-1], *(bound for _, bound in BANDS[:-1]))
    return [(name, max(low, BINS[0]), high) for (name, low), high in zip(BANDS, highs)]


def band_shares(angles: np.ndarray) -> dict[str, float]:
    """The share of faces in each of Chardon's ITA bands."""
    shares, above = {}, np.inf
    for name, bound in BANDS:
        shares[name] = float(((angles > bound) & (angles <= above)).mean())
        above = bound
    return shares


def production(
    generated: np.ndarray, real: np.ndarray, label_frequency: np.ndarray
) -> dict[str, dict[str, float]]:
    """Per attribute: the classifier's share on generated and on real faces (0/1
    predictions), the labels' frequency, and the gap (generated minus real)."""
    made, seen = generated.mean(axis=0), real.mean(axis=0)
    return {
        name: {
            "generated": float(made[k]),
            "real": float(seen[k]),
            "labels": float(label_frequency[k]),
            "gap": float(made[k] - seen[k]),
        }
        for k, name in enumerate(ATTRIBUTES)
    }


def report(
    generated_predictions: np.ndarray,
    real_predictions: np.ndarray,
    label_frequency: np.ndarray,
    generated_images: np.ndarray,
    real_images: np.ndarray,
) -> dict:
    """The bias section of evaluate.py's report (uint8 images, 0/1 predictions)."""
    real_angle, made_angle = typology_angle(real_images), typology_angle(generated_images)
    return {
        "production": production(generated_predictions, real_predictions, label_frequency),
        "skin_tone": {
            "measure": "individual typology angle of the cheeks' median CIELAB colour, degrees",
            "real": {"median": float(np.median(real_angle)), **band_shares(real_angle)},
            "generated": {"median": float(np.median(made_angle)), **band_shares(made_angle)},
            "images": {"real": len(real_angle), "generated": len(made_angle)},
            "histogram": {
                "bins": BINS.tolist(),
                "real": np.histogram(real_angle, BINS)[0].tolist(),
                "generated": np.histogram(made_angle, BINS)[0].tolist(),
            },
        },
    }

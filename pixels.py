"""The one image normalisation of the project: uint8 [0, 255] pixels, as cached and
saved, to the float32 [-1, 1] the networks see, and back. Nothing else: what the
images are and where they come from is dataset.py's business."""

from __future__ import annotations

import numpy as np


def to_float(images: np.ndarray) -> np.ndarray:
    """uint8 [0, 255] -> float32 [-1, 1]."""
    return images.astype(np.float32) * (1 / 127.5) - 1


def to_uint8(images: np.ndarray) -> np.ndarray:
    """float [-1, 1] -> uint8 [0, 255], the inverse of ``to_float``."""
    return np.clip(np.rint((np.asarray(images) + 1) * 127.5), 0, 255).astype(np.uint8)

"""Faces on request from a trained checkpoint: ``dcgan.py generate``.

* ``write_faces``: ``count`` faces for an attribute request such as
  ``"Smiling, Eyeglasses, -Male"`` (the attributes not asked for are drawn from the
  training faces that agree), as ``face-NNNN.png`` and a ``grid.png``.
* ``write_flips``: the same faces with one attribute switched at a time, side by side
  in ``flips.png``.

Every file is written atomically. Training is training.py's; the request parser is
attributes.py's; the sampling of the other attributes dataGens.py's.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

import atomic
import figures
import runs
from attributes import format_spec, parse_spec
from dataGens import AttributeSampler, attribute_noise, flipped, sample_noise
from dataset import to_uint8
from quiet_keras import keras

BATCH = 256
MAX_FACES = 10_000  # one request: its faces and grid are held in memory


class Request:
    """A checkpoint's generator and the attribute rows a request draws from."""

    def __init__(self, checkpoint: str | Path, attrs: str, raw: bool = False) -> None:
        saved = runs.load_checkpoint(runs.find_checkpoint(checkpoint), compile=False)
        self.generator: keras.Model = saved.faces(raw)
        self.noise_dim = saved.state["settings"]["noise_dim"]
        self.epoch = saved.state["epoch"]
        self.sampler = AttributeSampler("spec", saved.attribute_rows, attrs)
        if not self.sampler.supported:
            print(
                f"note: no training face has all of {attrs!r}; the other attributes are "
                "drawn from all faces",
                file=sys.stderr,
            )
        self.spec = format_spec(self.sampler.settings) or "(data distribution)"

    def images(self, inputs: np.ndarray) -> np.ndarray:
        return self.generator.predict(inputs, batch_size=BATCH, verbose=0)


def write_faces(
    checkpoint: str | Path,
    attrs: str,
    count: int,
    out: str | Path,
    seed: int = 0,
    raw: bool = False,
) -> Path:
    """face-0001.png ... and grid.png in ``out``, from the generator average (where the
    run keeps one and not ``raw``); returns ``out``."""
    request = Request(checkpoint, attrs, raw)
    rng = np.random.default_rng(seed)
    out = Path(out)
    with atomic.output_folder(out) as staging:  # all the faces and the grid, or none
        wanted = request.sampler.sample(count, rng)
        images = request.images(attribute_noise(wanted, request.noise_dim, rng))
        atomic.check_space(staging, 2 * images.size, f"{count} faces and their grid")
        for i, image in enumerate(to_uint8(images)):
            Image.fromarray(image).save(staging / f"face-{i + 1:04d}.png", format="PNG")
        rows = -(-count // 8)
        title = f"{request.spec} (checkpoint epoch {request.epoch})"
        figures.save_grid(images, [""] * rows, staging / "grid.png", title)
    return out


def write_flips(
    checkpoint: str | Path,
    attrs: str,
    flip: str,
    count: int,
    out: str | Path,
    seed: int = 0,
    raw: bool = False,
) -> Path:
    """flips.png in ``out``: one row per face, the request and then each attribute of
    ``flip`` switched on the same face; returns its path."""
    request = Request(checkpoint, attrs, raw)
    names = list(parse_spec(flip))
    rng = np.random.default_rng(seed)
    out = Path(out)
    base = request.sampler.sample(count, rng)
    noise = sample_noise(count, request.noise_dim, rng)
    columns = [base] + [flipped(base, name) for name in names]
    per_face = np.stack(columns, axis=1).reshape(count * len(columns), -1)
    inputs = np.concatenate([per_face, np.repeat(noise, len(columns), axis=0)], axis=1)
    labels = [f"face {i + 1}" for i in range(count)]
    headings = ["as asked", *(f"{name} flipped" for name in names)]
    with atomic.output_folder(out) as staging:
        figures.save_grid(
            request.images(inputs), labels, staging / "flips.png", request.spec, headings
        )
    return out / "flips.png"

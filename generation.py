"""Faces on request from a trained checkpoint: ``dcgan.py generate``.

* ``write_faces``: ``count`` faces for an attribute request such as
  ``"Smiling, Eyeglasses, -Male"`` (the attributes not asked for are drawn from the
  training faces that agree), as ``face-NNNN.png`` and a ``grid.png``.
* ``write_flips``: the same faces with one attribute switched at a time, side by side
  in ``flips.png``.
* ``write_sweep``: the same faces with one attribute's strength going from 0 to 1, and
  ``write_interpolation``: faces morphing into another seed's faces or into the same
  faces asked for other attributes; each as a strip (``sweep.png``,
  ``interpolation.png``, a row per face) and an animated GIF.

Every file is written atomically. Training is training.py's; the request parser is
attributes.py's; the sampling of the other attributes dataGens.py's.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

import atomic
import checkpoints
import figures
import ready_model
import runs
from attributes import SpecError, format_spec, parse_spec
from config import TrainConfig
from dataGens import AttributeSampler, flipped, forced, sample_noise
from pixels import to_uint8
from quiet_keras import keras

BATCH = 256
MAX_FACES = 10_000  # one request: its faces and grid are held in memory
DEFAULT_RUN = TrainConfig.out  # where dcgan.py trains when given no --out
FRAMES = 9  # steps of a sweep or an interpolation, both ends included
MAX_FRAMES = 100


class FaceModel:
    """A face generator, loaded once, and the training faces' attribute rows that
    requests draw from: a checkpoint's (``checkpoint``) or the shipped ready model's
    (``ready``); ``open`` chooses as the commands do."""

    def __init__(
        self,
        generator: keras.Model,
        noise_dim: int,
        epoch: int,
        rows: np.ndarray,
        source: str,
        conditional: bool = True,
    ) -> None:
        self.generator, self.noise_dim, self.epoch = generator, noise_dim, epoch
        self.attribute_rows, self.source, self.conditional = rows, source, conditional
        self.shape: tuple[int, int, int] = generator.output_shape[1:]  # one face

    @classmethod
    def checkpoint(cls, path: str | Path, raw: bool = False) -> FaceModel:
        """The generator average where the run keeps one and not ``raw``."""
        saved = runs.load_checkpoint(runs.find_checkpoint(path), compile=False)
        settings, epoch = saved.state["settings"], saved.state["epoch"]
        return cls(
            saved.faces(raw),
            settings["noise_dim"],
            epoch,
            saved.attribute_rows,
            str(path),
            settings["conditional"],
        )

    @classmethod
    def ready(cls) -> FaceModel:
        shipped = ready_model.load()
        noise_dim = shipped.card["settings"]["noise_dim"]
        source = "the ready model (trained on the synthetic faces)"
        return cls(
            shipped.generator, noise_dim, shipped.card["epoch"], shipped.attribute_rows, source
        )

    @classmethod
    def open(cls, checkpoint: str | Path | None, raw: bool = False) -> FaceModel:
        """``checkpoint``; with None, the default run if there is one, else the ready
        model, said in one line."""
        if checkpoint is not None or checkpoints.find(DEFAULT_RUN) is not None:
            return cls.checkpoint(DEFAULT_RUN if checkpoint is None else checkpoint, raw)
        print(
            f"note: no run in {DEFAULT_RUN} and no --checkpoint: using the ready model "
            f"trained on the synthetic faces ({ready_model.READY.name}/)",
            file=sys.stderr,
        )
        return cls.ready()

    def images(self, inputs: np.ndarray) -> np.ndarray:
        return self.generator.predict(inputs, batch_size=BATCH, verbose=0)


class Request:
    """One attribute request to a model: the rows it draws from, and what it says."""

    def __init__(self, model: FaceModel, attrs: str) -> None:
        self.model = model
        self.sampler = AttributeSampler("spec", model.attribute_rows, attrs)
        self.spec = format_spec(self.sampler.settings) or "(data distribution)"
        if self.sampler.settings:
            self.need_attributes("an attribute request")
        self.note = (
            None
            if self.sampler.supported
            else f"no training face has all of {self.spec}; the other attributes are "
            "drawn from all faces"
        )

    def need_attributes(self, what: str) -> None:
        """Refuse ``what`` in one line when the model was trained without attributes."""
        if not self.model.conditional:
            raise SpecError(
                f"{self.model.source} was trained without attributes (--attributes none), "
                f"so it takes no {what}; ask for faces alone, or train with attributes"
            )

    def draw(self, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """(attributes, noise) of the ``count`` faces for ``seed``."""
        rng = np.random.default_rng(seed)
        return self.sampler.sample(count, rng), sample_noise(count, self.model.noise_dim, rng)

    def faces(self, count: int, seed: int) -> np.ndarray:
        """(count, h, w, 3) in [-1, 1]: the request's faces for ``seed``."""
        return self.model.images(np.concatenate(self.draw(count, seed), axis=1))

    def path(self, start: tuple, end: tuple, frames: int) -> np.ndarray:
        """(frames, faces, h, w, 3): the faces of ``start`` (attributes, noise) becoming
        those of ``end``; attributes move in a straight line, Gaussian noise along the
        great circle (so its norm, which the generator saw, holds on the way)."""
        steps = np.linspace(0, 1, frames, dtype=np.float32)[:, None, None]
        attrs = (1 - steps) * start[0] + steps * end[0]
        if self.model.noise_dim > 1:
            noise = slerp(start[1], end[1], steps)
        else:
            noise = (1 - steps) * start[1] + steps * end[1]
        inputs = np.concatenate([attrs, noise], axis=2).reshape(frames * len(start[0]), -1)
        return self.model.images(inputs).reshape(frames, len(start[0]), *self.model.shape)


def loaded(checkpoint: str | Path | None, attrs: str, raw: bool) -> Request:
    """The request for a command: the model opened (FaceModel.open), and the request's
    note (if any) told."""
    request = Request(FaceModel.open(checkpoint, raw), attrs)
    if request.note:
        print(f"note: {request.note}", file=sys.stderr)
    return request


def write_faces(
    checkpoint: str | Path | None,
    attrs: str,
    count: int,
    out: str | Path,
    seed: int = 0,
    raw: bool = False,
) -> Path:
    """face-0001.png ... and grid.png in ``out``, from the generator average (where the
    run keeps one and not ``raw``); returns ``out``."""
    request = loaded(checkpoint, attrs, raw)
    out = Path(out)
    with atomic.output_folder(out) as staging:  # all the faces and the grid, or none
        images = request.faces(count, seed)
        atomic.check_space(staging, 2 * images.size, f"{count} faces and their grid")
        for i, image in enumerate(to_uint8(images)):
            Image.fromarray(image).save(staging / f"face-{i + 1:04d}.png", format="PNG")
        rows = -(-count // 8)
        title = f"{request.spec} (checkpoint epoch {request.model.epoch})"
        figures.save_grid(images, [""] * rows, staging / "grid.png", title)
    return out


def write_flips(
    checkpoint: str | Path | None,
    attrs: str,
    flip: str,
    count: int,
    out: str | Path,
    seed: int = 0,
    raw: bool = False,
) -> Path:
    """flips.png in ``out`` (``flips``); returns its path."""
    names = list(parse_spec(flip))
    strip = flips(loaded(checkpoint, attrs, raw), names, count, seed)
    with atomic.output_folder(Path(out)) as staging:
        _save_strip(strip, staging / "flips.png")
    return Path(out) / "flips.png"


def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation of each row of ``a`` to the same row of ``b`` at the
    fractions ``t`` (broadcast on a leading axis); straight where they are parallel."""
    cos = np.sum(a * b, -1, keepdims=True) / (
        np.linalg.norm(a, axis=-1, keepdims=True) * np.linalg.norm(b, axis=-1, keepdims=True)
    )
    omega = np.arccos(np.clip(cos, -1, 1))
    sin = np.sin(omega)
    parallel = sin < 1e-6
    safe = np.where(parallel, 1, sin)
    ka = np.where(parallel, 1 - t, np.sin((1 - t) * omega) / safe)
    kb = np.where(parallel, t, np.sin(t * omega) / safe)
    return (ka * a + kb * b).astype(np.float32)


class Strip(NamedTuple):
    """Faces along a path: ``images`` is (frames, faces, h, w, 3) in [-1, 1]."""

    images: np.ndarray
    title: str
    headings: list[str]


def flips(request: Request, names: list[str], count: int, seed: int) -> Strip:
    """The request's faces for ``seed``, then the same faces with each attribute of
    ``names`` switched."""
    request.need_attributes("--flip")
    base, noise = request.draw(count, seed)
    columns = [base] + [flipped(base, name) for name in names]
    inputs = np.concatenate([np.concatenate([c, noise], axis=1) for c in columns])
    images = request.model.images(inputs).reshape(len(columns), count, *request.model.shape)
    return Strip(images, request.spec, ["as asked", *(f"{name} flipped" for name in names)])


def sweep(request: Request, name: str, count: int, seed: int, frames: int) -> Strip:
    """The request's faces for ``seed`` with attribute ``name`` at strengths 0 to 1, all
    else the same."""
    request.need_attributes("--sweep")
    asked = list(parse_spec(name))
    if len(asked) != 1:
        raise SpecError(f"--sweep takes one attribute, not {name!r}")
    base, noise = request.draw(count, seed)
    start, end = (forced(base, {asked[0]: 0}), noise), (forced(base, {asked[0]: 1}), noise)
    headings = [f"{asked[0]}={s:.2g}" for s in np.linspace(0, 1, frames)]
    title = f"{request.spec}: {asked[0]} from off to on"
    return Strip(request.path(start, end, frames), title, headings)


def interpolation(request: Request, target: str, count: int, seed: int, frames: int) -> Strip:
    """The request's faces for ``seed`` becoming those for the seed ``target`` (digits:
    the faces ``write_faces`` makes for it) or, for an attribute spec ``target``, the
    same faces with that spec applied."""
    start = request.draw(count, seed)
    if target.strip().isdigit():
        end = request.draw(count, int(target))
        title = f"{request.spec}: seed {seed} to seed {int(target)}"
    else:
        request.need_attributes("interpolation to attributes")
        change = parse_spec(target)
        end = forced(start[0], change), start[1]
        title = f"{request.spec}: to {format_spec(change)}"
    headings = [f"{s:.2g}" for s in np.linspace(0, 1, frames)]
    return Strip(request.path(start, end, frames), title, headings)


def write_sweep(
    checkpoint: str | Path | None,
    attrs: str,
    name: str,
    count: int,
    out: str | Path,
    seed: int = 0,
    raw: bool = False,
    frames: int = FRAMES,
) -> Path:
    """sweep.png and sweep.gif in ``out`` (``sweep``); returns ``out``."""
    parse_spec(name)  # a bad name is told before the checkpoint loads
    strip = sweep(loaded(checkpoint, attrs, raw), name, count, seed, frames)
    return _write_strip(strip, Path(out), "sweep")


def write_interpolation(
    checkpoint: str | Path | None,
    attrs: str,
    target: str,
    count: int,
    out: str | Path,
    seed: int = 0,
    raw: bool = False,
    frames: int = FRAMES,
) -> Path:
    """interpolation.png and interpolation.gif in ``out`` (``interpolation``); returns
    ``out``."""
    if not target.strip().isdigit():
        parse_spec(target)
    strip = interpolation(loaded(checkpoint, attrs, raw), target, count, seed, frames)
    return _write_strip(strip, Path(out), "interpolation")


def _write_strip(strip: Strip, out: Path, stem: str) -> Path:
    """STEM.png (``_save_strip``) and STEM.gif, atomically, in ``out``."""
    with atomic.output_folder(out) as staging:
        atomic.check_space(staging, 3 * strip.images.size, f"the {stem} strip and animation")
        _save_strip(strip, staging / f"{stem}.png")
        figures.save_animation(strip.images, staging / f"{stem}.gif")
    return out


def _save_strip(strip: Strip, path: Path) -> None:
    """A grid PNG with a row per face and a column per step of the strip."""
    count = strip.images.shape[1]
    per_face = strip.images.transpose(1, 0, 2, 3, 4).reshape(-1, *strip.images.shape[2:])
    labels = [f"face {i + 1}" for i in range(count)]
    figures.save_grid(per_face, labels, path, strip.title, strip.headings)

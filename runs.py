"""A run folder's files: its checkpoints (the two models, the arrays, ``state.json``)
and its history (``losses.csv``, ``metrics.csv``).

    runs/dcgan/
        losses.csv, metrics.csv      one row per step / per --eval-every epoch
        losses.png, samples/         figures.py draws these
        checkpoints/epoch-NNNN/      generator.keras, discriminator.keras (with their
                                     optimizer states), generator_average.keras (with
                                     --ema-kimg), attributes.npy (the training
                                     attribute rows generate samples from), probes.npy,
                                     copies of the history, state.json, manifest.json

``state.json`` holds the position (epoch, step), the run's settings
(config.RunSettings), the seconds of the epoch, the best balanced accuracy, the
backend and the Keras version. Writing a checkpoint safely is checkpoints.py's job;
what goes into one, and reading it back, is this module's. It does not train.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path
from typing import NamedTuple

import numpy as np

import atomic
import checkpoints
import models  # registers the custom layers the saved models name
import schemas
from attributes import ATTRIBUTES
from cli import UsageError
from config import RunSettings
from quiet_keras import keras

HISTORY = ("losses.csv", "metrics.csv")
AVERAGE = "generator_average.keras"


class Checkpoint(NamedTuple):
    generator: keras.Model
    discriminator: keras.Model | None  # None when loaded for generation only
    state: dict
    attribute_rows: np.ndarray
    probes: np.ndarray
    average: keras.Model | None = None  # the generator average, where the run keeps one

    def faces(self, raw: bool = False) -> keras.Model:
        """The generator that shows faces: the average where the run keeps one (unless
        ``raw``), else the trained generator itself."""
        return self.generator if raw or self.average is None else self.average


def find_checkpoint(path: str | Path) -> Path:
    """The checkpoint ``--checkpoint`` names (checkpoints.find), or a UsageError."""
    folder = checkpoints.find(path)
    if folder is None:
        raise UsageError(
            f"--checkpoint {path}: no checkpoint there; give a run folder "
            "(e.g. runs/dcgan), a checkpoints/epoch-NNNN folder or its generator.keras"
        )
    return folder


def read_state(folder: Path) -> dict:
    """A checkpoint's state.json, checked against schemas.STATE (older versions' missing
    settings filled in)."""
    fix = "use another checkpoint (checkpoints/epoch-NNNN)"
    return schemas.read_json(folder / checkpoints.STATE, schemas.STATE, UsageError, fix)


def load_checkpoint(folder: Path, compile: bool = True) -> Checkpoint:
    """Both models (the discriminator only with ``compile``, for training), the state
    and the arrays of a checkpoint folder."""
    state = read_state(folder)
    noise_dim = state["settings"]["noise_dim"]
    try:
        generator = keras.models.load_model(folder / "generator.keras", compile=compile)
        discriminator = (
            keras.models.load_model(folder / "discriminator.keras", compile=compile)
            if compile
            else None
        )
        attribute_rows = np.load(folder / "attributes.npy", allow_pickle=False)
        probes = np.load(folder / "probes.npy", allow_pickle=False)
        average = None
        if (folder / AVERAGE).is_file():
            average = keras.models.load_model(folder / AVERAGE, compile=False)
    except (OSError, ValueError, KeyError, TypeError) as error:
        reason = str(error).strip().splitlines()[0][:200]
        raise UsageError(f"{folder}: not a readable checkpoint ({reason})") from None
    width = len(ATTRIBUTES)
    for name, problem in (
        ("attributes.npy", schemas.array_problem(attribute_rows, (None, width), np.uint8, (0, 1))),
        ("probes.npy", schemas.array_problem(probes, (None, width + noise_dim), np.float32)),
    ):
        if problem is not None:
            raise UsageError(f"{folder / name}: {problem}; not written by dcgan.py, use another")
    return Checkpoint(generator, discriminator, state, attribute_rows, probes, average)


def checkpoint_state(
    position: tuple[int, int], settings: RunSettings, seconds: float | None, best: float
) -> dict:
    """What state.json records; ``best`` is -inf until an evaluation has run."""
    epoch, step = position
    return {
        "epoch": epoch,
        "step": step,
        "settings": settings.to_json(),
        "seconds": seconds,
        "best": best if np.isfinite(best) else None,
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
    }


def save_checkpoint(
    run_dir: Path,
    position: tuple[int, int],
    generator: keras.Model,
    discriminator: keras.Model,
    arrays: dict[str, np.ndarray],
    state: dict,
    keep: int,
    average: keras.Model | None = None,
) -> Path:
    """checkpoints/epoch-NNNN[-step-SSSSSS]/: both models with their optimizer states,
    ``arrays`` (the training attribute rows, the probes), the history and state.json;
    then all but the newest ``keep`` (and those a pointer names) are pruned."""
    saved = {"generator": generator, "discriminator": discriminator}
    if average is not None:
        saved[AVERAGE.removesuffix(".keras")] = average
    atomic.check_space(run_dir, _checkpoint_bytes(run_dir, *saved.values()), "a checkpoint")
    models.set_trainable(discriminator, True)
    folder = checkpoints.write(
        run_dir,
        checkpoints.folder_name(*position),
        saved,
        arrays,
        [run_dir / name for name in HISTORY],
        state,
    )
    checkpoints.prune(run_dir, keep)
    return folder


def _checkpoint_bytes(run_dir: Path, *saved: keras.Model) -> int:
    previous = checkpoints.pointed(run_dir, "LATEST")
    if previous is not None:
        return sum(f.stat().st_size for f in previous.iterdir())
    return sum(m.count_params() for m in saved) * 4 * 3  # weights and two Adam moments


def refuse_foreign_run(run_dir: Path) -> None:
    """A new run may not start in a folder that holds another run's checkpoints."""
    if checkpoints.complete(run_dir):
        raise UsageError(
            f"--out {run_dir} already holds a run; pass --resume to continue it or a new --out"
        )


def clear_history(run_dir: Path) -> None:
    """Drop the rows of a run killed before its first checkpoint."""
    for name in HISTORY:
        (run_dir / name).unlink(missing_ok=True)


def restore_history(folder: Path, run_dir: Path) -> None:
    """The history as the checkpoint ``folder`` kept it, so no row after it survives."""
    for name in HISTORY:
        kept, live = folder / name, run_dir / name
        if kept.exists():
            shutil.copy2(kept, live)
        else:
            live.unlink(missing_ok=True)


def append_rows(path: Path, rows: list[dict]) -> None:
    """Rows to a CSV history file, with a header when the file is new."""
    if not rows:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    with open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        if new:
            writer.writeheader()
        writer.writerows(rows)

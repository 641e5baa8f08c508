"""Checkpoint folders that survive crashes: atomic writes, a manifest, pointers, pruning.

A run folder holds ``checkpoints/``::

    epoch-0003/                  3 epochs done
    epoch-0003-step-000120/      3 epochs and 120 steps of the 4th (saved on Ctrl-C)
    LATEST, BEST, GOOD           one line each: the folder name they point at

A checkpoint is written into a staging folder (``NAME.tmp-PID``, atomic.py), every file
flushed to disk, ``manifest.json`` (size and SHA-256 of every other file) written last,
and the folder renamed into place; pointers are replaced the same way. So a process
killed at any moment leaves either the previous checkpoint or the new one, never half of
one, and a damaged file (truncated copy, full disk) is caught by the manifest before it
is loaded: ``find`` then falls back to the newest intact checkpoint and says so.

What goes into a checkpoint (models, arrays, state) is runs.py's business; this module
does not know about GANs.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np

import atomic
import schemas
from cli import CommandError

POINTERS = ("LATEST", "BEST", "GOOD")
FOLDER_NAME = re.compile(r"epoch-\d{4}(-step-\d{6})?")
MANIFEST = "manifest.json"
STATE = "state.json"


class CheckpointError(CommandError):
    """A checkpoint cannot be written or read; the message says what to do."""


def folder_name(epoch: int, step: int = 0) -> str:
    """Names sort in training order: epoch-0003 < epoch-0003-step-000120 < epoch-0004."""
    return f"epoch-{epoch:04d}" + (f"-step-{step:06d}" if step else "")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write(
    run_dir: Path,
    name: str,
    models: dict,
    arrays: dict[str, np.ndarray],
    copies: list[Path],
    state: dict,
) -> Path:
    """Write ``checkpoints/NAME`` atomically and point LATEST at it.

    ``models`` are Keras models saved as ``KEY.keras``, ``arrays`` numpy arrays saved as
    ``KEY.npy``, ``copies`` files copied in as they are (the loss history).
    """
    root = run_dir / "checkpoints"
    folder = root / name
    atomic.reclaim(atomic.leftovers(root))  # a killed write's, whichever step it was
    with atomic.building(folder) as staging:
        for key, model in models.items():
            model.save(staging / f"{key}.keras")
        for key, array in arrays.items():
            np.save(staging / f"{key}.npy", array)
        for path in copies:
            if path.exists():
                shutil.copy2(path, staging / path.name)
        (staging / STATE).write_text(json.dumps(state, indent=2))
        files = sorted(p for p in staging.iterdir() if p.is_file())
        for path in files:
            atomic.fsync(path)
        manifest = {p.name: {"bytes": p.stat().st_size, "sha256": _sha256(p)} for p in files}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2))
        atomic.fsync(staging / MANIFEST)
    point(run_dir, "LATEST", folder)
    return folder


def point(run_dir: Path, label: str, folder: Path) -> None:
    with atomic.replacing(run_dir / "checkpoints" / label) as partial:
        partial.write_text(folder.name + "\n")


def pointed(run_dir: Path, label: str) -> Path | None:
    """The checkpoint a pointer names, if the pointer holds a checkpoint's name and that
    folder exists (anything else in it, a path elsewhere included, counts as no pointer)."""
    try:
        name = (run_dir / "checkpoints" / label).read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    folder = run_dir / "checkpoints" / name
    return folder if FOLDER_NAME.fullmatch(name) and folder.is_dir() else None


def prune(run_dir: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints and those a pointer names."""
    protected = {folder.name for label in POINTERS if (folder := pointed(run_dir, label))}
    for old in complete(run_dir)[:-keep]:
        if old.name not in protected:
            shutil.rmtree(old, ignore_errors=True)


def complete(run_dir: Path) -> list[Path]:
    """Checkpoint folders in training order (staging folders are hidden, never listed)."""
    folders = (run_dir / "checkpoints").glob("epoch-*")
    return sorted(p for p in folders if FOLDER_NAME.fullmatch(p.name) and p.is_dir())


def verify(folder: Path) -> str | None:
    """What is wrong with a checkpoint folder, or None when its manifest checks out and
    the manifest and state.json have their schemas' shape."""
    manifest, problem = schemas.parse_json(folder / MANIFEST, schemas.CHECKPOINT_MANIFEST)
    if problem is not None:
        return f"{MANIFEST}: {problem}"
    if STATE not in manifest:
        return f"{MANIFEST} does not list {STATE}"
    for name, expected in manifest.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != expected["bytes"]:
            return f"{name} has {path.stat().st_size} bytes, the manifest says {expected['bytes']}"
        if _sha256(path) != expected["sha256"]:
            return f"{name} does not match its checksum"
    _, problem = schemas.parse_json(folder / STATE, schemas.STATE)
    return None if problem is None else f"{STATE}: {problem}"


def find(path: str | os.PathLike) -> Path | None:
    """The checkpoint to use for a run folder, a checkpoints folder, a checkpoint folder
    or its generator.keras: LATEST when intact, else the newest intact one (said on
    stderr). None when there is no checkpoint there at all."""
    path = Path(path)
    if path.name == "generator.keras" and path.is_file():
        path = path.parent
    if (path / STATE).is_file():
        problem = verify(path)
        if problem:
            raise CheckpointError(f"{path}: damaged checkpoint ({problem}); use another one")
        return path
    run_dir = path.parent if path.name == "checkpoints" else path
    latest = pointed(run_dir, "LATEST")
    candidates = ([latest] if latest else []) + [
        folder for folder in complete(run_dir)[::-1] if folder != latest
    ]
    problems = []
    for folder in candidates:
        problem = verify(folder)
        if problem is None:
            if problems:
                print(
                    f"skipping damaged checkpoint(s): {'; '.join(problems)}; using {folder}",
                    file=sys.stderr,
                )
            return folder
        problems.append(f"{folder.name}: {problem}")
    if problems:
        raise CheckpointError(f"{run_dir}: no intact checkpoint ({'; '.join(problems)})")
    return None

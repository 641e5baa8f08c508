"""Writing all-or-nothing: a file through a hidden temporary beside it (``replacing``),
a folder through a staging folder renamed into place (``staging_folder``,
``replace_folder``), and the reclaiming of staging folders that killed processes left.

A staging folder is named ``TARGET.tmp-PID`` (its trash on replacement
``TARGET.old-PID``), so a later build can tell a dead process's leftover, which it
removes and reports, from a live one's, which it leaves alone. What is written is the
callers' business (dataset.py's cache, synth_faces.py's set, checkpoints.py's
checkpoints); this module only makes each write whole or absent.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

LEFTOVER = re.compile(r"(?P<target>.+)\.(tmp|old)-(?P<pid>\d+)")


def fsync(path: Path) -> None:
    """Flush a file or folder to disk, so a rename after it survives a power cut."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """Yield a hidden temporary path beside ``path`` (same suffix, which some writers
    insist on) to write to; when the block ends, the file is flushed to disk and renamed
    over ``path``, so readers see the old file or the new one, never half of one. If
    the block fails, the temporary file is removed and ``path`` is untouched."""
    partial = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        yield partial
        fsync(partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def leftovers(folder: Path, target: str | None = None) -> list[Path]:
    """Staging and trash folders in ``folder`` (of ``target`` only, where given) whose
    process is gone."""
    if not folder.is_dir():
        return []
    found = (LEFTOVER.fullmatch(path.name) for path in folder.iterdir())
    return sorted(
        folder / match.string
        for match in found
        if match
        and target in (None, match["target"])
        and int(match["pid"]) != os.getpid()
        and not alive(int(match["pid"]))
    )


def reclaim(paths: list[Path]) -> None:
    """Remove leftovers, one line each on stderr."""
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)
        print(f"removed {path}, left by a killed build", file=sys.stderr)


def staging_folder(target: Path) -> Path:
    """An empty ``TARGET.tmp-PID`` beside ``target``, after removing (and reporting)
    the staging folders of ``target`` that dead processes left."""
    target.parent.mkdir(parents=True, exist_ok=True)
    reclaim(
        [p for p in leftovers(target.parent) if LEFTOVER.fullmatch(p.name)["target"] == target.name]
    )
    staging = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    return staging


def replace_folder(staging: Path, target: Path) -> None:
    """Swap the finished staging folder in; a reader sees the old folder or the new one."""
    if target.exists():
        trash = target.with_name(f"{target.name}.old-{os.getpid()}")
        os.replace(target, trash)
        os.replace(staging, target)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(staging, target)

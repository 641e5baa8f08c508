"""Writing all-or-nothing: a file through a hidden temporary beside it (``replacing``),
a folder through a staging folder renamed into place (``building``, ``output_folder``),
and the reclaiming of staging folders that killed processes left. A write that fails
for want of space or permission ends in ``WriteError`` naming the path
(``check_space`` refuses a large one before it starts).

A staging folder is named ``TARGET.tmp-PID`` (its trash on replacement
``TARGET.old-PID``), so a later build can tell a dead process's leftover, which it
removes and reports, from a live one's, which it leaves alone. What is written is the
callers' business (dataset.py's cache, synth_faces.py's set, checkpoints.py's
checkpoints); this module only makes each write whole or absent.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

from cli import CommandError

LEFTOVER = re.compile(r"(?P<target>.+)\.(tmp|old)-(?P<pid>\d+)")


def fsync(path: Path) -> None:
    """Flush a file or folder to disk, so a rename after it survives a power cut."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class WriteError(CommandError):
    """An output that cannot be written (full disk, read-only, no permission); the
    message names the path and the fix."""


FIXES = {
    errno.ENOSPC: "free some space or choose another folder",
    errno.EDQUOT: "free some space or choose another folder",
    errno.EEXIST: "a file is in the way of a folder; choose another path",
    errno.ENOTDIR: "a file is in the way of a folder; choose another path",
    errno.EACCES: "choose a folder you may write to",
    errno.EPERM: "choose a folder you may write to",
    errno.EROFS: "choose a folder on a writable disk",
}


def write_error(error: OSError, path: Path) -> WriteError:
    """One line for an OSError met while writing ``path``: where, why and the fix."""
    fix = FIXES.get(error.errno, "check the folder and choose another if need be")
    return WriteError(
        f"{error.filename or path}: cannot write ({error.strerror or error}); {fix}, "
        "then run the command again"
    )


def check_space(folder: Path, needed: int, what: str) -> None:
    """Refuse to start a write of about ``needed`` bytes into ``folder`` (which may not
    exist yet) that cannot fit, with twice the estimate as margin."""
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    free = shutil.disk_usage(existing).free
    if free < 2 * needed:
        raise WriteError(
            f"{folder}: {free / 2**20:.0f} MB free, {what} needs about "
            f"{needed / 2**20:.0f} MB (twice that kept free); free some space or choose "
            "another folder"
        )


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """Yield a hidden temporary path beside ``path`` (same suffix, which some writers
    insist on) to write to; when the block ends, the file is flushed to disk and renamed
    over ``path``, so readers see the old file or the new one, never half of one. If
    the block fails, the temporary file is removed and ``path`` is untouched; an
    OSError (full disk, ...) becomes a WriteError naming the path."""
    partial = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        yield partial
        fsync(partial)
        os.replace(partial, path)
    except OSError as error:
        raise write_error(error, path) from None
    finally:
        partial.unlink(missing_ok=True)


@contextlib.contextmanager
def output_folder(out: Path) -> Iterator[Path]:
    """A staging folder for a command's outputs, moved into ``out`` when the block ends:
    all of them or, on any failure, none (and no ``out`` created); an OSError becomes a
    WriteError naming the path."""
    if out.exists() and not out.is_dir():
        raise WriteError(f"{out}: a file, not a folder; choose another folder for the outputs")
    staging = staging_folder(out)
    try:
        yield staging
        if not out.exists():
            os.replace(staging, out)
        else:  # beside earlier outputs: renames within one file system need no space
            for path in sorted(staging.iterdir()):
                os.replace(path, out / path.name)
    except OSError as error:
        raise write_error(error, out) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


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
        print(f"removed {path}, left by a killed process", file=sys.stderr)


def staging_folder(target: Path) -> Path:
    """An empty ``TARGET.tmp-PID`` beside ``target``, after removing (and reporting)
    the staging folders of ``target`` that dead processes left."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        reclaim(leftovers(target.parent, target.name))
        staging = target.with_name(f"{target.name}.tmp-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
    except OSError as error:
        raise write_error(error, target) from None
    return staging


def replace_folder(staging: Path, target: Path) -> None:
    """Swap the finished staging folder in; a reader sees the old folder or the new one."""
    fsync(staging)
    if target.exists():
        trash = target.with_name(f"{target.name}.old-{os.getpid()}")
        os.replace(target, trash)
        os.replace(staging, target)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(staging, target)
    fsync(target.parent)


@contextlib.contextmanager
def building(target: Path) -> Iterator[Path]:
    """A staging folder to build ``target`` in, swapped in when the block ends. On any
    failure (an exception, Ctrl-C) it is removed and ``target`` is as it was; an OSError
    (full disk, ...) becomes a WriteError naming ``target``."""
    staging = staging_folder(target)
    try:
        yield staging
        replace_folder(staging, target)
    except OSError as error:
        raise write_error(error, target) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)

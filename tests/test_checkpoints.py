"""checkpoints.py: atomic folders, the manifest, fallback to an intact checkpoint, pruning."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import namedtuple

import numpy as np
import pytest

import atomic
import checkpoints
import runs
from config import RunSettings
from quiet_keras import keras


def tiny_model() -> keras.Model:
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("adam", "mse")
    return model


def save(run_dir, epoch: int, step: int = 0):
    (run_dir / "losses.csv").write_text(f"epoch\n{epoch}\n")
    return checkpoints.write(
        run_dir,
        checkpoints.folder_name(epoch, step),
        {"model": tiny_model()},
        {"probes": np.arange(4)},
        [run_dir / "losses.csv", run_dir / "absent.csv"],
        runs.checkpoint_state((epoch, step), RunSettings(), None, -np.inf),
    )


def test_a_written_checkpoint_is_complete_pointed_at_and_verified(tmp_path):
    folder = save(tmp_path, 1)
    assert folder.name == "epoch-0001"
    names = {p.name for p in folder.iterdir()}
    assert names == {"model.keras", "probes.npy", "losses.csv", "state.json", "manifest.json"}
    assert checkpoints.verify(folder) is None
    assert checkpoints.find(tmp_path) == folder
    assert checkpoints.find(tmp_path / "checkpoints") == folder
    assert [p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".")] == []


def test_names_sort_in_training_order():
    names = [checkpoints.folder_name(e, s) for e, s in ((3, 0), (3, 120), (4, 0), (10, 0))]
    assert names == sorted(names)


def test_a_damaged_latest_falls_back_to_the_newest_intact_one(tmp_path, capsys):
    first = save(tmp_path, 1)
    second = save(tmp_path, 2)
    with open(second / "model.keras", "r+b") as handle:
        handle.truncate(100)
    assert "model.keras has 100 bytes" in checkpoints.verify(second)
    assert checkpoints.find(tmp_path) == first
    assert "skipping damaged checkpoint(s): epoch-0002" in capsys.readouterr().err
    with pytest.raises(checkpoints.CheckpointError, match="damaged checkpoint"):
        checkpoints.find(second)


def test_no_intact_checkpoint_at_all_is_an_error_not_a_fresh_start(tmp_path):
    folder = save(tmp_path, 1)
    (folder / "manifest.json").unlink()
    with pytest.raises(checkpoints.CheckpointError, match="no intact checkpoint"):
        checkpoints.find(tmp_path)


def test_staging_leftovers_of_a_killed_write_are_never_used(tmp_path):
    folder = save(tmp_path, 1)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    leftover = tmp_path / "checkpoints" / f"epoch-0002.tmp-{gone.pid}"
    leftover.mkdir()
    assert checkpoints.complete(tmp_path) == [folder]
    assert checkpoints.find(tmp_path) == folder
    save(tmp_path, 3)  # the next write, of any step, removes the leftover
    assert not leftover.exists()


def test_a_failed_write_leaves_nothing_and_latest_unchanged(tmp_path, monkeypatch):
    first = save(tmp_path, 1)

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "save", full_disk)
    with pytest.raises(atomic.WriteError, match=r"epoch-0002: cannot write \(No space left"):
        save(tmp_path, 2)
    assert checkpoints.complete(tmp_path) == [first]
    assert checkpoints.find(tmp_path) == first
    assert not list((tmp_path / "checkpoints").glob(".epoch-*"))


def test_prune_keeps_the_newest_and_the_pointed_at(tmp_path):
    folders = [save(tmp_path, epoch) for epoch in range(1, 6)]
    checkpoints.point(tmp_path, "BEST", folders[0])
    checkpoints.point(tmp_path, "GOOD", folders[1])
    checkpoints.prune(tmp_path, keep=2)
    assert [p.name for p in checkpoints.complete(tmp_path)] == [
        "epoch-0001",
        "epoch-0002",
        "epoch-0004",
        "epoch-0005",
    ]


def test_too_little_disk_space_is_refused_before_writing(tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9, 5 * 2**20))
    with pytest.raises(atomic.WriteError, match="5 MB free, a checkpoint needs about 4"):
        atomic.check_space(tmp_path, 4 * 2**20, "a checkpoint")
    atomic.check_space(tmp_path, 2 * 2**20, "a checkpoint")

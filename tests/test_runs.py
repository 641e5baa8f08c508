"""runs.py: checkpoints written before the layout split (fixtures/run-0b2a928) still
load, resume and generate.

The fixture is a tiny run on synthetic faces, made by commit 0b2a928's dcgan.py (the
last before models.py, training.py and runs.py existed) with
``dcgan.py --epochs 1 --image-size 32 --batch-size 8 --noise-dim 4 --width 4
--steps-per-epoch 2``; its layers are registered under the "dcgan" package name.
"""

from __future__ import annotations

import shutil

import numpy as np
from conftest import PROJECT

import checkpoints
import dcgan
import runs

OLD_RUN = PROJECT / "tests" / "fixtures" / "run-0b2a928"


def test_an_old_checkpoint_loads_with_its_settings_and_arrays():
    saved = runs.load_checkpoint(checkpoints.find(OLD_RUN))
    assert saved.state["epoch"] == 1 and saved.state["settings"]["noise_dim"] == 4
    assert saved.generator.input_shape == (None, 44)
    assert saved.discriminator.get_layer("projection").embedding.shape == (40, 4 * 4 * 16)
    assert int(saved.discriminator.optimizer.iterations) == 2
    assert saved.probes.shape == (64, 44) and saved.attribute_rows.shape[1] == 40


def test_an_old_checkpoint_resumes_and_generates(synth_root, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(OLD_RUN, run)
    argv = ["--resume", "--epochs", "2", "--steps-per-epoch", "2", "--out", str(run)]
    assert dcgan.main([*argv, "--data-dir", str(synth_root)]) == 0
    resumed = runs.load_checkpoint(checkpoints.find(run))
    assert resumed.state["epoch"] == 2 and int(resumed.generator.optimizer.iterations) == 4
    assert len((run / "losses.csv").read_text().splitlines()) == 1 + 2 * 2
    old = runs.load_checkpoint(checkpoints.find(OLD_RUN))
    pairs = zip(old.generator.get_weights(), resumed.generator.get_weights())
    assert any(not np.array_equal(a, b) for a, b in pairs)
    faces = tmp_path / "faces"
    argv = ["generate", "--checkpoint", str(OLD_RUN), "--attrs", "Smiling, -Male", "--count", "3"]
    assert dcgan.main([*argv, "--out", str(faces)]) == 0
    assert sorted(p.name for p in faces.iterdir()) == [
        "face-0001.png",
        "face-0002.png",
        "face-0003.png",
        "grid.png",
    ]

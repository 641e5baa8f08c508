"""dcgan.py, the command line: training runs with resume, generation and errors; and
training.train driven by a config, without argv. The engines on JAX: test_engines.py."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from conftest import make_official_root, run_script, tiny_run
from PIL import Image

import checkpoints
import dcgan
import generation
import runs
import training
from config import TrainConfig


@pytest.fixture(scope="module")
def trained_run(synth_root, tmp_path_factory):
    """One short epoch on tiny synthetic data, then a resumed second one."""
    out = tmp_path_factory.mktemp("run") / "run"
    common = tiny_run(synth_root, out, steps=3)
    assert dcgan.main(["--epochs", "1", *common]) == 0
    first = json.loads((out / "checkpoints" / "epoch-0001" / "state.json").read_text())
    assert dcgan.main(["--epochs", "2", "--resume", *common]) == 0
    return out, common, first


def test_training_writes_grid_csv_plot_and_checkpoint(trained_run):
    out, _, first = trained_run
    assert (out / "samples" / "epoch-0001.png").stat().st_size > 5000
    assert (out / "losses.png").stat().st_size > 5000
    with open(out / "losses.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["epoch"], r["step"]) for r in rows] == [(e, s) for e in "12" for s in "123"]
    keys = ("d_loss", "d_attr", "d_acc", "g_loss", "g_attr")
    assert all(np.isfinite(float(r[k])) for r in rows for k in keys)
    folder = out / "checkpoints" / "epoch-0001"
    for name in ("generator.keras", "discriminator.keras", "state.json", "probes.npy"):
        assert (folder / name).is_file()
    assert first["epoch"] == 1 and first["settings"]["image_size"] == 32


def test_resume_continues_the_epoch_count(trained_run):
    out, _, _ = trained_run
    assert (out / "checkpoints" / "LATEST").read_text().strip() == "epoch-0002"
    state = json.loads((out / "checkpoints" / "epoch-0002" / "state.json").read_text())
    assert state["epoch"] == 2
    assert (out / "samples" / "epoch-0002.png").is_file()


def test_resume_restores_the_optimizer_state(trained_run):
    out, _, _ = trained_run
    generator, discriminator, *_ = runs.load_checkpoint(out / "checkpoints" / "epoch-0002")
    assert int(generator.optimizer.iterations) == 6  # 3 steps per epoch, two epochs
    assert int(discriminator.optimizer.iterations) == 6


def test_resume_with_another_architecture_names_both_values(trained_run, capsys):
    _, common, _ = trained_run
    args = [*common, "--epochs", "3", "--resume"]
    args[args.index("--noise-dim") + 1] = "16"
    assert dcgan.main(args) == 2
    assert "trained with --noise-dim 8, not --noise-dim 16" in capsys.readouterr().err


def test_resume_with_another_loss_is_refused(trained_run, capsys):
    _, common, _ = trained_run
    assert dcgan.main([*common, "--epochs", "3", "--resume", "--loss", "hinge"]) == 2
    assert "trained with --loss bce, not --loss hinge" in capsys.readouterr().err


def test_hinge_loss_trains(synth_root, tmp_path):
    out = tmp_path / "hinge"
    args = [*tiny_run(synth_root, out, steps=2), "--loss", "hinge", "--epochs", "1"]
    assert dcgan.main(args) == 0
    with open(out / "losses.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 and all(np.isfinite(float(r["d_loss"])) for r in rows)
    state = json.loads((out / "checkpoints" / "epoch-0001" / "state.json").read_text())
    assert state["settings"]["loss"] == "hinge"


def test_generate_writes_pngs_and_a_grid(trained_run, tmp_path):
    out, _, _ = trained_run
    target = tmp_path / "faces"
    args = [
        "generate",
        "--checkpoint",
        str(out),
        "--attrs",
        "Smiling,Eyeglasses,-Male",
        "--count",
        "5",
        "--out",
        str(target),
    ]
    assert dcgan.main(args) == 0
    assert sorted(p.name for p in target.iterdir()) == [
        *(f"face-{i:04d}.png" for i in range(1, 6)),
        "grid.png",
    ]
    flips = [
        "generate",
        "--checkpoint",
        str(out),
        "--flip",
        "Smiling,Male",
        "--count",
        "3",
        "--out",
        str(target),
    ]
    assert dcgan.main(flips) == 0
    assert (target / "flips.png").is_file()


def test_sweep_and_interpolation_write_a_strip_and_a_gif_that_loops_back(trained_run, tmp_path):
    out, _, _ = trained_run
    target = tmp_path / "paths"
    common = ["generate", "--checkpoint", str(out), "--count", "3", "--frames", "5"]
    assert dcgan.main([*common, "--sweep", "Smiling", "--out", str(target)]) == 0
    assert dcgan.main([*common, "--interpolate", "7", "--out", str(target)]) == 0
    assert dcgan.main([*common, "--interpolate", "-Smiling, Male", "--out", str(tmp_path)]) == 0
    for stem in ("sweep", "interpolation"):
        assert Image.open(target / f"{stem}.png").size[0] > 5 * 32
        with Image.open(target / f"{stem}.gif") as gif:
            assert gif.n_frames == 8  # 5 forwards and 3 back, so the loop never jumps
            assert gif.size == (3 * 32, 32)
    assert (tmp_path / "interpolation.gif").is_file()


def test_a_half_strength_is_the_sweeps_middle_and_lies_between_its_ends(trained_run):
    model = generation.FaceModel.checkpoint(trained_run[0])
    request = generation.Request(model, "Eyeglasses")
    off, half, on = generation.sweep(request, "Smiling", 6, seed=3, frames=3).images
    faces = generation.Request(model, "Eyeglasses, Smiling=0.5").faces(6, seed=3)
    np.testing.assert_allclose(faces, half, atol=1e-5)  # same faces, same draws
    span = np.abs(on - off).mean(axis=(1, 2, 3))
    assert (span > 0).all()
    assert (np.abs(half - off).mean(axis=(1, 2, 3)) < span).all()
    assert (np.abs(half - on).mean(axis=(1, 2, 3)) < span).all()


@pytest.mark.parametrize("target", ["7", "-Smiling, Eyeglasses"])
def test_interpolations_move_in_even_steps_between_the_faces_generate_makes(trained_run, target):
    request = generation.Request(generation.FaceModel.checkpoint(trained_run[0]), "")
    images = generation.interpolation(request, target, 4, seed=0, frames=9).images
    steps = np.abs(np.diff(images, axis=0)).mean(axis=(2, 3, 4))  # (8 steps, 4 faces)
    assert (steps.max(axis=0) < 3 * steps.mean(axis=0)).all()
    np.testing.assert_allclose(request.faces(4, seed=0), images[0], atol=1e-5)
    if target == "7":
        np.testing.assert_allclose(request.faces(4, seed=7), images[-1], atol=1e-5)


def test_cli_errors_are_one_line_without_traceback(tmp_path):
    result = run_script("dcgan.py", "generate", "--checkpoint", str(tmp_path), "--attrs", "Smiling")
    assert result.returncode == 2
    assert result.stderr.startswith("error: --checkpoint") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


def test_unknown_attribute_in_generate_suggests_the_name(trained_run, capsys):
    out, _, _ = trained_run
    assert dcgan.main(["generate", "--checkpoint", str(out), "--attrs", "Eyeglass"]) == 2
    assert "Did you mean Eyeglasses?" in capsys.readouterr().err


def test_minutes_stops_before_an_epoch_that_would_end_past_the_budget(synth_root, tmp_path, capsys):
    out = tmp_path / "timed"
    assert dcgan.main([*tiny_run(synth_root, out, steps=1), "--minutes", "0.001"]) == 0
    assert (out / "checkpoints" / "LATEST").read_text().strip() == "epoch-0001"
    assert "--minutes 0.001: stopping after epoch 1;" in capsys.readouterr().err


def test_augment_auto_picks_by_the_data_and_a_resume_keeps_the_choice(synth_root, tmp_path, capsys):
    """--augment auto, the default: none on the synthetic faces, translation on photos (a
    CelebA layout), said on stderr and saved as the run's policy."""
    photos, _ = make_official_root(tmp_path / "celeba", count=16)
    (photos / "list_eval_partition.txt").unlink()  # all 16 train: one batch
    for data, kind, policy in (
        (synth_root, "synthetic faces", ""),
        (photos, "photos", "translation"),
    ):
        out = tmp_path / kind.replace(" ", "-")
        assert dcgan.main([*tiny_run(data, out, 1), "--epochs", "1"]) == 0
        assert f"--augment auto: {policy or 'none'} on {kind}" in capsys.readouterr().err
        assert runs.read_state(checkpoints.find(out))["settings"]["augment"] == policy
        again = [*tiny_run(data, out, 1), "--epochs", "2", "--resume", "--augment", "auto"]
        assert dcgan.main(again) == 0
        assert runs.read_state(checkpoints.find(out))["settings"]["augment"] == policy


def test_train_takes_a_config_and_trains_what_the_command_line_trains(synth_root, tmp_path):
    """training.train(TrainConfig(...)) needs no argv, and dcgan.py's flags map onto the
    config field for field: the same run both ways saves the same weights."""
    config = TrainConfig(
        out=tmp_path / "config",
        data_dir=str(synth_root),
        epochs=1,
        steps_per_epoch=2,
        image_size=32,
        batch_size=16,
        noise_dim=8,
        width=8,
        seed=5,
        lr=1e-3,
    )
    assert training.train(config) == config.out
    argv = [*tiny_run(synth_root, tmp_path / "argv", 2), "--epochs", "1", "--seed", "5"]
    assert dcgan.main([*argv, "--lr", "1e-3"]) == 0
    saved = [runs.load_checkpoint(checkpoints.find(out)) for out in (config.out, tmp_path / "argv")]
    assert saved[0].state["settings"] == saved[1].state["settings"]
    assert saved[0].state["settings"]["seed"] == 5 and saved[0].state["epoch"] == 1
    for a, b in zip(saved[0].generator.get_weights(), saved[1].generator.get_weights()):
        np.testing.assert_array_equal(a, b)

"""Training under faults: Ctrl-C/SIGTERM, kill -9, divergence, and resume equivalence.

A run that is stopped and resumed must end in the state an uninterrupted run reaches;
on TensorFlow's CPU kernels, with the same seed, that is bitwise.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import EVERY_LEVER, PROJECT, tiny_run

import checkpoints
import dcgan
import models
import runs
import training

STEPS = 3


def final_state(out: Path) -> dict:
    """Weights, optimizer step counts and loss history of a run's LATEST checkpoint."""
    folder = checkpoints.find(out)
    saved = runs.load_checkpoint(folder)
    generator, discriminator, state = saved.generator, saved.discriminator, saved.state
    average = [] if saved.average is None else saved.average.get_weights()
    return {
        "position": (state["epoch"], state["step"]),
        "weights": generator.get_weights() + discriminator.get_weights() + average,
        "iterations": (
            int(generator.optimizer.iterations),
            int(discriminator.optimizer.iterations),
        ),
        "losses": (out / "losses.csv").read_text(),
    }


def assert_same_run(a: dict, b: dict) -> None:
    assert a["position"] == b["position"] and a["iterations"] == b["iterations"]
    assert a["losses"] == b["losses"]
    for x, y in zip(a["weights"], b["weights"], strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.fixture(scope="module")
def uninterrupted(synth_root, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("straight") / "run"
    assert dcgan.main([*tiny_run(synth_root, out, STEPS), "--epochs", "3"]) == 0
    return final_state(out)


@pytest.fixture(scope="module")
def uninterrupted_with_every_lever(synth_root, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("levers") / "run"
    assert dcgan.main([*tiny_run(synth_root, out, STEPS), *EVERY_LEVER, "--epochs", "3"]) == 0
    return final_state(out)


def signal_on_call(monkeypatch, call: int, signum: int) -> None:
    """Make the process receive ``signum`` during the ``call``-th training step."""
    real_step, calls = models.train_step, []

    def step(*args):
        calls.append(1)
        if len(calls) == call:
            os.kill(os.getpid(), signum)
        return real_step(*args)

    monkeypatch.setattr(models, "train_step", step)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_saves_mid_epoch_and_resume_ends_as_if_uninterrupted(
    signum, synth_root, tmp_path, monkeypatch, capsys, uninterrupted
):
    out = tmp_path / "run"
    args = [*tiny_run(synth_root, out, STEPS), "--epochs", "3"]
    signal_on_call(monkeypatch, STEPS + 2, signum)  # epoch 2, step 2
    assert dcgan.main(args) == 0
    err = capsys.readouterr().err
    name = signal.Signals(signum).name
    assert f"{name}: saved" in err and "continue from epoch 2, step 3" in err
    assert checkpoints.find(out).name == "epoch-0001-step-000002"
    monkeypatch.undo()
    assert dcgan.main([*args, "--resume"]) == 0
    assert "epoch 2, step 3 is next" in capsys.readouterr().err
    assert_same_run(final_state(out), uninterrupted)


def test_with_every_lever_on_a_stop_and_resume_still_ends_as_if_uninterrupted(
    synth_root, tmp_path, monkeypatch, capsys, uninterrupted_with_every_lever
):
    out = tmp_path / "run"
    args = [*tiny_run(synth_root, out, STEPS), *EVERY_LEVER, "--epochs", "3"]
    signal_on_call(monkeypatch, STEPS + 2, signal.SIGINT)
    assert dcgan.main(args) == 0
    assert checkpoints.find(out).name == "epoch-0001-step-000002"
    monkeypatch.undo()
    assert dcgan.main([*args, "--resume"]) == 0
    assert runs.load_checkpoint(checkpoints.find(out)).average is not None  # compared too
    assert_same_run(final_state(out), uninterrupted_with_every_lever)


def test_kill_9_at_random_moments_always_resumes_from_a_complete_checkpoint(
    synth_root, tmp_path, uninterrupted
):
    out = tmp_path / "run"
    command = [sys.executable, str(PROJECT / "dcgan.py"), *tiny_run(synth_root, out, STEPS)]
    command += ["--epochs", "3", "--resume"]
    rng = np.random.default_rng(0)
    for _ in range(3):
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started = time.monotonic()
        latest = out / "checkpoints" / "LATEST"
        before = latest.read_text() if latest.exists() else None
        while process.poll() is None and time.monotonic() - started < 120:
            if latest.exists() and latest.read_text() != before:
                break  # a new checkpoint landed: kill somewhere in what follows
            time.sleep(0.02)
        time.sleep(rng.uniform(0, 1.5))
        process.kill()
        process.wait()
        if process.returncode == 0:
            break
        folder = checkpoints.find(out)  # raises if anything half-written were chosen
        assert checkpoints.verify(folder) is None
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert_same_run(final_state(out), uninterrupted)


def test_guard_flags_non_finite_losses_at_once():
    guard = training.DivergenceGuard()
    with pytest.raises(training.DivergenceError, match="not finite"):
        guard.check({"d_loss": float("nan"), "g_loss": 1.0}, 0)


def test_guard_flags_a_discriminator_that_has_won_outright():
    guard = training.DivergenceGuard(floor=0.05, patience=100, smoothing=10)
    for step in range(100):  # a normal stretch never trips it
        guard.check({"d_loss": 0.4, "g_loss": 2.0}, step)
    with pytest.raises(training.DivergenceError, match="won outright for 100 steps"):
        for step in range(100, 300):
            guard.check({"d_loss": 0.001, "g_loss": 2.0 + step / 50}, step)
            if step in (100, 110):  # unhealthy once the running mean has fallen
                assert guard.healthy == (step == 100)


def test_guard_lets_a_low_but_balanced_stretch_pass():
    guard = training.DivergenceGuard(floor=0.05, patience=50, smoothing=10)
    for step in range(300):  # D's loss low, but the generator's falling, not climbing
        guard.check({"d_loss": 0.01, "g_loss": 5.0 - step / 100}, step)


def nan_on_calls(monkeypatch, calls_to_spoil: set[int]) -> None:
    real_step, calls = models.train_step, []

    def step(*args):
        calls.append(1)
        losses = real_step(*args)
        return {**losses, "g_loss": float("nan")} if len(calls) in calls_to_spoil else losses

    monkeypatch.setattr(models, "train_step", step)


def test_divergence_stops_with_the_last_good_checkpoint_as_latest(
    synth_root, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "run"
    nan_on_calls(monkeypatch, {STEPS + 2})
    assert dcgan.main([*tiny_run(synth_root, out, STEPS), "--epochs", "3"]) == 3
    err = capsys.readouterr().err
    assert "training diverged in epoch 2: a loss is not finite" in err
    assert "the last good checkpoint" in err and "--on-divergence rollback" in err
    assert checkpoints.find(out).name == "epoch-0001"
    assert checkpoints.pointed(out, "GOOD").name == "epoch-0001"


def test_rollback_goes_back_to_the_good_checkpoint_with_half_the_learning_rate(
    synth_root, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "run"
    nan_on_calls(monkeypatch, {STEPS + 2})
    args = [*tiny_run(synth_root, out, STEPS), "--epochs", "3", "--lr", "4e-4"]
    assert dcgan.main([*args, "--on-divergence", "rollback"]) == 0
    assert "rolling back to epoch-0001 with the learning rates halved to 0.0002 (D) and 0.0002" in (
        capsys.readouterr().err
    )
    state = json.loads((checkpoints.find(out) / "state.json").read_text())
    assert state["epoch"] == 3 and state["settings"]["lr_d"] == state["settings"][
        "lr_g"
    ] == pytest.approx(2e-4)
    generator, *_ = runs.load_checkpoint(checkpoints.find(out))
    assert float(generator.optimizer.learning_rate) == pytest.approx(2e-4)
    rows = (out / "losses.csv").read_text().splitlines()
    assert len(rows) == 1 + 3 * STEPS  # the abandoned steps are not in the history


def test_resume_with_another_batch_size_names_both_values(synth_root, tmp_path, capsys):
    out = tmp_path / "run"
    args = [*tiny_run(synth_root, out, 1), "--epochs", "1"]
    assert dcgan.main(args) == 0
    args[args.index("--batch-size") + 1] = "24"
    assert dcgan.main([*args, "--epochs", "2", "--resume"]) == 2
    assert "trained with --batch-size 16, not --batch-size 24" in capsys.readouterr().err


def test_a_run_killed_before_its_first_checkpoint_starts_fresh_without_its_rows(
    synth_root, tmp_path, capsys
):
    out = tmp_path / "run"
    out.mkdir()
    (out / "losses.csv").write_text("epoch,step,d_loss\n1,1,0.5\n1,2,0.4\n")
    assert dcgan.main([*tiny_run(synth_root, out, 2), "--epochs", "1", "--resume"]) == 0
    assert "no checkpoint in" in capsys.readouterr().err
    rows = (out / "losses.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,step,d_loss,d_attr") and len(rows) == 3

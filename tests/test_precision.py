"""--precision mixed_bfloat16: the networks compute in bfloat16 while their weights, their
losses and the faces they draw stay float32; the run saves, resumes exactly and
generates like a float32 one, on the Keras engine (TensorFlow, this session's backend)
and on JAX's compiled one."""

from __future__ import annotations

import importlib.util
import json
import signal

import numpy as np
import pytest
from conftest import EVERY_LEVER, tiny_run
from test_faults import assert_same_run, final_state, signal_on_call

import checkpoints
import dcgan
import runs

STEPS = 3
MIXED = ("--precision", "mixed_bfloat16")


def mixed(root, out) -> list[str]:
    """Three epochs of every lever in mixed precision."""
    return [*tiny_run(root, out, STEPS), *EVERY_LEVER, *MIXED, "--epochs", "3"]


@pytest.fixture(scope="module")
def mixed_run(synth_root, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("mixed") / "run"
    args = mixed(synth_root, out)
    assert dcgan.main(args) == 0
    return {"out": out, "args": args, **final_state(out)}


def test_the_networks_compute_in_bfloat16_and_keep_float32_weights_and_outputs(mixed_run):
    saved = runs.load_checkpoint(checkpoints.find(mixed_run["out"]))
    for net in (saved.generator, saved.discriminator, saved.average):
        computing = {layer.dtype_policy.compute_dtype for layer in net.layers[1:]}
        assert "bfloat16" in computing
        assert {v.dtype for v in net.weights} == {"float32"}
    noise = np.random.default_rng(0).uniform(0, 1, (4, 48)).astype(np.float32)
    faces = np.asarray(saved.generator.predict_on_batch(noise))
    assert faces.dtype == np.float32 and np.all(np.abs(faces) <= 1)
    scores = saved.discriminator.predict_on_batch([faces, noise[:, :40]])
    assert {np.asarray(s).dtype for s in scores.values()} == {np.dtype("float32")}
    state = json.loads((checkpoints.find(mixed_run["out"]) / "state.json").read_text())
    assert state["settings"]["precision"] == "mixed_bfloat16"


def test_mixed_precision_trains_other_weights_than_float32(synth_root, tmp_path, mixed_run):
    out = tmp_path / "run"
    assert dcgan.main([*tiny_run(synth_root, out, STEPS), *EVERY_LEVER, "--epochs", "3"]) == 0
    plain = final_state(out)
    assert all(np.all(np.isfinite(w)) for w in mixed_run["weights"])
    assert any(not np.array_equal(a, b) for a, b in zip(plain["weights"], mixed_run["weights"]))


def test_a_mixed_precision_run_stopped_mid_epoch_resumes_as_if_uninterrupted(
    synth_root, tmp_path, monkeypatch, mixed_run
):
    out = tmp_path / "run"
    args = mixed(synth_root, out)
    signal_on_call(monkeypatch, STEPS + 2, signal.SIGINT)
    assert dcgan.main(args) == 0
    assert checkpoints.find(out).name == "epoch-0001-step-000002"
    monkeypatch.undo()
    assert dcgan.main([*args, "--resume"]) == 0
    assert_same_run(final_state(out), mixed_run)


def test_resuming_in_another_precision_is_refused_in_one_line(mixed_run, capsys):
    args = [a for a in mixed_run["args"] if a not in MIXED]
    assert dcgan.main([*args, "--precision", "float32", "--epochs", "4", "--resume"]) == 2
    assert "trained with --precision mixed_bfloat16, not --precision float32" in (
        capsys.readouterr().err
    )


def test_a_mixed_precision_checkpoint_generates_faces(mixed_run, tmp_path):
    out = tmp_path / "faces"
    argv = ["generate", "--checkpoint", str(mixed_run["out"]), "--attrs", "Smiling,not Male"]
    assert dcgan.main([*argv, "--count", "2", "--out", str(out)]) == 0
    assert len(list(out.glob("*.png"))) >= 2


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
def test_the_compiled_engine_trains_the_keras_engines_mixed_precision_weights(synth_root, tmp_path):
    """On JAX, in bfloat16: the compiled engine against the Keras engine. bfloat16
    keeps 8 bits of mantissa, so the two compilations' roundings differ by more than in
    float32 (test_engines.py's 1e-5); the bound is set against how far training moves
    the weights."""
    from test_engines import saved, train

    runs_ = []
    for engine in ("keras", "compiled"):
        out = tmp_path / engine
        train([*tiny_run(synth_root, out, STEPS), *MIXED, "--epochs", "2", "--engine", engine])
        runs_.append(saved(out))
    first = runs.load_checkpoint(tmp_path / "keras" / "checkpoints" / "epoch-0001")
    before = first.generator.get_weights() + first.discriminator.get_weights()
    keras_weights = runs_[0]["weights"][: len(before)]
    moved = max(float(np.abs(a - b).max()) for a, b in zip(keras_weights, before))
    gap = max(float(np.abs(a - b).max()) for a, b in zip(*(r["weights"] for r in runs_)))
    assert gap < moved / 20, (gap, moved)  # measured: 3.1e-3 against 0.24

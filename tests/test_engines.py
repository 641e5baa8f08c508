"""The two step engines train the same weights: the Keras engine (keras_engine.py) and
JAX's compiled one (compiled_step.py) at any steps per call, on one device or split over
four virtual CPU devices, in one process or two on loopback (parallel.py); and the
compiled engine, dcgan.py's default on JAX, resumes bitwise after a stop or a kill.

Everything here runs on JAX in child processes (the test session's backend is
TensorFlow). Tolerances: the two engines compile the same arithmetic differently
(Keras' jit of each train_on_batch against one scan), so their weights agree to 1e-5
after a few steps that move them by over 1e-3; the compiled engine against itself, at
other steps per call or across a resume, is bitwise on the CPU.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import EVERY_LEVER, PROJECT, tiny_run

import checkpoints
import dataset
import runs

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("jax") is None,
    reason="jax is not installed: pip install -r requirements-dev.txt",
)
ENGINE_TOLERANCE = 1e-5
# Two processes reduce their gradients over gloo in another order: after 10 steps with
# every lever on, 9 of 24,576 weights of one layer differed by 2.1e-5 (Adam magnifies
# rounding where a gradient is near zero), against moves of 0.28.
# With --attr-weight 2 as well, one weight of the generator's first layer differed by
# 4.6e-4, the others within 1e-4; the processes' test leaves that lever out and keeps
# the tolerance (the one-process tests and exact resume run with it).
PROCESSES_TOLERANCE = 1e-4
PROCESS_LEVERS = tuple(flag for flag in EVERY_LEVER if flag not in ("--attr-weight", "2"))
STEPS = 5


def jax_env(devices: int = 1) -> dict:
    return {
        **os.environ,
        "KERAS_BACKEND": "jax",
        "JAX_NUM_CPU_DEVICES": str(devices),
        "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
    }


def train(argv: list[str], devices: int = 1) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, str(PROJECT / "dcgan.py"), *argv],
        capture_output=True,
        text=True,
        env=jax_env(devices),
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def saved(out: Path) -> dict:
    """The LATEST checkpoint's weights (generator, discriminator, average), position and
    the run's losses."""
    checkpoint = runs.load_checkpoint(checkpoints.find(out))
    nets = [checkpoint.generator, checkpoint.discriminator, checkpoint.average]
    state = checkpoint.state
    return {
        "weights": [w for net in nets if net is not None for w in net.get_weights()],
        "position": (state["epoch"], state["step"]),
        "losses": np.loadtxt(out / "losses.csv", delimiter=",", skiprows=1),
    }


def assert_close(a: dict, b: dict, atol: float) -> None:
    assert a["position"] == b["position"] and a["losses"].shape == b["losses"].shape
    np.testing.assert_allclose(a["losses"], b["losses"], rtol=0, atol=max(atol, 1e-6))
    assert len(a["weights"]) == len(b["weights"])
    for x, y in zip(a["weights"], b["weights"]):
        np.testing.assert_allclose(x, y, rtol=0, atol=atol)


@pytest.fixture(scope="module")
def keras_engine_run(synth_root, tmp_path_factory) -> dict:
    """Two epochs of every lever through the Keras engine on JAX, with how far the
    second epoch moved the weights."""
    return two_keras_epochs(synth_root, tmp_path_factory.mktemp("keras") / "run", EVERY_LEVER)


def two_keras_epochs(data: Path, out: Path, levers: tuple[str, ...]) -> dict:
    train([*tiny_run(data, out, STEPS), *levers, "--epochs", "2", "--engine", "keras"])
    result = saved(out)
    first = runs.load_checkpoint(out / "checkpoints" / "epoch-0001")
    before = [w for net in (first.generator, first.discriminator) for w in net.get_weights()]
    result["moved"] = max(float(np.abs(a - b).max()) for a, b in zip(result["weights"], before))
    return result


@pytest.mark.parametrize("steps_per_call", [1, 3, 16])
def test_compiled_engine_at_any_steps_per_call_trains_the_keras_engines_weights(
    steps_per_call, synth_root, tmp_path, keras_engine_run
):
    """Every lever on; 3 steps per call splits each 5-step epoch 3 + 2, 16 takes it
    whole. Same weights (generator average included) and losses as the Keras engine."""
    assert keras_engine_run["moved"] > 1e-3
    out = tmp_path / "run"
    args = [*tiny_run(synth_root, out, STEPS), *EVERY_LEVER, "--epochs", "2"]
    done = train([*args, "--steps-per-call", str(steps_per_call)])  # the default engine
    assert "images/s" in done.stderr
    assert_close(saved(out), keras_engine_run, ENGINE_TOLERANCE)


def test_compiled_engine_is_bitwise_the_same_at_any_steps_per_call(synth_root, tmp_path):
    runs_ = []
    for k in (1, 4):
        out = tmp_path / f"k{k}"
        train([*tiny_run(synth_root, out, STEPS), "--epochs", "2", "--steps-per-call", str(k)])
        runs_.append(saved(out))
    assert_close(*runs_, atol=0)


def test_data_parallel_over_four_devices_trains_the_one_device_weights(
    synth_root, tmp_path, keras_engine_run
):
    """--devices 4 on four virtual CPU devices: each batch of 16 split 4 ways, BatchNorm
    and the minibatch groups over the global batch; the weights of the one-device run
    within the engines' tolerance (the sums are reduced in another order)."""
    out = tmp_path / "run"
    args = [*tiny_run(synth_root, out, STEPS), *EVERY_LEVER, "--epochs", "2"]
    train([*args, "--devices", "4", "--steps-per-call", "4"], devices=4)
    assert_close(saved(out), keras_engine_run, ENGINE_TOLERANCE)


SHARDING_CHECK = """
import json, sys
sys.path.insert(0, {project!r})
import training
from config import TrainConfig
config = training.resolved_engine(TrainConfig(
    out={out!r}, data_dir={data!r}, steps_per_epoch=2, image_size=32, batch_size=16,
    noise_dim=8, width=8, devices=4, steps_per_call=2))
trainer = training.Trainer(config)
trainer.start_fresh()
trainer.engine.train(range(2), [None, None])
pool, draws = trainer.engine._inputs([0, 1], [None, None])
print(json.dumps({{
    "mesh": list(trainer.engine.distribution.device_mesh.shape),
    "weights": len(trainer.engine.values[0].sharding.device_set),
    "weights_replicated": trainer.engine.values[0].sharding.is_fully_replicated,
    "noise_shards": [s.data.shape for s in draws["noise"].addressable_shards],
}}))
"""


def test_four_devices_each_hold_a_quarter_of_the_batch_and_all_the_weights(synth_root, tmp_path):
    code = SHARDING_CHECK.format(
        project=str(PROJECT), out=str(tmp_path / "r"), data=str(synth_root)
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=jax_env(4), timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["mesh"] == [4] and result["weights"] == 4 and result["weights_replicated"]
    assert result["noise_shards"] == [[2, 4, 48]] * 4  # 2 steps x 16/4 images x (40 + 8)


def test_a_batch_that_does_not_split_over_the_devices_is_refused(synth_root, tmp_path):
    argv = [*tiny_run(synth_root, tmp_path / "run", 1), "--devices", "3"]
    done = subprocess.run(
        [sys.executable, str(PROJECT / "dcgan.py"), *argv],
        capture_output=True,
        text=True,
        env=jax_env(4),
        timeout=300,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "error: --batch-size 16 does not split evenly over 3 devices; use a multiple of 3"
    )
    assert not (tmp_path / "run").exists()


def test_default_engine_stopped_mid_epoch_resumes_bitwise(synth_root, tmp_path):
    """KERAS_BACKEND=jax python dcgan.py trains with the compiled engine; SIGTERM as
    soon as the first checkpoint lands stops it at the end of a call inside epoch 2
    (or at an epoch's end), and --resume ends with an uninterrupted run's weights,
    optimizer states and losses, bit for bit."""
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    common = ["--epochs", "3", "--steps-per-call", "2"]
    train([*tiny_run(synth_root, straight, 12), *common])
    args = [*tiny_run(synth_root, stopped, 12), *common]
    process = subprocess.Popen(
        [sys.executable, str(PROJECT / "dcgan.py"), *args],
        stderr=subprocess.PIPE,
        text=True,
        env=jax_env(),
    )
    latest = stopped / "checkpoints" / "LATEST"
    started = time.monotonic()
    while not latest.exists() and time.monotonic() - started < 300:
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    err = process.communicate(timeout=300)[1]
    assert process.returncode == 0, err[-3000:]
    assert "SIGTERM: saved" in err
    assert saved(stopped)["position"] < (3, 0)
    train([*args, "--resume"])
    assert_close(saved(stopped), saved(straight), atol=0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def two_processes(argv: list[str]) -> list[str]:
    """Run dcgan.py as processes 0 and 1 of one job on loopback, two CPU devices each;
    their stderr."""
    coordinator = f"127.0.0.1:{free_port()}"
    command = [sys.executable, str(PROJECT / "dcgan.py"), *argv, "--num-processes", "2"]
    children = [
        subprocess.Popen(
            [*command, "--coordinator", coordinator, "--process-id", str(i)],
            stderr=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=jax_env(2),
        )
        for i in range(2)
    ]
    errs = [child.communicate(timeout=600)[1] for child in children]
    for child, err in zip(children, errs):
        assert child.returncode == 0, err[-3000:]
    return errs


def test_two_processes_on_loopback_train_checkpoint_from_process_0_and_resume(synth_root, tmp_path):
    """Two processes of two CPU devices each (four in all) train one epoch; only
    process 0 writes the run folder; both resume for the second; the weights are the
    one-device Keras engine's within PROCESSES_TOLERANCE."""
    dataset.build_cache(synth_root, 32, progress=False)  # one build, before both read it
    out = tmp_path / "run"
    args = [*tiny_run(synth_root, out, STEPS), *PROCESS_LEVERS, "--steps-per-call", "4"]
    errs = two_processes([*args, "--epochs", "1"])
    assert "epoch 1:" in errs[0] and "epoch 1:" not in errs[1]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "GOOD",
        "LATEST",
        "epoch-0001",
    ]
    errs = two_processes([*args, "--epochs", "2", "--resume"])
    assert "resuming from" in errs[0] and "epoch 2:" not in errs[1]
    one_device = two_keras_epochs(synth_root, tmp_path / "keras", PROCESS_LEVERS)
    assert_close(saved(out), one_device, PROCESSES_TOLERANCE)

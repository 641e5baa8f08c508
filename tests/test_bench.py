"""The benchmark's arithmetic and its command: FLOP counts from layer shapes (flops.py), the
per-step schedules, the textbook networks being the same work as ours, and a short
run of the cheap stages printing its table. Speeds themselves are measured by
benchmarks/bench.py, never asserted here."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections import defaultdict

import pytest
from conftest import PROJECT, run_script

sys.path.insert(0, str(PROJECT / "benchmarks"))

import flops
import textbook_keras

import models
from quiet_keras import keras

layers = keras.layers


def test_forward_flops_counts_each_kernel_where_it_is_applied():
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, padding="same")(inputs)  # 8x8 output positions
    x = layers.Conv2DTranspose(2, 4, strides=2, padding="same")(x)  # 8x8 input positions
    x = layers.Dense(5)(layers.Flatten()(layers.ReLU()(x)))
    model = keras.Model(inputs, x)
    expected = 8 * 8 * (3 * 3 * 3 * 4) + 8 * 8 * (4 * 4 * 4 * 2) + (16 * 16 * 2) * 5
    assert flops.forward_flops(model) == 2 * expected


def test_forward_flops_reads_channels_first_and_nested_models():
    inner = keras.Sequential(
        [keras.Input((3, 8, 8)), layers.Conv2D(4, 2, data_format="channels_first")]
    )
    outer = keras.Sequential([keras.Input((3, 8, 8)), inner, layers.Flatten(), layers.Dense(1)])
    assert flops.forward_flops(outer) == 2 * (7 * 7 * 2 * 2 * 3 * 4 + 7 * 7 * 4)


def test_training_flops_follow_the_schedules():
    unit = {"generator": 1, "discriminator": 10}
    # PyTorch: G trains once (3); D trains on real, fake and again in the G step (9).
    assert flops.training_flops(flops.SCHEDULES["torch"], unit) == 3 + 90
    # keras-io: G predicts then trains (4); D trains on 2 images and is passed through (8).
    assert flops.training_flops(flops.SCHEDULES["keras-io"], unit) == 4 + 80
    # ours: G predicts then trains (4); D trains on 2 images and is passed through (8).
    ours = {k: dict(v) for k, v in flops.SCHEDULES["ours"].items()}
    ours["discriminator"]["train"] = 2
    assert flops.training_flops(ours, unit) == 4 + 80


def test_our_networks_at_width_64_are_the_textbook_ones():
    """The comparison's premise: at width 64 our generator does exactly the textbook's
    convolutions; our discriminator adds only its small conditioning heads."""
    ours_g = flops.forward_flops(models.build_generator(64, textbook_keras.NOISE, 64))
    ours_d = flops.forward_flops(models.build_discriminator(64, 64))
    assert ours_g == flops.forward_flops(textbook_keras.build_generator())
    textbook_d = flops.forward_flops(textbook_keras.build_discriminator())
    assert textbook_d < ours_d < 1.02 * textbook_d


def test_keras_and_torch_textbooks_count_the_same_flops():
    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed: pip install -r benchmarks/requirements.txt")
    import textbook_torch
    import torch

    nz = textbook_torch.NOISE + 40
    torch_g = textbook_torch.forward_flops(
        textbook_torch.build_generator(nz), torch.zeros(1, nz, 1, 1)
    )
    torch_d = textbook_torch.forward_flops(
        textbook_torch.build_discriminator(), torch.zeros(1, 3, 64, 64)
    )
    assert torch_g == flops.forward_flops(textbook_keras.build_generator())
    assert torch_d == flops.forward_flops(textbook_keras.build_discriminator())


def test_bench_command_prints_its_table_and_writes_every_round(tmp_path):
    report = tmp_path / "results.json"
    done = run_script(
        "benchmarks/bench.py",
        *("--only", "matmul", "--only", "pipeline", "--only", "generate"),
        *("--images", "256", "--repeats", "2", "--data", str(tmp_path), "--json", str(report)),
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(report.read_text())["results"]
    assert set(results) == {
        "float32 matmul peak (GFLOP/s)",
        "input pipeline, 64 images",
        "input pipeline, 256 images",
        "generation, width 32, batch 256",
    }
    assert all(len(row["rates"]) == 2 and row["rate_median"] > 0 for row in results.values())
    table = done.stdout.splitlines()
    assert table[1].startswith("machine:") and "matmul peak" in table[1]
    assert any(line.startswith("input pipeline, 256 images") for line in table)


def conv_flops(model, layer_type) -> list[int]:
    """flops.forward_flops of each of a model's layers of one type, in order."""
    return [
        flops.forward_flops(keras.Sequential([keras.Input(layer.input.shape[1:]), layer]))
        for layer in model.layers
        if type(layer) is layer_type
    ]


def test_conv_profile_accounts_for_every_convolution_of_the_step(tmp_path):
    """The convolutions oneDNN logs for one training step add up to the step's
    convolution work counted from the layer shapes: D trains on 2n images (no backward
    to the input at its first layer) and passes n through to G; G runs n images forward
    for D's fakes and trains on n in the stacked model."""
    report, n, width = tmp_path / "convs.json", 8, 8
    done = run_script(
        "benchmarks/conv_profile.py",
        *("--width", str(width), "--noise-dim", "8", "--image-size", "32"),
        *("--batch-size", str(n), "--steps", "2", "--images", "64"),
        *("--data", str(tmp_path), "--json", str(report)),
    )
    if done.returncode == 2:  # its one-line refusal comes last, after the progress bars
        pytest.skip(done.stderr.strip().splitlines()[-1])
    assert done.returncode == 0, done.stderr
    d = conv_flops(models.build_discriminator(32, width), layers.Conv2D)
    g = conv_flops(models.build_generator(32, 8, width), layers.Conv2DTranspose)
    d_work = sum(f * (2 * n * (3 if i else 2) + 2 * n) for i, f in enumerate(d))
    g_work = sum(f * 4 * n for f in g)
    rows = json.loads(report.read_text())["rows"]
    logged = sum(row["gflop_per_step"] for row in rows) * 1e9
    assert logged == pytest.approx(d_work + g_work, rel=1e-6)
    assert {row["direction"] for row in rows} == {"forward", "backward_data", "backward_weights"}
    assert "convolutions:" in done.stdout.splitlines()[-1]


def test_step_parts_clock_each_call_the_step_makes(tmp_path):
    """Each piece is clocked as often as train_step and its batches call it per step,
    and the clocked pieces fit inside the step (none counted twice). 3 warm-up and 6
    timed steps of 8 images from 64 also run past the set's 8 batches, which
    measure_train starts again."""
    report = tmp_path / "parts.json"
    done = run_script(
        "benchmarks/step_parts.py",
        *("--width", "8", "--noise-dim", "8", "--image-size", "32"),
        *("--batch-size", "8", "--steps", "6", "--images", "64"),
        *("--data", str(tmp_path), "--json", str(report)),
    )
    assert done.returncode == 0, done.stderr
    rows = {row["part"]: row for row in json.loads(report.read_text())["rows"]}
    assert {part: row["calls_per_step"] for part, row in rows.items()} == {
        "train_on_batch: d_trainer": 1,
        "train_on_batch: gan": 1,
        "predict_on_batch: generator": 1,
        "real batch: read from the cache, flipped": 1,
        "D batch: wrong attributes, targets, weights": 2,
        "attributes and noise sampled": 4,
        "set_trainable (D's flag)": 3,
        "the rest of the loop": 1,
    }
    assert rows["the rest of the loop"]["ms_per_step"] >= 0
    assert done.stdout.splitlines()[-1].startswith("step: ")


def test_step_parts_clocks_are_taken_off_after_the_steps():
    import step_parts

    model = keras.Sequential([keras.Input((2,)), layers.Dense(1)])
    originals = {(owner, name): getattr(owner, name) for owner, name, _ in step_parts.TIMED}
    runs = defaultdict(list)
    with step_parts.clocks(runs):
        models.set_trainable(model, False)
    models.set_trainable(model, True)
    assert len(runs["set_trainable (D's flag)"]) == 1
    assert all(getattr(owner, name) is kept for (owner, name), kept in originals.items())


@pytest.mark.skipif(
    os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow",
    reason="MirroredStrategy is TensorFlow's; this session's backend is another",
)
def test_mirrored_strategy_gives_every_replica_the_whole_batch():
    """What README says of TensorFlow's MirroredStrategy (multi-device training is
    JAX-only): around train_on_batch it trains, but each replica repeats the whole
    batch, so the weights equal one device's bit for bit."""
    done = run_script("benchmarks/mirrored.py")
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert "replicas: 2; steps: 3 of batch 16" in lines
    assert "largest weight difference after 3 steps: 0" in lines
    assert lines[-1] == "each replica trained on the whole batch: nothing was split"

"""Does TensorFlow's MirroredStrategy train the stacked models over several devices?

    python benchmarks/mirrored.py            # two logical CPU devices against one

Builds and compiles the generator, the discriminator's trainer and the stacked model
inside ``tf.distribute.MirroredStrategy`` over two logical CPU devices, trains three
``models.train_step`` steps on batches of 16, and compares the weights and losses with
the same steps under ``OneDeviceStrategy``. If each replica trained on its half of the
batch, BatchNorm's statistics (taken per replica) would make the weights differ; equal
weights mean that every replica was given the whole batch: Keras 3's TensorFlow
``train_on_batch`` hands its batch to ``strategy.run`` undistributed, so N devices
repeat the same work and nothing is split (benchmarks/NOTES.md, "MirroredStrategy").
This is why multi-device training is JAX-only (README, "Engines and many devices").
TensorFlow only: it exits 2 on another backend.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))


def split_cpu() -> None:
    """Two logical CPU devices, which TensorFlow allows only before it first runs."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)


TENSORFLOW = os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow"
if TENSORFLOW:
    split_cpu()

import cli  # the project's, from the path just set
import dataGens
import models
from quiet_keras import keras

STEPS, BATCH = 3, 16


def batches(rng: np.random.Generator) -> tuple:
    """A D batch and a G batch of the small models' shapes (32x32, noise 8)."""
    attrs = rng.integers(0, 2, (BATCH, 40)).astype(np.float32)
    images = rng.uniform(-1, 1, (BATCH, 32, 32, 3)).astype(np.float32)
    wrong = np.concatenate([1 - attrs[: BATCH // 2], attrs[BATCH // 2 :]])
    mismatch = (np.arange(BATCH) < BATCH // 2).astype(np.float32)
    fakes = rng.uniform(-1, 1, (BATCH, 32, 32, 3)).astype(np.float32)
    asked = rng.integers(0, 2, (BATCH, 40)).astype(np.float32)
    d_batch = dataGens.discriminator_batch((images, attrs, wrong, mismatch), fakes, asked)
    noise = rng.standard_normal((BATCH, 8), dtype=np.float32)
    targets = {"face": np.ones((BATCH, 1), np.float32), "attributes": asked}
    return d_batch, (np.concatenate([asked, noise], 1), targets)


def train(strategy) -> tuple[list[dict], list[np.ndarray]]:
    """STEPS steps of the small models built under ``strategy``: losses and weights."""
    keras.utils.set_random_seed(0)
    with strategy.scope():
        generator = models.build_generator(32, noise_dim=8, width=8)
        discriminator = models.build_discriminator(32, width=8)
        d_trainer = models.build_d_trainer(discriminator)
        gan = models.build_gan(generator, discriminator)
        models.compile_models(generator, discriminator, d_trainer, gan, 1e-3, 1e-3, 0.5)
    rng = np.random.default_rng(0)
    losses = [models.train_step(discriminator, d_trainer, gan, *batches(rng)) for _ in range(STEPS)]
    return losses, generator.get_weights() + discriminator.get_weights()


def main(argv: list[str] | None = None) -> int:
    cli.parser("mirrored.py", __doc__.split("\n\n")[0]).parse_args(argv)
    if not TENSORFLOW:
        print(f"mirrored.py: TensorFlow only (this is {keras.backend.backend()})", file=sys.stderr)
        return 2
    import tensorflow as tf

    one = train(tf.distribute.OneDeviceStrategy("/cpu:0"))
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    two = train(mirrored)
    gap = max(float(np.abs(a - b).max()) for a, b in zip(one[1], two[1]))
    print(f"replicas: {mirrored.num_replicas_in_sync}; steps: {STEPS} of batch {BATCH}")
    print(f"last losses, one device: {one[0][-1]}")
    print(f"last losses, mirrored:   {two[0][-1]}")
    print(f"largest weight difference after {STEPS} steps: {gap:.3g}")
    verdict = (
        "each replica trained on the whole batch: nothing was split"
        if gap == 0
        else "the replicas' results differ from one device's"
    )
    print(verdict)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))

"""The Keras step engine: each step as ``models.train_step``'s two ``train_on_batch``
calls, on any backend (``dcgan.py --engine keras``; the default on TensorFlow and
PyTorch).

An engine trains given steps of the current epoch and returns their losses; the
trainer (training.py) does everything else. compiled_step.py's engine, the default on
JAX, trains the same weights with the same interface: ``steps_per_call``,
``train(steps, keeps)`` and ``sync()``.
"""

from __future__ import annotations

from collections.abc import Sequence

import averaging
import models
from dataGens import DiscriminatorBatches, GeneratorBatches
from quiet_keras import keras


class KerasEngine:
    """``train(steps, keeps)``: one ``models.train_step`` per step of ``steps``, the
    batches from ``d_batches`` and ``g_batches``, then the generator average's update
    with that step's ``keeps`` beta (averaging.py)."""

    steps_per_call = 1

    def __init__(
        self,
        generator: keras.Model,
        discriminator: keras.Model,
        d_trainer: keras.Model,
        gan: keras.Model,
        d_batches: DiscriminatorBatches,
        g_batches: GeneratorBatches,
        average: averaging.GeneratorAverage | None = None,
    ) -> None:
        self.generator, self.discriminator = generator, discriminator
        self.d_trainer, self.gan, self.average = d_trainer, gan, average
        self.d_batches, self.g_batches = d_batches, g_batches

    def train(self, steps: Sequence[int], keeps: Sequence[float | None]) -> list[dict]:
        return [self.step(step, keep) for step, keep in zip(steps, keeps, strict=True)]

    def step(self, step: int, keep: float | None) -> dict[str, float]:
        losses = models.train_step(
            self.discriminator,
            self.d_trainer,
            self.gan,
            self.d_batches[step],
            self.g_batches[step],
        )
        if self.average is not None:
            self.average.update(self.generator, keep)
        return losses

    def sync(self) -> None:
        """The weights are Keras' own already."""

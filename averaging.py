"""The generator average: an exponential moving average of G's weights (``--ema-kimg``),
which is what every strong GAN since ProGAN samples from.

G's own weights jump about from step to step with the adversarial game; their average
over the last few thousand images makes smoother, steadier faces. As in StyleGAN2-ADA
(``training_loop.py``), the average's half-life is given in thousands of images and
ramps up over the first images seen (at most 5 % of them), so that the average of the
first steps is not anchored to G's random start:

    beta = 0.5 ** (batch / max(min(ema_kimg * 1000, 0.05 * images_seen), 1e-8))
    average = weights + (average - weights) * beta          # after every step

Batch normalisation's statistics are not averaged (they are not weights):
``recalibrate`` measures the averaged network's own, from fixed inputs, before it
draws faces or is saved; they depend on its weights alone, so resume stays exact.

The training loop decides when (training.py); the compiled step applies the same
update on the device (compiled_step.py).
"""

from __future__ import annotations

import numpy as np

from dataGens import AttributeSampler, attribute_noise
from quiet_keras import keras

RAMPUP = 0.05
CALIBRATION_BATCHES = 16


def beta(batch_size: int, images_seen: int, ema_kimg: float) -> float:
    """How much of the old average a step keeps."""
    half_life = min(ema_kimg * 1000, RAMPUP * images_seen)
    return float(0.5 ** (batch_size / max(half_life, 1e-8)))


def averaged(average, weights, keep):
    """The update, for values of any backend: ``weights + (average - weights) * keep``."""
    return [w + (a - w) * keep for a, w in zip(average, weights)]


class GeneratorAverage:
    """``model``: a copy of the generator whose weights follow G's average."""

    def __init__(self, generator: keras.Model, model: keras.Model | None = None) -> None:
        if model is None:
            model = keras.models.clone_model(generator)
            model.set_weights(generator.get_weights())
        self.model = model

    def update(self, generator: keras.Model, keep: float) -> None:
        pairs = zip(self.model.trainable_variables, generator.trainable_variables)
        for average, value in pairs:
            average.assign(value + (average - value) * keep)

    def recalibrate(self, data_rows: np.ndarray, batch_size: int, noise_dim: int) -> None:
        """BatchNorm's moving statistics measured on the average itself: the mean of
        the batch statistics of ``CALIBRATION_BATCHES`` training-mode passes over fixed
        requests (each layer's momentum set to k / (k + 1) for pass k, then restored)."""
        rng = np.random.default_rng([0, 5])
        sampler = AttributeSampler("dataset", data_rows)
        norms = [
            layer
            for layer in self.model.layers
            if isinstance(layer, keras.layers.BatchNormalization)
        ]
        momentum = [layer.momentum for layer in norms]
        for k in range(CALIBRATION_BATCHES):
            for layer in norms:
                layer.momentum = k / (k + 1)
            self.model(
                attribute_noise(sampler.sample(batch_size, rng), noise_dim, rng), training=True
            )
        for layer, kept in zip(norms, momentum):
            layer.momentum = kept

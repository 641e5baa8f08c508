"""The textbook Keras DCGAN: keras-io's "DCGAN to generate face images" pattern.

A ``keras.Model`` subclass whose ``train_step`` (called by ``fit``) samples noise, runs
the generator for the discriminator's fakes, trains D on [fakes | reals] with noisy
labels under a ``tf.GradientTape``, then samples fresh noise and trains G through D
under a second tape (so G runs twice per step). The networks are those of the PyTorch
textbook (textbook_torch.py: ngf = ndf = 64, 64x64, BatchNorm, Adam(2e-4, 0.5), BCE),
written in Keras layers, with the 40 attribute bits appended to 100 noise floats, so
all three trainers in bench.py do the same work per image.

keras-io writes this pattern with ``tf.GradientTape``, so it runs on TensorFlow only.
``data_format`` lets bench.py measure the data-layout lever on the same networks.
Used by bench.py; not a trainer.
"""

from __future__ import annotations

import time

from flops import forward_flops

import dataset
from attributes import NUM_ATTRIBUTES
from quiet_keras import keras

layers, ops = keras.layers, keras.ops
NOISE = 100


def build_generator(data_format: str = "channels_last") -> keras.Model:
    axis = -1 if data_format == "channels_last" else 1
    shape = (1, 1, NOISE + NUM_ATTRIBUTES) if axis == -1 else (NOISE + NUM_ATTRIBUTES, 1, 1)
    inputs = keras.Input((NOISE + NUM_ATTRIBUTES,))
    x = layers.Reshape(shape)(inputs)
    for i, filters in enumerate((512, 256, 128, 64)):
        x = layers.Conv2DTranspose(
            filters,
            4,
            strides=1 if i == 0 else 2,
            padding="valid" if i == 0 else "same",
            use_bias=False,
            data_format=data_format,
        )(x)
        x = layers.ReLU()(layers.BatchNormalization(axis=axis)(x))
    x = layers.Conv2DTranspose(
        3, 4, strides=2, padding="same", use_bias=False, data_format=data_format
    )(x)
    return keras.Model(inputs, layers.Activation("tanh")(x), name="generator")


def build_discriminator(data_format: str = "channels_last") -> keras.Model:
    axis = -1 if data_format == "channels_last" else 1
    image = keras.Input((64, 64, 3) if axis == -1 else (3, 64, 64))
    x = image
    for i, filters in enumerate((64, 128, 256, 512)):
        x = layers.Conv2D(
            filters, 4, strides=2, padding="same", use_bias=False, data_format=data_format
        )(x)
        if i:
            x = layers.BatchNormalization(axis=axis)(x)
        x = layers.LeakyReLU(0.2)(x)
    x = layers.Conv2D(1, 4, padding="valid", use_bias=False, data_format=data_format)(x)
    score = layers.Activation("sigmoid")(layers.Flatten()(x))
    return keras.Model(image, score, name="discriminator")


class GAN(keras.Model):
    """keras-io's GAN model: ``fit`` calls ``train_step`` once per batch of real images."""

    def __init__(self, discriminator, generator, data_format: str) -> None:
        super().__init__()
        self.discriminator, self.generator = discriminator, generator
        self.channels_first = data_format == "channels_first"
        self.seed_generator = keras.random.SeedGenerator(1337)

    def compile(self, d_optimizer, g_optimizer, loss_fn) -> None:
        super().compile()
        self.d_optimizer, self.g_optimizer, self.loss_fn = d_optimizer, g_optimizer, loss_fn
        self.d_loss_metric = keras.metrics.Mean(name="d_loss")
        self.g_loss_metric = keras.metrics.Mean(name="g_loss")

    def latent(self, attributes):
        noise = keras.random.normal((ops.shape(attributes)[0], NOISE), seed=self.seed_generator)
        return ops.concatenate([noise, attributes], axis=1)

    def train_step(self, data):
        import tensorflow as tf  # keras-io's pattern is written for TensorFlow's tape

        real_images, attributes = data
        if self.channels_first:
            real_images = ops.transpose(real_images, (0, 3, 1, 2))
        batch_size = ops.shape(real_images)[0]
        generated_images = self.generator(self.latent(attributes))
        combined_images = ops.concatenate([generated_images, real_images], axis=0)
        labels = ops.concatenate([ops.ones((batch_size, 1)), ops.zeros((batch_size, 1))], axis=0)
        # Add random noise to the labels - important trick!
        labels += 0.05 * keras.random.uniform(ops.shape(labels), seed=self.seed_generator)
        with tf.GradientTape() as tape:
            d_loss = self.loss_fn(labels, self.discriminator(combined_images))
        grads = tape.gradient(d_loss, self.discriminator.trainable_weights)
        self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_weights))

        misleading_labels = ops.zeros((batch_size, 1))
        with tf.GradientTape() as tape:
            fakes = self.generator(self.latent(attributes))
            g_loss = self.loss_fn(misleading_labels, self.discriminator(fakes))
        grads = tape.gradient(g_loss, self.generator.trainable_weights)
        self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_weights))
        self.d_loss_metric.update_state(d_loss)
        self.g_loss_metric.update_state(g_loss)
        return {"d_loss": self.d_loss_metric.result(), "g_loss": self.g_loss_metric.result()}


class BatchClock(keras.callbacks.Callback):
    """Times the batches after the warm-up ones (which trace the train function)."""

    def __init__(self, warmup: int) -> None:
        super().__init__()
        self.warmup, self.started = warmup, None

    def on_train_batch_end(self, batch, logs=None) -> None:
        if batch == self.warmup - 1:
            self.started = time.perf_counter()


def unsupported() -> str | None:
    """Why this loop cannot run on the current backend, or None."""
    if keras.backend.backend() != "tensorflow":
        return "keras-io's train_step pattern uses tf.GradientTape"
    return None


def measure(
    source: str, image_size: int, batch_size: int, steps: int, data_format: str = "channels_last"
) -> dict:
    """Real images per second through ``fit`` on the keras-io pattern, after warm-up."""
    keras.utils.set_random_seed(0)
    generator, discriminator = build_generator(data_format), build_discriminator(data_format)
    gan = GAN(discriminator, generator, data_format)
    gan.compile(
        keras.optimizers.Adam(2e-4, beta_1=0.5),
        keras.optimizers.Adam(2e-4, beta_1=0.5),
        keras.losses.BinaryCrossentropy(),
    )
    cache = dataset.build_cache(source, image_size, progress=False)
    real = dataset.CelebaBatches(cache, "train", batch_size, seed=0, flip=True)
    warmup = 3
    clock = BatchClock(warmup)
    gan.fit(real, epochs=1, steps_per_epoch=warmup + steps, callbacks=[clock], verbose=0)
    seconds = time.perf_counter() - clock.started
    return {
        "images": steps * batch_size,
        "seconds": seconds,
        "flops": {
            "generator": forward_flops(generator),
            "discriminator": forward_flops(discriminator),
        },
        "version": f"keras {keras.__version__} ({keras.backend.backend()})",
    }

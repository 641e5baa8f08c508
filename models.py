"""The networks and their training step: generator, projection discriminator, the
stacked GAN, their losses and optimizers, freezing, and one ``train_on_batch`` step.

* Generator: [40 attribute bits | noise] -> Dense -> 4x4 -> (Conv2DTranspose stride 2,
  BatchNorm, ReLU) up to the image size -> tanh RGB.
* Discriminator: a face/no-face logit per image that also sees the attributes, by
  projection: logit = w.phi(x) + (V (2a - 1)).phi(x), with phi(x) the flattened last
  convolution, and a second head that reads the 40 attributes from the image alone.
* ``build_d_trainer``: the discriminator as its training step sees it, scoring the real
  images' own features against wrong attributes too (no second pass through the
  convolutions).
* ``build_gan``: generator -> discriminator, trained while the discriminator is frozen.
  Keras 3 reads ``trainable`` when a train function is traced (TensorFlow) or at every
  step (JAX, PyTorch), not at compile time, so ``train_step`` sets the flag before
  *every* call. tests/test_models.py checks it on weights.

Only ``keras.ops`` and layers here, so KERAS_BACKEND=jax or torch runs the same code.
The batches these are fed are dataGens.py's; the loop around ``train_step`` is
training.py's; the compiled JAX version of the step is compiled_step.py.
"""

from __future__ import annotations

import numpy as np

from attributes import NUM_ATTRIBUTES
from config import check_image_size
from quiet_keras import keras

layers, ops = keras.layers, keras.ops


def _upsamples(image_size: int) -> int:
    return int(np.log2(check_image_size(image_size) // 4))


def build_generator(image_size: int = 64, noise_dim: int = 64, width: int = 32) -> keras.Model:
    """[attributes | noise] -> RGB image in [-1, 1], upscaling from 4x4."""
    steps = _upsamples(image_size)
    channels = [width * 2 ** min(3, steps - 1 - i) for i in range(steps)]
    inputs = keras.Input((NUM_ATTRIBUTES + noise_dim,), name="attribute_noise")
    x = layers.Dense(4 * 4 * channels[0], use_bias=False)(inputs)
    x = layers.Reshape((4, 4, channels[0]))(x)
    x = layers.ReLU()(layers.BatchNormalization(momentum=0.8)(x))
    for filters in channels[1:]:
        x = layers.Conv2DTranspose(filters, 4, strides=2, padding="same", use_bias=False)(x)
        # momentum 0.8: the inference-mode statistics used for D's fakes and for
        # generation follow the training-mode ones within a few steps.
        x = layers.ReLU()(layers.BatchNormalization(momentum=0.8)(x))
    image = layers.Conv2DTranspose(3, 4, strides=2, padding="same", activation="tanh")(x)
    return keras.Model(inputs, image, name="generator")


# Registered under "dcgan", where these layers lived first: saved checkpoints name them so.
@keras.saving.register_keras_serializable(package="dcgan")
class Projection(layers.Layer):
    """The attribute term of a projection discriminator: sum((V (2a - 1)) * phi)."""

    def build(self, input_shapes):
        (_, features), (_, attributes) = input_shapes
        self.embedding = self.add_weight(
            shape=(attributes, features), initializer="glorot_uniform", name="embedding"
        )

    def call(self, inputs):
        phi, attributes = inputs
        signed = 2.0 * attributes - 1.0  # absent attributes count too
        return ops.sum(ops.matmul(signed, self.embedding) * phi, axis=-1, keepdims=True)


@keras.saving.register_keras_serializable(package="dcgan")
class MinibatchStdDev(layers.Layer):
    """Appends the spread of features across groups of 4 images as one more channel.

    A generator that ignores its noise makes near-identical images, whose spread is
    visibly smaller than that of real faces; this lets the discriminator see it
    (Karras et al. 2018). Batches given to the discriminator are multiples of 4, and
    consecutive images of a group are all real or all generated.
    """

    group = 4

    def call(self, x):
        _, height, width, channels = x.shape
        grouped = ops.reshape(x, (-1, self.group, height, width, channels))
        spread = ops.sqrt(ops.var(grouped, axis=1) + 1e-8)
        spread = ops.mean(spread, axis=(1, 2, 3), keepdims=True)  # one number per group
        spread = ops.repeat(spread, self.group, axis=0)  # back to one per image
        return ops.concatenate([x, ops.ones_like(x[..., :1]) * spread], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] + 1)


def build_discriminator(image_size: int = 64, width: int = 32) -> keras.Model:
    """(image, attributes) -> {"face": one face/no-face logit that depends on both,
    "attributes": 40 logits of what the image shows, from the image alone}."""
    steps = _upsamples(image_size)
    image = keras.Input((image_size, image_size, 3), name="image")
    attributes = keras.Input((NUM_ATTRIBUTES,), name="attributes")
    x = image
    for i in range(steps):
        if i == steps - 1:
            x = MinibatchStdDev()(x)
        x = layers.Conv2D(width * 2 ** min(3, i), 4, strides=2, padding="same")(x)
        x = layers.LeakyReLU(0.2)(x)
    phi = layers.Flatten(name="features")(x)
    logit, projection = layers.Dense(1, name="face_logit"), Projection(name="projection")
    face = layers.Add(name="face_score")([logit(phi), projection([phi, attributes])])
    shown = layers.Dense(NUM_ATTRIBUTES, name="attribute_head")(phi)
    return keras.Model(
        [image, attributes], {"face": face, "attributes": shown}, name="discriminator"
    )


def build_d_trainer(discriminator: keras.Model) -> keras.Model:
    """The discriminator as its training steps see it: a third input, other (wrong)
    attributes, and a third output, "mismatch", the face score of the same images'
    features against them. Every layer is the discriminator's, so training this trains
    it, and a real face paired with wrong attributes costs one more projection instead
    of another pass through the convolutions."""
    wrong = keras.Input((NUM_ATTRIBUTES,), name="wrong_attributes")
    phi = discriminator.get_layer("features").output
    logit = discriminator.get_layer("face_logit")(phi)
    mismatch = layers.Add(name="mismatch")(
        [logit, discriminator.get_layer("projection")([phi, wrong])]
    )
    outputs = {**discriminator.output, "mismatch": mismatch}
    return keras.Model([*discriminator.inputs, wrong], outputs, name="d_trainer")


def build_gan(generator: keras.Model, discriminator: keras.Model) -> keras.Model:
    """generator -> discriminator, judged against the attributes it was asked for."""
    inputs = keras.Input(generator.input_shape[1:], name="attribute_noise")
    attributes = layers.Lambda(lambda z: z[:, :NUM_ATTRIBUTES], name="attributes")(inputs)
    outputs = discriminator([generator(inputs), attributes])
    return keras.Model(inputs, outputs, name="gan")


def losses(kind: str) -> dict:
    """The face score's loss ("bce": binary cross-entropy on the logit; "hinge":
    max(0, 1 -+ logit), targets 1/0 read as +1/-1) and the attribute head's (BCE)."""
    bce = keras.losses.BinaryCrossentropy(from_logits=True)
    face = {"bce": bce, "hinge": keras.losses.Hinge()}[kind]
    return {"face": face, "attributes": bce}


def compile_models(
    generator, discriminator, d_trainer, gan, lr: float, beta1: float, loss: str = "bce"
) -> None:
    """Two Adams: one trains D (compiled into D too, so that saving D saves its state),
    one trains G (in G and the stacked model, likewise)."""
    d_optimizer = keras.optimizers.Adam(lr, beta_1=beta1)
    discriminator.compile(d_optimizer, losses(loss))
    compile_d_trainer(d_trainer, d_optimizer, loss)
    g_optimizer = keras.optimizers.Adam(lr, beta_1=beta1)
    generator.compile(g_optimizer, loss="mse")
    compile_gan(gan, g_optimizer, discriminator, loss)


def compile_d_trainer(d_trainer, optimizer, loss: str = "bce") -> None:
    """Every loss a mean over the batch's rows with sample weights (Keras' default), so
    a real, a generated and a wrong-attribute pair weigh the same in D's loss."""
    chosen = losses(loss)
    accuracy = {
        name: [keras.metrics.BinaryAccuracy(threshold=0.0, name="accuracy")]
        for name in ("face", "mismatch")
    }
    d_trainer.compile(optimizer, {**chosen, "mismatch": chosen["face"]}, weighted_metrics=accuracy)


def compile_gan(gan, optimizer, discriminator, loss: str = "bce") -> None:
    set_trainable(discriminator, False)
    gan.compile(optimizer, losses(loss))
    set_trainable(discriminator, True)


def set_trainable(model: keras.Model, trainable: bool) -> None:
    model.trainable = trainable


def train_step(discriminator, d_trainer, gan, d_batch, g_batch) -> dict[str, float]:
    """One discriminator step (through ``d_trainer``), then one generator step through
    the frozen discriminator.

    d_loss is the discriminator's face/no-face loss over all its pairs (real, generated,
    wrong attributes), d_acc its accuracy; g_loss the generator's; d_attr/g_attr the
    attribute head's: on real faces for D, on what was asked for for G.
    """
    inputs, targets, weights = d_batch
    set_trainable(discriminator, True)
    d = d_trainer.train_on_batch(inputs, targets, sample_weight=weights, return_dict=True)
    set_trainable(discriminator, False)
    g = gan.train_on_batch(*g_batch, return_dict=True)
    set_trainable(discriminator, True)
    return step_losses(d, g, weights)


def step_losses(d: dict, g: dict, weights: dict) -> dict[str, float]:
    """train_step's losses from the two models' logs and D's sample weights."""
    rows = len(weights["mismatch"])
    wrong, real = weights["mismatch"].sum(), weights["attributes"].sum()
    # Keras divides each output's weighted loss sum by all rows; these are per-pair means.
    d_loss = (d["face_loss"] + d["mismatch_loss"]) * rows / (rows + wrong)
    d_acc = (d["face_accuracy"] * rows + d["mismatch_accuracy"] * wrong) / (rows + wrong)
    return {
        "d_loss": float(d_loss),
        "d_attr": float(d["attributes_loss"] * rows / real),
        "d_acc": float(d_acc),
        "g_loss": float(g["face_loss"]),
        "g_attr": float(g["attributes_loss"]),
    }

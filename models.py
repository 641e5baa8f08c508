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
* ``build_gan``: generator -> discriminator, trained while the discriminator is frozen
  (with ``mode_seeking``, also pushing apart the faces two noises draw).
  Keras 3 reads ``trainable`` when a train function is traced (TensorFlow) or at every
  step (JAX, PyTorch), not at compile time, so ``train_step`` sets the flag before
  *every* call. tests/test_models.py checks it on weights.

Only ``keras.ops`` and layers here, so KERAS_BACKEND=jax or torch runs the same code.
The batches these are fed are dataGens.py's; the loop around ``train_step`` is
training.py's; the compiled JAX version of the step is compiled_step.py.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np

import augment
from attributes import NUM_ATTRIBUTES
from config import check_image_size
from quiet_keras import keras

layers, ops = keras.layers, keras.ops


@contextlib.contextmanager
def precision(policy: str) -> Iterator[None]:
    """Layers built inside compute in ``policy`` (a Keras dtype policy name, such as
    "mixed_bfloat16": bfloat16 arithmetic, float32 weights); the layers whose outputs a
    loss reads or a user sees are built float32 whatever it is. Keras' policy is global,
    so it is set only while the networks are built."""
    before = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(before)


def _upsamples(image_size: int) -> int:
    return int(np.log2(check_image_size(image_size) // 4))


def build_generator(
    image_size: int = 64,
    noise_dim: int = 64,
    width: int = 32,
    cond_bn: bool = False,
    conditional: bool = True,
) -> keras.Model:
    """[attributes | noise] -> RGB image in [-1, 1], upscaling from 4x4. With
    ``cond_bn``, every batch normalisation's scale and shift are the attributes'
    (``AttributeModulation``) instead of one learnt pair per channel. Not
    ``conditional``: the attribute bits are cut off at the input (``Unconditioned``)."""
    steps = _upsamples(image_size)
    channels = [width * 2 ** min(3, steps - 1 - i) for i in range(steps)]
    given = keras.Input((NUM_ATTRIBUTES + noise_dim,), name="attribute_noise")
    inputs = given if conditional else Unconditioned(name="unconditioned")(given)

    def normalise(x):
        # momentum 0.8: the inference-mode statistics used for D's fakes and for
        # generation follow the training-mode ones within a few steps.
        x = layers.BatchNormalization(momentum=0.8, center=not cond_bn, scale=not cond_bn)(x)
        return layers.ReLU()(AttributeModulation()([x, inputs]) if cond_bn else x)

    x = layers.Dense(4 * 4 * channels[0], use_bias=False)(inputs)
    x = normalise(layers.Reshape((4, 4, channels[0]))(x))
    for filters in channels[1:]:
        x = layers.Conv2DTranspose(filters, 4, strides=2, padding="same", use_bias=False)(x)
        x = normalise(x)
    image = layers.Conv2DTranspose(
        3, 4, strides=2, padding="same", activation="tanh", dtype="float32"
    )(x)
    return keras.Model(given, image, name="generator")


@keras.saving.register_keras_serializable(package="models")
class Unconditioned(layers.Layer):
    """Its input with the first 40 columns, the attribute bits, set to 0: the network
    after it is the same function whatever attributes it is given (``--attributes
    none``), while its signature, and everything that calls it, stays one shape."""

    def call(self, x):
        keep = np.arange(x.shape[-1]) >= NUM_ATTRIBUTES
        return x * ops.convert_to_tensor(keep.astype(np.float32), dtype=x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="models")
class AttributeModulation(layers.Layer):
    """Conditional batch normalisation's second half (de Vries et al. 2017; the
    generator of Miyato & Koyama's cGAN with projection discriminator): a normalised
    activation x scaled by (1 + gamma(a)) and shifted by beta(a), gamma and beta linear
    in the signed attribute bits 2a - 1. Both start at zero: plain normalisation."""

    def build(self, input_shapes):
        channels = input_shapes[0][-1]
        self.gamma = self.add_weight(shape=(NUM_ATTRIBUTES, channels), initializer="zeros")
        self.beta = self.add_weight(shape=(NUM_ATTRIBUTES, channels), initializer="zeros")
        self.gamma_bias = self.add_weight(shape=(channels,), initializer="zeros")
        self.beta_bias = self.add_weight(shape=(channels,), initializer="zeros")

    def call(self, inputs):
        x, attribute_noise = inputs
        signed = 2.0 * attribute_noise[:, :NUM_ATTRIBUTES] - 1.0
        scale = 1.0 + ops.matmul(signed, self.gamma) + self.gamma_bias
        shift = ops.matmul(signed, self.beta) + self.beta_bias
        return x * scale[:, None, None, :] + shift[:, None, None, :]

    def compute_output_shape(self, input_shapes):
        return input_shapes[0]


# Registered under "dcgan", where these layers lived first: saved checkpoints name them so.
@keras.saving.register_keras_serializable(package="dcgan")
class Projection(layers.Layer):
    """The attribute term of a projection discriminator: sum((V (2a - 1)) * phi). Not
    ``conditional``, a in it is 0 whatever attributes it is given: the term is then
    one more linear function of phi, and the discriminator unconditional."""

    def __init__(self, conditional: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.conditional = conditional

    def get_config(self) -> dict:
        return {**super().get_config(), "conditional": self.conditional}

    def build(self, input_shapes):
        (_, features), (_, attributes) = input_shapes
        self.embedding = self.add_weight(
            shape=(attributes, features), initializer="glorot_uniform", name="embedding"
        )

    def call(self, inputs):
        phi, attributes = inputs
        if not self.conditional:
            attributes = ops.zeros_like(attributes)
        signed = 2.0 * attributes - 1.0  # absent attributes count too
        return ops.sum(ops.matmul(signed, self.embedding) * phi, axis=-1, keepdims=True)


class ModeSeeking(layers.Layer):
    """[images, attribute_noise] -> MSGAN's mode-seeking term (Mao et al. 2019) for
    each row's pair: row i and row i + n/2 were asked for the same attributes with other
    noise (dataGens.GeneratorBatches), and the term is ``weight`` / (mean |G_i - G_j| /
    mean |z_i - z_j| + 1e-5). The generator minimises it, so two noises draw two faces;
    the stacked model trains it as a loss of its own (``compile_gan``)."""

    def __init__(self, weight: float, **kwargs) -> None:
        super().__init__(**kwargs)
        self.weight = weight

    def call(self, inputs):
        images, attribute_noise = inputs
        # ops.split, not slices at n // 2: under jax.jit the slices gave NaN weights
        # after one step whenever colour augmentation read the same images.
        first, second = ops.split(images, 2)
        noise = ops.split(attribute_noise[:, NUM_ATTRIBUTES:], 2)
        image_gap = ops.mean(ops.abs(first - second), axis=(1, 2, 3))
        noise_gap = ops.mean(ops.abs(noise[0] - noise[1]), axis=1)
        term = self.weight / (image_gap / noise_gap + 1e-5)
        return ops.concatenate([term, term])[:, None]

    def compute_output_shape(self, input_shapes):
        return (input_shapes[0][0], 1)


def own_value(_, term):
    """The loss of an output that is its own loss (ModeSeeking's)."""
    return ops.mean(term, axis=-1)


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


def build_discriminator(
    image_size: int = 64, width: int = 32, spectral_norm: bool = False, conditional: bool = True
) -> keras.Model:
    """(image, attributes) -> {"face": one face/no-face logit that depends on both,
    "attributes": 40 logits of what the image shows, from the image alone}.

    With ``spectral_norm``, the convolutions and the face logit are wrapped in
    ``keras.layers.SpectralNormalization`` (Miyato et al. 2018). That layer divides
    its kernel by its largest singular value in training mode, and on TensorFlow
    writes the result back into the kernel, so there G's step through the frozen
    discriminator re-normalises its kernels too (tests/test_models.py bounds it). Not
    ``conditional``, the projection ignores the attributes (``Projection``)."""
    steps = _upsamples(image_size)

    def normalised(layer, name=None):
        return layers.SpectralNormalization(layer, name=name) if spectral_norm else layer

    image = keras.Input((image_size, image_size, 3), name="image")
    attributes = keras.Input((NUM_ATTRIBUTES,), name="attributes")
    x = image
    for i in range(steps):
        if i == steps - 1:
            x = MinibatchStdDev()(x)
        x = normalised(layers.Conv2D(width * 2 ** min(3, i), 4, strides=2, padding="same"))(x)
        x = layers.LeakyReLU(0.2)(x)
    phi = layers.Flatten(name="features")(x)
    face_logit = layers.Dense(1, name=None if spectral_norm else "face_logit", dtype="float32")
    logit, projection = (
        normalised(face_logit, "face_logit"),
        Projection(conditional, name="projection", dtype="float32"),
    )
    face = layers.Add(name="face_score", dtype="float32")(
        [logit(phi), projection([phi, attributes])]
    )
    shown = layers.Dense(NUM_ATTRIBUTES, name="attribute_head", dtype="float32")(phi)
    return keras.Model(
        [image, attributes], {"face": face, "attributes": shown}, name="discriminator"
    )


def build_d_trainer(discriminator: keras.Model, augment_policy: str = "") -> keras.Model:
    """The discriminator as its training steps see it: a third input, other (wrong)
    attributes, and a third output, "mismatch", the face score of the same images'
    features against them. Every layer is the discriminator's, so training this trains
    it, and a real face paired with wrong attributes costs one more projection instead
    of another pass through the convolutions. With an ``augment_policy`` the images
    are augmented first (augment.py), by the random numbers of a fourth input."""
    image, attributes = discriminator.inputs
    wrong = keras.Input((NUM_ATTRIBUTES,), name="wrong_attributes")
    inputs, seen = [image, attributes, wrong], image
    if augment_policy:
        params = keras.Input((augment.PARAMETERS,), name="augment")
        inputs.append(params)
        seen = augment.DiffAugment(augment_policy, dtype="float32")([image, params])
    phi = keras.Model(image, discriminator.get_layer("features").output, name="trunk")(seen)
    logit = discriminator.get_layer("face_logit")(phi)
    projection = discriminator.get_layer("projection")
    outputs = {
        "face": layers.Add(name="face", dtype="float32")([logit, projection([phi, attributes])]),
        "attributes": discriminator.get_layer("attribute_head")(phi),
        "mismatch": layers.Add(name="mismatch", dtype="float32")([logit, projection([phi, wrong])]),
    }
    return keras.Model(inputs, outputs, name="d_trainer")


def build_gan(
    generator: keras.Model,
    discriminator: keras.Model,
    augment_policy: str = "",
    mode_seeking: float = 0.0,
) -> keras.Model:
    """generator -> discriminator, judged against the attributes it was asked for;
    with an ``augment_policy`` the generated images are augmented on the way, by the
    random numbers of a second input; with a ``mode_seeking`` weight a third output,
    "mode_seeking", is that term (ModeSeeking) of the images before augmentation."""
    inputs = [keras.Input(generator.input_shape[1:], name="attribute_noise")]
    attributes = layers.Lambda(lambda z: z[:, :NUM_ATTRIBUTES], name="attributes")(inputs[0])
    images = seen = generator(inputs[0])
    if augment_policy:
        inputs.append(keras.Input((augment.PARAMETERS,), name="augment"))
        seen = augment.DiffAugment(augment_policy, dtype="float32")([images, inputs[1]])
    outputs = dict(discriminator([seen, attributes]))
    if mode_seeking:
        outputs["mode_seeking"] = ModeSeeking(mode_seeking, name="mode_seeking", dtype="float32")(
            [images, inputs[0]]
        )
    return keras.Model(inputs if augment_policy else inputs[0], outputs, name="gan")


def losses(kind: str) -> dict:
    """The face score's loss ("bce": binary cross-entropy on the logit; "hinge":
    max(0, 1 -+ logit), targets 1/0 read as +1/-1) and the attribute head's (BCE)."""
    bce = keras.losses.BinaryCrossentropy(from_logits=True)
    face = {"bce": bce, "hinge": keras.losses.Hinge()}[kind]
    return {"face": face, "attributes": bce}


def compile_models(
    generator,
    discriminator,
    d_trainer,
    gan,
    lr_d: float,
    lr_g: float,
    beta1: float,
    loss: str = "bce",
    conditional: bool = True,
    attr_weight: float = 1.0,
) -> None:
    """Two Adams, each with its own learning rate (TTUR, Heusel et al. 2017): one trains
    D (compiled into D too, so that saving D saves its state), one trains G (in G and
    the stacked model, likewise)."""
    d_optimizer = keras.optimizers.Adam(lr_d, beta_1=beta1)
    discriminator.compile(d_optimizer, losses(loss))
    compile_d_trainer(d_trainer, d_optimizer, loss, conditional, attr_weight)
    g_optimizer = keras.optimizers.Adam(lr_g, beta_1=beta1)
    generator.compile(g_optimizer, loss="mse")
    compile_gan(gan, g_optimizer, discriminator, loss, conditional, attr_weight)


def _weights(names, conditional: bool, attr_weight: float) -> dict[str, float]:
    """Each loss's weight: the attribute head's is ``attr_weight`` (``--attr-weight``),
    the others' 1. Without attributes, the attribute head's and the wrong-attribute
    pairs' count for nothing: there is nothing to tell apart."""
    if not conditional:
        return {name: float(name in ("face", "mode_seeking")) for name in names}
    return {name: attr_weight if name == "attributes" else 1.0 for name in names}


def compile_d_trainer(
    d_trainer, optimizer, loss: str = "bce", conditional: bool = True, attr_weight: float = 1.0
) -> None:
    """Every loss a mean over the batch's rows with sample weights (Keras' default), so
    a real, a generated and a wrong-attribute pair weigh the same in D's loss."""
    chosen = losses(loss)
    chosen["mismatch"] = chosen["face"]
    accuracy = {
        name: [keras.metrics.BinaryAccuracy(threshold=0.0, name="accuracy")]
        for name in ("face", "mismatch")
    }
    d_trainer.compile(
        optimizer,
        chosen,
        loss_weights=_weights(chosen, conditional, attr_weight),
        weighted_metrics=accuracy,
    )


def compile_gan(
    gan,
    optimizer,
    discriminator,
    loss: str = "bce",
    conditional: bool = True,
    attr_weight: float = 1.0,
) -> None:
    chosen = losses(loss)
    if "mode_seeking" in gan.output:
        chosen["mode_seeking"] = own_value
    set_trainable(discriminator, False)
    gan.compile(optimizer, chosen, loss_weights=_weights(chosen, conditional, attr_weight))
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

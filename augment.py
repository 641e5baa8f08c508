"""Differentiable augmentation of the discriminator's images (DiffAugment, Zhao et al.
2020): ``--augment color,translation,cutout``; ``--augment auto``, the default, picks
by the data (``AUTO_POLICY``).

On limited data a discriminator memorises the real faces and its gradients stop
teaching the generator. DiffAugment shows it every image - real and generated, in D's
step and in G's - randomly recoloured, shifted and with a square cut out, so it cannot
memorise; the changes are differentiable, so G learns through them. The operations
are those of mit-han-lab/data-efficient-gans (``DiffAugment_pytorch.py``):

* color: brightness + (u - 0.5), saturation x (2u), contrast x (u + 0.5), per image;
* translation: a shift of up to 1/8 of the side in each direction, zero-filled;
* cutout: a zeroed square of half the side, centred anywhere on the image.

With ``--augment-p P`` under 1, each operation of the policy is applied to each image
with probability P, independently (as ADA, Karras et al. 2020, gates its operations):
the discriminator then also sees images as they are, which keeps the generator's faces
where the real ones are (aligned, whole) while it still cannot memorise them.

Written in ``keras.ops`` so every backend runs it. Its random numbers are not drawn
here: ``draw`` makes ``PARAMETERS`` floats per image from the caller's numpy generator
(dataGens.py keys them by seed, epoch and step, so resume stays exact) - uniform
parameters, then a 0/1 gate per operation - and the models take them as an input
(models.py).
"""

from __future__ import annotations

import numpy as np

from cli import UsageError
from quiet_keras import keras

ops = keras.ops
OPERATIONS = ("color", "translation", "cutout")
AUTO = "auto"  # --augment's default: the policy measured best on the run's kind of data
# Photos: translation (with mode seeking and the attribute weight that keep diversity
# and attributes) took FID on the 8,000 real faces from 89.4 to 72.8 on three seeds;
# adding cutout gave the same FID with the faces further from real ones on the
# classifier's features (5.6 against 4.3 times the real baseline).
# The synthetic faces: none, as augmenting them cost a third of the images per second
# and 3.4 points of attribute accuracy in 30 minutes (docs/results.md).
AUTO_POLICY = {"photos": "translation", "synthetic": ""}
UNIFORMS = 7  # brightness, saturation, contrast, shift y, shift x, cutout y, cutout x
PARAMETERS = UNIFORMS + len(OPERATIONS)  # then a gate per operation: 1 applies it
TRANSLATION, CUTOUT = 1 / 8, 1 / 2


def parse_policy(text: str) -> str:
    """``--augment``'s value in canonical order ("" for none), or a UsageError."""
    names = {part.strip() for part in text.split(",") if part.strip()} - {"none"}
    unknown = sorted(names - set(OPERATIONS))
    if unknown:
        raise UsageError(
            f"--augment {text}: unknown operation {', '.join(unknown)}; "
            f"use a comma-separated subset of {', '.join(OPERATIONS)}, none or auto"
        )
    return ",".join(name for name in OPERATIONS if name in names)


def asks_auto(text: str | None) -> bool:
    """Whether ``--augment``'s value (None: not given) leaves the policy to the data."""
    return text is None or text.strip() == AUTO


def resolve(text: str | None, synthetic: bool) -> str:
    """``--augment``'s value as the policy a run keeps: ``auto`` by the data's kind."""
    if asks_auto(text):
        return AUTO_POLICY["synthetic" if synthetic else "photos"]
    return parse_policy(text)


def draw(count: int, rng: np.random.Generator, probability: float = 1.0) -> np.ndarray:
    """The random numbers of ``count`` images' augmentations: (count, PARAMETERS), each
    operation's gate 1 with ``probability``. At 1 no gate is drawn, so the uniforms are
    the generator's first draws whatever the probability."""
    uniforms = rng.random((count, UNIFORMS), dtype=np.float32)
    gates = np.ones((count, len(OPERATIONS)), np.float32)
    if probability < 1:
        gates = (rng.random((count, len(OPERATIONS))) < probability).astype(np.float32)
    return np.concatenate([uniforms, gates], axis=1)


def apply(images, params, policy: str):
    """``images`` (n, h, w, c) in [-1, 1] augmented by ``policy`` with ``params``
    (n, PARAMETERS) from ``draw``: each operation of the policy, in ``OPERATIONS``'
    order, on the images whose gate for it is 1."""
    chosen = policy.split(",") if policy else []
    for k, (name, operation) in enumerate(zip(OPERATIONS, (_color, _translation, _cutout))):
        if name in chosen:
            gate = _per_image(params, UNIFORMS + k) > 0.5
            images = ops.where(gate, operation(images, params), images)
    return images


def _per_image(params, k: int):
    return ops.reshape(params[:, k], (-1, 1, 1, 1))


def _color(x, params):
    x = x + (_per_image(params, 0) - 0.5)
    mean = ops.mean(x, axis=3, keepdims=True)
    x = (x - mean) * (_per_image(params, 1) * 2) + mean
    mean = ops.mean(x, axis=(1, 2, 3), keepdims=True)
    return (x - mean) * (_per_image(params, 2) + 0.5) + mean


def _translation(x, params):
    """Shift by whole pixels, zero-filled: gather rows then columns from the image
    padded by one zero pixel, indices clamped onto the padding (as the reference)."""
    _, height, width, channels = x.shape
    padded = ops.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)])
    rows = _shifted_indices(params[:, 3], height)
    rows = ops.broadcast_to(rows[:, :, None, None], (ops.shape(x)[0], height, width + 2, channels))
    x = ops.take_along_axis(padded, rows, axis=1)
    columns = _shifted_indices(params[:, 4], width)
    columns = ops.broadcast_to(
        columns[:, None, :, None], (ops.shape(x)[0], height, width, channels)
    )
    return ops.take_along_axis(x, columns, axis=2)


def _shifted_indices(u, side: int):
    """Per image, the padded source index of each output pixel along one axis."""
    reach = int(side * TRANSLATION + 0.5)
    shift = ops.floor(u * (2 * reach + 1)) - reach  # uniform over -reach..reach
    positions = ops.arange(side, dtype="float32")[None, :] + shift[:, None] + 1
    return ops.cast(ops.clip(positions, 0, side + 1), "int32")


def _cutout(x, params):
    _, height, width, _ = x.shape
    keep_rows = _outside_square(params[:, 5], height)
    keep_columns = _outside_square(params[:, 6], width)
    cut = (1 - keep_rows[:, :, None]) * (1 - keep_columns[:, None, :])
    return x * (1 - cut)[..., None]


def _outside_square(u, side: int):
    """Per image, 1 where a position along one axis is outside the cut square's span."""
    size = int(side * CUTOUT + 0.5)
    centre = ops.floor(u * (side + (1 - size % 2)))
    start = centre - size // 2
    positions = ops.arange(side, dtype="float32")[None, :]
    inside = ops.logical_and(positions >= start[:, None], positions < start[:, None] + size)
    return 1 - ops.cast(inside, "float32")


@keras.saving.register_keras_serializable(package="augment")
class DiffAugment(keras.layers.Layer):
    """[images, params] -> the augmented images (``apply``)."""

    def __init__(self, policy: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.policy = policy

    def call(self, inputs):
        images, params = inputs
        return apply(images, params, self.policy)

    def compute_output_shape(self, input_shapes):
        return input_shapes[0]

    def get_config(self) -> dict:
        return {**super().get_config(), "policy": self.policy}

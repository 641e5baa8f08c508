"""Attribute-conditioned DCGAN: models, the train_on_batch loop, and generation.

    python dcgan.py --epochs 5                       # train (synthetic faces by default)
    python dcgan.py generate --checkpoint runs/dcgan --attrs "Smiling,Eyeglasses,-Male"

The method on one screen:

* Generator: [40 attribute bits | noise] -> Dense -> 4x4 -> (Conv2DTranspose stride 2,
  BatchNorm, ReLU) up to the image size -> tanh RGB.
* Discriminator: a face/no-face logit per image that also sees the attributes, by
  projection: logit = w.phi(x) + (V (2a - 1)).phi(x), with phi(x) the flattened last
  convolution. It is trained on real faces with their attributes (1), generated faces
  (0) and real faces with another face's attributes (0), so a real-looking face with
  the wrong attributes scores as fake. A second head reads the 40 attributes from the
  image alone, trained on real faces only; the generator is trained to make it read
  what was asked for, which teaches attributes far faster than the score alone.
* Stacked GAN: generator -> discriminator, trained with ``gan.train_on_batch`` while the
  discriminator is frozen. Keras 3 reads ``trainable`` when a train function is traced
  (TensorFlow) or at every step (JAX, PyTorch), not at compile time, so the flag is
  set before *every* call: True for the discriminator's ``train_on_batch``, False for
  ``gan.train_on_batch`` (``train_step``). tests/test_dcgan.py checks it on weights.
* The wrong-attribute pairs cost no second pass through the convolutions: the
  discriminator is trained through ``build_d_trainer``, the same layers with a third
  output that scores the real images' own features against the wrong attributes
  (benchmarks/NOTES.md measures it).
* On JAX, ``--compiled-step`` runs that same step as one compiled call with the weights
  kept on the device (compiled_step.py): the same weights, 2-3x faster on a GPU, where
  the three Keras calls' work on the host is most of the step.

Only ``keras.ops`` and layers here, so KERAS_BACKEND=jax or torch runs the same code.
Data loading is dataset.py, the networks' inputs dataGens.py.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from tqdm import tqdm

import checkpoints
import cli
import dataset
import evaluate
from attributes import ATTRIBUTES, NUM_ATTRIBUTES, SpecError, format_spec, parse_spec
from dataGens import (
    AttributeSampler,
    DiscriminatorBatches,
    GeneratorBatches,
    attribute_noise,
    sample_noise,
)
from quiet_keras import keras

layers, ops = keras.layers, keras.ops

DEFAULTS = {
    "image_size": 64,
    "batch_size": 64,
    "noise_dim": 64,
    "width": 32,
    "lr": 5e-4,
    "beta1": 0.5,
    "seed": 0,
    "out": "runs/dcgan",
    "keep": 3,
    "loss": "bce",
}
# Rows of the per-epoch sample grid: male/female x smiling x eyeglasses, with hair colours.
PROBE_SPECS = (
    "-Male, -Smiling, -Eyeglasses, Blond_Hair",
    "-Male, Smiling, -Eyeglasses, Black_Hair",
    "-Male, -Smiling, Eyeglasses, Brown_Hair",
    "-Male, Smiling, Eyeglasses, Blond_Hair",
    "Male, -Smiling, -Eyeglasses, Black_Hair",
    "Male, Smiling, -Eyeglasses, Brown_Hair",
    "Male, -Smiling, Eyeglasses, Gray_Hair",
    "Male, Smiling, Eyeglasses, Black_Hair",
)
PROBE_COLUMNS = 8
# Fixed for the life of a run: --resume refuses another value (the learning rate may change).
RUN_KEYS = ("image_size", "noise_dim", "width", "loss", "batch_size", "beta1", "seed")


class UsageError(Exception):
    """A bad argument or checkpoint; the message names it and the fix."""


# ---------------------------------------------------------------------------- models


def _upsamples(image_size: int) -> int:
    if image_size not in dataset.IMAGE_SIZES:
        raise UsageError(f"--image-size {image_size} is not supported; use 32, 64 or 128")
    return int(np.log2(image_size // 4))


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


def _losses(kind: str) -> dict:
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
    discriminator.compile(d_optimizer, _losses(loss))
    compile_d_trainer(d_trainer, d_optimizer, loss)
    g_optimizer = keras.optimizers.Adam(lr, beta_1=beta1)
    generator.compile(g_optimizer, loss="mse")
    compile_gan(gan, g_optimizer, discriminator, loss)


def compile_d_trainer(d_trainer, optimizer, loss: str = "bce") -> None:
    """Every loss a mean over the batch's rows with sample weights (Keras' default), so
    a real, a generated and a wrong-attribute pair weigh the same in D's loss."""
    losses = _losses(loss)
    accuracy = {
        name: [keras.metrics.BinaryAccuracy(threshold=0.0, name="accuracy")]
        for name in ("face", "mismatch")
    }
    d_trainer.compile(optimizer, {**losses, "mismatch": losses["face"]}, weighted_metrics=accuracy)


def compile_gan(gan, optimizer, discriminator, loss: str = "bce") -> None:
    set_trainable(discriminator, False)
    gan.compile(optimizer, _losses(loss))
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


# ------------------------------------------------------------------------ probes


def make_probes(sampler_data: np.ndarray, noise_dim: int, seed: int) -> np.ndarray:
    """Fixed grid inputs: one attribute row per probe spec, one noise per column."""
    rng = np.random.default_rng([seed, 99])
    rows = [AttributeSampler("spec", sampler_data, spec).sample(1, rng)[0] for spec in PROBE_SPECS]
    attrs = np.repeat(np.stack(rows), PROBE_COLUMNS, axis=0)
    noise = sample_noise(PROBE_COLUMNS, noise_dim, rng)
    return np.concatenate([attrs, np.tile(noise, (len(PROBE_SPECS), 1))], axis=1)


def save_grid(
    images: np.ndarray,
    row_labels: list[str],
    path: Path,
    title: str = "",
    column_labels: list[str] | None = None,
) -> None:
    """A labelled grid PNG: one row per row label (the last may be short), written
    atomically."""
    rows = len(row_labels)
    cols = -(-len(images) // rows)
    pixels = dataset.to_uint8(images)
    label_width = 0.06 * max(map(len, row_labels)) if any(row_labels) else 0
    fig = Figure(figsize=(1.1 * cols + label_width, 1.1 * rows + 0.5), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= len(pixels):
            ax.axis("off")
            continue
        ax.imshow(pixels[i])
        ax.set_xticks([])
        ax.set_yticks([])
        if i % cols == 0:
            ax.set_ylabel(row_labels[i // cols], rotation=0, ha="right", va="center", fontsize=7)
        if column_labels and i < cols:
            ax.set_title(column_labels[i], fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    save_figure(fig, path)


def save_figure(fig: Figure, path: Path) -> None:
    """Write a PNG atomically, so no half-written picture shows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with checkpoints.replacing(path) as partial:
        fig.savefig(partial, dpi=100, format="png")


def plot_history(run_dir: Path) -> None:
    """Redraw losses.png from losses.csv (raw per step, and a running mean), with a
    second panel for metrics.csv when ``--eval-every`` wrote one."""
    data = np.atleast_1d(np.genfromtxt(run_dir / "losses.csv", delimiter=",", names=True))
    metrics_path = run_dir / "metrics.csv"
    metrics = (
        np.atleast_1d(np.genfromtxt(metrics_path, delimiter=",", names=True))
        if metrics_path.exists()
        else None
    )
    fig = Figure(figsize=(8 if metrics is None else 14, 4))
    ax, *rest = fig.subplots(1, 1 if metrics is None else 2, squeeze=False)[0]
    x = np.arange(len(data))
    window = max(1, len(data) // 50)
    curves = (
        ("d_loss", "tab:red", "-"),
        ("g_loss", "tab:blue", "-"),
        ("d_attr", "tab:red", "--"),
        ("g_attr", "tab:blue", "--"),
    )
    for key, colour, style in curves:
        ax.plot(x, data[key], color=colour, alpha=0.2, linewidth=0.7, linestyle=style)
        smooth = np.convolve(data[key], np.ones(window) / window, mode="valid")
        ax.plot(x[window - 1 :], smooth, color=colour, linestyle=style, label=key)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend()
    ax.grid(alpha=0.3)
    if metrics is not None:
        _plot_metrics(rest[0], metrics)
    fig.tight_layout()
    save_figure(fig, run_dir / "losses.png")


def _plot_metrics(ax, metrics: np.ndarray) -> None:
    ax.plot(metrics["epoch"], metrics["attr_accuracy"], "o-", label="attribute accuracy")
    ax.plot(metrics["epoch"], metrics["attr_balanced"], "o-", label="balanced accuracy")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy (visible attributes)")
    ax.set_ylim(0.4, 1)
    ax.grid(alpha=0.3)
    right = ax.twinx()
    right.plot(metrics["epoch"], metrics["frechet"], "s-", color="tab:gray", label="Fréchet")
    right.plot(
        metrics["epoch"], metrics["frechet_real"], ":", color="tab:gray", label="Fréchet, real"
    )
    right.set_ylabel("Fréchet distance (classifier features)")
    handles = ax.get_legend_handles_labels()
    more = right.get_legend_handles_labels()
    ax.legend(handles[0] + more[0], handles[1] + more[1], fontsize=8, loc="center right")


# --------------------------------------------------------------------- checkpoints


def save_checkpoint(
    run_dir: Path,
    position: tuple[int, int],
    generator,
    discriminator,
    arrays: dict[str, np.ndarray],
    state: dict,
    keep: int,
) -> Path:
    """checkpoints/epoch-NNNN[-step-SSSSSS]/: both models with their optimizer states,
    ``arrays`` (the training attribute rows, the probes), the loss history and
    state.json."""
    checkpoints.check_disk(run_dir, _checkpoint_bytes(run_dir, generator, discriminator))
    set_trainable(discriminator, True)
    folder = checkpoints.write(
        run_dir,
        checkpoints.folder_name(*position),
        {"generator": generator, "discriminator": discriminator},
        arrays,
        [run_dir / "losses.csv", run_dir / "metrics.csv"],
        state,
    )
    checkpoints.prune(run_dir, keep)
    return folder


def _checkpoint_bytes(run_dir: Path, *models) -> int:
    previous = checkpoints.pointed(run_dir, "LATEST")
    if previous is not None:
        return sum(f.stat().st_size for f in previous.iterdir())
    return sum(m.count_params() for m in models) * 4 * 3  # weights and two Adam moments


def load_checkpoint(folder: Path, compile: bool = True):
    """(generator, discriminator or None, state, attribute rows, probe inputs)."""
    try:
        state = json.loads((folder / "state.json").read_text())
        generator = keras.models.load_model(folder / "generator.keras", compile=compile)
        discriminator = (
            keras.models.load_model(folder / "discriminator.keras", compile=compile)
            if compile
            else None
        )
        attribute_rows = np.load(folder / "attributes.npy")
        probes = np.load(folder / "probes.npy")
    except (OSError, ValueError, KeyError, TypeError) as error:
        reason = str(error).strip().splitlines()[0][:200]
        raise UsageError(f"{folder}: not a readable checkpoint ({reason})") from None
    return generator, discriminator, state, attribute_rows, probes


# ------------------------------------------------------------------------ training


class StopSignal:
    """Ctrl-C (SIGINT) or SIGTERM asks the loop to stop after the current step and save;
    a second one stops at once (the last complete checkpoint is kept)."""

    def __init__(self) -> None:
        self.received: str | None = None

    def __enter__(self) -> StopSignal:
        self._previous = {
            s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)
        }
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    def _handle(self, signum, frame) -> None:
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name
        print(
            f"\n{self.received}: finishing this step and saving (again to stop at once)",
            file=sys.stderr,
        )


class DivergenceError(Exception):
    """Training went wrong in a way more steps will not mend."""


class DivergenceGuard:
    """Spots a run gone wrong: a non-finite loss at once, or the discriminator winning
    outright, its loss's running mean under ``floor`` for ``patience`` steps while the
    generator's climbs. ``healthy`` is False from the first step of such a stretch, so
    a checkpoint saved then is not marked GOOD."""

    def __init__(self, floor: float = 0.05, patience: int = 200, smoothing: int = 50) -> None:
        self.floor, self.patience = floor, patience
        self.d_losses: deque[float] = deque(maxlen=smoothing)
        self.g_losses: deque[float] = deque(maxlen=smoothing)
        self.won_since: int | None = None
        self.g_when_won = 0.0

    @property
    def healthy(self) -> bool:
        return self.won_since is None

    def check(self, losses: dict[str, float], step: int) -> None:
        """Raise DivergenceError; ``step`` counts steps over the whole run."""
        if not all(np.isfinite(v) for v in losses.values()):
            raise DivergenceError(f"a loss is not finite ({losses})")
        self.d_losses.append(losses["d_loss"])
        self.g_losses.append(losses["g_loss"])
        if len(self.d_losses) < self.d_losses.maxlen or np.mean(self.d_losses) >= self.floor:
            self.won_since = None
            return
        if self.won_since is None:
            self.won_since, self.g_when_won = step, float(np.mean(self.g_losses))
        g_now = float(np.mean(self.g_losses))
        if step - self.won_since >= self.patience and g_now > self.g_when_won:
            raise DivergenceError(
                f"the discriminator has won outright for {step - self.won_since} steps "
                f"(its loss under {self.floor}, the generator's from {self.g_when_won:.2f} "
                f"to {g_now:.2f})"
            )


class Trainer:
    """One training run: its settings, data, models, position and history on disk."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args, self.run_dir, self.began = args, Path(args.out), time.monotonic()
        self.checkpoint = checkpoints.find(self.run_dir) if args.resume else None
        if args.resume and self.checkpoint is None:
            print(f"--resume: no checkpoint in {self.run_dir} yet; starting fresh", file=sys.stderr)
        if self.checkpoint is None:
            _refuse_foreign_run(self.run_dir)
        saved = _read_state(self.checkpoint)["settings"] if self.checkpoint else None
        self.settings = resolve_settings(args, saved, self.checkpoint)
        root = dataset.resolve_data_dir(args.data_dir)
        self.settings["data"] = str(Path(root).resolve())
        self.cache = dataset.build_cache(root, self.settings["image_size"])
        print(dataset.summary_line(self.cache), file=sys.stderr)
        self.real = dataset.CelebaBatches(
            self.cache, "train", self.settings["batch_size"], seed=self.seed, flip=True
        )
        self.attribute_rows = self.cache.attributes[self.real.rows]
        writable_folder(self.run_dir)  # after the checks of the data, so they leave no folder
        # Before the models: training a missing classifier reseeds Keras.
        self.monitor = (
            evaluate.TrainingMonitor(self.cache, seed=self.seed) if args.eval_every else None
        )
        self.steps = min(len(self.real), args.steps_per_epoch or len(self.real))
        self.guard = DivergenceGuard()
        self.best = -np.inf

    @property
    def seed(self) -> int:
        return self.settings["seed"]

    # -- set-up

    def start_fresh(self) -> None:
        s = self.settings
        for leftover in ("losses.csv", "metrics.csv"):  # of a run killed before its first save
            (self.run_dir / leftover).unlink(missing_ok=True)
        keras.utils.set_random_seed(self.seed)
        self.generator = build_generator(s["image_size"], s["noise_dim"], s["width"])
        self.discriminator = build_discriminator(s["image_size"], s["width"])
        self.d_trainer = build_d_trainer(self.discriminator)
        self.gan = build_gan(self.generator, self.discriminator)
        compile_models(
            self.generator,
            self.discriminator,
            self.d_trainer,
            self.gan,
            s["lr"],
            s["beta1"],
            s["loss"],
        )
        self.probe_inputs = make_probes(self.attribute_rows, s["noise_dim"], self.seed)
        self.position = (0, 0)
        self._wire()

    def restore(self, folder: Path) -> None:
        """Continue exactly where ``folder`` left off: weights, optimizer states, position,
        probes and loss history. (Every random draw after initialisation comes from numpy
        generators keyed by (seed, epoch, step), so the position is the RNG state.)"""
        self.generator, self.discriminator, state, _, self.probe_inputs = load_checkpoint(folder)
        s = self.settings
        try:
            self.d_trainer = build_d_trainer(self.discriminator)
        except ValueError:
            raise UsageError(
                f"{folder}: written by an older dcgan.py whose discriminator layers are not "
                "named; start a new run (another --out)"
            ) from None
        compile_d_trainer(self.d_trainer, self.discriminator.optimizer, s["loss"])
        self.gan = build_gan(self.generator, self.discriminator)
        compile_gan(self.gan, self.generator.optimizer, self.discriminator, s["loss"])
        self.set_learning_rate(s["lr"])
        self.position = (state["epoch"], state.get("step", 0))
        self.best = -np.inf if state.get("best") is None else state["best"]
        for name in ("losses.csv", "metrics.csv"):
            kept, live = folder / name, self.run_dir / name
            if kept.exists():
                shutil.copy2(kept, live)
            else:
                live.unlink(missing_ok=True)
        if state["backend"] != keras.backend.backend():
            print(
                f"note: {folder.name} was written on {state['backend']}; continuing on "
                f"{keras.backend.backend()}, which does not repeat {state['backend']} bitwise",
                file=sys.stderr,
            )
        epoch, step = self.position
        print(
            f"resuming from {folder}: epoch {epoch + 1}, step {step + 1} is next", file=sys.stderr
        )
        self._wire()

    def _wire(self) -> None:
        noise_dim = self.settings["noise_dim"]
        sampler = AttributeSampler("dataset", self.attribute_rows)
        self.d_batches = DiscriminatorBatches(
            self.real, self.generator, sampler, noise_dim, self.seed
        )
        self.g_batches = GeneratorBatches(
            sampler, self.settings["batch_size"], self.steps, noise_dim, self.seed
        )
        self.compiled = None
        if self.args.compiled_step:
            import compiled_step  # JAX only, so imported only when asked for

            self.compiled = compiled_step.CompiledStep(
                self.generator, self.discriminator, self.d_trainer, self.gan
            )

    def set_learning_rate(self, lr: float) -> None:
        self.settings["lr"] = lr
        self.generator.optimizer.learning_rate = lr
        self.discriminator.optimizer.learning_rate = lr

    # -- the loop

    def run(self, last_epoch: int) -> int:
        """Train to ``last_epoch`` (or the time budget); 0 when done or stopped cleanly."""
        slowest = 0.0  # seconds of the slowest epoch so far, saving included
        with StopSignal() as stop:
            while self.position[0] < last_epoch:
                epoch, first_step = self.position
                budget = self.args.minutes and self.args.minutes * 60
                if budget and slowest and self._elapsed() + slowest > budget:
                    print(
                        f"--minutes {self.args.minutes:g}: stopping after epoch {epoch}; "
                        "another would end past the limit",
                        file=sys.stderr,
                    )
                    break
                started = time.perf_counter()
                rows = self._steps(epoch, first_step, last_epoch, stop)
                if self.compiled is not None:  # saving, grids and evaluation read Keras' copy
                    self.compiled.sync()
                if self.position[1]:  # stopped inside the epoch
                    _append_rows(self.run_dir / "losses.csv", rows)
                    folder = self._save()
                    return self._stopped(stop.received, folder)
                self._end_epoch(epoch, rows, time.perf_counter() - started)
                slowest = max(slowest, time.perf_counter() - started)
                if stop.received:
                    return self._stopped(stop.received, checkpoints.pointed(self.run_dir, "LATEST"))
        print(
            f"done: {self.position[0]} epochs in {self.run_dir} ({self._elapsed() / 60:.1f} min). "
            "Generate with:\n"
            f'  python dcgan.py generate --checkpoint {self.run_dir} --attrs "Smiling,-Male"'
        )
        return 0

    def _steps(self, epoch: int, first_step: int, last_epoch: int, stop: StopSignal) -> list:
        """Train the steps of one epoch from ``first_step``; on a stop request, leave the
        position inside the epoch."""
        self.real.set_epoch(epoch)
        self.g_batches.epoch = epoch
        rows = []
        bar = tqdm(
            range(first_step, self.steps),
            initial=first_step,
            total=self.steps,
            desc=f"epoch {epoch + 1}" + (f"/{last_epoch}" if last_epoch < sys.maxsize else ""),
            unit="step",
            file=sys.stderr,
            dynamic_ncols=True,
        )
        for step in bar:
            losses = self._train_step(step)
            self.guard.check(losses, epoch * self.steps + step)
            rows.append({"epoch": epoch + 1, "step": step + 1, **losses})
            bar.set_postfix(
                d=f"{losses['d_loss']:.3f}",
                g=f"{losses['g_loss']:.3f}",
                acc=f"{losses['d_acc']:.2f}",
                g_attr=f"{losses['g_attr']:.3f}",
            )
            if stop.received and step + 1 < self.steps:
                bar.close()
                self.position = (epoch, step + 1)
                return rows
        self.position = (epoch + 1, 0)
        return rows

    def _train_step(self, step: int) -> dict[str, float]:
        if self.compiled is not None:
            return self.compiled(self.d_batches.parts(step), self.g_batches[step])
        return train_step(
            self.discriminator,
            self.d_trainer,
            self.gan,
            self.d_batches[step],
            self.g_batches[step],
        )

    def _end_epoch(self, epoch: int, rows: list, seconds: float) -> None:
        """History, metrics, sample grid and checkpoint after a whole epoch."""
        _append_rows(self.run_dir / "losses.csv", rows)
        measured, metrics = "", None
        if self.monitor is not None and (epoch + 1) % self.args.eval_every == 0:
            metrics = self.monitor(self.generator, self.attribute_rows, self.settings["noise_dim"])
            _append_rows(self.run_dir / "metrics.csv", [{"epoch": epoch + 1, **metrics}])
            measured = (
                f"attribute accuracy {metrics['attr_accuracy']:.1%} "
                f"(balanced {metrics['attr_balanced']:.1%})  Fréchet {metrics['frechet']:.2f} "
                f"(real {metrics['frechet_real']:.2f})  diversity {metrics['diversity']:.3f}\n  "
            )
        plot_history(self.run_dir)
        grid = self.run_dir / "samples" / f"epoch-{epoch + 1:04d}.png"
        images = self.generator.predict_on_batch(self.probe_inputs)
        save_grid(images, list(PROBE_SPECS), grid, f"epoch {epoch + 1}")
        better = metrics is not None and metrics["attr_balanced"] > self.best
        if better:
            self.best = metrics["attr_balanced"]
        folder = self._save(seconds)
        if better:
            checkpoints.point(self.run_dir, "BEST", folder)
        mean = {k: np.mean([r[k] for r in rows]) for k in ("d_loss", "g_loss", "d_acc", "g_attr")}
        rate = len(rows) * self.settings["batch_size"] / seconds
        print(
            f"epoch {epoch + 1}: d_loss {mean['d_loss']:.3f}  g_loss {mean['g_loss']:.3f}  "
            f"d_acc {mean['d_acc']:.2f}  g_attr {mean['g_attr']:.3f}  {rate:.0f} images/s\n"
            f"  {measured}-> {grid}, {folder}",
            file=sys.stderr,
        )

    def _save(self, seconds: float | None = None) -> Path:
        epoch, step = self.position
        state = {
            "epoch": epoch,
            "step": step,
            "settings": self.settings,
            "seconds": seconds,
            "best": self.best if np.isfinite(self.best) else None,
            "backend": keras.backend.backend(),
            "keras": keras.__version__,
        }
        arrays = {"attributes": self.attribute_rows, "probes": self.probe_inputs}
        folder = save_checkpoint(
            self.run_dir,
            self.position,
            self.generator,
            self.discriminator,
            arrays,
            state,
            self.args.keep,
        )
        if self.guard.healthy:
            checkpoints.point(self.run_dir, "GOOD", folder)
        return folder

    def _stopped(self, signal_name: str | None, folder: Path | None) -> int:
        epoch, step = self.position
        where = f"epoch {epoch + 1}, step {step + 1}" if step else f"epoch {epoch + 1}"
        print(
            f"{signal_name}: saved {folder}; continue from {where} with the same command "
            "and --resume",
            file=sys.stderr,
        )
        return 0

    def _elapsed(self) -> float:
        return time.monotonic() - self.began


MAX_ROLLBACKS = 3


def train(args: argparse.Namespace) -> int:
    if args.compiled_step and keras.backend.backend() != "jax":
        raise UsageError(
            f"--compiled-step runs on the JAX backend only (this is {keras.backend.backend()}): "
            "set KERAS_BACKEND=jax, or leave the flag out"
        )
    trainer = Trainer(args)
    if trainer.checkpoint is not None:
        trainer.restore(trainer.checkpoint)
    else:
        trainer.start_fresh()
    last_epoch = args.epochs or (sys.maxsize if args.minutes else 1)
    if trainer.position[0] >= last_epoch:
        print(
            f"already trained {trainer.position[0]} epochs (--epochs {last_epoch}); nothing to do"
        )
        return 0
    for rollback in range(MAX_ROLLBACKS + 1):
        try:
            return trainer.run(last_epoch)
        except DivergenceError as why:
            epoch, _ = trainer.position
            good = checkpoints.pointed(trainer.run_dir, "GOOD")
            print(f"\ntraining diverged in epoch {epoch + 1}: {why}", file=sys.stderr)
            if args.on_divergence == "rollback" and good and rollback < MAX_ROLLBACKS:
                lr = trainer.settings["lr"] / 2
                print(
                    f"rolling back to {good.name} with the learning rate halved to {lr:g}",
                    file=sys.stderr,
                )
                trainer.guard = DivergenceGuard()
                trainer.restore(good)
                trainer.set_learning_rate(lr)
                continue
            break
    if good is None:
        raise DivergenceError(
            "training diverged before the first checkpoint; start again with a lower --lr"
        )
    checkpoints.point(trainer.run_dir, "LATEST", good)
    raise DivergenceError(
        f"training stopped; the last good checkpoint, {good}, is now LATEST: continue with "
        "--resume and a lower --lr (or train with --on-divergence rollback)"
    )


def _read_state(folder: Path) -> dict:
    try:
        return json.loads((folder / "state.json").read_text())
    except (OSError, ValueError) as error:
        raise UsageError(f"{folder}: unreadable state.json ({error})") from None


def resolve_settings(args: argparse.Namespace, saved: dict | None, checkpoint: Path | None) -> dict:
    """The run's settings: a new run's from the flags and DEFAULTS; a resumed run's
    from its checkpoint, where a flag given with another value is an error naming both
    (only --lr may change: it sets the learning rate from here on)."""
    settings = {}
    for key in RUN_KEYS:
        asked = getattr(args, key)
        if saved is None:
            settings[key] = DEFAULTS[key] if asked is None else asked
            continue
        if asked is not None and asked != saved[key]:
            flag = "--" + key.replace("_", "-")
            raise UsageError(
                f"{checkpoint} was trained with {flag} {saved[key]}, not {asked}; "
                f"pass {flag} {saved[key]} or a new --out"
            )
        settings[key] = saved[key]
    settings["lr"] = args.lr or (saved["lr"] if saved else DEFAULTS["lr"])
    return settings


def writable_folder(path: str | os.PathLike, flag: str = "--out") -> Path:
    """Create ``path`` if needed and prove a file can be written there, before any work."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        raise UsageError(
            f"{flag} {path}: cannot write there ({error.strerror or error}); choose another folder"
        ) from None
    return path


def _refuse_foreign_run(run_dir: Path) -> None:
    if checkpoints.complete(run_dir):
        raise UsageError(
            f"--out {run_dir} already holds a run; pass --resume to continue it or a new --out"
        )


def _append_rows(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    with open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        if new:
            writer.writeheader()
        writer.writerows(rows)


# ---------------------------------------------------------------------- generation


def generate(args: argparse.Namespace) -> int:
    folder = checkpoints.find(args.checkpoint)
    if folder is None:
        raise UsageError(
            f"--checkpoint {args.checkpoint}: no checkpoint there; give a run folder "
            "(e.g. runs/dcgan), a checkpoints/epoch-NNNN folder or its generator.keras"
        )
    generator, _, state, attribute_rows, _ = load_checkpoint(folder, compile=False)
    noise_dim = state["settings"]["noise_dim"]
    sampler = AttributeSampler("spec", attribute_rows, args.attrs)
    if not sampler.supported:
        print(
            f"note: no training face has all of {args.attrs!r}; the other attributes are "
            "drawn from all faces",
            file=sys.stderr,
        )
    rng = np.random.default_rng(args.seed)
    out = writable_folder(args.out)
    spec = format_spec(sampler.settings) or "(data distribution)"
    if args.flip:
        flips = list(parse_spec(args.flip))
        base = sampler.sample(args.count, rng)
        noise = sample_noise(args.count, noise_dim, rng)
        columns = [base] + [_flipped(base, name) for name in flips]
        inputs = np.concatenate(
            [np.concatenate([c[i : i + 1] for c in columns]) for i in range(args.count)]
        )
        inputs = np.concatenate([inputs, np.repeat(noise, len(columns), axis=0)], axis=1)
        images = generator.predict(inputs, batch_size=256, verbose=0)
        labels = [f"face {i + 1}" for i in range(args.count)]
        columns = ["as asked", *(f"{name} flipped" for name in flips)]
        save_grid(images, labels, out / "flips.png", spec, columns)
        print(f"wrote {out / 'flips.png'}")
        return 0
    attrs = sampler.sample(args.count, rng)
    images = generator.predict(attribute_noise(attrs, noise_dim, rng), batch_size=256, verbose=0)
    pixels = dataset.to_uint8(images)
    from PIL import Image

    for i, image in enumerate(pixels):
        with checkpoints.replacing(out / f"face-{i + 1:04d}.png") as partial:
            Image.fromarray(image).save(partial, format="PNG")
    rows = -(-args.count // 8)
    save_grid(images, [""] * rows, out / "grid.png", f"{spec} (checkpoint epoch {state['epoch']})")
    print(f"wrote {args.count} faces and grid.png to {out}")
    return 0


def _flipped(attrs: np.ndarray, name: str) -> np.ndarray:
    flipped = attrs.copy()
    column = ATTRIBUTES.index(name)
    flipped[:, column] = 1 - flipped[:, column]
    return flipped


# ---------------------------------------------------------------------------- CLI


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return value


def _non_negative(text: str) -> int:
    return 0 if text.strip() == "0" else _positive(text)


def _multiple_of_8(text: str) -> int:
    value = _positive(text)
    if value % 8:
        raise argparse.ArgumentTypeError(
            f"{value} is not a multiple of 8 (the discriminator compares groups of 4 images)"
        )
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return value


def train_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dcgan.py",
        description="Train the attribute-conditioned DCGAN. "
        "(To make faces from a trained run: dcgan.py generate --help)",
        epilog="With --resume, unset run settings are the checkpoint's; another value is "
        "an error, except --lr, which applies from there on.",
        formatter_class=cli.HelpFormatter,
    )
    d = DEFAULTS
    parser.add_argument(
        "--epochs",
        type=_positive,
        help="total epochs to train to (default: 1, or as many as --minutes allows)",
    )
    parser.add_argument(
        "--minutes",
        type=_positive_float,
        help="time budget from start-up: no epoch is begun that would end past it",
    )
    parser.add_argument("--data-dir", help="CelebA root (default: data/celeba, else synthetic)")
    parser.add_argument(
        "--image-size",
        type=int,
        choices=dataset.IMAGE_SIZES,
        help=f"image side in pixels (default: {d['image_size']})",
    )
    parser.add_argument(
        "--batch-size",
        type=_multiple_of_8,
        help=f"real images per step, a multiple of 8 (default: {d['batch_size']})",
    )
    parser.add_argument(
        "--noise-dim",
        type=_positive,
        help="noise floats after the 40 attribute bits; 1 = the original design "
        f"(default: {d['noise_dim']})",
    )
    parser.add_argument(
        "--width",
        type=_positive,
        help=f"base channel count of both networks (default: {d['width']})",
    )
    parser.add_argument(
        "--lr", type=_positive_float, help=f"Adam learning rate (default: {d['lr']:g})"
    )
    parser.add_argument(
        "--beta1", type=_positive_float, help=f"Adam beta_1 (default: {d['beta1']})"
    )
    parser.add_argument(
        "--loss",
        choices=("bce", "hinge"),
        help=f"face/no-face loss of both networks (default: {d['loss']})",
    )
    parser.add_argument(
        "--steps-per-epoch",
        type=_positive,
        help="cap on batches per epoch (default: the whole training split)",
    )
    parser.add_argument("--out", default=d["out"], help="run folder: samples, losses, checkpoints")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from the run's last intact checkpoint (starts fresh if none)",
    )
    parser.add_argument("--keep", type=_positive, default=d["keep"], help="checkpoints kept")
    parser.add_argument(
        "--eval-every",
        type=_non_negative,
        default=0,
        metavar="K",
        help="every K epochs, score 500 generated faces with the attribute classifier "
        "(trained and cached on first use) into metrics.csv and losses.png, and keep the "
        "best checkpoint by balanced accuracy as BEST; 0 = never",
    )
    parser.add_argument(
        "--on-divergence",
        choices=("stop", "rollback"),
        default="stop",
        help="when a loss goes non-finite or the discriminator wins outright: stop, "
        f"or go back to the last good checkpoint with half the learning rate (at most "
        f"{MAX_ROLLBACKS} times)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        help=f"seed of initialisation, data order and sampling (default: {d['seed']})",
    )
    parser.add_argument(
        "--compiled-step",
        action="store_true",
        help="JAX only: run each step as one compiled call with the weights kept on the "
        "device instead of three Keras calls; the same weights, 2-3x faster on a GPU "
        "(benchmarks/NOTES.md)",
    )
    return parser


def generate_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dcgan.py generate",
        description="Make faces with chosen attributes from a trained checkpoint.",
        formatter_class=cli.HelpFormatter,
    )
    parser.add_argument(
        "--checkpoint",
        default=DEFAULTS["out"],
        help="run folder, checkpoint folder or generator.keras",
    )
    parser.add_argument(
        "--attrs",
        default="",
        help='attributes to force, e.g. "Smiling, Eyeglasses, -Male"; the rest '
        "are drawn from the training faces that agree",
    )
    parser.add_argument("--count", type=_positive, default=16, help="faces to make")
    parser.add_argument(
        "--flip",
        help="attributes to switch one at a time on the same faces "
        "(e.g. Smiling,Eyeglasses): writes flips.png instead",
    )
    parser.add_argument("--out", default="generated", help="output folder")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv[:1] == ["generate"]:
            return generate(generate_parser().parse_args(argv[1:]))
        return train(train_parser().parse_args(argv))
    except (UsageError, SpecError, dataset.DataError, checkpoints.CheckpointError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except DivergenceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print(
            "\ninterrupted; the last complete checkpoint is kept (continue with --resume)",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())

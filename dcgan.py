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
  set before *every* call: True for ``discriminator.train_on_batch``, False for
  ``gan.train_on_batch`` (``train_step``). tests/test_dcgan.py checks it on weights.

Only ``keras.ops`` and layers here, so KERAS_BACKEND=jax or torch runs the same code.
Data loading is dataset.py, the networks' inputs dataGens.py.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from tqdm import tqdm

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
FIXED_KEYS = ("image_size", "noise_dim", "width", "loss")  # a run continues only with these


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
    phi = layers.Flatten()(x)
    face = layers.Add(name="face_score")([layers.Dense(1)(phi), Projection()([phi, attributes])])
    shown = layers.Dense(NUM_ATTRIBUTES, name="attribute_head")(phi)
    return keras.Model(
        [image, attributes], {"face": face, "attributes": shown}, name="discriminator"
    )


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
    generator, discriminator, gan, lr: float, beta1: float, loss: str = "bce"
) -> None:
    """D and the stacked model get their own Adam; G shares the stacked model's one so
    that saving G saves the optimizer state that trains it."""
    accuracy = keras.metrics.BinaryAccuracy(threshold=0.0, name="accuracy")
    discriminator.compile(
        keras.optimizers.Adam(lr, beta_1=beta1), _losses(loss), metrics={"face": [accuracy]}
    )
    g_optimizer = keras.optimizers.Adam(lr, beta_1=beta1)
    generator.compile(g_optimizer, loss="mse")
    compile_gan(gan, g_optimizer, discriminator, loss)


def compile_gan(gan, optimizer, discriminator, loss: str = "bce") -> None:
    set_trainable(discriminator, False)
    gan.compile(optimizer, _losses(loss))
    set_trainable(discriminator, True)


def set_trainable(model: keras.Model, trainable: bool) -> None:
    model.trainable = trainable


def train_step(discriminator, gan, d_batch, g_batch) -> dict[str, float]:
    """One discriminator step, then one generator step through the frozen discriminator.

    d_loss/g_loss are the face/no-face (adversarial) losses, d_attr/g_attr the attribute
    head's: on real faces for D, on what G was asked for for G.
    """
    (images, attributes), targets, weights = d_batch
    set_trainable(discriminator, True)
    d = discriminator.train_on_batch(
        [images, attributes], targets, sample_weight=weights, return_dict=True
    )
    set_trainable(discriminator, False)
    g = gan.train_on_batch(*g_batch, return_dict=True)
    set_trainable(discriminator, True)
    return {
        "d_loss": float(d["face_loss"]),
        "d_attr": float(d["attributes_loss"]),
        "d_acc": float(d["face_accuracy"]),
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
    _save_figure(fig, path)


def _save_figure(fig: Figure, path: Path) -> None:
    """Write a PNG under a temporary name and rename it, so no half-written file shows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    fig.savefig(partial, dpi=100, format="png")
    os.replace(partial, path)


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
    _save_figure(fig, run_dir / "losses.png")


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
    ax.legend(handles[0] + more[0], handles[1] + more[1], fontsize=8, loc="lower right")


# --------------------------------------------------------------------- checkpoints


def save_checkpoint(
    run_dir: Path, epoch: int, generator, discriminator, state: dict, keep: int
) -> Path:
    """checkpoints/epoch-NNNN/: both models with optimizer states, state.json; the
    folder is renamed into place when complete and LATEST names it last."""
    folder = run_dir / "checkpoints" / f"epoch-{epoch:04d}"
    staging = folder.with_name(f".{folder.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    set_trainable(discriminator, True)
    generator.save(staging / "generator.keras")
    discriminator.save(staging / "discriminator.keras")
    np.save(staging / "attributes.npy", state.pop("attribute_rows"))
    np.save(staging / "probes.npy", state.pop("probe_inputs"))
    (staging / "state.json").write_text(json.dumps(state, indent=2))
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(staging, folder)
    latest = run_dir / "checkpoints" / "LATEST"
    (latest.with_suffix(".partial")).write_text(folder.name + "\n")
    os.replace(latest.with_suffix(".partial"), latest)
    for old in sorted((run_dir / "checkpoints").glob("epoch-*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return folder


def find_checkpoint(path: str | os.PathLike) -> Path | None:
    """A checkpoint folder from a run folder, a checkpoints folder, or itself."""
    path = Path(path)
    for candidate in (path / "checkpoints" / "LATEST", path / "LATEST"):
        if candidate.is_file():
            return candidate.parent / candidate.read_text().strip()
    if (path / "state.json").is_file():
        return path
    if path.name == "generator.keras" and path.is_file():
        return path.parent
    return None


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


def train(args: argparse.Namespace) -> int:
    run_dir = Path(args.out)
    root = dataset.resolve_data_dir(args.data_dir)
    cache = dataset.build_cache(root, args.image_size)
    print(dataset.summary_line(cache), file=sys.stderr)
    # Built first: training a missing classifier reseeds Keras.
    monitor = evaluate.TrainingMonitor(cache, seed=args.seed) if args.eval_every else None
    keras.utils.set_random_seed(args.seed)
    real = dataset.CelebaBatches(cache, "train", args.batch_size, seed=args.seed, flip=True)
    settings = {k: getattr(args, k) for k in (*FIXED_KEYS, "batch_size", "lr", "beta1", "seed")}
    settings["data"] = str(Path(root).resolve())
    attribute_rows = cache.attributes[real.rows]

    checkpoint = find_checkpoint(run_dir) if args.resume else None
    if args.resume and checkpoint is None:
        print(f"--resume: no checkpoint in {run_dir} yet; starting fresh", file=sys.stderr)
    if checkpoint is not None:
        generator, discriminator, state, _, probe_inputs = load_checkpoint(checkpoint)
        _check_same_architecture(state["settings"], settings, checkpoint)
        gan = build_gan(generator, discriminator)
        compile_gan(gan, generator.optimizer, discriminator, args.loss)
        start = state["epoch"]
        print(f"resuming from {checkpoint} (epoch {start} done)", file=sys.stderr)
    else:
        _refuse_foreign_run(run_dir)
        generator = build_generator(args.image_size, args.noise_dim, args.width)
        discriminator = build_discriminator(args.image_size, args.width)
        gan = build_gan(generator, discriminator)
        compile_models(generator, discriminator, gan, args.lr, args.beta1, args.loss)
        probe_inputs = make_probes(attribute_rows, args.noise_dim, args.seed)
        start = 0
    if start >= args.epochs:
        print(f"already trained {start} epochs (--epochs {args.epochs}); nothing to do")
        return 0

    sampler = AttributeSampler("dataset", attribute_rows)
    steps = min(len(real), args.steps_per_epoch or len(real))
    d_batches = DiscriminatorBatches(real, generator, sampler, args.noise_dim, args.seed)
    g_batches = GeneratorBatches(sampler, args.batch_size, steps, args.noise_dim, args.seed)
    csv_path = run_dir / "losses.csv"
    for epoch in range(start, args.epochs):
        real.set_epoch(epoch)
        g_batches.epoch = epoch
        started = time.perf_counter()
        rows = []
        bar = tqdm(
            range(steps),
            desc=f"epoch {epoch + 1}/{args.epochs}",
            unit="step",
            file=sys.stderr,
            dynamic_ncols=True,
        )
        for step in bar:
            losses = train_step(discriminator, gan, d_batches[step], g_batches[step])
            _check_finite(losses, epoch, step)
            rows.append({"epoch": epoch + 1, "step": step + 1, **losses})
            bar.set_postfix(
                d=f"{losses['d_loss']:.3f}",
                g=f"{losses['g_loss']:.3f}",
                acc=f"{losses['d_acc']:.2f}",
                g_attr=f"{losses['g_attr']:.3f}",
            )
        seconds = time.perf_counter() - started
        _append_rows(csv_path, rows)
        measured = ""
        if monitor is not None and (epoch + 1) % args.eval_every == 0:
            metrics = monitor(generator, attribute_rows, args.noise_dim)
            _append_rows(run_dir / "metrics.csv", [{"epoch": epoch + 1, **metrics}])
            measured = (
                f"attribute accuracy {metrics['attr_accuracy']:.1%} "
                f"(balanced {metrics['attr_balanced']:.1%})  Fréchet {metrics['frechet']:.2f} "
                f"(real {metrics['frechet_real']:.2f})  diversity {metrics['diversity']:.3f}\n  "
            )
        plot_history(run_dir)
        grid = run_dir / "samples" / f"epoch-{epoch + 1:04d}.png"
        save_grid(
            generator.predict_on_batch(probe_inputs), list(PROBE_SPECS), grid, f"epoch {epoch + 1}"
        )
        state = {
            "epoch": epoch + 1,
            "settings": settings,
            "seconds": seconds,
            "backend": keras.backend.backend(),
            "keras": keras.__version__,
            "attribute_rows": attribute_rows,
            "probe_inputs": probe_inputs,
        }
        folder = save_checkpoint(run_dir, epoch + 1, generator, discriminator, state, args.keep)
        mean = {k: np.mean([r[k] for r in rows]) for k in ("d_loss", "g_loss", "d_acc", "g_attr")}
        print(
            f"epoch {epoch + 1}: d_loss {mean['d_loss']:.3f}  g_loss {mean['g_loss']:.3f}  "
            f"d_acc {mean['d_acc']:.2f}  g_attr {mean['g_attr']:.3f}  "
            f"{steps * args.batch_size / seconds:.0f} images/s\n  {measured}-> {grid}, {folder}",
            file=sys.stderr,
        )
    print(
        f"done: {args.epochs} epochs in {run_dir}. Generate with:\n"
        f'  python dcgan.py generate --checkpoint {run_dir} --attrs "Smiling,-Male"'
    )
    return 0


def _check_same_architecture(saved: dict, asked: dict, checkpoint: Path) -> None:
    for key in FIXED_KEYS:
        if saved[key] != asked[key]:
            flag = "--" + key.replace("_", "-")
            raise UsageError(
                f"{checkpoint} was trained with {flag} {saved[key]}, not {asked[key]}; "
                f"pass {flag} {saved[key]} or a new --out"
            )


def _refuse_foreign_run(run_dir: Path) -> None:
    if (run_dir / "checkpoints").exists() and any((run_dir / "checkpoints").iterdir()):
        raise UsageError(
            f"--out {run_dir} already holds a run; pass --resume to continue it or a new --out"
        )


def _check_finite(losses: dict[str, float], epoch: int, step: int) -> None:
    if not all(np.isfinite(v) for v in losses.values()):
        raise UsageError(
            f"training diverged at epoch {epoch + 1}, step {step + 1} ({losses}); "
            "resume from the last checkpoint with a lower --lr"
        )


def _append_rows(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    with open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        if new:
            writer.writeheader()
        writer.writerows(rows)


# ---------------------------------------------------------------------- generation


def generate(args: argparse.Namespace) -> int:
    folder = find_checkpoint(args.checkpoint)
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
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
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
        Image.fromarray(image).save(out / f"face-{i + 1:04d}.png")
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
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    d = DEFAULTS
    parser.add_argument("--epochs", type=_positive, default=1, help="total epochs to train to")
    parser.add_argument("--data-dir", help="CelebA root (default: data/celeba, else synthetic)")
    parser.add_argument(
        "--image-size", type=int, default=d["image_size"], choices=dataset.IMAGE_SIZES
    )
    parser.add_argument(
        "--batch-size",
        type=_multiple_of_8,
        default=d["batch_size"],
        help="real images per step (a multiple of 8)",
    )
    parser.add_argument(
        "--noise-dim",
        type=_positive,
        default=d["noise_dim"],
        help="noise floats after the 40 attribute bits (1 = original design)",
    )
    parser.add_argument(
        "--width", type=_positive, default=d["width"], help="base channel count of both networks"
    )
    parser.add_argument("--lr", type=_positive_float, default=d["lr"], help="Adam learning rate")
    parser.add_argument("--beta1", type=_positive_float, default=d["beta1"], help="Adam beta_1")
    parser.add_argument(
        "--loss",
        choices=("bce", "hinge"),
        default=d["loss"],
        help="face/no-face loss of both networks",
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
        help="continue from the run's last checkpoint (starts fresh if none)",
    )
    parser.add_argument("--keep", type=_positive, default=d["keep"], help="checkpoints kept")
    parser.add_argument(
        "--eval-every",
        type=_non_negative,
        default=0,
        metavar="K",
        help="every K epochs, score 500 generated faces with the attribute classifier "
        "(trained and cached on first use) into metrics.csv and losses.png; 0 = never",
    )
    parser.add_argument("--seed", type=int, default=d["seed"])
    return parser


def generate_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dcgan.py generate",
        description="Make faces with chosen attributes from a trained checkpoint.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
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
    except (UsageError, SpecError, dataset.DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "\ninterrupted; the last completed epoch's checkpoint is kept (use --resume)",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())

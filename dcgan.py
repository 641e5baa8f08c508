"""Attribute-conditioned DCGAN: the command line that trains it and makes faces.

    python dcgan.py --epochs 5                       # train (synthetic faces by default)
    python dcgan.py generate --checkpoint runs/dcgan --attrs "Smiling=0.7,Eyeglasses,-Male"
    python dcgan.py generate --sweep Smiling          # one attribute from off to on
    python dcgan.py serve                             # the web page, on 127.0.0.1:8000
    python dcgan.py --data-dir ~/photos --attributes classifier:faces.keras  # any photos
    python dcgan.py --data-dir ~/photos --attributes none  # ... without attributes

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
  set before *every* call (``models.train_step``; tests/test_models.py checks it on
  weights).
* The wrong-attribute pairs cost no second pass through the convolutions: the
  discriminator is trained through ``models.build_d_trainer``, the same layers with a
  third output that scores the real images' own features against the wrong
  attributes (benchmarks/NOTES.md measures it).
* On JAX the same step runs compiled, many steps per call, with the weights and images
  kept on the device and the batch split over ``--devices`` (compiled_step.py,
  parallel.py): the same weights, without the three Keras calls' work on the host that
  is most of a step on a GPU. ``--engine keras`` runs the calls themselves.

Where the rest lives: the networks in models.py, the loop in training.py, the run
folder in runs.py, generation in generation.py, the data in dataset.py and dataGens.py.
This file only turns command lines into a ``config.TrainConfig`` or a generation call.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import augment
import cli
import dataset
import generation
import photos
import serve
import training
from attributes import MAX_STRENGTH
from config import (
    DEFAULTS,
    ENGINES,
    IMAGE_SIZES,
    LOSSES,
    MAX_BATCH,
    MAX_NOISE,
    MAX_ROLLBACKS,
    MAX_STEPS_PER_CALL,
    MAX_WIDTH,
    ON_DIVERGENCE,
    PRECISIONS,
    TrainConfig,
)


def train_parser() -> argparse.ArgumentParser:
    parser = cli.parser(
        "dcgan.py",
        "Train the attribute-conditioned DCGAN. "
        "(To make faces from a trained run: dcgan.py generate --help)",
        epilog="With --resume, unset run settings are the checkpoint's; another value is "
        "an error, except the learning rates, which apply from there on.",
    )
    d, add = DEFAULTS, parser.add_argument
    add(
        "--epochs",
        type=cli.positive_int,
        help="total epochs to train to (default: 1, or as many as --minutes allows)",
    )
    add(
        "--minutes",
        type=cli.positive_float,
        help="time budget from start-up: no epoch is begun that would end past it",
    )
    cli.add_data_dir(parser)
    add(
        "--attributes",
        type=cli.attribute_source,
        metavar="{none,classifier:PATH}",
        help="none: train both networks without attributes (unconditional); "
        "classifier:PATH: --data-dir is a folder of photos without labels, whose faces "
        "are found, aligned and labelled by this attribute classifier (photos.py; built "
        "once, in the cache). A folder of photos takes either",
    )
    add(
        "--image-size",
        type=int,
        choices=IMAGE_SIZES,
        help=f"image side in pixels (default: {d.image_size})",
    )
    add(
        "--batch-size",
        type=cli.up_to(MAX_BATCH, cli.multiple_of_8),
        help=f"real images per step, a multiple of 8 (default: {d.batch_size})",
    )
    add(
        "--noise-dim",
        type=cli.up_to(MAX_NOISE),
        help="noise floats after the 40 attribute bits; 1 = the original design "
        f"(default: {d.noise_dim})",
    )
    add(
        "--width",
        type=cli.up_to(MAX_WIDTH),
        help=f"base channel count of both networks (default: {d.width})",
    )
    add(
        "--lr",
        type=cli.positive_float,
        help=f"Adam learning rate of both networks (default: {d.lr_d:g})",
    )
    lever = parser.add_argument_group(
        "quality levers",
        "the generator average is on by default, the others off, as measured (docs/results.md)",
    ).add_argument
    lever(
        "--lr-d",
        type=cli.positive_float,
        metavar="LR",
        help="the discriminator's learning rate (TTUR; default: --lr)",
    )
    lever(
        "--lr-g",
        type=cli.positive_float,
        metavar="LR",
        help="the generator's learning rate (TTUR; default: --lr)",
    )
    lever(
        "--augment",
        metavar="POLICY",
        help="DiffAugment of every image D sees, real and generated: a comma-separated "
        f"subset of {','.join(augment.OPERATIONS)}; none; or auto, the default: "
        f"{augment.AUTO_POLICY['photos']} on photos, none on the synthetic faces",
    )
    lever(
        "--augment-p",
        type=cli.probability,
        metavar="P",
        help="probability that each operation of --augment is applied to an image, drawn "
        f"per image and operation as ADA does; 1 = always (default: {d.augment_p:g})",
    )
    lever(
        "--ema-kimg",
        type=cli.non_negative_float,
        metavar="K",
        help="keep an average of the generator's weights with a half-life of K thousand "
        "images (StyleGAN2-ADA uses 10 per 32 of batch) and show faces from it; 0 = none "
        f"(default: {d.ema_kimg:g})",
    )
    lever(
        "--cond-bn",
        action=argparse.BooleanOptionalAction,
        help="attribute-conditioned batch normalisation in the generator; --no-cond-bn for "
        "plain batch normalisation (default: on)",
    )
    lever(
        "--spectral-norm",
        action=argparse.BooleanOptionalAction,
        help="spectral normalisation of the discriminator's layers (default: off)",
    )
    lever(
        "--mode-seeking",
        type=cli.non_negative_float,
        metavar="W",
        help="weight of a mode-seeking term in the generator's loss (MSGAN): pairs of "
        "faces asked for the same attributes are pushed apart, against collapse to one "
        f"face per attribute vector; 0 = none (default: {d.mode_seeking:g})",
    )
    lever(
        "--attr-weight",
        type=cli.non_negative_float,
        metavar="W",
        help="weight of the attribute head's loss (what D reads off real faces, what G's "
        f"faces must show) against the face/no-face loss (default: {d.attr_weight:g})",
    )
    add("--beta1", type=cli.below_one, help=f"Adam beta_1, in [0, 1) (default: {d.beta1})")
    add("--loss", choices=LOSSES, help=f"face/no-face loss of both networks (default: {d.loss})")
    add(
        "--steps-per-epoch",
        type=cli.positive_int,
        help="cap on batches per epoch (default: the whole training split)",
    )
    add("--out", default=str(TrainConfig.out), help="run folder: samples, losses, checkpoints")
    add(
        "--resume",
        action="store_true",
        help="continue from the run's last intact checkpoint (starts fresh if none)",
    )
    add("--keep", type=cli.positive_int, default=TrainConfig.keep, help="checkpoints kept")
    add(
        "--eval-every",
        type=cli.non_negative_int,
        default=TrainConfig.eval_every,
        metavar="K",
        help="every K epochs, score 500 generated faces with the attribute classifier "
        "(trained and cached on first use) into metrics.csv and losses.png, and keep the "
        "best checkpoint by balanced accuracy as BEST; 0 = never",
    )
    add(
        "--on-divergence",
        choices=ON_DIVERGENCE,
        default=TrainConfig.on_divergence,
        help="when a loss goes non-finite or the discriminator wins outright: stop, "
        f"or go back to the last good checkpoint with half the learning rate (at most "
        f"{MAX_ROLLBACKS} times)",
    )
    add(
        "--seed",
        type=cli.seed,
        help=f"seed of initialisation, data order and sampling (default: {d.seed})",
    )
    speed = parser.add_argument_group(
        "engines and devices",
        "the same weights whichever engine and however many devices "
        '(README, "Engines and many devices")',
    ).add_argument
    speed(
        "--engine",
        choices=ENGINES,
        help="keras: each step as two train_on_batch calls, on any backend; compiled: JAX "
        "only, many steps per compiled call with the weights and images kept on the "
        "device (default: compiled on JAX, keras otherwise)",
    )
    speed(
        "--precision",
        choices=PRECISIONS,
        help="mixed_bfloat16: the layers compute in bfloat16 (fast on GPUs and TPUs that "
        "have it, emulated and slower on most CPUs), the weights and losses in float32 "
        f"(default: {d.precision})",
    )
    speed(
        "--steps-per-call",
        type=cli.up_to(MAX_STEPS_PER_CALL),
        default=TrainConfig.steps_per_call,
        metavar="K",
        help="the compiled engine's steps per call: the losses come back and a stop "
        "request is seen every K steps",
    )
    speed(
        "--devices",
        type=cli.devices,
        metavar="N|all",
        help="JAX: split each batch over N devices, or all of them, by data parallelism "
        "(the batch size must divide; default: 1, or all in a run of several processes)",
    )
    speed(
        "--coordinator",
        type=cli.address,
        metavar="HOST:PORT",
        help="several processes (hosts): process 0's address; or set "
        "KERAS_DISTRIBUTION_JOB_ADDRESSES",
    )
    speed(
        "--num-processes",
        type=cli.positive_int,
        metavar="N",
        help="several processes: how many (or KERAS_DISTRIBUTION_NUM_PROCESSES)",
    )
    speed(
        "--process-id",
        type=cli.non_negative_int,
        metavar="I",
        help="several processes: this one's, 0 to N-1; process 0 writes the run folder "
        "(or KERAS_DISTRIBUTION_PROCESS_ID)",
    )
    return parser


def generate_parser() -> argparse.ArgumentParser:
    parser = cli.parser(
        "dcgan.py generate", "Make faces with chosen attributes from a trained checkpoint."
    )
    parser.add_argument(
        "--checkpoint",
        help=f"run folder, checkpoint folder or generator.keras (default: {TrainConfig.out} "
        "if it holds a run, else the ready model shipped in ready/)",
    )
    parser.add_argument(
        "--attrs",
        default="",
        help='attributes to force, e.g. "Smiling=0.7, Eyeglasses, -Male" (a strength '
        f"from 0 = off to 1 = on, up to {MAX_STRENGTH} to exaggerate); the rest are drawn "
        "from the training faces that agree",
    )
    parser.add_argument(
        "--count", type=cli.up_to(generation.MAX_FACES), default=16, help="faces to make"
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--flip",
        help="attributes to switch one at a time on the same faces "
        "(e.g. Smiling,Eyeglasses): writes flips.png instead",
    )
    mode.add_argument(
        "--sweep",
        metavar="ATTRIBUTE",
        help="one attribute's strength from 0 to 1 on the same faces: writes sweep.png "
        "(a row per face) and sweep.gif instead",
    )
    mode.add_argument(
        "--interpolate",
        metavar="SEED|SPEC",
        help="morph the faces into another seed's (e.g. 7) or into the same faces with "
        'other attributes (e.g. "-Smiling, Eyeglasses"): writes interpolation.png and '
        "interpolation.gif instead",
    )
    parser.add_argument(
        "--frames",
        type=cli.up_to(generation.MAX_FRAMES, cli.at_least_2),
        default=generation.FRAMES,
        help=f"steps of a sweep or an interpolation, ends included (default: {generation.FRAMES})",
    )
    parser.add_argument(
        "--raw",
        action="store_true",
        help="use the trained generator itself, not the run's generator average",
    )
    parser.add_argument("--out", default="generated", help="output folder")
    parser.add_argument("--seed", type=cli.seed, default=0)
    return parser


def serve_parser() -> argparse.ArgumentParser:
    parser = cli.parser(
        "dcgan.py serve",
        "A web page on 127.0.0.1 where faces are asked for by clicking: the 40 attributes "
        "on, off or as the data has them, with strengths; switching one attribute on the "
        "same faces; interpolation. Works offline.",
    )
    parser.add_argument(
        "--checkpoint",
        help=f"run folder, checkpoint folder or generator.keras (default: {TrainConfig.out} "
        "if it holds a run, else the ready model shipped in ready/)",
    )
    parser.add_argument(
        "--port", type=cli.port, default=8000, help="port on 127.0.0.1; 0 picks a free one"
    )
    parser.add_argument(
        "--raw",
        action="store_true",
        help="use the trained generator itself, not the run's generator average",
    )
    return parser


def train(args: argparse.Namespace) -> int:
    settings = {**vars(args), "out": Path(args.out)}
    source = settings.pop("attributes")
    if source == "none":
        settings["conditional"] = False
    photo_folder = args.data_dir is not None and not dataset.has_label_file(args.data_dir)
    if isinstance(source, Path) and not photo_folder:
        raise cli.UsageError(
            "--attributes classifier:PATH labels a folder of photos without label files: "
            f"give one as --data-dir (not {args.data_dir or 'the default data'}, which has labels)"
        )
    if source is not None and photo_folder:
        classifier = source if isinstance(source, Path) else None
        root = photos.prepared(Path(args.data_dir), classifier, dataset.default_cache_root())
        settings["data_dir"] = str(root)
    training.train(TrainConfig(**settings))
    return 0


def generate(args: argparse.Namespace) -> int:
    common = (args.count, args.out, args.seed, args.raw)
    if args.flip:
        path = generation.write_flips(args.checkpoint, args.attrs, args.flip, *common)
        print(f"wrote {path}")
    elif args.sweep:
        out = generation.write_sweep(
            args.checkpoint, args.attrs, args.sweep, *common, frames=args.frames
        )
        print(f"wrote sweep.png and sweep.gif to {out}")
    elif args.interpolate:
        out = generation.write_interpolation(
            args.checkpoint, args.attrs, args.interpolate, *common, frames=args.frames
        )
        print(f"wrote interpolation.png and interpolation.gif to {out}")
    else:
        out = generation.write_faces(args.checkpoint, args.attrs, *common)
        print(f"wrote {args.count} faces and grid.png to {out}")
    return 0


def serve_page(args: argparse.Namespace) -> int:
    serve.serve(args.checkpoint, args.port, args.raw)
    return 0


TRAIN = cli.Command(
    train_parser,
    train,
    "interrupted; the last complete checkpoint is kept (continue with --resume)",
)
GENERATE = cli.Command(generate_parser, generate, "interrupted; no file is half-written")
SERVE = cli.Command(serve_parser, serve_page, "stopped serving")


def main(argv: list[str] | None = None) -> int:
    return cli.main(argv, TRAIN, {"generate": GENERATE, "serve": SERVE})


if __name__ == "__main__":
    sys.exit(main())

"""Benchmarks: this project's training against the textbook DCGAN loops, and every stage
around it (matmul peak, cache build, input pipeline, generation), with memory.

Each measurement runs in a fresh subprocess (so its memory and thread pools are its
own), the cases are interleaved round by round and the median of the rounds is
reported, because shared machines drift. Prints a table last and writes a JSON file.
This is where speed goals are measured; the tests only check behaviour.

    python benchmarks/bench.py                  # the comparison and every stage
    python benchmarks/bench.py --only train     # one stage
    python benchmarks/bench.py --only levers    # the speed levers of benchmarks/NOTES.md

Training rates count real images per second, one discriminator and one generator step
per batch of 64. "Textbook architecture" is pytorch/examples' DCGAN (ngf = ndf = 64 at
64x64), which our builders make at width 64: the same convolutions in both networks.
Run on another backend with KERAS_BACKEND=jax or torch; the comparison libraries are
in benchmarks/requirements.txt, and a case whose library is missing is skipped, saying
why.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from flops import SCHEDULES, forward_flops, training_flops

import cli  # after the path is set
from config import DEFAULTS, IMAGE_SIZES

TRAIN_WARMUP_STEPS = 3  # untimed steps first: they trace the train functions


def timed_runs(runs: list, warmup: int, steps: int, what: str) -> tuple[int, list]:
    """(calls per step, the timed steps' runs) of ``what``, run the same number of
    times in each of ``warmup + steps`` steps: its last calls x steps runs."""
    calls, leftover = divmod(len(runs), warmup + steps)
    if leftover:
        raise ValueError(f"{what}: {len(runs)} runs in {warmup + steps} steps")
    return calls, runs[len(runs) - calls * steps :]


class UnsupportedError(Exception):
    """A case this backend or environment cannot run; the reason is printed."""


def peak_rss_mb() -> float:
    """Peak resident memory of this process and of its largest finished child, in MB.

    This counts the cache's memory-mapped pages that were touched: page cache, shared
    with the OS and reclaimable, so it grows with what was read. ``anon_mb`` is the
    memory the process itself allocated.
    """
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def anon_mb() -> float:
    """Anonymous (heap) resident memory of this process now, in MB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# --------------------------------------------------------------- measured in a child


def rate(images: int, seconds: float, **extra) -> dict:
    """One measurement's result: images, seconds, images per second and memory."""
    return {
        "images": images,
        "seconds": seconds,
        "rate": images / seconds,
        "peak_mb": peak_rss_mb(),
        "anon_mb": anon_mb(),
        **extra,
    }


def measure_matmul(size: int = 4096) -> dict:
    """This machine's float32 matmul peak: the best of numpy's BLAS and the Keras
    backend's, as GFLOP/s on square matrices."""
    import numpy as np

    from quiet_keras import keras

    rng = np.random.default_rng(0)
    a, b = (rng.random((size, size), dtype=np.float32) for _ in range(2))
    ta, tb = keras.ops.convert_to_tensor(a), keras.ops.convert_to_tensor(b)
    candidates = {
        "numpy": lambda: a @ b,
        # Summed on the device so that a GPU's timing waits for the product without
        # counting the copy of it to the host.
        keras.backend.backend(): lambda: float(keras.ops.sum(keras.ops.matmul(ta, tb))),
    }
    best = {}
    for name, run in candidates.items():
        run()
        best[name] = min(_timed(run) for _ in range(5))
    name = min(best, key=best.get)
    gflops = 2 * size**3 / best[name] / 1e9
    return {
        "gflops": gflops,
        "library": name,
        "device": keras_device(),
        "rate": gflops,
        "peak_mb": peak_rss_mb(),
    }


def keras_device() -> str:
    """The device the Keras backend computes on, as "gpu:0" or "cpu:0"."""
    from quiet_keras import keras

    try:
        return keras.distribution.list_devices()[0]
    except AttributeError:  # the torch backend has no keras.distribution support
        import torch

        return "gpu:0" if torch.cuda.is_available() else "cpu:0"


def _timed(run) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def measure_cache(source: str, image_size: int) -> dict:
    import dataset

    with tempfile.TemporaryDirectory() as cache_root:
        started = time.perf_counter()
        cache = dataset.build_cache(source, image_size, cache_root, progress=False)
        seconds = time.perf_counter() - started
        count = cache.manifest["count"]
    return rate(count, seconds)


def measure_pipeline(source: str, image_size: int, batch_size: int) -> dict:
    """One epoch of real batches from the cache (read, flip, scale), and the heap it adds."""
    import dataset

    cache = dataset.build_cache(source, image_size, progress=False)
    batches = dataset.CelebaBatches(cache, "all", batch_size=batch_size, seed=0, flip=True)
    batches[0]
    heap_before = anon_mb()
    started = time.perf_counter()
    for i in range(len(batches)):
        batches[i]
    seconds = time.perf_counter() - started
    return rate(len(batches) * batch_size, seconds, heap_growth_mb=anon_mb() - heap_before)


def measure_train(
    source: str,
    image_size: int,
    batch_size: int,
    steps: int,
    width: int = 32,
    noise_dim: int = 64,
    lever: str = "",
    during: contextlib.AbstractContextManager | None = None,
    steps_per_call: int = 16,
    devices: int = 1,
    precision: str = "float32",
) -> dict:
    """Real images per second through ``models.train_step`` (one D and one stacked-G
    ``train_on_batch``, as in training), after warm-up steps that trace the train
    functions, the networks computing in ``precision`` (``dcgan.py --precision``).
    ``lever`` changes one thing, for benchmarks/NOTES.md; ``during`` is
    entered around the steps, warm-up included (step_parts.py's clocks)."""
    import numpy as np

    import dataGens
    import dataset
    import models
    from quiet_keras import keras

    cache = dataset.build_cache(source, image_size, progress=False)
    real = dataset.CelebaBatches(cache, "train", batch_size, seed=0, flip=True)
    d = DEFAULTS
    with models.precision(precision):
        generator = models.build_generator(image_size, noise_dim, width)
        discriminator = models.build_discriminator(image_size, width)
        d_trainer = models.build_d_trainer(discriminator)
        gan = (
            gan_keeping_images(generator, discriminator, batch_size)
            if lever == "g-once"
            else models.build_gan(generator, discriminator)
        )
    models.compile_models(generator, discriminator, d_trainer, gan, d.lr_d, d.lr_g, d.beta1)
    if lever == "xla":
        for model in (generator, d_trainer, gan):
            model.jit_compile = True
    sampler = dataGens.AttributeSampler("dataset", cache.attributes[real.rows])
    d_batches = dataGens.DiscriminatorBatches(real, generator, sampler, noise_dim, 0)
    g_batches = dataGens.GeneratorBatches(sampler, batch_size, len(real), noise_dim, 0)
    step = LEVER_STEPS.get(lever, models.train_step)
    models = (discriminator, d_trainer, gan)
    d_batch = d_batches.__getitem__
    if lever in ("g-once", "wrong-images"):  # these steps make their own D batches
        d_batch = real.__getitem__
    if lever == "compiled":  # dcgan.py's default on JAX
        engine = compiled_engine(
            (generator, discriminator, d_trainer, gan, d_batches, g_batches),
            devices,
            batch_size,
            steps_per_call,
        )
        steps = max(1, steps // steps_per_call) * steps_per_call
        seconds = time_engine(engine, steps, len(real), during)
    else:
        seconds = time_steps(step, models, d_batch, g_batches, steps, len(real), during)
    flops = {"generator": forward_flops(generator), "discriminator": forward_flops(discriminator)}
    return rate(
        steps * batch_size,
        seconds,
        flops=flops,
        d_images=2.5 if lever == "wrong-images" else 2,
        g_forward=0 if lever == "g-once" else 1,
        version=f"keras {keras.__version__} ({keras.backend.backend()})",
        device=keras_device(),
        float_type=str(np.dtype(keras.config.floatx())),
    )


def time_steps(step, models, d_batch, g_batches, steps: int, epoch: int, during) -> float:
    """Seconds of ``steps`` calls of ``step`` after the warm-up ones."""
    with during or contextlib.nullcontext():
        for index in range(TRAIN_WARMUP_STEPS):
            step(*models, d_batch(index), g_batches[index])
        started = time.perf_counter()
        for index in range(TRAIN_WARMUP_STEPS, TRAIN_WARMUP_STEPS + steps):
            index %= epoch  # more steps than a small set's epoch: start it again
            step(*models, d_batch(index), g_batches[index])
        return time.perf_counter() - started


def compiled_engine(models_and_batches: tuple, devices: int, batch_size: int, steps_per_call: int):
    """compiled_step.CompiledStep over ``devices`` devices (parallel.py)."""
    from quiet_keras import keras

    if keras.backend.backend() != "jax":
        raise UnsupportedError("the compiled engine is written with jax.jit")
    import compiled_step
    import parallel

    return compiled_step.CompiledStep(
        *models_and_batches,
        distribution=parallel.data_parallel(devices, batch_size),
        steps_per_call=steps_per_call,
    )


def time_engine(engine, steps: int, epoch: int, during) -> float:
    """Seconds of ``steps`` steps of ``engine`` after two warm-up calls (the first
    compiles); the losses come back to the host at each call's end, as in training."""
    calls = [
        range(first, first + engine.steps_per_call)
        for first in range(0, steps, engine.steps_per_call)
    ]
    with during or contextlib.nullcontext():
        for _ in range(2):
            engine.train([i % epoch for i in calls[0]], [None] * len(calls[0]))
        started = time.perf_counter()
        for call in calls:
            engine.train([i % epoch for i in call], [None] * len(call))
        return time.perf_counter() - started


def gan_keeping_images(generator, discriminator, batch_size: int):
    """models.build_gan with a layer that keeps the images of the last training batch,
    so the discriminator can train on them without running G again (the "G once"
    lever: ``train_on_batch`` returns only losses)."""
    from attributes import NUM_ATTRIBUTES
    from quiet_keras import keras

    class LastBatch(keras.layers.Layer):
        def build(self, input_shape) -> None:
            self.images = self.add_weight(
                shape=(batch_size, *input_shape[1:]), initializer="zeros", trainable=False
            )

        def call(self, x, training=None):
            if training:
                self.images.assign(keras.ops.stop_gradient(x))
            return x

    inputs = keras.Input(generator.input_shape[1:])
    images = LastBatch(name="generated")(generator(inputs))
    outputs = discriminator([images, inputs[:, :NUM_ATTRIBUTES]])
    return keras.Model(inputs, outputs)


def g_once_step(discriminator, d_trainer, gan, real, g_batch) -> None:
    """The G step first, then D on its images: G runs once (both networks' gradients
    at the same point, as in simultaneous-update GANs)."""
    import numpy as np

    import dataGens
    import models
    from quiet_keras import keras

    models.set_trainable(discriminator, False)
    gan.train_on_batch(*g_batch)
    models.set_trainable(discriminator, True)
    fakes = keras.ops.convert_to_numpy(gan.get_layer("generated").images)
    half = dataGens.real_half(*real, np.random.default_rng(0))
    inputs, targets, weights = dataGens.discriminator_batch(half, fakes, g_batch[1]["attributes"])
    d_trainer.train_on_batch(inputs, targets, sample_weight=weights)


def wrong_images_step(discriminator, d_trainer, gan, real, g_batch) -> None:
    """models.train_step with the wrong-attribute pairs as m more images through D's
    convolutions (the design before build_d_trainer): same cost as then."""
    import numpy as np

    import dataGens
    import models

    images, attrs, wrong, mismatch = dataGens.real_half(*real, np.random.default_rng(0))
    m = int(mismatch.sum())
    shown = np.concatenate([attrs, wrong[:m]])
    real_half = (np.concatenate([images, images[:m]]), shown, shown, np.zeros(len(shown)))
    fakes = gan.get_layer("generator").predict_on_batch(g_batch[0])
    d_batch = dataGens.discriminator_batch(real_half, fakes, g_batch[1]["attributes"])
    models.train_step(discriminator, d_trainer, gan, d_batch, g_batch)


def split_d_step(discriminator, d_trainer, gan, d_batch, g_batch) -> None:
    """models.train_step with D's real and generated parts as two batches, as the
    textbook loops do (the "one batch" lever of NOTES.md)."""
    import numpy as np

    import models

    inputs, targets, weights = d_batch
    n = len(inputs[0]) // 2
    for part in (np.arange(n), np.arange(n, 2 * n)):
        models.set_trainable(discriminator, True)
        d_trainer.train_on_batch(
            [x[part] for x in inputs],
            {k: v[part] for k, v in targets.items()},
            sample_weight={k: v[part] for k, v in weights.items()},
        )
    models.set_trainable(discriminator, False)
    gan.train_on_batch(*g_batch)
    models.set_trainable(discriminator, True)


LEVER_STEPS = {"split-d": split_d_step, "g-once": g_once_step, "wrong-images": wrong_images_step}


def measure_generate(image_size: int, width: int, count: int, batch_size: int = 256) -> dict:
    """Faces per second from ``generator.predict`` (untrained weights: same cost)."""
    import numpy as np

    import dataGens
    import models

    noise_dim = DEFAULTS.noise_dim
    generator = models.build_generator(image_size, noise_dim, width)
    rng = np.random.default_rng(0)
    attrs = dataGens.AttributeSampler("uniform").sample(count, rng)
    inputs = dataGens.attribute_noise(attrs, noise_dim, rng)
    generator.predict(inputs[:batch_size], batch_size=batch_size, verbose=0)
    started = time.perf_counter()
    generator.predict(inputs, batch_size=batch_size, verbose=0)
    return rate(count, time.perf_counter() - started)


def measure_textbook(module: str, **kwargs) -> dict:
    """One textbook loop (textbook_torch or textbook_keras) timed by its ``measure``."""
    if kwargs["image_size"] != 64:
        raise UnsupportedError("the textbook DCGAN is built for 64x64 images")
    try:
        textbook = importlib.import_module(module)
    except ModuleNotFoundError as error:
        raise UnsupportedError(f"{error}; pip install -r benchmarks/requirements.txt") from None
    why = textbook.unsupported()
    if why:
        raise UnsupportedError(why)
    result = textbook.measure(**kwargs)
    return rate(result.pop("images"), result.pop("seconds"), **result)


MEASURES = {
    "matmul": measure_matmul,
    "cache": measure_cache,
    "pipeline": measure_pipeline,
    "train": measure_train,
    "torch-textbook": functools.partial(measure_textbook, "textbook_torch"),
    "keras-textbook": functools.partial(measure_textbook, "textbook_keras"),
    "generate": measure_generate,
}


STAGES = ("matmul", "cache", "pipeline", "train", "generate", "levers")


def in_child(measure: str, env: dict | None = None, **kwargs) -> dict:
    """Run one measurement in a fresh interpreter; its result, or {"skipped": reason}."""
    code = (
        f"import json, sys; sys.path.insert(0, {str(PROJECT / 'benchmarks')!r}); import bench\n"
        f"try: result = bench.MEASURES[{measure!r}](**{kwargs!r})\n"
        f"except bench.UnsupportedError as error: result = {{'skipped': str(error)}}\n"
        "print(json.dumps(result))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=PROJECT,
        env={**os.environ, **(env or {})},
    )
    if done.returncode:
        sys.exit(f"bench: {measure} {kwargs} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------ driver


def synthetic_source(count: int, folder: str) -> str:
    """A synthetic set of ``count`` 178x218 JPEGs, rendered once and kept in ``folder``."""
    import synth_faces

    out = Path(folder) / f"bench-synthetic-{count}"
    synth_faces.ensure(out, count=count)
    return str(out)


OURS, TEXTBOOK = "ours, default model (width 32)", "ours, textbook architecture (width 64)"
TORCH, KERAS_IO = "PyTorch textbook loop", "keras-io textbook loop (fit/train_step)"
COMPILED = "ours, textbook architecture, compiled engine (JAX)"


def ours_label(width: int) -> str:
    return OURS if width == 32 else f"ours, width {width}"


def plan(args: argparse.Namespace) -> dict[str, list[tuple]]:
    """Stage -> cases (label, measure, kwargs, env, schedule)."""
    big = synthetic_source(args.images, args.data)
    small = synthetic_source(args.images // 4, args.data)
    common = dict(source=big, image_size=args.image_size, batch_size=args.batch_size)
    train = dict(common, steps=args.train_steps)
    textbook = dict(train, width=64, noise_dim=100)
    return {
        "matmul": [("float32 matmul peak (GFLOP/s)", "matmul", {}, None, None)],
        "cache": [
            (
                f"cache build, {args.images:,} JPEGs 178x218 -> {args.image_size}px",
                "cache",
                dict(source=big, image_size=args.image_size),
                None,
                None,
            )
        ],
        "pipeline": [
            (f"input pipeline, {n:,} images", "pipeline", dict(common, source=src), None, None)
            for n, src in ((args.images // 4, small), (args.images, big))
        ],
        "train": [
            *[(ours_label(w), "train", dict(train, width=w), None, "ours") for w in args.widths],
            (
                f"{OURS}, {args.images // 4:,} images",
                "train",
                dict(train, source=small),
                None,
                "ours",
            ),
            (TEXTBOOK, "train", textbook, None, "ours"),
            (TORCH, "torch-textbook", train, None, "torch"),
            (KERAS_IO, "keras-textbook", train, None, "keras-io"),
        ],
        "generate": [
            (
                f"generation, width {w}, batch 256",
                "generate",
                dict(image_size=args.image_size, width=w, count=4096),
                None,
                None,
            )
            for w in args.widths
        ],
        "levers": [
            (TEXTBOOK, "train", textbook, None, "ours"),
            ("lever: XLA (jit_compile)", "train", dict(textbook, lever="xla"), None, "ours"),
            (
                "lever: D halves as two batches",
                "train",
                dict(textbook, lever="split-d"),
                None,
                "ours",
            ),
            (
                "lever: G once, then D on its images",
                "train",
                dict(textbook, lever="g-once"),
                None,
                "ours",
            ),
            (
                "lever: wrong pairs as more images",
                "train",
                dict(textbook, lever="wrong-images"),
                None,
                "ours",
            ),
            (
                "lever: 1 inter-op thread",
                "train",
                textbook,
                {"TF_NUM_INTEROP_THREADS": "1"},
                "ours",
            ),
            ("lever: oneDNN off", "train", textbook, {"TF_ENABLE_ONEDNN_OPTS": "0"}, "ours"),
            (
                "lever: oneDNN's AVX2 kernels",
                "train",
                textbook,
                {"ONEDNN_MAX_CPU_ISA": "AVX2"},
                "ours",
            ),
            (
                "lever: mixed bfloat16",
                "train",
                dict(textbook, precision="mixed_bfloat16"),
                None,
                "ours",
            ),
            (COMPILED, "train", dict(textbook, lever="compiled"), None, "ours"),
            (
                f"{COMPILED}, mixed bfloat16",
                "train",
                dict(textbook, lever="compiled", precision="mixed_bfloat16"),
                None,
                "ours",
            ),
            (KERAS_IO, "keras-textbook", train, None, "keras-io"),
            (
                "lever: keras-io loop, NCHW layout",
                "keras-textbook",
                dict(train, data_format="channels_first"),
                None,
                "keras-io",
            ),
        ],
    }


def summarise(results: list[dict], schedule: str | None, peak: float | None) -> dict:
    """Median and spread of one case's rounds, with FLOP rates where they apply."""
    rates = [r["rate"] for r in results]
    row = {
        "rate_median": statistics.median(rates),
        "rates": [round(x, 1) for x in rates],
        "peak_mb_max": max(r["peak_mb"] for r in results),
        "anon_mb_max": max(r.get("anon_mb", 0) for r in results),
        "heap_growth_mb_max": max(r.get("heap_growth_mb", 0) for r in results),
    }
    for key in ("version", "threads", "device", "library"):
        if key in results[0]:
            row[key] = results[0][key]
    if schedule:
        passes = {k: dict(v) for k, v in SCHEDULES[schedule].items()}
        if schedule == "ours":
            passes["discriminator"]["train"] = results[0]["d_images"]
            passes["generator"]["forward"] = results[0]["g_forward"]
        row["gflop_per_image"] = training_flops(passes, results[0]["flops"]) / 1e9
        row["gflops"] = row["gflop_per_image"] * row["rate_median"]
        if peak:
            row["fraction_of_peak"] = row["gflops"] / peak
    return row


def print_table(machine: dict, summary: dict, skipped: dict) -> None:
    print(
        f"\nmachine: {machine['processor']}, {machine['cpus']} CPUs, Python "
        f"{machine['python']}, Keras backend {machine['backend']}, matmul peak "
        + (f"{machine['matmul_gflops']:.0f} GFLOP/s" if machine["matmul_gflops"] else "not run")
        + (f", computed on {', '.join(machine['devices'])}" if machine["devices"] else "")
    )
    header = f"{'measurement':<48} {'images/s':>9} {'range':>13} {'GFLOP/img':>9} "
    print(header + f"{'GFLOP/s':>8} {'of peak':>7} {'peak RSS MB':>11} {'heap MB':>8}")
    for label, row in summary.items():
        low, high = min(row["rates"]), max(row["rates"])
        flops = (
            f"{row['gflop_per_image']:>9.2f} {row['gflops']:>8.0f} "
            + (f"{row['fraction_of_peak']:>7.0%}" if "fraction_of_peak" in row else " " * 7)
            if "gflops" in row
            else " " * 25
        )
        print(
            f"{label:<48} {row['rate_median']:>9,.0f} {f'{low:,.0f}-{high:,.0f}':>13} {flops} "
            f"{row['peak_mb_max']:>11.0f} {row['anon_mb_max']:>8.0f}"
        )
    for label, reason in skipped.items():
        print(f"{label:<48} skipped: {reason}")
    for line in ratios(summary):
        print(line)


def ratios(summary: dict) -> list[str]:
    """The comparisons the goals are stated in."""
    lines = []

    def ratio(numerator: str, denominator: str, what: str) -> None:
        if numerator in summary and denominator in summary:
            value = summary[numerator]["rate_median"] / summary[denominator]["rate_median"]
            lines.append(f"{what}: {value:.2f}x")

    ratio(TEXTBOOK, TORCH, "ours / PyTorch textbook, same architecture (goal >= 1.3x)")
    ratio(TEXTBOOK, KERAS_IO, "ours / keras-io textbook, same architecture")
    ratio(COMPILED, TORCH, "compiled engine / PyTorch textbook, same architecture")
    pipelines = [label for label in summary if label.startswith("input pipeline")]
    if pipelines:
        ratio(pipelines[-1], OURS, "input pipeline / default training (goal >= 10x)")
    return lines


def step_report(
    description: str,
    profile: Callable[[argparse.Namespace], dict],
    print_table: Callable[[dict], None],
    argv: list[str] | None,
    width: int = 32,
    noise_dim: int = 64,
    steps: int = 10,
) -> int:
    """main() of the scripts that look inside our training step: parse the command
    line, profile, write the JSON asked for, print the table (exit 2, saying why, for
    a backend the profile cannot run on)."""
    args = step_arguments(description, width, noise_dim, steps, argv)
    try:
        report = profile(args)
    except UnsupportedError as error:
        print(f"{Path(sys.argv[0]).stem}: {error}", file=sys.stderr)
        return 2
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    print_table(report)
    return 0


def step_arguments(
    description: str, width: int, noise_dim: int, steps: int, argv: list[str] | None
) -> argparse.Namespace:
    """The command line of the scripts that look inside our training step
    (conv_profile.py, step_parts.py): the model, the batch, the steps, the data."""
    parser = argparse.ArgumentParser(description=description, formatter_class=cli.HelpFormatter)
    parser.add_argument(
        "--width",
        type=cli.positive_int,
        default=width,
        help="both networks' width; the textbook's is 64",
    )
    parser.add_argument(
        "--noise-dim",
        type=cli.positive_int,
        default=noise_dim,
        help="noise size; the textbook's is 100",
    )
    parser.add_argument(
        "--image-size", type=int, default=64, choices=IMAGE_SIZES, help="image side, pixels"
    )
    parser.add_argument(
        "--batch-size", type=cli.positive_int, default=64, help="real images per step"
    )
    parser.add_argument("--steps", type=cli.positive_int, default=steps, help="timed steps")
    parser.add_argument(
        "--images", type=cli.positive_int, default=20_000, help="synthetic set size"
    )
    parser.add_argument(
        "--data", default=str(PROJECT / "data"), help="where the synthetic set is rendered"
    )
    parser.add_argument("--json", help="also write the rows here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Stages: " + ", ".join(STAGES) + "; the default runs all but levers.",
        formatter_class=cli.HelpFormatter,
    )
    parser.add_argument("--only", choices=STAGES, action="append", help="stage(s) to run")
    parser.add_argument(
        "--case",
        action="append",
        metavar="TEXT",
        help="run only the cases whose label contains TEXT (repeatable)",
    )
    parser.add_argument(
        "--repeats", type=cli.positive_int, default=3, help="interleaved rounds (median)"
    )
    parser.add_argument(
        "--images", type=cli.positive_int, default=20_000, help="synthetic set size"
    )
    parser.add_argument(
        "--image-size", type=int, default=64, choices=IMAGE_SIZES, help="the textbooks need 64"
    )
    parser.add_argument(
        "--batch-size", type=cli.positive_int, default=64, help="real images per step"
    )
    parser.add_argument(
        "--widths",
        type=cli.positive_int,
        nargs="+",
        default=[32],
        help="our default model's widths to time",
    )
    parser.add_argument(
        "--train-steps", type=cli.positive_int, default=20, help="timed steps per round"
    )
    parser.add_argument(
        "--data", default=str(PROJECT / "data"), help="where the synthetic sets are rendered"
    )
    parser.add_argument(
        "--json",
        default=str(PROJECT / "benchmarks" / "results.json"),
        help="every round, written here",
    )
    args = parser.parse_args(argv)
    stages = args.only or [s for s in STAGES if s != "levers"]
    cases = [
        case for stage, stage_cases in plan(args).items() if stage in stages for case in stage_cases
    ]
    cases = list({case[0]: case for case in cases}.values())  # a case shared by two stages
    if args.case:
        cases = [case for case in cases if any(text in case[0] for text in args.case)]
        if not cases:
            parser.error(f"--case {' '.join(args.case)}: no case of these stages matches")
    runs: dict[str, list[dict]] = {}
    skipped: dict[str, str] = {}
    for repeat in range(args.repeats):  # interleaved: every case once per round
        for label, measure, kwargs, env, _ in cases:
            if label in skipped:
                continue
            result = in_child(measure, env, **kwargs)
            if "skipped" in result:
                skipped[label] = result["skipped"]
                print(f"{label}: skipped: {result['skipped']}", file=sys.stderr)
                continue
            runs.setdefault(label, []).append(result)
            print(f"[{repeat + 1}/{args.repeats}] {label}: {result['rate']:,.1f}", file=sys.stderr)
    peak = (
        statistics.median(
            r["rate"] for r in runs.get("float32 matmul peak (GFLOP/s)", [{"rate": 0}])
        )
        or None
    )
    schedules = {label: schedule for label, _, _, _, schedule in cases}
    summary = {label: summarise(results, schedules[label], peak) for label, results in runs.items()}
    machine = {
        "backend": os.environ.get("KERAS_BACKEND", "tensorflow"),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "processor": _processor(),
        "matmul_gflops": peak,
        "devices": sorted({r["device"] for rs in runs.values() for r in rs if "device" in r}),
    }
    report = {"machine": machine, "results": summary, "skipped": skipped, "ratios": ratios(summary)}
    Path(args.json).write_text(json.dumps(report, indent=2))
    print_table(machine, summary, skipped)
    print(f"(all rounds in {args.json})")
    return 0


def _processor() -> str:
    for line in (
        Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    ):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


if __name__ == "__main__":
    sys.exit(main())

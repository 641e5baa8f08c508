"""Benchmarks: cache build, input pipeline, training steps and generation, with peak memory.

Each measurement runs in a fresh subprocess (so peak memory is its own), repeated and
interleaved, and the median is reported. Prints a table last and writes a JSON file.
This is where speed goals are measured; the tests only check behaviour. Training and
generation run on whatever Keras backend KERAS_BACKEND selects.

    python benchmarks/bench.py                 # everything, 5 repeats
    python benchmarks/bench.py --only train    # one stage
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

import cli  # after the path is set


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
    """One measurement's result: images, seconds, images per second and peak memory."""
    return {
        "images": images,
        "seconds": seconds,
        "rate": images / seconds,
        "peak_mb": peak_rss_mb(),
        **extra,
    }


def measure_cache(source: str, image_size: int) -> dict:
    import dataset

    with tempfile.TemporaryDirectory() as cache_root:
        started = time.perf_counter()
        cache = dataset.build_cache(source, image_size, cache_root, progress=False)
        seconds = time.perf_counter() - started
        count = cache.manifest["count"]
    return rate(count, seconds)


def measure_pipeline(source: str, image_size: int, batch_size: int, limit: int) -> dict:
    import dataset

    cache = dataset.build_cache(source, image_size, progress=False)
    batches = dataset.CelebaBatches(cache, "all", batch_size=batch_size, seed=0, flip=True)
    steps = min(len(batches), limit)
    batches[0]
    heap_before = anon_mb()
    started = time.perf_counter()
    for i in range(steps):
        batches[i]
    seconds = time.perf_counter() - started
    return rate(steps * batch_size, seconds, heap_growth_mb=anon_mb() - heap_before)


def measure_train(source: str, image_size: int, batch_size: int, width: int, steps: int) -> dict:
    """Real images per second through ``dcgan.train_step`` (one D and one stacked-G step,
    as in training), after warm-up steps that trace the train functions."""
    import dataGens
    import dataset
    import dcgan

    cache = dataset.build_cache(source, image_size, progress=False)
    real = dataset.CelebaBatches(cache, "train", batch_size, seed=0, flip=True)
    d = dcgan.DEFAULTS
    generator = dcgan.build_generator(image_size, d["noise_dim"], width)
    discriminator = dcgan.build_discriminator(image_size, width)
    gan = dcgan.build_gan(generator, discriminator)
    dcgan.compile_models(generator, discriminator, gan, d["lr"], d["beta1"])
    sampler = dataGens.AttributeSampler("dataset", cache.attributes[real.rows])
    d_batches = dataGens.DiscriminatorBatches(real, generator, sampler, d["noise_dim"], 0)
    g_batches = dataGens.GeneratorBatches(sampler, batch_size, len(real), d["noise_dim"], 0)
    warmup = 3
    for step in range(warmup):
        dcgan.train_step(discriminator, gan, d_batches[step], g_batches[step])
    started = time.perf_counter()
    for step in range(warmup, warmup + steps):
        dcgan.train_step(discriminator, gan, d_batches[step], g_batches[step])
    return rate(steps * batch_size, time.perf_counter() - started)


def measure_generate(image_size: int, width: int, count: int, batch_size: int = 256) -> dict:
    """Faces per second from ``generator.predict`` (untrained weights: same cost)."""
    import numpy as np

    import dataGens
    import dcgan

    noise_dim = dcgan.DEFAULTS["noise_dim"]
    generator = dcgan.build_generator(image_size, noise_dim, width)
    rng = np.random.default_rng(0)
    attrs = dataGens.AttributeSampler("uniform").sample(count, rng)
    inputs = dataGens.attribute_noise(attrs, noise_dim, rng)
    generator.predict(inputs[:batch_size], batch_size=batch_size, verbose=0)
    started = time.perf_counter()
    generator.predict(inputs, batch_size=batch_size, verbose=0)
    return rate(count, time.perf_counter() - started)


MEASURES = {
    "cache": measure_cache,
    "pipeline": measure_pipeline,
    "train": measure_train,
    "generate": measure_generate,
}


def in_child(stage: str, **kwargs) -> dict:
    """Run one measurement in a fresh interpreter and return its result."""
    code = (
        f"import json, sys; sys.path.insert(0, {str(PROJECT / 'benchmarks')!r}); import bench; "
        f"print(json.dumps(bench.MEASURES[{stage!r}](**{kwargs!r})))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PROJECT
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


# ------------------------------------------------------------------------ driver


def synthetic_source(count: int) -> str:
    """A synthetic set of ``count`` 178x218 JPEGs, rendered once and kept in data/."""
    import synth_faces

    out = PROJECT / "data" / f"bench-synthetic-{count}"
    synth_faces.ensure(out, count=count)
    return str(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=cli.HelpFormatter,
    )
    parser.add_argument(
        "--only", choices=sorted(MEASURES), action="append", help="stage(s) to run (default: all)"
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--images", type=int, default=20_000, help="synthetic set size")
    parser.add_argument("--image-size", type=int, default=64, choices=(32, 64, 128))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--widths", type=int, nargs="+", default=[32], help="network widths to train and sample"
    )
    parser.add_argument("--train-steps", type=int, default=30, help="timed steps per repeat")
    parser.add_argument("--json", default=str(PROJECT / "benchmarks" / "results.json"))
    args = parser.parse_args(argv)
    stages = args.only or sorted(MEASURES)
    source = synthetic_source(args.images)
    small = synthetic_source(args.images // 4)
    plan = {
        "cache": [
            (
                f"cache 178x218 JPEG -> {args.image_size}px",
                dict(source=source, image_size=args.image_size),
            )
        ],
        "pipeline": [
            (
                f"input pipeline, {n} images",
                dict(
                    source=src, image_size=args.image_size, batch_size=args.batch_size, limit=10**9
                ),
            )
            for n, src in ((args.images // 4, small), (args.images, source))
        ],
        "train": [
            (
                f"training, width {width}, batch {args.batch_size}",
                dict(
                    source=source,
                    image_size=args.image_size,
                    batch_size=args.batch_size,
                    width=width,
                    steps=args.train_steps,
                ),
            )
            for width in args.widths
        ],
        "generate": [
            (
                f"generation, width {width}",
                dict(image_size=args.image_size, width=width, count=4096),
            )
            for width in args.widths
        ],
    }
    runs: dict[str, list[dict]] = {}
    for repeat in range(args.repeats):  # interleaved: every case once per round
        for stage in stages:
            for label, kwargs in plan[stage]:
                result = in_child(stage, **kwargs)
                runs.setdefault(label, []).append(result)
                print(
                    f"[{repeat + 1}/{args.repeats}] {label}: {result['rate']:.0f} images/s, "
                    f"peak {result['peak_mb']:.0f} MB",
                    file=sys.stderr,
                )
    summary = {
        label: {
            "rate_median": statistics.median(r["rate"] for r in results),
            "rates": [round(r["rate"], 1) for r in results],
            "peak_mb_max": max(r["peak_mb"] for r in results),
            "heap_growth_mb_max": max(r.get("heap_growth_mb", 0) for r in results),
        }
        for label, results in runs.items()
    }
    machine = {
        "backend": os.environ.get("KERAS_BACKEND", "tensorflow"),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "processor": platform.processor() or platform.machine(),
    }
    Path(args.json).write_text(json.dumps({"machine": machine, "results": summary}, indent=2))
    print(
        f"\nmachine: {machine['cpus']} CPUs, Python {machine['python']}, "
        f"Keras backend {machine['backend']}"
    )
    print(f"{'measurement':<40} {'images/s (median)':>18} {'peak RSS MB':>12} {'heap +MB':>9}")
    for label, row in summary.items():
        print(
            f"{label:<40} {row['rate_median']:>18,.0f} {row['peak_mb_max']:>12.0f} "
            f"{row['heap_growth_mb_max']:>9.1f}"
        )
    print(f"(all repeats in {args.json})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Where our training step's time goes, part by part: the Keras calls and the batches.

Runs our trainer (bench.measure_train) with a clock around each piece of
``models.train_step`` and of the batches it is fed: every model's ``train_on_batch`` and
``predict_on_batch`` (the discriminator's, the stacked generator's, the generator's
predict for D's fakes), the real batch read from the cache, the discriminator batch's
assembly, attribute and noise sampling, and setting D's ``trainable`` flag. The rest
is the loop's own work (losses to floats). Any backend: on a GPU it shows the per-call
work on the host that bounds a small model's rate (benchmarks/NOTES.md, "GPU"); on the
CPU, that the convolutions inside ``train_on_batch`` are the step, which
conv_profile.py breaks down further.

    python benchmarks/step_parts.py                                  # our default model
    KERAS_BACKEND=jax python benchmarks/step_parts.py --width 64 --noise-dim 100

Not a throughput benchmark: bench.py is (each clock costs a microsecond or so).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from unittest import mock

import bench  # sets the project's import path

import dataGens
import dataset
import models
from quiet_keras import keras

# (owner, attribute, label); a label with {model} names the model that was called.
TIMED = (
    (keras.Model, "train_on_batch", "train_on_batch: {model}"),
    (keras.Model, "predict_on_batch", "predict_on_batch: {model}"),
    (dataset.CelebaBatches, "__getitem__", "real batch: read from the cache, flipped"),
    (dataGens, "real_half", "D batch: wrong attributes, targets, weights"),
    (dataGens, "discriminator_batch", "D batch: wrong attributes, targets, weights"),
    (dataGens.AttributeSampler, "sample", "attributes and noise sampled"),
    (dataGens, "attribute_noise", "attributes and noise sampled"),
    (models, "set_trainable", "set_trainable (D's flag)"),
)


def clocked(function: Callable, label: str, runs: dict) -> Callable:
    """``function`` with each call's seconds appended to ``runs[label]``."""

    @functools.wraps(function)
    def timed(*args, **kwargs):
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            name = label.format(model=getattr(args[0], "name", "?")) if args else label
            runs[name].append(time.perf_counter() - started)

    return timed


@contextlib.contextmanager
def clocks(runs: dict) -> Iterator[None]:
    """Every TIMED piece clocked while inside, each call's seconds kept in ``runs``."""
    with contextlib.ExitStack() as stack:
        for owner, attribute, label in TIMED:
            original = getattr(owner, attribute)
            stack.enter_context(mock.patch.object(owner, attribute, clocked(original, label, runs)))
        yield


def profile(args: argparse.Namespace) -> dict:
    """Trains with the clocks on; each part's calls and milliseconds per timed step."""
    source = bench.synthetic_source(args.images, args.data)
    runs: dict[str, list[float]] = defaultdict(list)
    result = bench.measure_train(
        source,
        args.image_size,
        args.batch_size,
        args.steps,
        args.width,
        args.noise_dim,
        during=clocks(runs),
    )
    step_ms = 1000 * result["seconds"] / args.steps
    rows = []
    for label, seconds in runs.items():
        calls, timed = bench.timed_runs(seconds, bench.TRAIN_WARMUP_STEPS, args.steps, label)
        ms = 1000 * sum(timed) / args.steps
        rows.append({"part": label, "calls_per_step": calls, "ms_per_step": ms})
    rows.sort(key=lambda row: -row["ms_per_step"])
    other = step_ms - sum(row["ms_per_step"] for row in rows)
    rows.append({"part": "the rest of the loop", "calls_per_step": 1, "ms_per_step": other})
    for row in rows:
        row["of_step"] = row["ms_per_step"] / step_ms
    return {
        "step_ms": step_ms,
        "images_per_second": result["rate"],
        "backend": keras.backend.backend(),
        "device": bench.keras_device(),
        "rows": rows,
    }


def print_table(report: dict) -> None:
    print(f"{'part of the step':<48} {'calls':>5} {'ms/step':>8} {'of step':>7}")
    for row in report["rows"]:
        print(
            f"{row['part']:<48} {row['calls_per_step']:>5} {row['ms_per_step']:>8.2f} "
            f"{row['of_step']:>7.0%}"
        )
    print(
        f"step: {report['step_ms']:.1f} ms ({report['images_per_second']:,.0f} real images/s) "
        f"on {report['backend']}, {report['device']}"
    )


def main(argv: list[str] | None = None) -> int:
    description = __doc__.split("\n\n")[0]
    return bench.step_report(description, profile, print_table, argv, steps=50)


if __name__ == "__main__":
    sys.exit(main())

"""Where our training step's time goes, convolution by convolution.

Runs our trainer for a few steps (bench.measure_train, the textbook architecture by
default) with oneDNN's verbose log on, and sums oneDNN's own execution time for each
convolution by shape and direction: forward, backward to the input ("backward_data",
which is also how a transposed convolution runs forward) and backward to the weights.
Each row gets its FLOP rate, set against this machine's matmul peak, and its share of
the step. benchmarks/NOTES.md uses it to say where the 1.3x goal is lost.

    python benchmarks/conv_profile.py                            # textbook architecture
    python benchmarks/conv_profile.py --width 32 --noise-dim 64  # our default model

TensorFlow backend only (oneDNN writes the log; the other backends do not use it).
Not a throughput benchmark: bench.py is, and its timings are taken without the log.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import re
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterator

import bench  # sets the project's import path

# oneDNN's problem descriptor, e.g. mb128_ic128oc256_ih16oh8kh4sh2dh0ph1_iw16ow8kw4sw2dw0pw1
SHAPE = re.compile(
    r"mb(\d+)_(?:g\d+)?ic(\d+)oc(\d+)_ih(\d+)oh(\d+)kh(\d+)sh(\d+)\D.*"
    r"_iw(\d+)ow(\d+)kw(\d+)\D.*"
)


def parse_line(line: str) -> tuple[str, str, int, float] | None:
    """(direction, shape, FLOPs, milliseconds) of one oneDNN convolution run, or None
    for any other line. FLOPs are 2 x multiply-adds, as flops.forward_flops counts."""
    fields = line.strip().split(",")
    if fields[0] != "onednn_verbose" or fields[3:6] != ["exec", "cpu", "convolution"]:
        return None
    found = SHAPE.fullmatch(fields[-2])
    if not found:
        return None
    mb, ic, oc, ih, oh, kh, sh, iw, ow, kw = map(int, found.groups())
    shape = f"{mb}x{ih}x{iw}x{ic} -> {oh}x{ow}x{oc}, kernel {kh}x{kw}, stride {sh}"
    direction = "forward" if fields[7].startswith("forward") else fields[7]
    return direction, shape, 2 * mb * oh * ow * oc * ic * kh * kw, float(fields[-1])


def per_step(lines: list[str], warmup: int, steps: int) -> list[dict]:
    """Each (direction, shape)'s time and FLOPs per timed step. Every convolution runs
    the same number of times each step, so the last steps / (warmup + steps) of its
    runs are the timed steps'."""
    runs = defaultdict(list)
    for line in lines:
        parsed = parse_line(line)
        if parsed:
            direction, shape, flops, ms = parsed
            runs[direction, shape].append((flops, ms))
    rows = []
    for (direction, shape), found in runs.items():
        calls, timed = bench.timed_runs(found, warmup, steps, f"{shape} {direction}")
        rows.append(
            {
                "direction": direction,
                "shape": shape,
                "calls_per_step": calls,
                "ms_per_step": sum(ms for _, ms in timed) / steps,
                "gflop_per_step": sum(flops for flops, _ in timed) / steps / 1e9,
            }
        )
    return sorted(rows, key=lambda row: -row["ms_per_step"])


@contextlib.contextmanager
def stdout_to(file) -> Iterator[None]:
    """Sends this process's C-level stdout (where oneDNN writes its log) to ``file``."""
    libc = ctypes.CDLL(None)
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(file.fileno(), 1)
    try:
        yield
    finally:
        libc.fflush(None)
        os.dup2(saved, 1)
        os.close(saved)


def profile(args: argparse.Namespace) -> dict:
    """Trains with the log on; the rows, the step's time and the matmul peak."""
    os.environ["ONEDNN_VERBOSE"] = "1"  # read when oneDNN first runs, after this
    # One op at a time, so that each kernel's time is its own and the rows add up to
    # the step (bench.py's threads lever: no measurable cost on 2 cores).
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    from quiet_keras import keras

    if keras.backend.backend() != "tensorflow":
        raise bench.UnsupportedError("oneDNN's log is written by the TensorFlow backend only")
    source = bench.synthetic_source(args.images, args.data)
    with tempfile.TemporaryFile("w+") as log:
        with stdout_to(log):
            result = bench.measure_train(
                source, args.image_size, args.batch_size, args.steps, args.width, args.noise_dim
            )
            peak = bench.measure_matmul()["gflops"]
        log.seek(0)
        rows = per_step(log.read().splitlines(), bench.TRAIN_WARMUP_STEPS, args.steps)
    if not rows:
        raise bench.UnsupportedError(
            "oneDNN logged no convolutions (TF_ENABLE_ONEDNN_OPTS=0, or a CPU it does not serve)"
        )
    step_ms = 1000 * result["seconds"] / args.steps
    for row in rows:
        row["gflops"] = row["gflop_per_step"] / row["ms_per_step"] * 1000
        row["of_peak"] = row["gflops"] / peak
        row["of_step"] = row["ms_per_step"] / step_ms
    return {"step_ms": step_ms, "matmul_gflops": peak, "rows": rows}


def print_table(report: dict) -> None:
    print(f"{'convolution (NHWC batch x in -> out)':<52} {'direction':<17} ", end="")
    print(f"{'calls':>5} {'ms/step':>8} {'GFLOP/s':>8} {'of peak':>7} {'of step':>7}")
    for row in report["rows"]:
        print(
            f"{row['shape']:<52} {row['direction']:<17} {row['calls_per_step']:>5} "
            f"{row['ms_per_step']:>8.1f} {row['gflops']:>8.0f} {row['of_peak']:>7.0%} "
            f"{row['of_step']:>7.0%}"
        )
    conv_ms = sum(row["ms_per_step"] for row in report["rows"])
    conv_gflop = sum(row["gflop_per_step"] for row in report["rows"])
    print(
        f"convolutions: {conv_ms:.0f} of the step's {report['step_ms']:.0f} ms "
        f"({conv_ms / report['step_ms']:.0%}), {conv_gflop / conv_ms * 1000:.0f} GFLOP/s "
        f"against a matmul peak of {report['matmul_gflops']:.0f}"
    )


def main(argv: list[str] | None = None) -> int:
    description = __doc__.split("\n\n")[0]
    return bench.step_report(description, profile, print_table, argv, width=64, noise_dim=100)


if __name__ == "__main__":
    sys.exit(main())

"""A/B of training settings by the numbers: train each arm for each seed, evaluate it,
and print the mean and spread of every quality figure (docs/results.md, "Quality
levers").

    python benchmarks/quality_ab.py --data-dir ../shared/celeba-89x109 --out ab \\
        --arm "base=--ema-kimg 10" --arm "levers=--ema-kimg 10 --augment color,cutout" \\
        --raw base --seeds 0 1 2 --epochs 24
    python benchmarks/quality_ab.py --out ab --table-only

Each run is ``dcgan.py ... --resume`` into OUT/ARM-sSEED and ``evaluate.py`` into
OUT/ARM-sSEED-eval (and OUT/ARM-sSEED-raw-eval for the trained generator of an arm
named by ``--raw``), each in its own process, so that an interrupted A/B continues
where it stopped and a finished run or report is not redone. A generator average does
not change training, so an arm with ``--ema-kimg`` and ``--raw`` measures both the
settings without the average (row "ARM, raw") and the average alone.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

import cli  # the project's, from the path just set
import schemas

# (column, how to read it off report.json, format)
COLUMNS = (
    ("FID", lambda r: r["distances"]["fid_inception"]["frechet"]["generated"], "{:.1f}"),
    ("FID real", lambda r: r["distances"]["fid_inception"]["frechet"]["real_baseline"], "{:.1f}"),
    ("KID x1000", lambda r: 1000 * r["distances"]["fid_inception"]["kid"]["generated"], "{:.1f}"),
    ("Fréchet/real", lambda r: _ratio(r["distances"]["classifier"]["frechet"]), "{:.2f}"),
    ("attr acc", lambda r: 100 * r["summary"]["generated_accuracy_visible"], "{:.1f}"),
    ("balanced", lambda r: 100 * r["summary"]["generated_balanced_visible"], "{:.1f}"),
    ("flip", lambda r: 100 * r["summary"]["flip_rate"], "{:.1f}"),
    ("diversity/real", lambda r: _diversity(r["summary"]), "{:.2f}"),
    ("colour noise/real", lambda r: _colour_noise(r["summary"]), "{:.2f}"),
)
REPORT = re.compile(r"(?P<arm>.+)-s(?P<seed>\d+)(?P<raw>-raw)?-eval$")


def _ratio(frechet: dict) -> float:
    return frechet["generated"] / frechet["real_baseline"]


def _diversity(summary: dict) -> float:
    return summary["diversity_generated_same_attributes"] / summary["diversity_real_random_pairs"]


def _colour_noise(summary: dict) -> float | None:
    """None for a report written before evaluate.py measured it."""
    if summary["colour_noise_generated"] is None:
        return None
    return summary["colour_noise_generated"] / summary["colour_noise_real"]


def arm(text: str) -> tuple[str, list[str]]:
    """``NAME=FLAGS`` -> (name, flags)."""
    name, sep, flags = text.partition("=")
    if not sep or not re.fullmatch(r"[A-Za-z0-9_.]+", name):
        raise argparse.ArgumentTypeError(f"{text!r}: give NAME=FLAGS, NAME of letters and digits")
    return name, flags.split()


def run(command: list[str], log: Path) -> None:
    with open(log, "a") as handle:
        done = subprocess.run([sys.executable, *command], stdout=handle, stderr=handle)
    if done.returncode != 0:
        raise cli.CommandError(f"{' '.join(command)} failed (exit {done.returncode}); see {log}")


def train_and_evaluate(args: argparse.Namespace) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        for name, flags in args.arm:
            folder = args.out / f"{name}-s{seed}"
            data = ["--data-dir", args.data_dir] if args.data_dir else []
            train = [str(PROJECT / "dcgan.py"), *data, "--epochs", str(args.epochs)]
            run(
                [*train, "--seed", str(seed), *flags, "--out", str(folder), "--resume"],
                folder.with_suffix(".log"),
            )
            for raw in [False, True] if name in args.raw else [False]:
                report = args.out / f"{name}-s{seed}{'-raw' if raw else ''}-eval"
                if not (report / "report.json").is_file():
                    evaluate = [str(PROJECT / "evaluate.py"), "--checkpoint", str(folder), *data]
                    evaluate += ["--count", str(args.count), "--out", str(report)]
                    run(evaluate + (["--raw"] if raw else []), report.with_suffix(".log"))


def read_reports(out: Path) -> dict[str, list[dict]]:
    """Every ARM-sSEED[-raw]-eval/report.json under ``out``, by row name."""
    rows: dict[str, list[dict]] = {}
    for path in sorted(out.glob("*-eval/report.json")):
        match = REPORT.match(path.parent.name)
        if match is None:
            continue
        report, problem = schemas.parse_json(path, schemas.QUALITY_REPORT)
        if problem is not None:
            raise cli.CommandError(
                f"{path}: not an evaluate.py report with standard FID ({problem}); "
                f"delete its folder and run the A/B again (requirements-fid.txt installed)"
            )
        values = {column: read(report) for column, read, _ in COLUMNS}
        name = match["arm"] + (", raw" if match["raw"] else "")
        rows.setdefault(name, []).append({"seed": int(match["seed"]), **values})
    return rows


def table(rows: dict[str, list[dict]]) -> str:
    """A markdown table: mean ± standard deviation over the seeds of each row ("-"
    where a report lacks the figure)."""
    lines = ["| arm | seeds | " + " | ".join(c for c, _, _ in COLUMNS) + " |"]
    lines.append("| --- | ---: |" + " ---: |" * len(COLUMNS))
    for name, found in rows.items():
        cells = []
        for column, _, form in COLUMNS:
            if any(row[column] is None for row in found):
                cells.append("-")
                continue
            values = np.array([row[column] for row in found], float)
            spread = f" ± {form.format(values.std(ddof=1))}" if len(values) > 1 else ""
            cells.append(form.format(values.mean()) + spread)
        seeds = ",".join(str(row["seed"]) for row in found)
        lines.append(f"| {name} | {seeds} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = cli.parser("quality_ab.py", __doc__.split("\n\n")[0])
    cli.add_data_dir(p)
    p.add_argument("--out", type=Path, required=True, help="folder of the runs and reports")
    p.add_argument("--arm", type=arm, action="append", default=[], help="NAME=dcgan.py flags")
    p.add_argument("--raw", nargs="*", default=[], help="arms also evaluated with --raw")
    p.add_argument("--seeds", type=cli.seed, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=cli.positive_int, default=24, help="24 x 125 = 3,000 steps")
    p.add_argument("--count", type=cli.at_least_2, default=800, help="faces each report scores")
    p.add_argument("--table-only", action="store_true", help="print the table of what is there")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not args.table_only:
        train_and_evaluate(args)
    print(table(read_reports(args.out)))
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))

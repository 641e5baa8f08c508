"""The ready model: a generator trained on the built-in synthetic faces that ships in
the repository (ready/), so that ``generate``, ``serve`` and the notebook make faces
before anyone has trained one. Nothing trained on CelebA is shipped: its licence is
non-commercial research only.

    python ready_model.py export --checkpoint runs/ready --report eval-ready/report.json \\
        --command "python dcgan.py --minutes 30 --out runs/ready"

``export`` writes ready/synthetic.npz (the generator average's weights in float16, about
2 MB, and the synthetic training faces' attribute rows as packed bits) and
ready/synthetic.json (the settings, the training command, the evaluation's headline
numbers and the SHA-256 of the npz). ``load`` rebuilds the generator from the settings
and checks everything it reads against those. Training is training.py's; this module
only moves a trained generator in and out of its shipped form.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np

import atomic
import cli
import models
import runs
import schemas
import synth_faces
from attributes import NUM_ATTRIBUTES
from cli import CommandError
from quiet_keras import keras

READY = Path(__file__).with_name("ready")
NAME = "synthetic"


class ReadyModelError(CommandError):
    """The shipped model is missing or damaged; the message says which file and why."""


class Ready(NamedTuple):
    generator: keras.Model
    card: dict  # schemas.READY_CARD
    attribute_rows: np.ndarray


def paths(folder: Path = READY) -> tuple[Path, Path]:
    return folder / f"{NAME}.npz", folder / f"{NAME}.json"


def export(checkpoint: str | Path, report: Path, command: str, folder: Path = READY) -> Path:
    """Write the shipped form of ``checkpoint``'s generator (its average where the run
    keeps one) with ``report``'s numbers; returns the card's path."""
    saved = runs.load_checkpoint(runs.find_checkpoint(checkpoint), compile=False)
    data = saved.state["settings"]["data"]
    if data is None or not synth_faces.is_synthetic(data):
        raise cli.UsageError(
            f"--checkpoint {checkpoint}: trained on {data}, not on the synthetic faces; "
            "only a synthetic-trained model may ship (CelebA's licence is non-commercial)"
        )
    fix = "give evaluate.py's report.json for this checkpoint"
    evaluation = schemas.read_json(report, schemas.REPORT, cli.UsageError, fix)["summary"]
    arrays = {f"w{i:03d}": w.astype(np.float16) for i, w in enumerate(saved.faces().get_weights())}
    arrays["attributes"] = np.packbits(saved.attribute_rows, axis=1)
    arrays["attribute_count"] = np.array(len(saved.attribute_rows))
    weights, card_path = paths(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic.replacing(weights) as partial:
        np.savez_compressed(partial, **arrays)
    card = {
        "settings": saved.state["settings"],
        "epoch": saved.state["epoch"],
        "command": command,
        "evaluation": evaluation,
        "weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
    }
    with atomic.replacing(card_path) as partial:
        checked = schemas.READY_CARD.validate_python(card)  # never a card load() refuses
        partial.write_text(schemas.READY_CARD.dump_json(checked, indent=2).decode() + "\n")
    return card_path


def load(folder: Path = READY) -> Ready:
    """The shipped generator, its card and attribute rows, each checked."""
    weights, card_path = paths(folder)
    fix = "restore ready/ from the repository (git checkout -- ready)"
    card = schemas.read_json(card_path, schemas.READY_CARD, ReadyModelError, fix)
    try:
        content = weights.read_bytes()
    except OSError as error:
        raise ReadyModelError(f"{weights}: cannot read it ({error.strerror}); {fix}") from None
    if hashlib.sha256(content).hexdigest() != card["weights_sha256"]:
        raise ReadyModelError(f"{weights}: its SHA-256 is not the card's; {fix}")
    s = card["settings"]
    generator = models.build_generator(
        s["image_size"], s["noise_dim"], s["width"], s["cond_bn"], s["conditional"]
    )
    with np.load(weights, allow_pickle=False) as arrays:
        shipped = [arrays[f"w{i:03d}"] for i in range(len(generator.weights))]
        rows = np.unpackbits(arrays["attributes"], axis=1, count=NUM_ATTRIBUTES)
        rows = rows[: int(arrays["attribute_count"])]
    for expected, array in zip(generator.get_weights(), shipped, strict=True):
        if array.shape != expected.shape:
            raise ReadyModelError(
                f"{weights}: a weight of shape {array.shape}, not {expected.shape}; {fix}"
            )
    generator.set_weights([array.astype(np.float32) for array in shipped])
    return Ready(generator, card, rows)


def main(argv: list[str] | None = None) -> int:
    parser = cli.parser("ready_model.py", "Write the shipped ready model from a trained run.")
    commands = parser.add_subparsers(dest="command", required=True)
    out = commands.add_parser("export", help="ready/ from a run's checkpoint and its evaluation")
    out.add_argument("--checkpoint", required=True, help="the run trained on synthetic faces")
    out.add_argument("--report", type=Path, required=True, help="evaluate.py's report.json for it")
    out.add_argument("--command", required=True, help="the training command, for the card")
    args = parser.parse_args(argv)
    return cli.run(lambda: _export(args))


def _export(args: argparse.Namespace) -> int:
    print(f"wrote {export(args.checkpoint, args.report, args.command)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How well photos.py's pseudo-labels agree with the true labels, on CelebA faces
handed over as a bare folder of photos (README, "Folders of photos").

    python benchmarks/photo_labels.py --data-dir ../shared/celeba-89x109 --out photo-labels

The held-out faces of the root (those evaluate.py's attribute classifier is not trained
on; the classifier is trained first if its cache has none) are copied, by their
original names and without any label file, into OUT/photos; photos.py finds, aligns
and labels them into OUT/root; each face's pseudo-labels are compared with its true
labels, beside the same classifier read on the cache's own crops of the same faces
(what the labels would be with a perfect face finder). Prints the table and writes
OUT/photo_labels.json. OUT must be new or empty.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

import cli  # the project's, from the path just set
import dataset
import evaluate
import photos
import pixels
from attributes import ATTRIBUTES


def held_out_folder(cache: dataset.Cache, count: int, out: Path) -> pd.Series:
    """Copy the first ``count`` held-out images into ``out``: their cache rows, by name."""
    index = dataset.scan(cache.manifest["source"])
    if len(index.names) != len(cache.images):
        raise cli.UsageError(
            f"{cache.path}: {len(index.names) - len(cache.images)} images of the root did not "
            "decode, so cache rows and names differ; give a root whose images all decode"
        )
    _, rows = evaluate.evaluation_split(cache)
    out.mkdir(parents=True)
    names = [index.names[row] for row in rows[:count]]
    for name in names:
        shutil.copyfile(index.files.image_dir / name, out / name)
    return pd.Series(rows[:count], index=names)


def scores(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    result = evaluate.attribute_scores(predicted, truth)
    return {name: float(values.mean()) for name, values in result.items()}


def measure(data_dir: Path, count: int, out: Path) -> dict:
    cache = dataset.build_cache(data_dir, 64)
    classifier = evaluate.load_or_train_classifier(cache)
    rows = held_out_folder(cache, count, out / "photos")
    print(photos.build(out / "photos", out / "root", evaluate.classifier_path(cache)))
    table = pd.read_csv(out / "root" / "photos.csv")
    found = rows[table["source"]].to_numpy()
    truth = cache.attributes[found]
    pseudo = table[list(ATTRIBUTES)].to_numpy() > 0.5
    crops = evaluate.classify(classifier, pixels.to_float(cache.images[found]))
    return {
        "photos": len(rows),
        "faces": len(table),
        "pseudo_labels": scores(pseudo, truth),
        "classifier_on_cache_crops": scores(crops, truth),
    }


def main(argv: list[str] | None = None) -> int:
    parser = cli.parser("photo_labels.py", __doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True, help="a CelebA root with its labels")
    parser.add_argument("--count", type=cli.positive_int, default=300, help="faces to hand over")
    parser.add_argument("--out", required=True, help="new or empty folder")
    args = parser.parse_args(argv)
    return cli.run(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    out = cli.writable_folder(args.out)
    if any(out.iterdir()):
        raise cli.UsageError(f"--out {out}: already holds files; choose a new or empty folder")
    result = measure(Path(args.data_dir), args.count, out)
    print(f"{result['faces']} of {result['photos']} photos have a face found")
    print("| labels | accuracy | balanced |\n| --- | ---: | ---: |")
    for what in ("pseudo_labels", "classifier_on_cache_crops"):
        numbers = result[what]
        print(f"| {what} | {numbers['accuracy']:.1%} | {numbers['balanced']:.1%} |")
    (out / "photo_labels.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Any folder of face photos -> a CelebA root that every other tool reads as it is.

    python photos.py ~/Pictures/faces --out data/myfaces --classifier PATH.keras
    python dcgan.py --data-dir data/myfaces

``dcgan.py --data-dir FOLDER --attributes classifier:PATH`` (or ``none``) builds the
same root in the cache (``prepared``) and trains on it.

* JPEG, PNG and WebP files are found recursively, decoded with Pillow (EXIF rotation
  applied; past Pillow's decompression-bomb limit an image is skipped unread);
* faces are found by MTCNN (the ``mtcnn`` package, whose weights ship inside its
  wheel; it runs on TensorFlow whatever the Keras backend), the most confident face
  per photo above ``MIN_CONFIDENCE``, and aligned as CelebA's own faces were: a
  similarity transform (rotation, scale, shift) of its five landmarks onto CelebA's
  mean aligned landmarks (``CELEBA_LANDMARKS``), into a 178x218 image, so the
  trainer's usual crop (dataset.CROP) takes the same face region as on CelebA;
* photos without a detectable face, that do not decode or are too large are counted
  and skipped, and the counts printed in one line;
* the 40 attributes are pseudo-labelled by an attribute classifier (evaluate.py's,
  trained on CelebA or on the synthetic set: ``--classifier``): an attribute is on
  where its probability passes 0.5. Each face's probabilities go to
  ``photos.csv`` (beside its source path and detection confidence) and the mean
  confidence per attribute (|2p - 1|) to ``photos.json``, the manifest. Without a
  classifier (``--attributes none``) every attribute is written absent.

The root (``img_align_celeba/``, ``list_attr_celeba.txt``, the manifest) is built in a
staging folder and renamed into place whole. What this module is not: the reader of
CelebA roots (dataset.py) or the classifier (evaluate.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import shutil
import sys
import warnings
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from PIL import Image, ImageOps
from tqdm import tqdm

import atomic
import cli
import dataset
import evaluate
import pixels
import schemas
from attributes import ATTRIBUTES

VERSION = 1  # of the alignment and labelling: a root built by another is built again
SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
ALIGNED_SIZE = (178, 218)  # width, height of CelebA's aligned images
# Mean MTCNN landmarks (left eye, right eye, nose, left and right mouth corners) on
# the first 32 aligned CelebA faces at 178x218 (../shared/celeba-178x218-sample).
CELEBA_LANDMARKS = np.array(
    [[69.3, 111.4], [107.8, 110.8], [89.1, 134.9], [71.0, 152.1], [105.4, 151.7]], np.float32
)
LANDMARKS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
MIN_CONFIDENCE = 0.9
DETECT_SIDE = 1024  # photos are searched at most this long, then cut from the original
NO_FACE, UNDECODABLE, TOO_LARGE = "without a detectable face", "undecodable", "too large"


@dataclasses.dataclass(frozen=True)
class Face:
    """One aligned face and where it came from."""

    source: str
    image: np.ndarray  # (218, 178, 3) uint8 RGB
    confidence: float


def find_photos(source: Path) -> list[Path]:
    """Every JPEG, PNG and WebP under ``source``, in path order."""
    if not source.is_dir():
        raise dataset.DataError(f"{source}: no such folder; give a folder of photos")
    return sorted(p for p in source.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file())


def decode(path: Path) -> tuple[np.ndarray | None, str]:
    """(RGB uint8 array, "") or (None, why not)."""
    try:
        with warnings.catch_warnings(), Image.open(path) as image:
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return np.asarray(ImageOps.exif_transpose(image).convert("RGB")), ""
    except Image.DecompressionBombError:
        return None, TOO_LARGE
    except (OSError, ValueError, SyntaxError):  # Pillow's ways of saying "not an image"
        return None, UNDECODABLE


def align(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The 178x218 CelebA-aligned face whose five landmarks are ``landmarks``."""
    matrix, _ = cv2.estimateAffinePartial2D(landmarks, CELEBA_LANDMARKS, method=cv2.LMEDS)
    scale = float(np.hypot(*matrix[:, 0]))
    if scale < 0.5:  # shrink by area first: a bilinear warp would alias
        shrink = 2 * scale
        image = cv2.resize(image, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA)
        matrix = matrix @ np.diag([1 / shrink, 1 / shrink, 1])
    return cv2.warpAffine(
        image, matrix, ALIGNED_SIZE, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )


def detect(detector, image: np.ndarray) -> tuple[np.ndarray, float] | None:
    """(five landmarks in ``image``'s pixels, confidence) of its most confident face."""
    shrink = min(1.0, DETECT_SIDE / max(image.shape[:2]))
    small = cv2.resize(image, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA)
    found = [f for f in detector.detect_faces(small) if f["confidence"] >= MIN_CONFIDENCE]
    if not found:
        return None
    best = max(found, key=lambda face: face["confidence"])
    points = np.array([best["keypoints"][name] for name in LANDMARKS], np.float32)
    return points / shrink, float(best["confidence"])


def faces_in(paths: list[Path], source: Path, detector) -> tuple[list[Face], Counter]:
    """The aligned faces of ``paths``, and the count of photos skipped, by reason."""
    # One OpenCV thread: a process that has used OpenCV's thread pool hangs the cache's
    # forked decode workers (dataset._decode_all) when they set their own thread count.
    cv2.setNumThreads(1)
    faces, skipped = [], Counter()
    for path in tqdm(paths, unit="photo", desc="finding faces", file=sys.stderr):
        image, problem = decode(path)
        found = detect(detector, image) if image is not None else None
        if found is None:
            skipped[problem or NO_FACE] += 1
            continue
        landmarks, confidence = found
        faces.append(Face(str(path.relative_to(source)), align(image, landmarks), confidence))
    return faces, skipped


def pseudo_labels(classifier, faces: list[Face]) -> np.ndarray:
    """(n, 40) the classifier's probabilities on each face's usual crop."""
    side = classifier.input_shape[1]
    crops = np.stack([dataset.crop_face(f.image, side, cv2.INTER_AREA) for f in faces])
    return classifier.predict(pixels.to_float(crops), batch_size=256, verbose=0)


def write_root(
    out: Path, faces: list[Face], probabilities: np.ndarray | None, manifest: dict
) -> None:
    """The official CelebA layout with the pseudo-labels (every attribute absent
    without ``probabilities``), and the manifest, in whole."""
    names = [f"{i:06d}.jpg" for i in range(1, len(faces) + 1)]
    with atomic.building(out) as staging:
        (staging / "img_align_celeba").mkdir()
        for name, face in zip(names, faces):
            bgr = np.ascontiguousarray(face.image[..., ::-1])
            cv2.imwrite(
                str(staging / "img_align_celeba" / name), bgr, [cv2.IMWRITE_JPEG_QUALITY, 95]
            )
        unlabelled = probabilities is None
        if unlabelled:
            probabilities = np.zeros((len(faces), len(ATTRIBUTES)), np.float32)
        signs = np.where(probabilities > 0.5, 1, -1)
        rows = [name + "".join(f"{v:3d}" for v in row) for name, row in zip(names, signs)]
        text = "\n".join([str(len(names)), " ".join(ATTRIBUTES), *rows]) + "\n"
        (staging / "list_attr_celeba.txt").write_text(text)
        columns = [] if unlabelled else list(ATTRIBUTES)
        table = pd.DataFrame(probabilities.round(4)[:, : len(columns)], columns=columns)
        table.insert(0, "detection_confidence", [round(f.confidence, 4) for f in faces])
        table.insert(0, "source", [f.source for f in faces])
        table.insert(0, "name", names)
        table.to_csv(staging / "photos.csv", index=False)
        (staging / "photos.json").write_text(json.dumps(manifest, indent=2))


def prepared(source: Path, classifier_path: Path | None, cache_root: Path) -> Path:
    """The root made from the photos of ``source`` and ``classifier_path``'s labels
    (None: unlabelled), in ``cache_root``: built the first time, then reused while
    neither has changed."""
    plan = _plan(source, classifier_path)
    out = cache_root / f"photos-{source.resolve().name}-{plan.key[:10]}"
    if out.is_dir():
        manifest, problem = schemas.parse_json(out / "photos.json", schemas.PHOTOS_MANIFEST)
        if problem is None and manifest["key"] == plan.key:
            print(f"{out}: the faces of {source}, found before", file=sys.stderr)
            return out
        print(f"{out}: {problem or 'of other photos'}; building it again", file=sys.stderr)
        shutil.rmtree(out)
    print(_build(plan, out), file=sys.stderr)
    return out


def build(source: Path, out: Path, classifier_path: Path | None) -> str:
    """Find, align and pseudo-label the faces of ``source`` into the root ``out``;
    returns the one summary line."""
    if out.exists() and any(out.iterdir()):
        raise cli.UsageError(f"--out {out}: already holds files; choose a new or empty folder")
    return _build(_plan(source, classifier_path), out)


@dataclasses.dataclass(frozen=True)
class _Plan:
    """What a root is made from, and the key that changes when any of it does."""

    source: Path
    paths: list[Path]
    classifier_path: Path | None
    classifier_sha256: str | None
    key: str


def _plan(source: Path, classifier_path: Path | None) -> _Plan:
    """The photos of ``source`` (or the one line on why there are none) and the key of
    the root: each photo's path, size and time, the classifier's bytes, this code's
    version."""
    paths = find_photos(source)
    if not paths:
        raise dataset.DataError(f"{source}: no .jpg, .jpeg, .png or .webp files in it")
    sha = hashlib.sha256(classifier_path.read_bytes()).hexdigest() if classifier_path else None
    digest = hashlib.sha256(f"photos v{VERSION}\n".encode())
    for path in paths:
        stat = path.stat()
        digest.update(f"{path.relative_to(source)}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    digest.update((sha or "unlabelled").encode())
    return _Plan(source, paths, classifier_path, sha, digest.hexdigest())


def _classifier(path: Path | None):
    """The classifier at ``path`` (None for None), or the one line on why it is not one."""
    if path is None:
        return None
    classifier, problem = evaluate.load_classifier(path)
    if problem:
        raise cli.UsageError(f"classifier {path}: {problem}; give a trained one")
    return classifier


def _build(plan: _Plan, out: Path) -> str:
    """The root ``out`` from ``plan``; its one summary line."""
    classifier = _classifier(plan.classifier_path)  # before the detector's minutes
    from mtcnn import MTCNN  # TensorFlow starts here, not when the module loads

    faces, skipped = faces_in(plan.paths, plan.source, MTCNN(device="CPU:0"))
    if not faces:
        raise dataset.DataError(
            f"{plan.source}: none of the {len(plan.paths)} photos has a detectable face"
        )
    probabilities = None if classifier is None else pseudo_labels(classifier, faces)
    confidence = {}
    if probabilities is not None:
        mean = np.abs(2 * probabilities - 1).mean(0).round(4).tolist()
        confidence = dict(zip(ATTRIBUTES, mean))
    manifest = {
        "version": VERSION,
        "key": plan.key,
        "source": str(plan.source.resolve()),
        "photos": len(plan.paths),
        "faces": len(faces),
        "skipped": dict(sorted(skipped.items())),
        "detector": f"mtcnn, most confident face >= {MIN_CONFIDENCE}, aligned to CelebA",
        "classifier": str(plan.classifier_path.resolve()) if plan.classifier_path else None,
        "classifier_sha256": plan.classifier_sha256,
        "label_confidence": confidence,
    }
    write_root(out, faces, probabilities, manifest)
    counts = dataset.skipped_text(manifest["skipped"])
    return f"{out}: {len(faces)} faces from {len(plan.paths)} photos; skipped: {counts}"


def parser() -> argparse.ArgumentParser:
    parse = cli.parser("photos.py", __doc__.split("\n\n")[0])
    parse.add_argument("source", help="folder of photos (searched recursively)")
    parse.add_argument("--out", required=True, help="new or empty folder for the CelebA root")
    parse.add_argument(
        "--classifier",
        help="attribute classifier .keras that pseudo-labels the faces (python "
        "evaluate.py train-classifier makes one); without it, no attribute is on",
    )
    return parse


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return cli.run(lambda: _command(args))


def _command(args: argparse.Namespace) -> int:
    classifier = Path(args.classifier) if args.classifier else None
    print(build(Path(args.source), Path(args.out), classifier))
    unlabelled = "" if classifier else " --attributes none"
    print(f"next: python dcgan.py --data-dir {args.out}{unlabelled} --epochs 1")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""CelebA on disk -> a preprocessed uint8 cache -> fixed-shape Keras batches.

What this module does:

* reads a CelebA root in the official layout (``img_align_celeba/*.jpg``,
  ``list_attr_celeba.txt``, optional ``list_eval_partition.txt``) or the Kaggle layout
  (``list_attr_celeba.csv`` with an ``image_id`` column, ``list_eval_partition.csv``,
  images possibly nested as ``img_align_celeba/img_align_celeba/``);
* tolerates what real copies contain: a header count that disagrees with the rows, runs
  of spaces, no final newline, label rows without an image, images without a label row,
  images that do not decode. Those are skipped, counted and reported in one summary
  line; what cannot be skipped (a malformed header or row) stops with ``DataError``
  naming the file, the line and the fix;
* crops and resizes every image once into a cache (``images.npy`` memory map, uint8,
  plus ``manifest.json``), decoding in parallel on all cores, written atomically and
  rebuilt when the source or the parameters change (a killed build's staging folder
  is removed by the next build, or by ``clean``);
* serves ``CelebaBatches``, a ``keras.utils.PyDataset`` of images in [-1, 1] and 0/1
  attributes read from the memory map, so memory does not grow with the data set.

The crop (``CROP``) is a square of 148/178 of the image width whose top-left corner is
at (15/178 of the width, 40/218 of the height): the face region used by most CelebA
GANs, scaled to each image's own size so that a half-resolution copy crops the same
region. It is not where the synthetic faces are drawn (synth_faces.py) nor where the
models live (models.py).

Fetching CelebA is download.py's job; ``python dataset.py download`` runs it and checks
what lands with ``scan`` and ``decode_face`` below, the reader that trains.

Command line: ``python dataset.py download|prepare|info|synth|clean --help``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import re
import sys
import time
import warnings
from multiprocessing import Pool
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

import atomic
import cli
import download
import figures
import schemas
import synth_faces
from attributes import ATTRIBUTES
from config import IMAGE_SIZES, check_image_size
from pixels import to_float
from quiet_keras import keras

PROJECT_DIR = Path(__file__).resolve().parent
DEFAULT_CELEBA_DIR = PROJECT_DIR / "data" / "celeba"
DEFAULT_SYNTH_DIR = PROJECT_DIR / "data" / "synthetic"
DEFAULT_CACHE_DIR = PROJECT_DIR / "cache"
SPLITS = {"train": 0, "val": 1, "test": 2}
NO_PARTITION = -1
# Crop box as fractions of (width, height) of the 178x218 aligned image: left, top, side.
CROP = (15 / 178, 40 / 218, 148 / 178)
CACHE_VERSION = 2


class DataError(cli.CommandError):
    """Input data that cannot be used; the message names the file, line and fix."""


# ---------------------------------------------------------------------------- layout


# The attribute and partition files of each layout a root may have.
LAYOUTS = {
    "official": ("list_attr_celeba.txt", "list_eval_partition.txt"),
    "kaggle": ("list_attr_celeba.csv", "list_eval_partition.csv"),
}


@dataclasses.dataclass(frozen=True)
class CelebaFiles:
    """Where the parts of one CelebA root are."""

    root: Path
    attr_file: Path
    image_dir: Path
    partition_file: Path | None
    layout: str  # "official" or "kaggle"


def find_files(root: str | os.PathLike) -> CelebaFiles:
    """Locate the attribute file, partition file and image folder under ``root``."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such directory; pass --data-dir with a CelebA root")
    found = [name for name, (attr_name, _) in LAYOUTS.items() if (root / attr_name).is_file()]
    if not found:
        raise DataError(
            f"{root}: no list_attr_celeba.txt or list_attr_celeba.csv; "
            "a CelebA root holds the attribute file and img_align_celeba/ "
            "(python dataset.py download fetches one); to train on a folder of photos, "
            "add --attributes classifier:PATH to dcgan.py"
        )
    layout = found[0]
    attr_name, part_name = LAYOUTS[layout]
    image_dir = root / "img_align_celeba"
    if (image_dir / "img_align_celeba").is_dir():
        image_dir = image_dir / "img_align_celeba"
    if not image_dir.is_dir():
        raise DataError(f"{root}: no img_align_celeba/ folder of images beside {attr_name}")
    partition = root / part_name
    return CelebaFiles(
        root, root / attr_name, image_dir, partition if partition.is_file() else None, layout
    )


# --------------------------------------------------------------------------- labels


def read_attributes(path: str | os.PathLike) -> pd.DataFrame:
    """Read an official (.txt) or Kaggle (.csv) attribute file.

    Returns a frame indexed by image name with the 40 attributes as uint8 0/1 columns
    in the official order, and ``attrs["header_count"]`` holding the count line of an
    official file (None for CSV).
    """
    path = Path(path)
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty; it should hold CelebA attribute rows")
    _check_text(path)
    if path.suffix == ".csv":
        frame, header_count, first_row_line = _read_kaggle_attributes(path), None, 2
    else:
        frame, header_count = _read_official_attributes(path)
        first_row_line = 3
    values = _numeric_values(path, frame, first_row_line)
    duplicated = frame.index.duplicated()
    if duplicated.any():
        line = first_row_line + int(np.argmax(duplicated))
        raise DataError(
            f"{path}:{line}: image {frame.index[duplicated][0]} is listed twice; "
            "remove the duplicate row"
        )
    frame = (values > 0).astype(np.uint8)
    frame.attrs["header_count"] = header_count
    return frame


def _check_text(path: Path) -> None:
    """DataError naming the line of the first byte that is not UTF-8 text or is NUL
    (pandas would raise UnicodeDecodeError or KeyError from deep inside, without a line)."""
    content = path.read_bytes()
    try:
        content.decode("utf-8")
        bad = content.find(b"\x00")  # valid UTF-8, but no text file holds one
    except UnicodeDecodeError as error:
        bad = error.start
    if bad >= 0:
        line = content[:bad].count(b"\n") + 1
        raise DataError(
            f"{path}:{line}: byte 0x{content[bad]:02x} is not text; "
            "restore the file from the original download"
        )


def _read_official_attributes(path: Path) -> tuple[pd.DataFrame, int]:
    with open(path, encoding="utf-8", errors="replace") as handle:
        count_line, names_line = handle.readline(), handle.readline()
    try:
        header_count = int(count_line.strip())
    except ValueError:
        raise DataError(
            f"{path}:1: expected the image count, found {count_line.strip()[:40]!r}; "
            "line 1 of list_attr_celeba.txt is a number, line 2 the 40 attribute names"
        ) from None
    names = names_line.split()
    if sorted(names) != sorted(ATTRIBUTES):
        missing = sorted(set(ATTRIBUTES) - set(names)) or sorted(set(names) - set(ATTRIBUTES))
        raise DataError(
            f"{path}:2: expected the 40 CelebA attribute names, found {len(names)} names "
            f"(differs at {', '.join(missing[:3])}); restore the official header"
        )
    try:
        frame = pd.read_csv(
            path,
            sep=r"\s+",
            skiprows=2,
            header=None,
            names=["image", *names],
            index_col="image",
            dtype={"image": str},
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise DataError(f"{path}:{_parser_line(error)}") from None
    return frame, header_count


def _read_kaggle_attributes(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, dtype={"image_id": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise DataError(f"{path}:{_parser_line(error)}") from None
    if "image_id" not in frame.columns or set(ATTRIBUTES) - set(frame.columns):
        raise DataError(
            f"{path}:1: expected the columns image_id and the 40 CelebA attribute names; "
            "restore the Kaggle header"
        )
    return frame.set_index("image_id")


def _parser_line(error: Exception) -> str:
    """Turn pandas' 'Expected 41 fields in line 5, saw 42' into 'line: what; fix'."""
    found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(error))
    if found:
        expected, line, saw = found.groups()
        return f"{line}: expected {expected} fields (name and 40 values), found {saw}; fix the row"
    return f" {str(error).strip()}; fix the file"


def _numeric_values(path: Path, frame: pd.DataFrame, first_row_line: int) -> pd.DataFrame:
    """The 40 attribute columns as numbers, or DataError at the first value not -1/1."""
    raw = frame[list(ATTRIBUTES)]
    values = raw.apply(pd.to_numeric, errors="coerce")
    bad = ~values.isin([-1, 1]).to_numpy()
    if bad.any():
        row, col = np.argwhere(bad)[0]
        found = raw.iat[row, col]
        what = "a missing value" if pd.isna(found) else repr(str(found))
        raise DataError(
            f"{path}:{first_row_line + row}: {ATTRIBUTES[col]} of {frame.index[row]} is "
            f"{what}; every attribute value must be -1 or 1"
        )
    return values


def read_partition(path: str | os.PathLike) -> pd.Series:
    """Read ``list_eval_partition`` (.txt or .csv) into image name -> 0/1/2."""
    path = Path(path)
    _check_text(path)
    try:
        if path.suffix == ".csv":
            table = pd.read_csv(path, dtype={"image_id": str}).set_index("image_id")
            series = table["partition"]
        else:
            series = pd.read_csv(
                path,
                sep=r"\s+",
                header=None,
                names=["image", "partition"],
                index_col="image",
                dtype={"image": str},
            )["partition"]
    except (pd.errors.ParserError, KeyError, ValueError) as error:
        raise DataError(
            f"{path}: not a partition list ({error}); expected 'name 0|1|2' rows"
        ) from None
    first_row_line = 2 if path.suffix == ".csv" else 1  # after the CSV's header
    wrong = ~series.isin([0, 1, 2]).to_numpy()
    if wrong.any():
        row = int(np.argmax(wrong))
        raise DataError(
            f"{path}:{first_row_line + row}: partition of {series.index[row]} is "
            f"{str(series.iloc[row])!r}; expected 0, 1 or 2"
        )
    twice = series.index.duplicated()
    if twice.any():
        row = int(np.argmax(twice))
        raise DataError(
            f"{path}:{first_row_line + row}: image {series.index[row]} is listed twice; "
            "remove the duplicate row"
        )
    return series.astype(np.int8)


# ---------------------------------------------------------------------------- index


@dataclasses.dataclass
class Index:
    """The labelled images of a root that exist on disk, in name order."""

    files: CelebaFiles
    names: list[str]
    sizes: np.ndarray  # (n,) int64 bytes of each image file
    attributes: np.ndarray  # (n, 40) uint8
    partition: np.ndarray  # (n,) int8, NO_PARTITION where the partition file lacks it
    skipped: dict[str, int]
    header_count: int | None


def scan(root: str | os.PathLike) -> Index:
    """Match the label rows of ``root`` with its image files."""
    files = find_files(root)
    labels = read_attributes(files.attr_file)
    on_disk = {
        entry.name: entry.stat().st_size
        for entry in os.scandir(files.image_dir)
        if entry.is_file() and entry.name.lower().endswith((".jpg", ".jpeg", ".png"))
    }
    have_image = labels.index.isin(list(on_disk))
    kept = labels[have_image].sort_index()
    skipped = {
        "label rows without an image": int((~have_image).sum()),
        "images without a label row": len(on_disk.keys() - set(labels.index)),
    }
    # Without a partition file every image is for training, as README says.
    partition = np.full(len(kept), SPLITS["train"], np.int8)
    if files.partition_file is not None:
        partition[:] = NO_PARTITION
        parts = read_partition(files.partition_file).reindex(kept.index)
        known = parts.notna().to_numpy()
        partition[known] = parts[known].astype(np.int8)
        skipped["images missing from the partition file"] = int((~known).sum())
    if kept.empty:
        raise DataError(
            f"{files.root}: none of the {len(labels)} labelled images is in {files.image_dir}; "
            "point --data-dir at the folder that holds both"
        )
    return Index(
        files,
        list(kept.index),
        np.array([on_disk[name] for name in kept.index], np.int64),
        kept.to_numpy(np.uint8),
        partition,
        skipped,
        labels.attrs["header_count"],
    )


def data_fingerprint(index: Index) -> str:
    """What the data is, not where: the labelled images' names and byte sizes, their
    attributes and partition. A run records it (config.RunSettings) to refuse resuming
    on other data; a copy of the same data elsewhere has the same fingerprint."""
    digest = hashlib.sha1("\n".join(index.names).encode())
    for array in (index.sizes, index.attributes, index.partition):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


# ---------------------------------------------------------------------------- cache


def crop_box(width: int, height: int) -> tuple[int, int, int]:
    """The face crop (left, top, side) in pixels for an image of this size."""
    left, top, side = CROP
    side_px = max(1, round(side * width))
    return round(left * width), round(top * height), min(side_px, width, height)


def _reduction(width: int, image_size: int) -> int:
    """Largest JPEG DCT downscale that still leaves the crop at least image_size wide."""
    side = CROP[2] * width
    return max((r for r in (1, 2, 4, 8) if side / r >= image_size), default=1)


_READ_FLAGS = {
    1: cv2.IMREAD_COLOR,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}


# Past Pillow's guard against decompression bombs an image is skipped unread.
MAX_PIXELS = Image.MAX_IMAGE_PIXELS
UNDECODABLE, TOO_LARGE = "images that do not decode", f"images over {MAX_PIXELS:,} pixels"


def load_face(path: str | os.PathLike, image_size: int) -> np.ndarray | None:
    """Decode, crop and resize one image to (image_size, image_size, 3) RGB uint8, or
    None when it does not decode or is too large (``decode_face`` says which)."""
    return decode_face(path, image_size)[0]


def decode_face(path: str | os.PathLike, image_size: int) -> tuple[np.ndarray | None, str]:
    """(face, "") or (None, UNDECODABLE or TOO_LARGE).

    The size is read from the file's header first, so a huge image is refused before
    any pixel is decoded, and each image gets its own ``reduction``: libjpeg decodes at
    1/2, 1/4 or 1/8 scale (a DCT-domain area filter, and far faster) where that still
    leaves the crop at least ``image_size`` wide, so the remaining downscale is under
    2x, where bilinear is accurate, whatever the mix of resolutions in the folder.
    """
    try:
        with warnings.catch_warnings(), Image.open(path) as header:
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            width, height = header.size
    except Image.DecompressionBombError:
        return None, TOO_LARGE
    except (OSError, ValueError, SyntaxError):  # Pillow's ways of saying "not an image"
        return None, UNDECODABLE
    if width * height > MAX_PIXELS:
        return None, TOO_LARGE
    try:
        flag = _READ_FLAGS[_reduction(width, image_size)]
        image = cv2.imdecode(np.fromfile(path, np.uint8), flag)
    except (OSError, cv2.error):  # unreadable, or empty (imdecode asserts on no bytes)
        return None, UNDECODABLE
    if image is None:
        return None, UNDECODABLE
    # BGR -> RGB after the resize, where it is cheap
    return crop_face(image, image_size)[..., ::-1], ""


def crop_face(
    image: np.ndarray, image_size: int, interpolation: int = cv2.INTER_LINEAR
) -> np.ndarray:
    """The face crop (``crop_box``) of a decoded image, resized to image_size square."""
    height, width = image.shape[:2]
    left, top, side = crop_box(width, height)
    top, left = min(top, height - side), min(left, width - side)
    face = image[top : top + side, left : left + side]
    return cv2.resize(face, (image_size, image_size), interpolation=interpolation)


def _fingerprint(index: Index, image_size: int) -> str:
    """Changes when the source files or the preprocessing parameters change."""
    parts = [f"v{CACHE_VERSION}", str(image_size), repr(CROP), str(index.files.root.resolve())]
    for path in (index.files.attr_file, index.files.partition_file, index.files.image_dir):
        if path is not None:
            stat = path.stat()
            parts.append(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}")
    parts.append(hashlib.sha1("\n".join(index.names).encode()).hexdigest())
    return hashlib.sha1("|".join(parts).encode()).hexdigest()


def cache_dir_for(root: str | os.PathLike, image_size: int, cache_root: Path) -> Path:
    """One cache folder per (source root, image size)."""
    resolved = str(Path(root).resolve())
    tag = hashlib.sha1(resolved.encode()).hexdigest()[:10]
    return Path(cache_root) / f"{Path(resolved).name}-{tag}-{image_size}px"


@dataclasses.dataclass
class Cache:
    """A built cache: memory-mapped images plus their labels and manifest."""

    path: Path
    images: np.ndarray  # (n, s, s, 3) uint8 memmap
    attributes: np.ndarray  # (n, 40) uint8
    partition: np.ndarray  # (n,) int8
    manifest: dict

    def split_indices(self, split: str) -> np.ndarray:
        """Row numbers of ``split`` (train, val, test or all)."""
        if split == "all":
            return np.arange(len(self.images))
        if split not in SPLITS:
            raise DataError(f"unknown split {split!r}; use one of train, val, test, all")
        return np.flatnonzero(self.partition == SPLITS[split])


def open_cache(path: Path) -> Cache:
    """Open a complete cache, its manifest and arrays checked against their schemas;
    raises DataError when it is absent, incomplete or not of this shape."""
    fix = "delete the folder and it is built again"
    manifest = schemas.read_json(path / "manifest.json", schemas.CACHE_MANIFEST, DataError, fix)
    n, side = manifest["count"], manifest["image_size"]
    arrays = {}
    for name, shape, dtype, values in (
        ("images", (n, side, side, 3), np.uint8, None),
        ("attributes", (n, len(ATTRIBUTES)), np.uint8, (0, 1)),
        ("partition", (n,), np.int8, (NO_PARTITION, *SPLITS.values())),
    ):
        try:
            arrays[name] = np.load(path / f"{name}.npy", mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as why:
            raise DataError(f"{path / name}.npy: unreadable ({why}); {fix}") from None
        problem = schemas.array_problem(arrays[name], shape, dtype, values)
        if problem is not None:
            raise DataError(f"{path / name}.npy: {problem}; {fix}")
    attributes, partition = np.array(arrays["attributes"]), np.array(arrays["partition"])
    return Cache(path, arrays["images"], attributes, partition, manifest)


def _decode_chunk(job: tuple[str, list[tuple[int, str]], int]) -> list[tuple[int, str]]:
    """Worker: decode a chunk straight into the shared memory map; return the failed
    rows with why."""
    images_path, items, image_size = job
    images = np.load(images_path, mmap_mode="r+")
    failed = []
    for row, source in items:
        face, why = decode_face(source, image_size)
        if face is None:
            failed.append((row, why))
        else:
            images[row] = face
    return failed  # no flush: the parent reads the same page cache, and a crash discards all


def _init_worker() -> None:
    cv2.setNumThreads(1)  # one process per core already


def default_cache_root() -> Path:
    """$FACEGAN_CACHE_DIR, else ``cache/`` in the project."""
    return Path(os.environ.get("FACEGAN_CACHE_DIR") or DEFAULT_CACHE_DIR)


def build_cache(
    root: str | os.PathLike,
    image_size: int = 64,
    cache_root: str | os.PathLike | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> Cache:
    """Return the cache for ``root`` at ``image_size``, building it if absent or stale.

    ``cache_root`` defaults to $FACEGAN_CACHE_DIR, else ``cache/`` in the project."""
    cache_root = cache_root or default_cache_root()
    check_image_size(image_size)
    index = scan(root)
    target = cache_dir_for(root, image_size, Path(cache_root))
    fingerprint = _fingerprint(index, image_size)
    try:
        cache = open_cache(target)
        if cache.manifest["fingerprint"] == fingerprint:
            return cache
    except DataError:
        pass  # absent, damaged or of another version: built again
    return _write_cache(index, image_size, target, fingerprint, workers, progress)


def _write_cache(
    index: Index,
    image_size: int,
    target: Path,
    fingerprint: str,
    workers: int | None,
    progress: bool,
) -> Cache:
    """Decode into a temporary folder, drop failed rows, write the manifest, rename."""
    side = image_size * image_size * 3
    atomic.check_space(target.parent, 2 * len(index.names) * side, "the cache")
    started = time.perf_counter()
    with atomic.building(target) as staging:
        raw_path = staging / "raw.npy"
        raw = np.lib.format.open_memmap(
            raw_path, "w+", np.uint8, (len(index.names), image_size, image_size, 3)
        )
        del raw
        reasons = _decode_all(index, image_size, raw_path, workers, progress)
        failed = sorted(reasons)
        keep = np.setdiff1d(np.arange(len(index.names)), failed)
        _compact(raw_path, staging / "images.npy", keep)
        np.save(staging / "attributes.npy", index.attributes[keep])
        np.save(staging / "partition.npy", index.partition[keep])
        (staging / "names.txt").write_text("\n".join(index.names[i] for i in keep) + "\n")
        skipped = dict(index.skipped)
        for why in (UNDECODABLE, TOO_LARGE):
            skipped[why] = sum(reason == why for reason in reasons.values())
        manifest = {
            "version": CACHE_VERSION,
            "fingerprint": fingerprint,
            "data_fingerprint": data_fingerprint(index),
            "source": str(index.files.root.resolve()),
            "layout": index.files.layout,
            "attr_file": str(index.files.attr_file),
            "header_count": index.header_count,
            "image_size": image_size,
            "crop": {"left": CROP[0], "top": CROP[1], "side": CROP[2]},
            "count": len(keep),
            "skipped": skipped,
            "failed_images": [index.names[i] for i in failed][:100],
            "build_seconds": round(time.perf_counter() - started, 3),
        }
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return open_cache(target)


def _decode_all(
    index: Index, image_size: int, raw_path: Path, workers: int | None, progress: bool
) -> dict[int, str]:
    """Every image decoded into the array at ``raw_path``; the failed rows, with why."""
    sources = [str(index.files.image_dir / name) for name in index.names]
    rows = list(enumerate(sources))
    chunk = 256
    jobs = [(str(raw_path), rows[i : i + chunk], image_size) for i in range(0, len(rows), chunk)]
    workers = workers or os.cpu_count() or 1
    failed: dict[int, str] = {}
    bar = tqdm(
        total=len(rows),
        unit="img",
        desc=f"caching {image_size}px",
        disable=not progress,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    with bar, Pool(workers, initializer=_init_worker) as pool:
        for job, bad in zip(jobs, pool.imap(_decode_chunk, jobs)):
            failed.update(bad)
            bar.update(len(job[1]))
    return failed


def _compact(raw_path: Path, final_path: Path, keep: np.ndarray) -> None:
    """Copy the decoded rows into the final array, in slices so memory stays flat."""
    raw = np.load(raw_path, mmap_mode="r")
    if len(keep) == len(raw):
        del raw
        os.replace(raw_path, final_path)
        return
    final = np.lib.format.open_memmap(final_path, "w+", np.uint8, (len(keep), *raw.shape[1:]))
    for start in range(0, len(keep), 4096):
        rows = keep[start : start + 4096]
        final[start : start + len(rows)] = raw[rows]
    final.flush()
    del final, raw
    raw_path.unlink()


# ---------------------------------------------------------------------------- batches


def skipped_text(skipped: dict[str, int]) -> str:
    """What was skipped, by reason, in words ("none" when nothing was)."""
    return ", ".join(f"{n} {what}" for what, n in skipped.items() if n) or "none"


def summary_line(cache: Cache) -> str:
    """One line on what was read and what was skipped."""
    manifest = cache.manifest
    header = manifest.get("header_count")
    note = f"; header says {header}" if header not in (None, manifest["count"]) else ""
    return (
        f"{manifest['source']}: {manifest['count']} images at {manifest['image_size']}px"
        f"{note}; skipped: {skipped_text(manifest['skipped'])}"
    )


class CelebaBatches(keras.utils.PyDataset):
    """Fixed-shape batches of (images float32 in [-1, 1], attributes float32 0/1).

    Rows are read from the cache's memory map per batch, so memory stays flat however
    large the data set. The order is a permutation drawn from ``(seed, epoch)``, and
    the optional horizontal flips from ``(seed, epoch, batch)``, so a batch is the same
    whichever worker asks for it. The last partial batch is dropped.
    """

    def __init__(
        self,
        cache: Cache,
        split: str = "train",
        batch_size: int = 64,
        seed: int = 0,
        flip: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.cache = cache
        self.rows = cache.split_indices(split)
        if len(self.rows) < batch_size:
            raise DataError(
                f"--batch-size {batch_size} is larger than the {len(self.rows)} images of "
                f"split {split!r}; use a smaller batch size or more data"
            )
        self.batch_size, self.seed, self.flip = batch_size, seed, flip
        self.epoch = 0
        self._order = self._permutation()

    def _permutation(self) -> np.ndarray:
        return np.random.default_rng([self.seed, self.epoch]).permutation(self.rows)

    def __len__(self) -> int:
        return len(self.rows) // self.batch_size

    def batch_rows(self, index: int) -> np.ndarray:
        """The cache rows of batch ``index`` this epoch, in batch order."""
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self._order[index * self.batch_size : (index + 1) * self.batch_size]

    def batch_flips(self, index: int) -> np.ndarray:
        """Which images of batch ``index`` are mirrored left to right (all False
        without ``flip``)."""
        if not self.flip:
            return np.zeros(self.batch_size, bool)
        return np.random.default_rng([self.seed, self.epoch, index]).random(self.batch_size) < 0.5

    def batch_attributes(self, index: int) -> np.ndarray:
        return self.cache.attributes[self.batch_rows(index)].astype(np.float32)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rows = self.batch_rows(index)
        order = np.argsort(rows)  # sorted reads from the memory map, then back in order
        images = np.empty((len(rows), *self.cache.images.shape[1:]), np.uint8)
        images[order] = self.cache.images[rows[order]]
        flips = self.batch_flips(index)
        images[flips] = images[flips, :, ::-1]
        return to_float(images), self.batch_attributes(index)

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self._order = self._permutation()

    def set_epoch(self, epoch: int) -> None:
        """Jump to ``epoch``'s order (used when a run resumes)."""
        self.epoch = epoch
        self._order = self._permutation()


# --------------------------------------------------------------------- default data


def has_label_file(root: str | os.PathLike) -> bool:
    """Whether ``root`` holds a CelebA attribute file (official or Kaggle layout)."""
    return any((Path(root) / attr_name).is_file() for attr_name, _ in LAYOUTS.values())


def resolve_data_dir(data_dir: str | os.PathLike | None, synth_count: int | None = None) -> Path:
    """The data root to use: the given one, CelebA at the default place, or synthetic.

    With no ``data_dir`` and no CelebA in ``data/celeba``, the built-in synthetic faces
    are rendered once into ``data/synthetic`` and used, with one line saying so.
    """
    if data_dir is not None:
        find_files(data_dir)
        return Path(data_dir)
    if has_label_file(DEFAULT_CELEBA_DIR):
        return DEFAULT_CELEBA_DIR
    count = synth_count or synth_faces.DEFAULT_COUNT
    print(
        f"No CelebA at {_shown(DEFAULT_CELEBA_DIR)}: using the built-in synthetic faces in "
        f"{_shown(DEFAULT_SYNTH_DIR)}. Put CelebA there or pass --data-dir to use real faces.",
        file=sys.stderr,
    )
    synth_faces.ensure(DEFAULT_SYNTH_DIR, count=count)
    return DEFAULT_SYNTH_DIR


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# ---------------------------------------------------------------------------- CLI


def frequencies(cache: Cache) -> np.ndarray:
    """(40,) the share of the cached images showing each attribute."""
    return cache.attributes.mean(axis=0) if len(cache.attributes) else np.zeros(len(ATTRIBUTES))


def _info(cache: Cache) -> None:
    print(summary_line(cache))
    counts = {split: len(cache.split_indices(split)) for split in (*SPLITS, "all")}
    unassigned = int((cache.partition == NO_PARTITION).sum())
    print("split   " + "  ".join(f"{s}={n}" for s, n in counts.items()), end="")
    print(f"  (no partition: {unassigned})" if unassigned else "")
    print("attribute frequencies (share of images with the attribute):")
    for name, share in zip(ATTRIBUTES, frequencies(cache)):
        print(f"  {name:<20} {share:6.1%}  {'#' * round(share * 40)}")


def _cache_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cache-dir",
        default=str(default_cache_root()),
        help="cache folder (default: $FACEGAN_CACHE_DIR, else cache/ in the project)",
    )


def _workers(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--workers", type=cli.up_to(256), default=os.cpu_count(), help=what)


def main(argv: list[str] | None = None) -> int:
    parser = cli.parser("dataset.py", __doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, text: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name, help=text, description=text, formatter_class=cli.HelpFormatter
        )

    for name, text in (
        ("prepare", "build (or reuse) the preprocessed cache of a CelebA root"),
        ("info", "counts per split, skipped files and the 40 attribute frequencies"),
    ):
        sub = command(name, text)
        cli.add_data_dir(sub)
        sub.add_argument("--image-size", type=int, default=64, choices=IMAGE_SIZES)
        _cache_dir(sub)
        _workers(sub, "decode processes")
        if name == "info":
            sub.add_argument(
                "--plot",
                nargs="?",
                const="attribute-frequencies.png",
                metavar="PNG",
                help="also draw the 40 frequencies as a bar chart (default: %(const)s)",
            )
    synth = command("synth", "render the synthetic faces in the official CelebA layout")
    synth.add_argument("--out", default=str(DEFAULT_SYNTH_DIR), help="folder to write")
    synth.add_argument(
        "--count", type=cli.up_to(1_000_000), default=synth_faces.DEFAULT_COUNT, help="images"
    )
    synth.add_argument("--seed", type=cli.seed, default=0)
    _workers(synth, "render processes")
    fetch = command("download", "fetch, verify and unpack the official CelebA files")
    fetch.add_argument("--out", default=str(DEFAULT_CELEBA_DIR), help="new or empty folder")
    fetch.add_argument(
        "--mirror", help="base URL that holds the three files by name (default: Google Drive)"
    )
    fetch.add_argument(
        "--checksums",
        help="md5sum-format file of the three files' MD5s (default: the published ones)",
    )
    fetch.add_argument(
        "--retries",
        type=cli.up_to(100, cli.non_negative_int),
        default=4,
        help="retries of a transfer that breaks off, each resuming where it broke",
    )
    clean = command("clean", "list and remove the staging folders killed builds left")
    _cache_dir(clean)
    clean.add_argument("--dry-run", action="store_true", help="list them, remove nothing")
    args = parser.parse_args(argv)
    run = {"synth": _synth, "clean": _clean, "download": _download}.get(args.command, _prepare)
    return cli.run(lambda: run(args))


def check_root(root: Path, sample: int = 16) -> str:
    """One line on a CelebA root that the trainer can read: its labelled images match,
    and a sample of them spread over the set decodes; a DataError otherwise."""
    index = scan(root)
    picks = np.unique(np.linspace(0, len(index.names) - 1, sample).astype(int))
    for i in picks:
        if load_face(index.files.image_dir / index.names[i], IMAGE_SIZES[0]) is None:
            raise DataError(f"{index.files.image_dir / index.names[i]}: does not decode")
    return f"{len(index.names)} labelled images; skipped: {skipped_text(index.skipped)}"


def _download(args: argparse.Namespace) -> int:
    out = Path(args.out)
    checksums = download.read_checksums(Path(args.checksums)) if args.checksums else None
    files = download.remotes(args.mirror, checksums)
    summary = download.fetch_celeba(out, files, check_root, retries=args.retries)
    print(f"{out}: {summary}")
    print(f"next: python dcgan.py --data-dir {out} --epochs 1")
    return 0


def _clean(args: argparse.Namespace) -> int:
    found = [
        *atomic.leftovers(Path(args.cache_dir)),
        *atomic.leftovers(DEFAULT_SYNTH_DIR.parent, DEFAULT_SYNTH_DIR.name),
    ]
    if args.dry_run:
        print("\n".join(str(path) for path in found) or "no leftovers")
    else:
        atomic.reclaim(found)
        print(f"removed {len(found)} leftover folder(s)")
    return 0


def _synth(args: argparse.Namespace) -> int:
    count = args.count
    started = time.perf_counter()
    synth_faces.write_dataset(args.out, count, args.seed, args.workers)
    seconds = time.perf_counter() - started
    print(f"wrote {count} synthetic faces to {args.out} ({count / seconds:.0f} images/s)")
    return 0


def _prepare(args: argparse.Namespace) -> int:
    """prepare and info: build or reuse the cache, then describe it."""
    cache = build_cache(
        resolve_data_dir(args.data_dir), args.image_size, args.cache_dir, args.workers
    )
    if args.command == "info":
        _info(cache)
        if args.plot:
            label = f"{Path(cache.manifest['source']).name} ({len(cache.attributes)} faces)"
            figures.plot_frequencies({label: frequencies(cache)}, ATTRIBUTES, Path(args.plot))
            print(f"chart: {args.plot}")
    else:
        print(summary_line(cache))
        print(f"cache: {cache.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

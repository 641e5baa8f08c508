"""Shared fixtures: the real CelebA subset in ../shared and small crafted CelebA roots."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from attributes import ATTRIBUTES

SHARED = PROJECT.parent / "shared"
HALF_RES = SHARED / "celeba-89x109"
FULL_RES_SAMPLE = SHARED / "celeba-178x218-sample"


def run_script(script: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run one of the project's command-line scripts as a user would."""
    command = [sys.executable, str(PROJECT / script), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def need(path: Path) -> Path:
    """Skip, saying why, when the shared CelebA files are not beside the checkout."""
    if not path.is_dir():
        pytest.skip(f"{path} is absent: the real CelebA subset lives in ../shared")
    return path


def write_jpeg(path: Path, seed: int, size: tuple[int, int] = (178, 218)) -> None:
    rng = np.random.default_rng(seed)
    image = cv2.resize(rng.integers(0, 255, (4, 4, 3), dtype=np.uint8), size)
    cv2.imwrite(str(path), image)


def attr_line(name: str, values) -> str:
    return name + "".join(f"{v:3d}" for v in values)


def make_official_root(root: Path, count: int = 6, seed: int = 0) -> tuple[Path, np.ndarray]:
    """A tiny CelebA root in the official layout; returns (root, 0/1 attributes)."""
    rng = np.random.default_rng(seed)
    attrs = rng.integers(0, 2, (count, len(ATTRIBUTES)), dtype=np.uint8)
    (root / "img_align_celeba").mkdir(parents=True)
    names = [f"{i:06d}.jpg" for i in range(1, count + 1)]
    for i, name in enumerate(names):
        write_jpeg(root / "img_align_celeba" / name, seed * 1000 + i)
    lines = [str(count), " ".join(ATTRIBUTES)]
    lines += [attr_line(n, np.where(a > 0, 1, -1)) for n, a in zip(names, attrs, strict=True)]
    (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    (root / "list_eval_partition.txt").write_text(
        "".join(f"{n} {i % 3}\n" for i, n in enumerate(names))
    )
    return root, attrs


@pytest.fixture
def official_root(tmp_path: Path) -> tuple[Path, np.ndarray]:
    return make_official_root(tmp_path / "celeba")


@pytest.fixture(scope="session", autouse=True)
def cache_dir(tmp_path_factory) -> Path:
    """Caches built by the tests (scripts run as subprocesses too) go to a temporary
    folder, not the project's cache/."""
    path = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FACEGAN_CACHE_DIR", str(path))
        yield path


# Every quality lever on at once, for the tests of exact resume and the compiled step.
EVERY_LEVER = (
    *("--augment", "color,translation,cutout", "--augment-p", "0.5", "--ema-kimg", "0.1"),
    *("--cond-bn", "--spectral-norm", "--mode-seeking", "1", "--attr-weight", "2"),
    *("--lr-d", "4e-4", "--lr-g", "1e-4"),
)


def train_tiny_classifier(data: Path) -> None:
    """The attribute classifier for 32x32 faces of ``data``, trained 2 epochs from the CLI
    and cached where evaluate.py looks for it."""
    import evaluate

    argv = ["train-classifier", "--data-dir", str(data), "--image-size", "32", "--epochs", "2"]
    assert evaluate.main(argv) == 0


def tiny_run(data: Path, out: Path, steps: int) -> list[str]:
    """dcgan.py arguments for a few steps of a tiny model on tiny data."""
    return [
        *("--data-dir", str(data), "--image-size", "32", "--batch-size", "16"),
        *("--noise-dim", "8", "--width", "8", "--steps-per-epoch", str(steps), "--out", str(out)),
    ]


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    import synth_faces

    return synth_faces.write_dataset(
        tmp_path_factory.mktemp("synth") / "faces", count=400, seed=3, workers=2, progress=False
    )

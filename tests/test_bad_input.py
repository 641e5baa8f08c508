"""Bad input, one row per case: what the user gets.

Each case builds a broken input, runs the command in-process as the CLI would, and
expects one of two results:

* ``error``: a non-zero exit, an ``error:`` line naming the file, line or argument and
  the fix (``expect`` is a fragment of it), no traceback, nothing half-written;
* ``skip``: the run goes on (exit 0) and the bad item is counted in the summary line
  (``expect`` names the counter).

argparse's own refusals (a value of the wrong type or outside the choices) print the
usage line and then ``error: argument --flag: ...``, exit 2.
"""

from __future__ import annotations

import collections
import errno
import hashlib
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import FULL_RES_SAMPLE, HALF_RES, PROJECT, make_official_root, need, tiny_run
from matplotlib.figure import Figure
from PIL import Image

import checkpoints
import dataset
import dcgan
import evaluate
from quiet_keras import keras


def run(main, argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as stop:  # argparse refusals
        return stop.code


# ---------------------------------------------------------------------- data


def edit_line(root: Path, number: int, change) -> None:
    path = root / "list_attr_celeba.txt"
    lines = path.read_text().splitlines()
    lines[number - 1] = change(lines[number - 1])
    path.write_text("\n".join(lines) + "\n")


def image(root: Path, number: int = 1) -> Path:
    return root / "img_align_celeba" / f"{number:06d}.jpg"


def rewrite_image(root: Path, write) -> None:
    path = image(root)
    path.unlink()
    write(path)


def empty(root: Path) -> None:
    shutil.rmtree(root)
    root.mkdir()


DATA_CASES = {
    "missing data dir": (lambda r: shutil.rmtree(r), "error", "no such directory"),
    "empty data dir": (
        empty,
        "error",
        "no list_attr_celeba.txt or list_attr_celeba.csv",
    ),
    "attribute file missing": (
        lambda r: (r / "list_attr_celeba.txt").unlink(),
        "error",
        "no list_attr_celeba.txt",
    ),
    "malformed header": (
        lambda r: edit_line(r, 2, lambda line: line.replace("Smiling", "Smiling Smiling")),
        "error",
        "list_attr_celeba.txt:2",
    ),
    "wrong number of values": (
        lambda r: edit_line(r, 4, lambda line: line[:-3]),
        "error",
        "list_attr_celeba.txt:4",
    ),
    "value other than +-1": (
        lambda r: edit_line(r, 5, lambda line: line[:-2] + " 0"),
        "error",
        "list_attr_celeba.txt:5",
    ),
    "duplicate image name": (
        lambda r: edit_line(r, 6, lambda line: "000001.jpg" + line[10:]),
        "error",
        "list_attr_celeba.txt:6",
    ),
    "missing image": (lambda r: image(r).unlink(), "skip", "1 label rows without an image"),
    "zero-byte image": (
        lambda r: image(r).write_bytes(b""),
        "skip",
        "1 images that do not decode",
    ),
    "truncated JPEG": (
        lambda r: image(r).write_bytes(image(r).read_bytes()[:150]),
        "skip",
        "1 images that do not decode",
    ),
    "not a JPEG": (
        lambda r: image(r).write_text("this is not an image\n"),
        "skip",
        "1 images that do not decode",
    ),
    "grayscale JPEG": (
        lambda r: rewrite_image(
            r, lambda p: cv2.imwrite(str(p), np.full((218, 178), 90, np.uint8))
        ),
        "ok",
        "skipped: none",
    ),
    "CMYK JPEG": (
        lambda r: rewrite_image(
            r, lambda p: Image.new("CMYK", (178, 218), (0, 60, 90, 10)).save(p)
        ),
        "ok",
        "skipped: none",
    ),
    "huge image": (
        lambda r: rewrite_image(
            r, lambda p: cv2.imwrite(str(p), np.full((6540, 5340, 3), 128, np.uint8))
        ),
        "ok",
        "skipped: none",
    ),
    "partition file naming an image twice": (
        lambda r: (r / "list_eval_partition.txt").write_text(
            (r / "list_eval_partition.txt").read_text() + "000002.jpg 1\n"
        ),
        "error",
        "list_eval_partition.txt:7: image 000002.jpg is listed twice",
    ),
    "partition value other than 0/1/2": (
        lambda r: (r / "list_eval_partition.txt").write_text("000001.jpg 3\n"),
        "error",
        "list_eval_partition.txt:1: partition of 000001.jpg is '3'; expected 0, 1 or 2",
    ),
    "partition file missing a name": (
        lambda r: (r / "list_eval_partition.txt").write_text(
            "".join((r / "list_eval_partition.txt").read_text().splitlines(True)[1:])
        ),
        "skip",
        "1 images missing from the partition file",
    ),
}


@pytest.mark.parametrize("case", list(DATA_CASES))
def test_bad_data(case, tmp_path, capsys):
    root, _ = make_official_root(tmp_path / "celeba", count=6)
    breaks, result, expect = DATA_CASES[case]
    breaks(root)
    cache_dir = tmp_path / "cache"
    argv = ["prepare", "--data-dir", str(root), "--image-size", "32", "--cache-dir", str(cache_dir)]
    code = run(dataset.main, [*argv, "--workers", "1"])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    if result == "error":
        assert code == 2
        line = err.strip().splitlines()[-1]
        assert line.startswith("error: ") and expect in line
        assert not cache_dir.exists() or not any(cache_dir.iterdir())  # nothing half-written
    else:
        assert code == 0, err
        assert expect in out + err
        (cache,) = cache_dir.iterdir()
        assert dataset.open_cache(cache).images.shape[1:] == (32, 32, 3)


@pytest.mark.parametrize("kind", ["a file", "the user's folder"])
def test_synth_never_overwrites_what_is_not_a_synthetic_set(kind, tmp_path, capsys):
    out = tmp_path / "out"
    if kind == "a file":
        out.write_text("mine\n")
    else:
        out.mkdir()
        (out / "notes.txt").write_text("mine\n")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert run(dataset.main, ["synth", "--out", str(out), "--count", "8"]) == 2
    assert "holds other files than a synthetic set" in last_error(capsys)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_a_kaggle_partition_error_names_the_line_past_the_header(tmp_path):
    path = tmp_path / "list_eval_partition.csv"
    path.write_text("image_id,partition\n000001.jpg,0\n000002.jpg,7\n")
    with pytest.raises(dataset.DataError, match=r"csv:3: partition of 000002\.jpg is '7'"):
        dataset.read_partition(path)


def test_without_a_partition_file_every_image_trains(tmp_path):
    root, _ = make_official_root(tmp_path / "celeba", count=16)
    (root / "list_eval_partition.txt").unlink()
    cache = dataset.build_cache(root, 32, tmp_path / "cache", workers=1, progress=False)
    assert len(cache.split_indices("train")) == 16
    assert set(cache.manifest["skipped"].values()) == {0}
    assert dcgan.main([*tiny_run(root, tmp_path / "run", 1), "--batch-size", "16"]) == 0


def real_root(folder: Path, count: int, full_resolution: tuple[int, ...] = ()) -> Path:
    """The first ``count`` shared CelebA faces at half resolution, except those numbered
    in ``full_resolution``, with their label rows."""
    need(FULL_RES_SAMPLE)
    (folder / "img_align_celeba").mkdir(parents=True)
    for number in range(1, count + 1):
        source = FULL_RES_SAMPLE if number in full_resolution else HALF_RES
        name = f"{number:06d}.jpg"
        shutil.copy(source / "img_align_celeba" / name, folder / "img_align_celeba" / name)
    lines = (HALF_RES / "list_attr_celeba.txt").read_text().splitlines()[: count + 2]
    (folder / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    return folder


def test_one_full_resolution_image_leaves_the_other_faces_as_they_were(tmp_path):
    half = dataset.build_cache(real_root(tmp_path / "half", 12), 64, tmp_path / "c", workers=1)
    mixed_root = real_root(tmp_path / "mixed", 12, full_resolution=(1,))
    mixed = dataset.build_cache(mixed_root, 64, tmp_path / "c", workers=1)
    assert np.array_equal(mixed.images[1:], half.images[1:])
    alone = dataset.load_face(FULL_RES_SAMPLE / "img_align_celeba" / "000001.jpg", 64)
    assert np.array_equal(mixed.images[0], alone)


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` pixels and holds none."""
    chunks = [
        (b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)),
        (b"IDAT", zlib.compress(b"")),
        (b"IEND", b""),
    ]
    return b"\x89PNG\r\n\x1a\n" + b"".join(
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        for kind, data in chunks
    )


def test_an_image_past_the_pixel_limit_is_skipped_unread(tmp_path, capsys):
    root, _ = make_official_root(tmp_path / "celeba", count=6)
    image(root, 2).write_bytes(png_header(60_000, 60_000))  # 3.6 gigapixels, 14 GB decoded
    image(root, 3).write_bytes(png_header(10_000, 9_000))  # 90 megapixels, just over
    argv = ["info", "--data-dir", str(root), "--image-size", "32", "--cache-dir", str(tmp_path)]
    assert dataset.main([*argv, "--workers", "1"]) == 0
    assert f"2 images over {dataset.MAX_PIXELS:,} pixels" in capsys.readouterr().out
    (cache,) = [p for p in tmp_path.iterdir() if p.name.startswith("celeba-")]
    assert dataset.open_cache(cache).manifest["failed_images"] == ["000002.jpg", "000003.jpg"]


# ------------------------------------------------------------ arguments, checkpoints


@pytest.fixture(scope="module")
def tiny_checkpoint(synth_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "run"
    assert dcgan.main([*tiny_run(synth_root, out, 1), "--epochs", "1"]) == 0
    return out


def damaged_copy(run: Path, tmp: Path, damage) -> Path:
    copy = tmp / "copy"
    shutil.copytree(run, copy)
    damage(checkpoints.find(copy))
    return copy


def truncate(path: Path) -> None:
    with open(path, "r+b") as handle:
        handle.truncate(path.stat().st_size // 2)


def foreign_folder(tmp: Path) -> Path:
    folder = tmp / "foreign"
    folder.mkdir()
    (folder / "state.json").write_text("{}")
    (folder / "generator.keras").write_text("not a model")
    return folder


def training(*flags: str):
    """A case's command: a tiny training run in a new folder, with ``flags``."""
    return lambda c, s, t: [*tiny_run(s, t / "run", 1), *flags]


ARGUMENT_CASES = {
    "unknown attribute name": (
        lambda c, s, t: [
            "generate",
            "--checkpoint",
            str(c),
            "--attrs",
            "Eyeglass",
            "--out",
            str(t),
        ],
        "Did you mean Eyeglasses?",
    ),
    "attribute both on and off": (
        lambda c, s, t: [
            "generate",
            "--checkpoint",
            str(c),
            "--attrs",
            "Male,-Male",
            "--out",
            str(t),
        ],
        "attribute Male is asked both on and off",
    ),
    "strength past the documented range": (
        lambda c, s, t: [
            "generate",
            "--checkpoint",
            str(c),
            "--attrs",
            "Smiling=3",
            "--out",
            str(t),
        ],
        "'Smiling=3': the strength must be from 0 (off) to 1.5 (1 is on)",
    ),
    "a sign and a strength together": (
        lambda c, s, t: [
            "generate",
            "--checkpoint",
            str(c),
            "--attrs",
            "Smiling, -Male=0.2",
            "--out",
            str(t),
        ],
        "'-Male=0.2': give a sign or a strength, not both",
    ),
    "sweep of two attributes": (
        lambda c, s, t: [
            "generate",
            "--checkpoint",
            str(c),
            "--sweep",
            "Smiling,Male",
            "--out",
            str(t),
        ],
        "--sweep takes one attribute, not 'Smiling,Male'",
    ),
    "interpolation to an unknown attribute": (
        lambda c, s, t: [
            "generate",
            "--checkpoint",
            str(c),
            "--interpolate",
            "Smilng",
            "--out",
            str(t),
        ],
        "Did you mean Smiling?",
    ),
    "sweep and flip at once": (
        lambda c, s, t: [
            "generate",
            "--checkpoint",
            str(c),
            "--sweep",
            "Smiling",
            "--flip",
            "Male",
            "--out",
            str(t),
        ],
        "argument --flip: not allowed with argument --sweep",
    ),
    "a one-frame sweep": (
        lambda c, s, t: ["generate", "--checkpoint", str(c), "--sweep", "Smiling", "--frames", "1"],
        "argument --frames: '1' is not a whole number of at least 2",
    ),
    "port out of range": (
        lambda c, s, t: ["serve", "--checkpoint", str(c), "--port", "70000"],
        "argument --port: 70000 is not a port; give 0 to 65535",
    ),
    "image size the models do not support": (
        training("--image-size", "48"),
        "argument --image-size: invalid choice: 48",
    ),
    "batch size larger than the data": (
        training("--batch-size", "800"),
        "--batch-size 800 is larger than the",
    ),
    "batch size not a multiple of 8": (
        training("--batch-size", "20"),
        "argument --batch-size: 20 is not a multiple of 8",
    ),
    "zero epochs": (
        training("--epochs", "0"),
        "argument --epochs: 0 is not a positive number",
    ),
    "negative count": (
        lambda c, s, t: ["generate", "--checkpoint", str(c), "--count", "-3", "--out", str(t)],
        "argument --count: -3 is not a positive number",
    ),
    "unwritable --out": (
        lambda c, s, t: [*tiny_run(s, t / "a-file" / "run", 1)],
        "a-file/run: cannot write there",
    ),
    "--out of generate is a file": (
        lambda c, s, t: ["generate", "--checkpoint", str(c), "--out", str(t / "a-file")],
        "a-file: a file, not a folder; choose another folder for the outputs",
    ),
    "--out already holds another run": (
        lambda c, s, t: [*tiny_run(s, c, 1)],
        "already holds a run; pass --resume",
    ),
    "unknown augmentation": (
        training("--augment", "color,flip"),
        "--augment color,flip: unknown operation flip; use a comma-separated subset",
    ),
    "augmentation probability of 0": (
        training("--augment-p", "0"),
        "argument --augment-p: 0.0 is not in (0, 1]; give above 0, up to 1",
    ),
    "negative generator-average half-life": (
        training("--ema-kimg", "-1"),
        "argument --ema-kimg: -1.0 is negative; give 0 or more",
    ),
    "beta1 of 1": (training("--beta1", "1"), "argument --beta1: 1.0 is not in [0, 1)"),
    "negative seed": (training("--seed", "-1"), "argument --seed: -1 is not a seed; give"),
    "seed past 32 bits": (training("--seed", str(2**32)), "from 0 to 4294967295"),
    "infinite learning rate": (training("--lr-g", "inf"), "'inf' is not a finite number"),
    "width past memory": (training("--width", "4096"), "4096 is more than 256; give at most"),
    "noise past memory": (training("--noise-dim", "99999"), "99999 is more than 1024"),
    "batch past memory": (training("--batch-size", "65536"), "65536 is more than 4096"),
    "count past memory": (
        lambda c, s, t: ["generate", "--checkpoint", str(c), "--count", "1e9", "--out", str(t)],
        "argument --count: '1e9' is not a whole number",
    ),
    "count far past memory": (
        lambda c, s, t: ["generate", "--checkpoint", str(c), "--count", "20000", "--out", str(t)],
        "argument --count: 20000 is more than 10000",
    ),
    "resume with another augmentation than the run was trained with": (
        lambda c, s, t: [*tiny_run(s, c, 1), "--resume", "--epochs", "2", "--augment", "cutout"],
        "trained with --augment none, not --augment cutout; pass --augment none or a new --out",
    ),
    "resume with another augmentation probability": (
        lambda c, s, t: [*tiny_run(s, c, 1), "--resume", "--epochs", "2", "--augment-p", "0.5"],
        "trained with --augment-p 1.0, not --augment-p 0.5; pass --augment-p 1.0 or a new --out",
    ),
    "resume with another noise size": (
        lambda c, s, t: [*tiny_run(s, c, 1), "--resume", "--epochs", "2", "--noise-dim", "4"],
        "trained with --noise-dim 8, not --noise-dim 4",
    ),
    "no checkpoint where one is named": (
        lambda c, s, t: ["generate", "--checkpoint", str(t), "--out", str(t / "faces")],
        "no checkpoint there",
    ),
    "truncated checkpoint file": (
        lambda c, s, t: [
            "generate",
            "--checkpoint",
            str(damaged_copy(c, t, lambda f: truncate(f / "generator.keras"))),
            "--out",
            str(t / "faces"),
        ],
        "no intact checkpoint (epoch-0001: generator.keras has",
    ),
    "foreign checkpoint folder": (
        lambda c, s, t: ["generate", "--checkpoint", str(foreign_folder(t)), "--out", str(t)],
        "damaged checkpoint (manifest.json: cannot read it",
    ),
    "foreign file as checkpoint": (
        lambda c, s, t: ["generate", "--checkpoint", str(t / "a-file"), "--out", str(t / "x")],
        "no checkpoint there",
    ),
}


DATASET_ARGUMENTS = {
    "no synthetic faces": (["synth", "--count", "0"], "argument --count: 0 is not a positive"),
    "no render processes": (["synth", "--workers", "0"], "argument --workers: 0 is not a"),
    "no decode processes": (["prepare", "--workers", "-2"], "argument --workers: -2 is not a"),
    "seed as text": (["synth", "--seed", "x"], "argument --seed: 'x' is not a whole number"),
}


@pytest.mark.parametrize("case", list(DATASET_ARGUMENTS))
def test_bad_dataset_arguments(case, tmp_path, capsys):
    argv, expect = DATASET_ARGUMENTS[case]
    code = run(
        dataset.main, [*argv, "--out" if argv[0] == "synth" else "--cache-dir", str(tmp_path / "x")]
    )
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and line.startswith(f"dataset.py {argv[0]}: error: ") and expect in line
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("case", list(ARGUMENT_CASES))
def test_bad_arguments_and_checkpoints(case, tiny_checkpoint, synth_root, tmp_path, capsys):
    (tmp_path / "a-file").write_text("a file, not a folder\n")
    argv = ARGUMENT_CASES[case][0](tiny_checkpoint, synth_root, tmp_path)
    before = set(tmp_path.rglob("*"))
    code = run(dcgan.main, argv)
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith(
        ("error: ", "dcgan.py: error: ", "dcgan.py generate: error: ", "dcgan.py serve: error: ")
    )
    assert ARGUMENT_CASES[case][1] in line
    assert set(tmp_path.rglob("*")) == before  # nothing written


def test_a_checkpoint_from_another_backend_resumes_with_a_note(
    tiny_checkpoint, synth_root, tmp_path, capsys
):
    copy = tmp_path / "run"
    shutil.copytree(tiny_checkpoint, copy)
    folder = checkpoints.find(copy)
    other = "torch" if keras.backend.backend() == "jax" else "jax"
    edit_state(folder, lambda state: {**state, "backend": other})
    assert dcgan.main([*tiny_run(synth_root, copy, 1), "--epochs", "2", "--resume"]) == 0
    note = f"epoch-0001 was written on {other}; continuing on {keras.backend.backend()}"
    assert note in capsys.readouterr().err


def test_evaluate_refuses_an_unwritable_out_before_any_work(tiny_checkpoint, tmp_path, capsys):
    (tmp_path / "a-file").write_text("")
    argv = ["--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "a-file" / "eval")]
    assert evaluate.main(argv) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith(f"error: {tmp_path / 'a-file'}: cannot write (")
    assert sorted(tmp_path.iterdir()) == [tmp_path / "a-file"]


@pytest.mark.skipif(keras.backend.backend() == "jax", reason="both are valid on JAX")
@pytest.mark.parametrize(
    "flags, message",
    [
        (["--engine", "compiled"], "error: --engine compiled runs on the JAX backend only"),
        (["--devices", "2"], "error: --engine keras trains on one device: several devices"),
    ],
    ids=["compiled-engine", "two-devices"],
)
def test_jax_only_engine_flags_on_another_backend_are_refused(
    flags, message, synth_root, tmp_path, capsys
):
    code = run(dcgan.main, [*tiny_run(synth_root, tmp_path / "run", 1), *flags])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith(message)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--devices", "abc", "'abc' is not a device count; give 1, 2, ... or all"),
        ("--devices", "0", "--devices"),
        ("--coordinator", "localhost", "'localhost' is not host:port"),
    ],
)
def test_bad_engine_and_device_arguments_are_named(flag, value, message, tmp_path, capsys):
    code = run(dcgan.main, ["--out", str(tmp_path / "run"), flag, value])
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and line.startswith("dcgan.py: error: argument")
    assert flag in line and message in line
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------- metadata read back, pinned data


def edit_state(folder: Path, change) -> None:
    """Replace a checkpoint's state.json with ``change(state)`` (a dict, or the raw text
    when it returns a str) and vouch for it in the manifest, so only its shape is wrong."""
    state = change(json.loads((folder / "state.json").read_text()))
    (folder / "state.json").write_text(state if isinstance(state, str) else json.dumps(state))
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["state.json"] = {
        "bytes": (folder / "state.json").stat().st_size,
        "sha256": hashlib.sha256((folder / "state.json").read_bytes()).hexdigest(),
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))


def setting(key, value):
    return lambda state: {**state, "settings": {**state["settings"], key: value}}


BAD_STATES = {
    "not JSON": (lambda state: "{epoch: 2", "Invalid JSON"),
    "a list": (lambda state: [state], "Input should be an object"),
    "epoch as text": (lambda state: {**state, "epoch": "2"}, "field epoch: Input should be"),
    "negative step": (lambda state: {**state, "step": -1}, "field step: Input should be greater"),
    "no settings": (
        lambda state: {k: v for k, v in state.items() if k != "settings"},
        "field settings: Field required",
    ),
    "beta1 of 1": (setting("beta1", 1.0), "field settings.beta1: Input should be less than 1"),
    "unknown policy": (setting("augment", "flip"), "field settings.augment: String should match"),
    "probability past 1": (
        setting("augment_p", 1.5),
        "field settings.augment_p: Input should be less than or equal to 1",
    ),
    "a setting from elsewhere": (setting("dropout", 0.5), "field settings.dropout: Extra inputs"),
    "true as 1": (setting("cond_bn", 1), "field settings.cond_bn: Input should be a valid boolean"),
}


@pytest.fixture(scope="module")
def two_checkpoints(synth_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("two") / "run"
    assert dcgan.main([*tiny_run(synth_root, out, 1), "--epochs", "2"]) == 0
    return out


@pytest.mark.parametrize("case", list(BAD_STATES))
def test_a_checkpoint_with_bad_metadata_counts_as_damaged(case, two_checkpoints, tmp_path, capsys):
    change, expect = BAD_STATES[case]
    copy = tmp_path / "run"
    shutil.copytree(two_checkpoints, copy)
    newest = copy / "checkpoints" / "epoch-0002"
    edit_state(newest, change)
    assert checkpoints.find(copy) == copy / "checkpoints" / "epoch-0001"
    expect = f"state.json: {expect}"
    assert f"skipping damaged checkpoint(s): epoch-0002: {expect}" in capsys.readouterr().err
    code = run(dcgan.main, ["generate", "--checkpoint", str(newest), "--out", str(tmp_path / "x")])
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and line.startswith(f"error: {newest}: damaged checkpoint ({expect}")
    assert not (tmp_path / "x").exists()


def test_a_pointer_to_somewhere_else_is_no_pointer(two_checkpoints, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(two_checkpoints, copy)
    (tmp_path / "elsewhere").mkdir()
    for text in ("../../elsewhere\n", "epoch-0001/../../../elsewhere\n", "\xff\n"):
        (copy / "checkpoints" / "LATEST").write_text(text, errors="surrogateescape")
        assert checkpoints.pointed(copy, "LATEST") is None
        assert checkpoints.find(copy) == copy / "checkpoints" / "epoch-0002"


def edit_manifest(cache: Path, **fields) -> None:
    manifest = json.loads((cache / "manifest.json").read_text())
    (cache / "manifest.json").write_text(json.dumps({**manifest, **fields}))


CACHE_DAMAGE = {
    "manifest missing a key": (
        lambda c: (c / "manifest.json").write_text(json.dumps({"count": 6})),
        "manifest.json: field version: Field required",
    ),
    "manifest count as text": (
        lambda c: edit_manifest(c, count="6"),
        "manifest.json: field count: Input should be a valid integer",
    ),
    "manifest count off": (
        lambda c: edit_manifest(c, count=7),
        "images.npy: shape (6, 32, 32, 3), expected (7, 32, 32, 3)",
    ),
    "attributes of another shape": (
        lambda c: np.save(c / "attributes.npy", np.zeros((6, 39), np.uint8)),
        "attributes.npy: shape (6, 39), expected (6, 40)",
    ),
    "attributes not 0/1": (
        lambda c: np.save(c / "attributes.npy", np.full((6, 40), 7, np.uint8)),
        "attributes.npy: values outside [0, 1]",
    ),
    "partition of another type": (
        lambda c: np.save(c / "partition.npy", np.zeros(6, np.float64)),
        "partition.npy: dtype float64, expected int8",
    ),
    "images not an array": (
        lambda c: (c / "images.npy").write_text("nonsense"),
        "images.npy: unreadable",
    ),
}


@pytest.mark.parametrize("case", list(CACHE_DAMAGE))
def test_a_damaged_cache_is_named_then_built_again(case, official_root, tmp_path):
    root, attrs = official_root
    cache = dataset.build_cache(root, 32, tmp_path / "cache", workers=1, progress=False)
    damage, expect = CACHE_DAMAGE[case]
    damage(cache.path)
    with pytest.raises(dataset.DataError, match=re.escape(expect)) as refused:
        dataset.open_cache(cache.path)
    message = str(refused.value)
    assert message.startswith(str(cache.path)) and "delete the folder" in message
    rebuilt = dataset.build_cache(root, 32, tmp_path / "cache", workers=1, progress=False)
    assert (rebuilt.attributes == attrs).all() and rebuilt.images.shape == (6, 32, 32, 3)


def resume(out: Path, *flags: str) -> list[str]:
    return ["--resume", "--epochs", "2", "--steps-per-epoch", "1", "--out", str(out), *flags]


@pytest.fixture
def run_on_a_copy(synth_root, tmp_path) -> tuple[Path, Path]:
    """(data, run): a copy of the synthetic faces and a one-step run trained on it."""
    data = tmp_path / "data"
    shutil.copytree(synth_root, data)
    out = tmp_path / "run"
    assert dcgan.main([*tiny_run(data, out, 1), "--epochs", "1"]) == 0
    return data, out


def saved_data(out: Path) -> str:
    return json.loads((checkpoints.find(out) / "state.json").read_text())["settings"]["data"]


def test_resume_trains_on_the_recorded_data_without_data_dir(run_on_a_copy, capsys):
    data, out = run_on_a_copy
    assert dcgan.main(resume(out)) == 0
    assert saved_data(out) == str(data.resolve())
    assert "synthetic" not in capsys.readouterr().err  # not the built-in set


def test_resume_takes_the_same_data_moved(run_on_a_copy, tmp_path, capsys):
    data, out = run_on_a_copy
    moved = tmp_path / "moved"
    data.rename(moved)
    assert dcgan.main(resume(out, "--data-dir", str(moved))) == 0
    assert f"{moved}: the data " in capsys.readouterr().err
    assert saved_data(out) == str(moved.resolve())


PINNED = {
    "other data": (
        lambda data, t: ["--data-dir", str(make_official_root(t / "other")[0])],
        "holds other data than",
    ),
    "data changed": (
        lambda data, t: image(data, 7).unlink() or [],
        "changed since",
    ),
    "data gone": (
        lambda data, t: shutil.rmtree(data) or [],
        "which is gone; put the data back there, or pass --data-dir where it is now",
    ),
}


@pytest.mark.parametrize("case", list(PINNED))
def test_resume_refuses_other_data(case, run_on_a_copy, tmp_path, capsys):
    data, out = run_on_a_copy
    flags = PINNED[case][0](data, tmp_path)
    before = sorted(out.rglob("*"))
    code = run(dcgan.main, resume(out, *flags))
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and line.startswith("error: ") and PINNED[case][1] in line
    assert str(data.resolve()) in line
    assert sorted(out.rglob("*")) == before


# --------------------------------------------------------- builds killed by a signal


def test_a_killed_render_leaves_a_staging_folder_the_next_one_removes(tmp_path):
    out = tmp_path / "faces"
    argv = [sys.executable, str(PROJECT / "dataset.py"), "synth", "--out", str(out)]
    render = subprocess.Popen([*argv, "--count", "4000", "--workers", "1"], stderr=subprocess.PIPE)
    for _ in range(600):
        staging = list(tmp_path.glob("faces.tmp-*/img_align_celeba/*.jpg"))
        if staging:
            break
        time.sleep(0.1)
    render.send_signal(signal.SIGKILL)
    render.wait()
    (leftover,) = tmp_path.glob("faces.tmp-*")
    done = subprocess.run([*argv, "--count", "40"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"removed {leftover}, left by a killed process" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["faces"]


def test_a_stale_cache_staging_folder_is_removed_and_a_live_one_kept(
    official_root, tmp_path, capsys
):
    root, _ = official_root
    cache_root = tmp_path / "cache"
    target = dataset.cache_dir_for(root, 32, cache_root)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    stale = target.with_name(f"{target.name}.tmp-{gone.pid}")
    live = target.with_name(f"{target.name}.tmp-{os.getppid()}")
    for folder in (stale, live):
        folder.mkdir(parents=True)
        (folder / "raw.npy").write_bytes(b"0" * 1000)
    argv = ["clean", "--cache-dir", str(cache_root)]
    assert dataset.main([*argv, "--dry-run"]) == 0
    assert capsys.readouterr().out.strip() == str(stale)
    dataset.build_cache(root, 32, cache_root, workers=1, progress=False)
    assert f"removed {stale}, left by a killed process" in capsys.readouterr().err
    assert sorted(p.name for p in cache_root.iterdir()) == sorted([target.name, live.name])
    stale.mkdir()
    assert dataset.main(argv) == 0
    assert not stale.exists() and live.exists()
    assert "removed 1 leftover folder(s)" in capsys.readouterr().out


# ------------------------------------------------------------------------ full disk


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(args[1] if len(args) > 1 else ""))


def fills_after(count: int, write):
    """``write`` that works ``count`` times, then finds the disk full."""
    calls = []

    def writing(*args, **kwargs):
        calls.append(1)
        if len(calls) > count:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return write(*args, **kwargs)

    return writing


def last_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


def test_a_disk_that_fills_during_generate_leaves_no_half_output(
    tiny_checkpoint, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(Image.Image, "save", fills_after(3, Image.Image.save))
    out = tmp_path / "faces"
    assert (
        run(dcgan.main, ["generate", "--checkpoint", str(tiny_checkpoint), "--out", str(out)]) == 2
    )
    line = last_error(capsys)
    assert line.startswith(f"error: {out}: cannot write (No space left on device); free some")
    assert list(tmp_path.iterdir()) == []  # no faces without a grid, no staging folder


def test_generate_beside_earlier_outputs_adds_all_or_nothing(
    tiny_checkpoint, tmp_path, monkeypatch
):
    out = tmp_path / "faces"
    argv = ["generate", "--checkpoint", str(tiny_checkpoint), "--out", str(out), "--count", "4"]
    assert dcgan.main(argv) == 0
    (out / "mine.txt").write_text("the user's\n")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    monkeypatch.setattr(Image.Image, "save", fills_after(2, Image.Image.save))
    assert run(dcgan.main, [*argv[:-1], "8"]) == 2
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    monkeypatch.undo()
    assert dcgan.main([*argv[:-1], "8"]) == 0
    assert len(list(out.glob("face-*.png"))) == 8 and (out / "mine.txt").exists()


def test_too_little_space_for_the_faces_is_refused_before_writing(
    tiny_checkpoint, tmp_path, monkeypatch, capsys
):
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9, 2**20))
    argv = ["generate", "--checkpoint", str(tiny_checkpoint), "--count", "5000"]
    assert run(dcgan.main, [*argv, "--out", str(tmp_path / "faces")]) == 2
    assert "1 MB free, 5000 faces and their grid needs about" in last_error(capsys)
    assert list(tmp_path.iterdir()) == []


def test_a_disk_that_fills_during_a_cache_build_leaves_no_cache(
    official_root, tmp_path, monkeypatch, capsys
):
    root, _ = official_root
    monkeypatch.setattr(np, "save", no_space)
    argv = ["prepare", "--data-dir", str(root), "--image-size", "32", "--workers", "1"]
    assert run(dataset.main, [*argv, "--cache-dir", str(tmp_path / "cache")]) == 2
    assert "cannot write (No space left on device)" in last_error(capsys)
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_disk_that_fills_during_training_stops_in_one_line_and_resumes(
    synth_root, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "run"
    assert dcgan.main([*tiny_run(synth_root, out, 1), "--epochs", "1"]) == 0
    monkeypatch.setattr(Figure, "savefig", no_space)
    assert run(dcgan.main, [*tiny_run(synth_root, out, 1), "--epochs", "2", "--resume"]) == 2
    assert "cannot write (No space left on device)" in last_error(capsys)
    monkeypatch.undo()
    assert dcgan.main([*tiny_run(synth_root, out, 1), "--epochs", "2", "--resume"]) == 0
    assert checkpoints.find(out).name == "epoch-0002"


@pytest.mark.parametrize("kind", ["garbage", "a generator"])
def test_a_classifier_that_is_not_one_is_refused(kind, tiny_checkpoint, synth_root, tmp_path):
    path = tmp_path / "classifier.keras"
    if kind == "garbage":
        path.write_bytes(b"PK\x03\x04 not really a zip")
    else:
        shutil.copy(checkpoints.find(tiny_checkpoint) / "generator.keras", path)
    cache = dataset.build_cache(synth_root, 32, progress=False)
    expect = "not a readable Keras model" if kind == "garbage" else "not 32x32 faces to 40"
    with pytest.raises(dataset.DataError, match=f"--classifier {path}: .*{expect}"):
        evaluate.load_or_train_classifier(cache, str(path))

"""dataset.py: layouts, messy label files, the cache and the batches."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from conftest import (
    FULL_RES_SAMPLE,
    HALF_RES,
    attr_line,
    make_official_root,
    need,
    run_script,
    write_jpeg,
)
from PIL import Image

import dataset
import pixels
from attributes import ATTRIBUTES
from cli import CommandError
from dataset import DataError


def independent_read(path: Path) -> dict[str, list[int]]:
    """Plain-Python reading of an official attribute file, for comparison."""
    lines = path.read_text().split("\n")
    rows = {}
    for line in lines[2:]:
        if line.strip():
            name, *values = line.split()
            rows[name] = [1 if int(v) > 0 else 0 for v in values]
    return rows


# ------------------------------------------------------------------ the real files


def test_real_attribute_file_matches_an_independent_reader():
    attr_file = need(HALF_RES) / "list_attr_celeba.txt"
    frame = dataset.read_attributes(attr_file)
    expected = independent_read(attr_file)
    assert len(frame) == len(expected) == 20_000
    assert frame.attrs["header_count"] == 202_599
    assert list(frame.columns) == list(ATTRIBUTES)
    for name in ("000001.jpg", "000777.jpg", "020000.jpg"):
        assert frame.loc[name].tolist() == expected[name]


def test_real_root_scans_images_and_counts_unmatched_rows():
    index = dataset.scan(need(HALF_RES))
    assert len(index.names) == 8_000
    assert index.names[0] == "000001.jpg" and index.names[-1] == "008000.jpg"
    assert index.skipped["label rows without an image"] == 12_000
    assert index.skipped["images without a label row"] == 0
    assert (index.partition == 0).all()


def test_crop_is_scaled_so_half_and_full_resolution_agree(tmp_path):
    need(FULL_RES_SAMPLE)
    for name in ("000001.jpg", "000017.jpg", "000032.jpg"):
        full = dataset.load_face(FULL_RES_SAMPLE / "img_align_celeba" / name, 32)
        half = dataset.load_face(HALF_RES / "img_align_celeba" / name, 32)
        other = dataset.load_face(HALF_RES / "img_align_celeba" / "000100.jpg", 32)
        # Fine detail differs between resolutions; the blurred picture must not.
        same = np.abs(cv2.blur(full, (3, 3)).astype(float) - cv2.blur(half, (3, 3))).mean()
        shifted = np.abs(full[:, 1:].astype(float) - half[:, :-1]).mean()
        assert same < 6
        assert np.abs(full.astype(float) - other).mean() > 5 * same
        assert shifted > np.abs(full.astype(float) - half).mean()  # aligned, not 1px off


def test_loaded_faces_are_rgb(tmp_path):
    path = tmp_path / "red.jpg"
    blue_green_red = np.zeros((218, 178, 3), np.uint8)
    blue_green_red[..., 2] = 255  # OpenCV stores BGR: this image is red
    cv2.imwrite(str(path), blue_green_red)
    face = dataset.load_face(path, 32)
    assert face[..., 0].mean() > 240 and face[..., 2].mean() < 15


# ------------------------------------------------------------------ layouts & quirks


def test_official_root_reads_values_and_partition(official_root):
    root, attrs = official_root
    index = dataset.scan(root)
    assert index.names == [f"{i:06d}.jpg" for i in range(1, 7)]
    np.testing.assert_array_equal(index.attributes, attrs)
    assert index.partition.tolist() == [0, 1, 2, 0, 1, 2]


def test_kaggle_layout_nested_images_give_the_same_index(official_root, tmp_path):
    root, attrs = official_root
    kaggle = tmp_path / "kaggle"
    shutil.copytree(root / "img_align_celeba", kaggle / "img_align_celeba" / "img_align_celeba")
    names = [f"{i:06d}.jpg" for i in range(1, 7)]
    frame = pd.DataFrame(np.where(attrs > 0, 1, -1), columns=list(ATTRIBUTES))
    frame.insert(0, "image_id", names)
    frame.to_csv(kaggle / "list_attr_celeba.csv", index=False)
    pd.DataFrame({"image_id": names, "partition": [0, 1, 2, 0, 1, 2]}).to_csv(
        kaggle / "list_eval_partition.csv", index=False
    )
    index = dataset.scan(kaggle)
    assert index.files.layout == "kaggle"
    assert index.names == names
    np.testing.assert_array_equal(index.attributes, attrs)
    assert index.partition.tolist() == [0, 1, 2, 0, 1, 2]


def test_messy_but_readable_file_is_read(official_root):
    root, attrs = official_root
    lines = (root / "list_attr_celeba.txt").read_text().splitlines()
    lines[0] = "202599"  # header count disagrees with the rows
    lines[2] = lines[2].replace(" ", "    ")  # runs of spaces
    lines.append(attr_line("999999.jpg", [1] * 40))  # label row with no image
    (root / "list_attr_celeba.txt").write_text("\n".join(lines))  # no final newline
    write_jpeg(root / "img_align_celeba" / "000099.jpg", 1)  # image with no label row
    index = dataset.scan(root)
    np.testing.assert_array_equal(index.attributes, attrs)
    assert index.header_count == 202599
    assert index.skipped["label rows without an image"] == 1
    assert index.skipped["images without a label row"] == 1


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda ls: ls.__setitem__(0, "many"), r"list_attr_celeba.txt:1: expected the image count"),
        (lambda ls: ls.__setitem__(1, "Smiling Male"), r"list_attr_celeba.txt:2: expected the 40"),
        (lambda ls: ls.__setitem__(4, ls[4] + "  1  1"), r"list_attr_celeba.txt:5: .*fix the row"),
        (lambda ls: ls.__setitem__(3, ls[3][:-3] + "  0"), r":4: Young of 000002.jpg is '0';"),
        (lambda ls: ls.__setitem__(6, ls[6][:31]), r":7: .* of 000005.jpg is a missing value"),
        (lambda ls: ls.__setitem__(5, ls[2]), r":6: image 000001.jpg is listed twice"),
    ],
    ids=["count", "names", "extra-values", "zero", "short-row", "duplicate"],
)
def test_malformed_label_files_stop_with_file_and_line(official_root, edit, expected):
    root, _ = official_root
    lines = (root / "list_attr_celeba.txt").read_text().splitlines()
    edit(lines)
    (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=expected):
        dataset.scan(root)


def test_missing_pieces_are_named(tmp_path, official_root):
    with pytest.raises(DataError, match="no such directory"):
        dataset.find_files(tmp_path / "nowhere")
    root, _ = official_root
    (root / "list_attr_celeba.txt").unlink()
    with pytest.raises(DataError, match=r"no list_attr_celeba\.txt"):
        dataset.find_files(root)


def test_undecodable_images_are_skipped_and_counted(official_root, tmp_path):
    root, attrs = official_root
    (root / "img_align_celeba" / "000003.jpg").write_bytes(b"not a jpeg at all")
    (root / "img_align_celeba" / "000005.jpg").write_bytes(b"")  # zero bytes
    cache = dataset.build_cache(root, 32, tmp_path / "cache", workers=1, progress=False)
    assert cache.manifest["count"] == 4
    assert cache.manifest["skipped"]["images that do not decode"] == 2
    assert cache.manifest["failed_images"] == ["000003.jpg", "000005.jpg"]
    np.testing.assert_array_equal(cache.attributes, np.delete(attrs, [2, 4], axis=0))
    assert "2 images that do not decode" in dataset.summary_line(cache)


# ------------------------------------------------------------------------- cache


def test_cache_is_reused_then_rebuilt_when_the_source_changes(official_root, tmp_path):
    root, _ = official_root
    first = dataset.build_cache(root, 32, tmp_path / "cache", workers=1, progress=False)
    again = dataset.build_cache(root, 32, tmp_path / "cache", workers=1, progress=False)
    assert again.manifest == first.manifest  # reused, not rebuilt
    lines = (root / "list_attr_celeba.txt").read_text().splitlines()
    lines[2] = lines[2][:-3] + ("  1" if lines[2].endswith("-1") else " -1")
    (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    rebuilt = dataset.build_cache(root, 32, tmp_path / "cache", workers=1, progress=False)
    assert rebuilt.manifest["fingerprint"] != first.manifest["fingerprint"]
    assert rebuilt.attributes[0, -1] != first.attributes[0, -1]
    assert rebuilt.images.shape == (6, 32, 32, 3) and rebuilt.images.dtype == np.uint8


def test_interrupted_build_leaves_no_cache_that_looks_valid(official_root, tmp_path, monkeypatch):
    root, _ = official_root
    cache_root = tmp_path / "cache"

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(dataset, "_compact", interrupted)
    with pytest.raises(KeyboardInterrupt):
        dataset.build_cache(root, 32, cache_root, workers=1, progress=False)
    assert list(cache_root.iterdir()) == []  # staging folder removed, nothing half-written
    monkeypatch.undo()
    cache = dataset.build_cache(root, 32, cache_root, workers=1, progress=False)
    assert cache.manifest["count"] == 6


def test_cache_without_manifest_is_not_used(official_root, tmp_path):
    root, _ = official_root
    cache = dataset.build_cache(root, 32, tmp_path / "cache", workers=1, progress=False)
    (cache.path / "manifest.json").unlink()  # as if killed before the manifest
    with pytest.raises(DataError, match=r"manifest\.json: cannot read it"):
        dataset.open_cache(cache.path)
    rebuilt = dataset.build_cache(root, 32, tmp_path / "cache", workers=1, progress=False)
    assert json.loads((rebuilt.path / "manifest.json").read_text())["count"] == 6


def test_unsupported_image_size_is_refused(official_root, tmp_path):
    with pytest.raises(CommandError, match="--image-size 48"):
        dataset.build_cache(official_root[0], 48, tmp_path / "cache")


# ----------------------------------------------------------------------- batches


@pytest.fixture
def real_cache(tmp_path):
    return dataset.build_cache(need(HALF_RES), 32, tmp_path / "cache", progress=False)


def test_batches_have_fixed_shapes_ranges_and_true_labels(real_cache):
    batches = dataset.CelebaBatches(real_cache, "train", batch_size=48, seed=1, flip=False)
    assert len(batches) == 8000 // 48
    images, attrs = batches[3]
    assert images.shape == (48, 32, 32, 3) and images.dtype == np.float32
    assert attrs.shape == (48, 40) and attrs.dtype == np.float32
    assert images.min() >= -1 and images.max() <= 1 and images.std() > 0.2
    assert set(np.unique(attrs)) == {0.0, 1.0}
    rows = batches.batch_rows(3)
    np.testing.assert_array_equal(attrs, real_cache.attributes[rows])
    np.testing.assert_allclose(images, pixels.to_float(real_cache.images[rows]))


def test_batches_are_deterministic_per_seed_and_reshuffled_per_epoch(real_cache):
    a = dataset.CelebaBatches(real_cache, batch_size=32, seed=7)
    b = dataset.CelebaBatches(real_cache, batch_size=32, seed=7)
    c = dataset.CelebaBatches(real_cache, batch_size=32, seed=8)
    np.testing.assert_array_equal(a[5][0], b[5][0])
    assert not np.array_equal(a[5][1], c[5][1])
    before = a[0][1]
    a.on_epoch_end()
    assert not np.array_equal(before, a[0][1])
    b.set_epoch(1)
    np.testing.assert_array_equal(a[0][0], b[0][0])


def test_flip_mirrors_images(real_cache):
    plain = dataset.CelebaBatches(real_cache, batch_size=64, seed=2, flip=False)[0][0]
    flipped = dataset.CelebaBatches(real_cache, batch_size=64, seed=2, flip=True)[0][0]
    mirrored = np.all(flipped == plain[:, :, ::-1], axis=(1, 2, 3))
    same = np.all(flipped == plain, axis=(1, 2, 3))
    assert mirrored.sum() > 10 and same.sum() > 10 and (mirrored | same).all()


def test_batch_larger_than_split_is_a_clear_error(real_cache):
    with pytest.raises(DataError, match="larger than the 0 images of split 'test'"):
        dataset.CelebaBatches(real_cache, "test", batch_size=8)


def test_normalisation_round_trips():
    values = np.arange(256, dtype=np.uint8)
    floats = pixels.to_float(values)
    assert floats.min() == -1 and floats.max() == 1
    np.testing.assert_array_equal(pixels.to_uint8(floats), values)


# ---------------------------------------------------------------------------- CLI


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return run_script("dataset.py", *args)


def test_cli_bad_data_dir_is_one_line_and_nonzero(tmp_path):
    result = run_cli("info", "--data-dir", str(tmp_path / "missing"))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert "no such directory" in result.stderr


def test_cli_info_reports_splits_and_frequencies(tmp_path):
    root, attrs = make_official_root(tmp_path / "celeba", count=9)
    result = run_cli("info", "--data-dir", str(root), "--cache-dir", str(tmp_path / "c"))
    assert result.returncode == 0, result.stderr
    assert "train=3  val=3  test=3  all=9" in result.stdout
    young = attrs[:, ATTRIBUTES.index("Young")].mean()
    line = next(x for x in result.stdout.splitlines() if x.strip().startswith("Young"))
    assert f"{young:.1%}" in line


def test_cli_info_plot_draws_the_frequencies(tmp_path):
    root, _ = make_official_root(tmp_path / "celeba", count=9)
    chart = tmp_path / "charts" / "frequencies.png"
    result = run_cli(
        "info", "--data-dir", str(root), "--cache-dir", str(tmp_path / "c"), "--plot", str(chart)
    )
    assert result.returncode == 0, result.stderr
    assert f"chart: {chart}" in result.stdout
    with Image.open(chart) as picture:
        assert picture.format == "PNG" and picture.size == (1200, 450)

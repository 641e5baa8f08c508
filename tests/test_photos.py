"""photos.py: a folder of photos the project has never seen, with no label files,
becomes a CelebA root: faces found and aligned as CelebA's, photos without a face
counted, pseudo-labels from the classifier, and dcgan.py trains on the folder itself,
with those labels or without attributes."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pandas as pd
import pytest
from conftest import FULL_RES_SAMPLE, need, run_script, tiny_run, write_jpeg
from PIL import Image

import dataset
import dcgan
import evaluate
import photos
import pixels
import runs
from attributes import ATTRIBUTES

pytest.importorskip("mtcnn", reason="mtcnn (requirements.txt) finds the faces")
cv2.setNumThreads(1)  # as photos.faces_in does, so that the cache's forked workers run


def as_photo(face: np.ndarray, angle: float, scale: float) -> np.ndarray:
    """A CelebA face turned, scaled and set in a larger frame, as a camera would."""
    height, width = face.shape[:2]
    canvas = (int(width * scale * 2.5), int(height * scale * 2))
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle, scale)
    matrix[:, 2] += (canvas[0] - width) / 2, (canvas[1] - height) / 2
    return cv2.warpAffine(face, matrix, canvas, borderMode=cv2.BORDER_REPLICATE)


# Where each photo of the folder came from, in the full-resolution sample.
SOURCES = {
    name: f"{i:06d}.jpg"
    for i, name in enumerate(
        ["a.jpg", "trip/b.JPG", "trip/c.png", "trip/day2/d.webp", "e.jpeg", "f.jpg"]
        + [f"more/{i}.jpg" for i in range(7, 11)],
        1,
    )
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Ten faces (plain, turned and enlarged, as PNG and WebP, in subfolders), two
    photos without a face, one broken file and a text file."""
    sample = need(FULL_RES_SAMPLE) / "img_align_celeba"
    root = tmp_path_factory.mktemp("photos")
    (root / "trip" / "day2").mkdir(parents=True)
    faces = [cv2.imread(str(sample / f"{i:06d}.jpg")) for i in range(1, 7)]
    cv2.imwrite(str(root / "a.jpg"), faces[0])
    cv2.imwrite(str(root / "trip" / "b.JPG"), as_photo(faces[1], 15, 3))
    cv2.imwrite(str(root / "trip" / "c.png"), as_photo(faces[2], -10, 1.5))
    Image.fromarray(faces[3][..., ::-1]).save(root / "trip" / "day2" / "d.webp")
    cv2.imwrite(str(root / "e.jpeg"), faces[4])
    cv2.imwrite(str(root / "f.jpg"), as_photo(faces[5], 0, 0.8))
    (root / "more").mkdir()
    for i in range(7, 11):
        (root / "more" / f"{i}.jpg").write_bytes((sample / SOURCES[f"more/{i}.jpg"]).read_bytes())
    write_jpeg(root / "noise.jpg", 3, (300, 200))
    cv2.imwrite(str(root / "wall.png"), np.full((120, 160, 3), 128, np.uint8))
    (root / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    (root / "notes.txt").write_text("not a photo")
    return root


@pytest.fixture(scope="module")
def classifier_file(tmp_path_factory):
    """An untrained classifier, its output biases set so that every probability is
    decided (none within rounding of 0.5)."""
    path = tmp_path_factory.mktemp("classifier") / "classifier.keras"
    classifier = evaluate.build_classifier(32, width=8)
    head = classifier.get_layer("attributes")
    kernel, _ = head.get_weights()
    signs = np.random.default_rng(0).choice([-3.0, 3.0], len(ATTRIBUTES))
    head.set_weights([kernel * 0.01, signs.astype(np.float32)])
    classifier.save(path)
    return path


@pytest.fixture(scope="module")
def built(folder, classifier_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("roots") / "mine"
    return out, photos.build(folder, out, classifier_file)


def test_faces_are_kept_and_the_rest_counted(built):
    out, summary = built
    assert (
        summary
        == f"{out}: 10 faces from 13 photos; skipped: 1 undecodable, 2 without a detectable face"
    )
    manifest = json.loads((out / "photos.json").read_text())
    assert manifest["faces"] == 10 and manifest["photos"] == 13
    assert manifest["skipped"] == {"undecodable": 1, "without a detectable face": 2}
    table = pd.read_csv(out / "photos.csv")
    assert sorted(table["source"]) == sorted(SOURCES)


def test_faces_are_aligned_as_celeba_whatever_the_turn_and_scale(built):
    """Each aligned face is as close to CelebA's mean landmarks as the CelebA face it
    came from (which lies 1 to 6 px from them per landmark), turned and scaled or not;
    a face cut at the wrong place, size or turn lies tens of pixels off."""
    from mtcnn import MTCNN

    out, _ = built
    detector = MTCNN(device="CPU:0")

    def offset(image: np.ndarray) -> float:
        landmarks, _ = photos.detect(detector, image)
        return float(np.sqrt(((landmarks - photos.CELEBA_LANDMARKS) ** 2).sum(1).mean()))

    table = pd.read_csv(out / "photos.csv")
    for name, source in zip(table["name"], table["source"]):
        aligned = np.asarray(Image.open(out / "img_align_celeba" / name))
        assert aligned.shape == (218, 178, 3)
        original = np.asarray(Image.open(FULL_RES_SAMPLE / "img_align_celeba" / SOURCES[source]))
        assert offset(aligned) < offset(original) + 2, source


def test_pseudo_labels_are_the_classifiers_on_the_usual_crop(built, classifier_file):
    out, _ = built
    table = pd.read_csv(out / "photos.csv")
    classifier, _ = evaluate.load_classifier(classifier_file)
    cache = dataset.build_cache(out, 32, progress=False)
    predicted = classifier.predict(pixels.to_float(cache.images), verbose=0)
    np.testing.assert_allclose(table[list(ATTRIBUTES)].to_numpy(), predicted, atol=0.02)
    labels = dataset.read_attributes(out / "list_attr_celeba.txt").to_numpy()
    np.testing.assert_array_equal(labels, table[list(ATTRIBUTES)].to_numpy() > 0.5)
    confidence = json.loads((out / "photos.json").read_text())["label_confidence"]
    expected = np.abs(2 * table[list(ATTRIBUTES)].to_numpy() - 1).mean(0)
    np.testing.assert_allclose(list(confidence.values()), expected, atol=1e-3)


def test_dcgan_trains_on_the_folder_itself(folder, classifier_file, tmp_path, capsys):
    """--data-dir is the folder of photos; the root is built once in the cache, and a
    resumed run finds it again."""
    cache = tmp_path / "cache"
    labels = ["--attributes", f"classifier:{classifier_file}", "--batch-size", "8"]
    argv = [*tiny_run(folder, tmp_path / "run", steps=1), *labels]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FACEGAN_CACHE_DIR", str(cache))
        assert dcgan.main(argv) == 0
        assert "10 faces from 13 photos" in capsys.readouterr().err
        assert dcgan.main([*argv, "--resume", "--epochs", "2"]) == 0
    assert "found before" in capsys.readouterr().err
    (manifest,) = cache.glob("photos-*/photos.json")  # one root, beside its image cache
    assert len(dataset.read_attributes(manifest.parent / "list_attr_celeba.txt")) == 10
    assert len(list((tmp_path / "run" / "checkpoints").glob("epoch-*"))) == 2


def test_a_changed_folder_or_damaged_root_is_built_again(folder, classifier_file, tmp_path):
    photos_dir = tmp_path / "photos"
    photos_dir.mkdir()
    for name in ("a.jpg", "e.jpeg"):
        (photos_dir / name).write_bytes((folder / name).read_bytes())
    root = photos.prepared(photos_dir, classifier_file, tmp_path)
    assert len(pd.read_csv(root / "photos.csv")) == 2
    (root / "photos.json").write_text('{"version": 1}')
    assert photos.prepared(photos_dir, classifier_file, tmp_path) == root
    assert json.loads((root / "photos.json").read_text())["faces"] == 2
    (photos_dir / "f.jpg").write_bytes((folder / "f.jpg").read_bytes())
    grown = photos.prepared(photos_dir, classifier_file, tmp_path)
    assert grown != root and len(pd.read_csv(grown / "photos.csv")) == 3


def test_a_labelled_root_refuses_a_classifier(built, classifier_file, tmp_path):
    out, _ = built
    labels = ("--attributes", f"classifier:{classifier_file}")
    result = run_script("dcgan.py", *tiny_run(out, tmp_path / "run", steps=1), *labels)
    assert result.returncode == 2
    assert "which has labels" in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "run").exists()


def test_a_photo_folder_without_attributes_says_how(folder, tmp_path):
    result = run_script("dcgan.py", *tiny_run(folder, tmp_path / "run", steps=1))
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .endswith("add --attributes classifier:PATH to dcgan.py")
    )
    assert not (tmp_path / "run").exists()


def test_bad_input_is_one_line_and_writes_nothing(folder, classifier_file, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        ([str(tmp_path / "missing")], "no such folder"),
        ([str(empty)], "no .jpg, .jpeg, .png or .webp files"),
        ([str(folder / "trip"), "--out", str(folder)], "already holds files"),
        ([str(folder), "--classifier", str(folder / "notes.txt")], "not a readable Keras model"),
    ]
    for args, message in cases:
        out = tmp_path / "out"
        argv = args if "--out" in args else [*args, "--out", str(out)]
        if "--classifier" not in argv:
            argv += ["--classifier", str(classifier_file)]
        result = run_script("photos.py", *argv)
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip().splitlines()[-1].startswith("error: ")
        assert message in result.stderr and not out.exists()


def test_dcgan_trains_on_the_folder_without_attributes(folder, tmp_path, capsys):
    """--attributes none: no classifier, every attribute absent in the root, a run
    saved as unconditional whose faces come alone and whose attribute requests are
    refused in one line."""
    cache, run = tmp_path / "cache", tmp_path / "run"
    argv = [*tiny_run(folder, run, steps=1), "--attributes", "none", "--batch-size", "8"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FACEGAN_CACHE_DIR", str(cache))
        assert dcgan.main(argv) == 0
    (manifest,) = cache.glob("photos-*/photos.json")
    assert json.loads(manifest.read_text())["classifier"] is None
    assert not dataset.read_attributes(manifest.parent / "list_attr_celeba.txt").to_numpy().any()
    checkpoint = runs.find_checkpoint(run)
    assert runs.read_state(checkpoint)["settings"]["conditional"] is False
    probes = runs.load_checkpoint(checkpoint, compile=False).probes
    assert len(np.unique(probes[:, 40:], axis=0)) == len(probes)  # a noise per grid face
    faces = ["generate", "--checkpoint", str(run), "--count", "4"]
    assert dcgan.main([*faces, "--out", str(tmp_path / "faces")]) == 0
    assert len(list((tmp_path / "faces").glob("face-*.png"))) == 4
    for asked in (["--attrs", "Smiling"], ["--flip", "Smiling"], ["--sweep", "Smiling"]):
        out = tmp_path / "refused"
        result = run_script("dcgan.py", *faces, *asked, "--out", str(out))
        assert result.returncode == 2, result.stderr
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("error: ") and "trained without attributes" in last
        assert not out.exists()

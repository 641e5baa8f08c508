"""evaluate.py: the scores, flip test, diversity, classifier, report and --eval-every."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from conftest import tiny_run, train_tiny_classifier

import bias
import checkpoints
import dataset
import dcgan
import evaluate
import fid_inception
import pixels
from attributes import ATTRIBUTES, INDEX
from quiet_keras import keras


def test_balanced_accuracy_does_not_reward_the_majority_class():
    wanted = np.zeros((100, 40), np.uint8)
    wanted[:5] = 1  # every attribute rare: 5 %
    always_off = np.zeros_like(wanted)
    scores = evaluate.attribute_scores(always_off, wanted)
    np.testing.assert_allclose(scores["accuracy"], 0.95)
    np.testing.assert_allclose(scores["balanced"], 0.5)
    perfect = evaluate.attribute_scores(wanted, wanted)
    np.testing.assert_allclose(perfect["balanced"], 1.0)


def test_balanced_accuracy_with_one_class_present_is_its_recall():
    wanted = np.zeros((10, 40), np.uint8)
    predicted = np.zeros_like(wanted)
    predicted[:3] = 1
    np.testing.assert_allclose(evaluate.attribute_scores(predicted, wanted)["balanced"], 0.7)


def test_pairwise_distance_is_zero_for_copies_and_matches_a_direct_loop():
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (6, 8, 8, 3))
    assert evaluate.mean_pairwise_distance(np.repeat(images[:1], 5, axis=0)) == pytest.approx(
        0, abs=1e-6
    )
    direct = np.mean(
        [np.sqrt(np.mean((images[i] - images[j]) ** 2)) for i in range(6) for j in range(i + 1, 6)]
    )
    assert evaluate.mean_pairwise_distance(images) == pytest.approx(direct, rel=1e-9)


def test_colour_noise_sees_colour_blotches_and_not_smooth_colour_or_grey_texture():
    """Chroma's high frequencies: none in flat or slowly changing colour, next to none in
    texture of brightness alone (hair, wrinkles), much in patches of colour."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(0.6, 1, 64)[None, None, :, None]  # brighter to the right
    smooth = np.broadcast_to(np.array([200, 150, 120]) * ramp, (4, 64, 64, 3)).astype(np.uint8)
    grey = rng.integers(-40, 40, (4, 64, 64, 1))
    textured = np.clip(smooth.astype(int) + grey, 0, 255).astype(np.uint8)
    blotched = smooth.copy()
    for image in blotched:
        for _ in range(12):
            y, x = rng.integers(0, 56, 2)
            image[y : y + 8, x : x + 8] = rng.integers(0, 256, 3)
    assert evaluate.colour_noise(np.full((2, 64, 64, 3), 90, np.uint8)) == 0
    assert evaluate.colour_noise(smooth) < 0.5  # the ramp's steps of one 8-bit level
    assert evaluate.colour_noise(textured) == pytest.approx(evaluate.colour_noise(smooth), abs=0.05)
    assert evaluate.colour_noise(blotched) > 10 * evaluate.colour_noise(textured)
    # The blur scales with the side: the same faces at twice the size score alike.
    doubled = blotched.repeat(2, axis=1).repeat(2, axis=2)
    assert evaluate.colour_noise(doubled) == pytest.approx(evaluate.colour_noise(blotched), rel=0.1)


class IgnoresAttributes:
    """A generator stub whose image depends on the noise only."""

    def predict(self, inputs, batch_size=None, verbose=0):
        noise = np.asarray(inputs)[:, 40:41]
        return np.broadcast_to(noise[:, :, None, None], (len(inputs), 4, 4, 3)).copy()


class RandomClassifier:
    """A classifier stub that reads a fixed pseudo-random function of the image."""

    def predict(self, images, batch_size=None, verbose=0):
        seed = (np.abs(np.asarray(images)).sum(axis=(1, 2, 3)) * 1e4).astype(np.int64)
        return np.stack([np.random.default_rng(s).random(40) for s in seed])


def test_flip_test_of_a_generator_that_ignores_attributes_is_near_zero():
    rows = np.random.default_rng(1).integers(0, 2, (500, 40)).astype(np.uint8)
    rates = evaluate.flip_rates(
        IgnoresAttributes(), RandomClassifier(), rows, noise_dim=4, count=200
    )
    assert rates.shape == (40,) and rates.max() == 0  # same image, same prediction


def test_control_accuracy_of_an_attribute_blind_generator_is_near_chance():
    rows = np.random.default_rng(2).integers(0, 2, (500, 40)).astype(np.uint8)
    attrs, images = evaluate.requested_faces(IgnoresAttributes(), rows, noise_dim=4, count=1000)
    scores = evaluate.attribute_scores(evaluate.classify(RandomClassifier(), images), attrs)
    assert abs(scores["balanced"].mean() - 0.5) < 0.05


def test_held_out_split_without_test_partition_is_a_disjoint_fraction(synth_root, tmp_path):
    cache = dataset.build_cache(synth_root, 32, tmp_path / "cache", progress=False)
    cache.partition[:] = 0  # as in the shared real subset: everything in train
    train, held_out = evaluate.evaluation_split(cache)
    assert len(held_out) == 40 and len(train) == 360
    assert not set(train) & set(held_out)


def test_classifier_learns_a_rendered_attribute(synth_root, tmp_path):
    cache = dataset.build_cache(synth_root, 32, tmp_path / "cache", progress=False)
    model = evaluate.train_classifier(cache, epochs=8, batch_size=32, verbose=0)
    scores = evaluate.real_ceiling(model, cache)
    assert scores["balanced"][INDEX["Male"]] > 0.85
    assert scores["balanced"][INDEX["Blond_Hair"]] > 0.85
    assert evaluate.classifier_path(cache).is_file()
    loaded = evaluate.load_or_train_classifier(cache)
    assert isinstance(loaded, keras.Model)
    assert loaded.get_layer("features").output.shape[-1] == 256


def test_visible_attributes_leave_out_the_synthetic_label_only_ones(synth_root, tmp_path):
    cache = dataset.build_cache(synth_root, 32, tmp_path / "cache", progress=False)
    visible = evaluate.visible_attributes(cache)
    assert visible.sum() == 39 and not visible[INDEX["Attractive"]]


@pytest.fixture(scope="module")
def monitored_run(synth_root, tmp_path_factory):
    """The classifier trained from the CLI, then two tiny epochs with --eval-every 1."""
    train_tiny_classifier(synth_root)
    out = tmp_path_factory.mktemp("run") / "run"
    assert (
        dcgan.main([*tiny_run(synth_root, out, steps=2), "--epochs", "2", "--eval-every", "1"]) == 0
    )
    return out


def test_eval_every_logs_metrics_beside_the_losses(monitored_run):
    lines = (monitored_run / "metrics.csv").read_text().splitlines()
    assert lines[0].split(",") == [
        "epoch",
        "attr_accuracy",
        "attr_balanced",
        "frechet",
        "frechet_real",
        "diversity",
        "fid",
        "fid_real",
        "kid",
    ]
    rows = [dict(zip(lines[0].split(","), map(float, line.split(",")))) for line in lines[1:]]
    assert [row["epoch"] for row in rows] == [1, 2]
    assert all(0 <= row["attr_accuracy"] <= 1 and row["frechet"] > 0 for row in rows)
    assert rows[0]["frechet_real"] == rows[1]["frechet_real"]  # one fixed real baseline
    if importlib.util.find_spec("torch") is not None:  # the cheap standard FID too
        assert all(row["fid"] > row["fid_real"] > 0 and np.isfinite(row["kid"]) for row in rows)
    best = max(rows, key=lambda row: row["attr_balanced"])
    assert checkpoints.pointed(monitored_run, "BEST").name == f"epoch-{int(best['epoch']):04d}"


def test_report_json_chart_and_scored_faces(monitored_run, synth_root, tmp_path, capsys):
    out = tmp_path / "eval"
    args = ["--checkpoint", str(monitored_run), "--data-dir", str(synth_root), "--count", "40"]
    assert evaluate.main([*args, "--no-fid", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["epoch"] == 2 and report["generated_images"] == 40
    assert list(report["attributes"]) == list(ATTRIBUTES)
    for row in report["attributes"].values():
        assert set(row) == {
            "generated_accuracy",
            "generated_balanced",
            "real_accuracy",
            "real_balanced",
            "flip_rate",
            "visible",
        }
    summary = report["summary"]
    assert summary["visible_attributes"] == 39
    for key in ("generated_accuracy", "generated_accuracy_visible", "real_balanced_visible"):
        assert 0 <= summary[key] <= 1
    classifier = report["distances"]["classifier"]
    assert classifier["images"] == 40  # the synthetic test partition of 400 faces
    assert classifier["frechet"]["generated"] > classifier["frechet"]["real_baseline"] > 0
    assert set(classifier["kid"]) == {
        "generated",
        "generated_std",
        "real_baseline",
        "real_baseline_std",
    }
    assert report["distances"]["fid_inception"] == {"skipped": "standard FID skipped (--no-fid)"}
    scored = np.load(out / "generated.npz")
    assert scored["images"].shape == (40, 32, 32, 3) and scored["images"].dtype == np.uint8
    assert summary["colour_noise_generated"] == evaluate.colour_noise(scored["images"])
    assert 0 < summary["colour_noise_real"] < summary["colour_noise_generated"]
    assert scored["attributes"].shape == (40, 40)
    assert (out / "attribute_accuracy.png").stat().st_size > 5000
    made = report["bias"]["production"]
    assert list(made) == list(ATTRIBUTES)
    classifier = evaluate.load_or_train_classifier(dataset.build_cache(synth_root, 32))
    predicted = evaluate.classify(classifier, pixels.to_float(scored["images"]))
    np.testing.assert_allclose([made[n]["generated"] for n in ATTRIBUTES], predicted.mean(0))
    tone = report["bias"]["skin_tone"]
    assert tone["images"] == {"real": 40, "generated": 40}
    assert sum(tone["histogram"]["generated"]) == 40
    assert sum(tone["generated"][name] for name, _ in bias.BANDS) == pytest.approx(1)
    for chart in ("attribute_production.png", "skin_tone.png"):
        assert (out / chart).stat().st_size > 5000
    printed = capsys.readouterr().out
    assert "mean, visible" in printed and "Fréchet, classifier features" in printed
    assert "colour noise (high-frequency chroma, 8-bit levels): generated" in printed
    assert "most over-produced" in printed and "skin tone (ITA bands" in printed


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="PyTorch not installed")
def test_standard_fid_beside_its_real_baseline_with_the_real_features_cached(
    monitored_run, synth_root, tmp_path, capsys
):
    args = ["--checkpoint", str(monitored_run), "--data-dir", str(synth_root), "--count", "24"]
    assert evaluate.main([*args, "--out", str(tmp_path / "a")]) == 0
    first = capsys.readouterr()
    found = json.loads((tmp_path / "a" / "report.json").read_text())["distances"]["fid_inception"]
    assert found["features"] == fid_inception.DESCRIPTION and found["images"] == 24
    assert found["frechet"]["generated"] > found["frechet"]["real_baseline"] > 0
    assert "FID, standard Inception" in first.out and "real faces (cached)" in first.err
    assert evaluate.main([*args, "--out", str(tmp_path / "b")]) == 0
    assert "real faces (cached)" not in capsys.readouterr().err  # read back, not recomputed
    again = json.loads((tmp_path / "b" / "report.json").read_text())["distances"]["fid_inception"]
    assert again == found


def test_without_the_fid_inception_evaluation_says_so_in_one_line_and_goes_on(
    monitored_run, synth_root, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    args = ["--checkpoint", str(monitored_run), "--data-dir", str(synth_root), "--count", "24"]
    assert evaluate.main([*args, "--out", str(tmp_path / "eval")]) == 0
    skipped = [line for line in capsys.readouterr().err.splitlines() if "FID" in line]
    assert skipped == [
        f"standard FID needs PyTorch's CPU build: {fid_inception.INSTALL}; standard FID skipped"
    ]
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert report["distances"]["fid_inception"] == {"skipped": skipped[0]}

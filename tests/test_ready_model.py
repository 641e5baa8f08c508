"""ready_model.py: the shipped generator's export and load, what it refuses, and the
commands' choice of it when no run exists."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import make_official_root, tiny_run

import dcgan
import generation
import ready_model
from cli import UsageError

REPORT = {
    "epoch": 1,
    "summary": {
        "generated_accuracy_visible": 0.61,
        "generated_balanced_visible": 0.55,
        "real_accuracy_visible": 0.93,
        "flip_rate": 0.2,
        "diversity_generated_same_attributes": 0.4,
    },
}


@pytest.fixture(scope="module")
def run(synth_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run"
    assert dcgan.main([*tiny_run(synth_root, out, 3), "--epochs", "1"]) == 0
    return out


@pytest.fixture
def exported(run, tmp_path):
    (tmp_path / "report.json").write_text(json.dumps(REPORT))
    ready_model.export(run, tmp_path / "report.json", "python dcgan.py ...", tmp_path / "ready")
    return tmp_path / "ready"


def test_the_shipped_form_makes_the_faces_of_the_run_within_float16(run, exported):
    shipped = ready_model.load(exported)
    model = generation.FaceModel.checkpoint(run)
    inputs = np.random.default_rng(0).normal(size=(6, 48)).astype(np.float32)
    inputs[:, :40] = inputs[:, :40] > 0
    np.testing.assert_allclose(
        shipped.generator.predict(inputs, verbose=0), model.images(inputs), atol=0.02
    )
    np.testing.assert_array_equal(shipped.attribute_rows, model.attribute_rows)
    assert shipped.card["evaluation"]["generated_accuracy_visible"] == 0.61
    assert "diversity_generated_same_attributes" not in shipped.card["evaluation"]
    assert shipped.card["command"] == "python dcgan.py ..."


def test_a_model_trained_on_celeba_is_refused(tmp_path):
    root, _ = make_official_root(tmp_path / "celeba", count=40)
    out = tmp_path / "run"
    argv = [*tiny_run(root, out, 1), "--epochs", "1", "--batch-size", "8"]
    assert dcgan.main(argv) == 0
    (tmp_path / "report.json").write_text(json.dumps(REPORT))
    with pytest.raises(UsageError, match="not on the synthetic faces; only a synthetic-trained"):
        ready_model.export(out, tmp_path / "report.json", "x", tmp_path / "ready")
    assert not (tmp_path / "ready").exists()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda f: f.with_suffix(".npz").write_bytes(b"PK\x03\x04 not the weights"), "SHA-256"),
        (lambda f: f.with_suffix(".npz").unlink(), "synthetic.npz: cannot read it"),
        (lambda f: f.write_text('{"epoch": "one"}'), "synthetic.json: field"),
    ],
)
def test_a_damaged_ready_model_is_named_with_the_fix(exported, damage, message):
    damage(exported / "synthetic.json")
    with pytest.raises(ready_model.ReadyModelError, match=message) as error:
        ready_model.load(exported)
    assert "git checkout -- ready" in str(error.value)


def test_generate_uses_the_ready_model_when_no_run_exists_and_says_so(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    assert dcgan.main(["generate", "--count", "2", "--out", "faces"]) == 0
    assert "using the ready model trained on the synthetic faces" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "faces").iterdir())[-1] == "grid.png"


def test_a_run_in_the_default_folder_is_used_before_the_ready_model(run, tmp_path, monkeypatch):
    shutil.copytree(run, tmp_path / "runs" / "dcgan")
    monkeypatch.chdir(tmp_path)
    model = generation.FaceModel.open(None)
    assert model.source == "runs/dcgan" and model.shape == (32, 32, 3)


def test_the_shipped_ready_model_loads_and_records_how_it_was_made():
    shipped = ready_model.load()
    size = shipped.card["settings"]["image_size"]
    assert shipped.generator.output_shape[1:] == (size, size, 3)
    assert shipped.card["command"].startswith("python dcgan.py")
    assert len(shipped.attribute_rows) > 1000
    assert sum(f.stat().st_size for f in ready_model.READY.iterdir()) < 8_000_000


def test_switching_eyeglasses_on_the_ready_model_changes_the_eyes_most():
    model = generation.FaceModel.ready()
    switched = generation.flips(generation.Request(model, ""), ["Eyeglasses"], 32, seed=0)
    change = np.abs(switched.images[1] - switched.images[0]).mean(axis=(0, 2, 3))  # per row
    eyes = slice(27, 38)  # the eye band of a 64x64 synthetic face
    assert change[eyes].mean() > 2 * np.delete(change, np.r_[eyes]).mean()

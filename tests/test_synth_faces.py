"""synth_faces.py: official layout, CelebA-like frequencies, visible attributes."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import HALF_RES, need

import dataset
import synth_faces
from attributes import ATTRIBUTES, INDEX


def test_files_are_in_the_official_layout(synth_root):
    lines = (synth_root / "list_attr_celeba.txt").read_text().splitlines()
    assert lines[0] == "400"
    assert lines[1].split() == list(ATTRIBUTES)
    name, *values = lines[2].split()
    assert name == "000001.jpg" and len(values) == 40 and set(values) <= {"-1", "1"}
    assert lines[2] == name + "".join(f"{int(v):3d}" for v in values)  # CelebA's spacing
    partition = (synth_root / "list_eval_partition.txt").read_text().split()
    assert partition[:2] == ["000001.jpg", "0"] and partition[-2:] == ["000400.jpg", "2"]
    jpegs = sorted((synth_root / "img_align_celeba").iterdir())
    assert len(jpegs) == 400 and jpegs[0].name == "000001.jpg"


def test_set_reads_back_through_the_celeba_loader(synth_root, tmp_path):
    index = dataset.scan(synth_root)
    assert len(index.names) == 400 and not any(index.skipped.values())
    assert [int((index.partition == p).sum()) for p in (0, 1, 2)] == [320, 40, 40]
    np.testing.assert_array_equal(index.attributes, synth_faces.sample_attributes(400, seed=3))
    cache = dataset.build_cache(synth_root, 64, tmp_path / "cache", progress=False)
    assert cache.images.shape == (400, 64, 64, 3)


def test_frequencies_follow_celeba_and_exclusions_hold():
    rows = synth_faces.sample_attributes(50_000, seed=1)
    female, male = (np.array(pair) for pair in zip(*synth_faces.P_GIVEN_SEX.values()))
    p_male = synth_faces.P_MALE
    expected = dict(zip(synth_faces.P_GIVEN_SEX, (1 - p_male) * female + p_male * male))
    expected["Male"] = p_male
    for name in ATTRIBUTES:
        assert abs(rows[:, INDEX[name]].mean() - expected[name]) < 0.03, name
    hair = rows[:, [INDEX[n] for n in synth_faces.HAIR_COLOURS]]
    assert (hair.sum(1) <= 1).all()
    assert not (rows[:, INDEX["Bald"]].astype(bool) & hair.any(1)).any()
    assert not (rows[:, INDEX["Straight_Hair"]] & rows[:, INDEX["Wavy_Hair"]]).any()
    beards = rows[:, [INDEX[n] for n in synth_faces.BEARDS]].any(1)
    assert not (rows[:, INDEX["No_Beard"]].astype(bool) & beards).any()


def test_frequencies_within_five_points_of_the_real_file():
    real = dataset.read_attributes(need(HALF_RES) / "list_attr_celeba.txt").mean()
    synth = synth_faces.sample_attributes(20_000, seed=0).mean(0)
    gaps = {name: abs(real[name] - synth[i]) for i, name in enumerate(ATTRIBUTES)}
    assert max(gaps.values()) < 0.05, max(gaps.items(), key=lambda kv: kv[1])


def eye_and_rest_change(name: str, seed: int = 5) -> tuple[float, float]:
    """Mean pixel change inside and outside the eye band when ``name`` is switched on."""
    row = synth_faces.sample_attributes(1, seed=seed)[0]
    row[INDEX[name]] = 0
    off = synth_faces.render_face(row, np.random.default_rng(seed)).astype(float)
    row[INDEX[name]] = 1
    on = synth_faces.render_face(row, np.random.default_rng(seed)).astype(float)
    change = np.abs(on - off).mean(axis=2)
    eye_band = np.zeros(change.shape, bool)
    eye_band[95:130, 50:128] = True
    return change[eye_band].mean(), change[~eye_band].mean()


@pytest.mark.parametrize("seed", [5, 6, 7])
def test_eyeglasses_change_the_eye_region(seed):
    inside, outside = eye_and_rest_change("Eyeglasses", seed)
    assert inside > 8 and inside > 10 * outside


def test_label_only_attribute_changes_nothing():
    inside, outside = eye_and_rest_change("Attractive")
    assert inside == outside == 0


def test_rendering_is_deterministic_for_a_seed():
    rows = synth_faces.sample_attributes(3, seed=9)
    first = [synth_faces.render_face(r, np.random.default_rng([9, i])) for i, r in enumerate(rows)]
    again = [synth_faces.render_face(r, np.random.default_rng([9, i])) for i, r in enumerate(rows)]
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert first[0].shape == (218, 178, 3) and not np.array_equal(first[0], first[1])


def test_default_data_is_synthetic_when_no_celeba(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(dataset, "DEFAULT_CELEBA_DIR", tmp_path / "celeba")
    monkeypatch.setattr(dataset, "DEFAULT_SYNTH_DIR", tmp_path / "synthetic")
    root = dataset.resolve_data_dir(None, synth_count=50)
    assert root == tmp_path / "synthetic" and len(dataset.scan(root).names) == 50
    assert "No CelebA at" in capsys.readouterr().err
    mtime = (root / "list_attr_celeba.txt").stat().st_mtime_ns
    dataset.resolve_data_dir(None, synth_count=50)  # built once, then reused
    assert (root / "list_attr_celeba.txt").stat().st_mtime_ns == mtime

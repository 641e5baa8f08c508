"""benchmarks/quality_ab.py: a tiny A/B end to end, resumable, and its table's arithmetic."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from conftest import PROJECT, train_tiny_classifier

import cli

sys.path.insert(0, str(PROJECT / "benchmarks"))

import quality_ab

TINY = "--image-size 32 --batch-size 16 --noise-dim 8 --width 8 --steps-per-epoch 2"


def fake_report(fid: float, accuracy: float) -> dict:
    distance = {"frechet": {"generated": fid, "real_baseline": 2.0}, "kid": {"generated": 0.01}}
    return {
        "distances": {"fid_inception": distance, "classifier": distance},
        "summary": {
            "generated_accuracy_visible": accuracy,
            "generated_balanced_visible": accuracy,
            "real_accuracy_visible": 0.9,
            "flip_rate": 0.5,
            "diversity_generated_same_attributes": 0.3,
            "diversity_real_random_pairs": 0.6,
            "colour_noise_generated": 1.5,
            "colour_noise_real": 1.0,
        },
    }


def test_the_table_is_the_mean_and_spread_over_seeds_of_each_arm(tmp_path):
    for seed, fid in enumerate([10.0, 20.0, 30.0]):
        folder = tmp_path / f"base-s{seed}-eval"
        folder.mkdir()
        (folder / "report.json").write_text(json.dumps(fake_report(fid, 0.8)))
    (tmp_path / "base-s0-raw-eval").mkdir()
    (tmp_path / "base-s0-raw-eval" / "report.json").write_text(json.dumps(fake_report(40, 0.5)))
    lines = quality_ab.table(quality_ab.read_reports(tmp_path)).splitlines()
    assert lines[2].startswith("| base | 0,1,2 | 20.0 ± 10.0 | 2.0 ± 0.0 | 10.0 ± 0.0 |")
    assert "| 10.00 ± 5.00 | 80.0 ± 0.0 |" in lines[2] and lines[2].endswith("| 1.50 ± 0.00 |")
    assert lines[3].startswith("| base, raw | 0 | 40.0 | 2.0 | 10.0 | 20.00 | 50.0 |")


def test_a_report_from_before_colour_noise_shows_a_dash_in_its_arm(tmp_path):
    for seed, measured in enumerate([True, False]):
        report = fake_report(10.0, 0.8)
        if not measured:
            del report["summary"]["colour_noise_generated"], report["summary"]["colour_noise_real"]
        (tmp_path / f"old-s{seed}-eval").mkdir()
        (tmp_path / f"old-s{seed}-eval" / "report.json").write_text(json.dumps(report))
    (line,) = quality_ab.table(quality_ab.read_reports(tmp_path)).splitlines()[2:]
    assert line.startswith("| old | 0,1 | 10.0 ± 0.0 |") and line.endswith("| 0.50 ± 0.00 | - |")


def test_a_report_that_is_not_evaluates_is_named_with_its_first_wrong_field(tmp_path):
    (tmp_path / "base-s0-eval").mkdir()
    (tmp_path / "base-s0-eval" / "report.json").write_text('{"summary": {}}')
    with pytest.raises(cli.CommandError, match=r"base-s0-eval/report.json: not an evaluate.py"):
        quality_ab.read_reports(tmp_path)
    without_fid = fake_report(10.0, 0.8)
    without_fid["distances"]["fid_inception"] = {"skipped": "standard FID skipped (--no-fid)"}
    (tmp_path / "base-s0-eval" / "report.json").write_text(json.dumps(without_fid))
    with pytest.raises(cli.CommandError, match=r"field distances.fid_inception.frechet"):
        quality_ab.read_reports(tmp_path)


def test_a_tiny_ab_trains_evaluates_and_does_not_redo_what_is_done(synth_root, tmp_path, capsys):
    train_tiny_classifier(synth_root)
    argv = ["--data-dir", str(synth_root), "--out", str(tmp_path), "--seeds", "0"]
    argv += ["--arm", f"a={TINY} --ema-kimg 1 --augment cutout"]
    argv += ["--raw", "a", "--epochs", "1", "--count", "24"]
    capsys.readouterr()
    assert quality_ab.main(argv) == 0
    printed = capsys.readouterr().out.splitlines()
    assert [line.split(" | ")[0] for line in printed[2:]] == ["| a", "| a, raw"]
    reports = sorted(tmp_path.glob("*-eval/report.json"))
    stamps = [path.stat().st_mtime_ns for path in reports]
    assert quality_ab.main(argv) == 0  # everything there: nothing is trained or scored again
    assert [path.stat().st_mtime_ns for path in reports] == stamps
    assert "nothing to do" in (tmp_path / "a-s0.log").read_text()
    raw, average = (
        json.loads((tmp_path / f"a-s0{s}-eval/report.json").read_text()) for s in ("-raw", "")
    )
    assert raw["generator"] == "trained" and average["generator"] == "average"
    assert not np.isclose(
        raw["summary"]["diversity_generated_same_attributes"],
        average["summary"]["diversity_generated_same_attributes"],
    )

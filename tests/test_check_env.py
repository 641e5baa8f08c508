"""check_env.py: exit status and the names it reports."""

from __future__ import annotations

import subprocess

from conftest import HALF_RES, need, run_script


def run_check(*args: str) -> subprocess.CompletedProcess:
    return run_script("check_env.py", *args, timeout=120)


def test_ready_machine_exits_zero_and_reports_the_data():
    result = run_check("--data-dir", str(need(HALF_RES)))
    assert result.returncode == 0, result.stdout
    assert "backend tensorflow" in result.stdout
    assert "8000 labelled images" in result.stdout
    assert "[ok] package: keras" in result.stdout


def test_missing_package_exits_nonzero_naming_it(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("numpy\nsurely-not-installed-pkg==1.0  # comment\n")
    result = run_check("--requirements", str(requirements))
    assert result.returncode == 1
    assert "surely-not-installed-pkg: not installed" in result.stdout.split("Not ready")[1]


def test_invalid_data_dir_exits_nonzero(tmp_path):
    result = run_check("--data-dir", str(tmp_path))
    assert result.returncode == 1
    assert "no list_attr_celeba" in result.stdout

"""The code base stays ruff clean (configured in pyproject.toml)."""

import importlib.util
import subprocess
import sys

import pytest
from conftest import PROJECT


def test_ruff_is_clean():
    if importlib.util.find_spec("ruff") is None:
        pytest.skip("ruff is not installed: pip install -r requirements-dev.txt")
    command = [sys.executable, "-m", "ruff", "check", str(PROJECT)]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout

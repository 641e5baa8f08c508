"""data_validator.ipynb runs headless from top to bottom; a cell error fails the test."""

from __future__ import annotations

import os

import nbformat
import pytest
from conftest import PROJECT

nbclient = pytest.importorskip("nbclient", reason="pip install -r requirements-dev.txt")


def test_notebook_executes_without_errors(synth_root, tmp_path, monkeypatch):
    monkeypatch.setenv("FACEGAN_DATA_DIR", str(synth_root))
    monkeypatch.setenv("FACEGAN_CHECKPOINT", str(tmp_path / "no-run-here"))
    monkeypatch.setenv("FACEGAN_IMAGE_SIZE", "32")
    notebook = nbformat.read(PROJECT / "data_validator.ipynb", as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": PROJECT}}
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 4  # frequency bars, real faces, heatmaps, generated faces
    text = "".join(o.get("text", "") for o in outputs)
    assert "using the ready model (trained on the synthetic faces)" in text
    assert os.environ["FACEGAN_IMAGE_SIZE"] == "32"

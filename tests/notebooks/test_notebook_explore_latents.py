"""notebooks/explore_latents.ipynb runs top to bottom (tiny setting) and draws what it promises."""
from __future__ import annotations

import os
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "explore_latents.ipynb"


def _text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")


@pytest.mark.slow
def test_notebook_executes_and_draws_every_figure(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDSORA_NB_VAE_STEPS", "8")
    monkeypatch.setenv("MEDSORA_NB_CLIPS", "8")
    monkeypatch.setenv("MEDSORA_NB_OUT", str(tmp_path / "logs"))
    monkeypatch.delenv("MEDSORA_VAE_CKPT", raising=False)
    # headless, as on servers and CI: the notebook must still draw its figures inline
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit the notebook without outputs"
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent.parent)}}).execute()

    code = [c for c in nb.cells if c.cell_type == "code"]
    images = [o for c in code for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) == 5  # channels, PCA, interpolation, reconstruction, flow
    text = "\n".join(_text(c) for c in code)
    assert "trained the demo VAE for 8 steps" in text
    shapes = re.search(r"videos \((\d+), 3, (\d+), (\d+), (\d+)\) -> latents \((\d+), (\d+), (\d+), (\d+), (\d+)\)", text)
    n, f, h, w, n2, c, t, lh, lw = map(int, shapes.groups())
    assert (n, n2, c, t, lh, lw) == (8, 8, 4, 1 + (f - 1) // 4, h // 8, w // 8)
    assert len(re.findall(r"PSNR -?\d+\.\d+ dB, high-frequency error \d+\.\d+", text)) == 4
    assert re.search(r"nearest-centroid agreement in the 2-D projection: \d+%", text)
    assert "targets: (" in text
    assert re.search(r"^5 figures in \d+ s", text, re.M)

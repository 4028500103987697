"""benchmarks/gpu_suite.py runs (``--smoke``, CPU) and stops cleanly at its time budget."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture
def suite(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import gpu_suite
    return gpu_suite


def test_smoke_run_writes_every_row_and_the_section(suite, tmp_path):
    out, md = tmp_path / "suite.json", tmp_path / "results.md"
    assert suite.main(["--smoke", "--budget", "300", "--json", str(out), "--results", str(md)]) == 0
    rows = json.loads(out.read_text())["rows"]
    train = [r for r in rows if r["kind"] == "train"]
    # the preset with model.mamba_recompute=full (its plain name) and =off side by side, then the matched DiT
    assert [r["model"].split(" (depth")[0] for r in train] == ["tiny", "tiny (mamba_recompute=off)",
                                                                "full-attention DiT"]
    assert all(r["step_ms"] > 0 and r["tokens_per_s"] > 0 for r in train), train
    dit_params, tiny_params = train[2]["params_m"], train[0]["params_m"]
    assert abs(dit_params - tiny_params) / tiny_params < 0.5  # depth chosen to match the parameter count
    assert [r["seconds_per_clip"] > 0 for r in rows if r["kind"] == "sample"] == [True]
    text = md.read_text()
    assert "GPU suite (--smoke" in text and "Command: `python benchmarks/gpu_suite.py --smoke" in text
    assert "not run (no CUDA device)" in text


def test_a_spent_budget_skips_rows_instead_of_running_them(suite, tmp_path, capsys):
    out = tmp_path / "suite.json"
    assert suite.main(["--smoke", "--budget", "0", "--json", str(out), "--results", str(tmp_path / "r.md")]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert rows and all(r.get("note") == "skipped (budget)" for r in rows)
    assert "skipped (budget)" in capsys.readouterr().out  # printed row by row


def test_recompute_values_are_checked_and_select_the_rows(suite, tmp_path, capsys):
    with pytest.raises(SystemExit):
        suite.main(["--smoke", "--recompute", "full,partial", "--results", str(tmp_path / "r.md")])
    assert "--recompute: ['partial'] are not model.mamba_recompute values" in capsys.readouterr().err
    out = tmp_path / "suite.json"
    assert suite.main(["--smoke", "--recompute", "off", "--no-scan-rows", "--json", str(out),
                       "--results", str(tmp_path / "r.md")]) == 0
    train = [r["model"] for r in json.loads(out.read_text())["rows"] if r["kind"] == "train"]
    assert train[0] == "tiny (mamba_recompute=off)" and len(train) == 2, train

"""Variant names cannot write outside the sweep's --out folder."""
from __future__ import annotations

from pathlib import Path

import pytest

from medsora.sweeps.runner import variant_dir
from medsora.sweeps.spec import load_sweep


def test_variant_names_are_sanitised_and_stay_inside_out(tmp_path, monkeypatch):
    root = tmp_path / "configs"
    (root / "experiment").mkdir(parents=True)
    (root / "experiment" / "base.yaml").write_text("name: base\ndata:\n  root: /videos\n")
    monkeypatch.setenv("MEDSORA_CONFIG_DIR", str(root))
    sweep = tmp_path / "s.yaml"
    sweep.write_text('base: base\nvariants:\n  "..": []\n  "../../etc/x": []\n  ".hidden": []\n  ok.v1: []\n')
    names = [v.name for v in load_sweep(sweep).variants]
    assert names == ["variant", "etc-x", "hidden", "ok.v1"]
    out = tmp_path / "out"
    for name in names:
        assert variant_dir(out, name).resolve().parent == out.resolve()
    for bad in ("..", ".", "a/../../b"):
        with pytest.raises(ValueError, match="would write outside"):
            variant_dir(out, bad)
    assert not Path(tmp_path / "etc").exists()

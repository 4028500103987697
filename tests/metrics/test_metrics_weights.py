"""Local weight lookup and the messages a user gets when a network or a package is missing."""
from __future__ import annotations

import pytest
import torch

from medsora.metrics.registry import EvalOptions, build_metric
from medsora.metrics.weights import WEIGHTS, MissingPackage, MissingWeights, require_package, resolve_weights


def test_lookup_order_explicit_then_weights_dir_then_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.delenv("MEDSORA_WEIGHTS", raising=False)
    monkeypatch.setenv("MEDSORA_CACHE", str(tmp_path / "cache"))
    name = WEIGHTS["raft"].name
    hub = tmp_path / "hub" / "checkpoints" / name
    hub.parent.mkdir(parents=True)
    hub.write_bytes(b"")
    assert resolve_weights("raft") == hub  # only the library cache has it
    default = tmp_path / "cache" / "weights" / name
    default.parent.mkdir(parents=True)
    default.write_bytes(b"")
    assert resolve_weights("raft") == default  # $MEDSORA_CACHE/weights wins over the hub cache
    mine = tmp_path / "mine.pth"
    mine.write_bytes(b"")
    assert resolve_weights("raft", explicit=mine, weights_dir=tmp_path / "nowhere") == mine
    with pytest.raises(MissingWeights, match="mine2.pth"):
        resolve_weights("raft", explicit=tmp_path / "mine2.pth")


def test_folder_weights_need_a_folder(tmp_path):
    (tmp_path / "dino-vitb16").write_bytes(b"")  # a file where a transformers folder is expected
    with pytest.raises(MissingWeights, match=r"folder 'dino-vitb16'.*huggingface-cli download facebook/dino-vitb16"):
        resolve_weights("dino", weights_dir=tmp_path)


@pytest.mark.parametrize("metric, fragment", [
    ("fvd", "i3d_torchscript.pt"), ("subject_consistency", "dino-vitb16"),
    ("background_consistency", "clip-vit-base-patch32"), ("motion_smoothness", "raft_large_C_T_V2"),
    ("dynamic_degree", "raft_large_C_T_V2"), ("lpips", "alexnet-owt-7be5be79.pth"),
])
def test_each_metric_names_its_missing_file(tmp_path, monkeypatch, metric, fragment):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(MissingWeights, match=fragment):
        build_metric(metric, EvalOptions(weights_dir=str(tmp_path)))


def test_missing_package_says_how_to_install():
    with pytest.raises(MissingPackage, match="pip install surely-absent"):
        require_package("surely_absent_module_xyz", "surely-absent", "A metric")


def test_metrics_without_networks_need_no_weights(tmp_path):
    for name in ("temporal_flickering", "psnr", "ssim", "hf_error"):
        assert build_metric(name, EvalOptions(weights_dir=str(tmp_path))).name == name

"""The encode cache stores each clip's attribute columns; caches written before them read as none."""
from __future__ import annotations

import json

import torch

from medsora.data.cache import CacheDataset, shard_path, write_manifest, write_shard


def test_cache_items_carry_their_attributes(tmp_path):
    tensors = {"latent_mean": torch.zeros(2, 4, 2, 4, 4), "latent_std": torch.ones(2, 4, 2, 4, 4),
               "flow": torch.zeros(2, 2, 2, 2, 2)}
    records = [{"caption": "a", "modality": "ultrasound", "path": "u.mp4", "attributes": json.dumps({"heart_rate": 80})},
               {"caption": "b", "modality": "mri", "path": "m.mp4"}]  # written without the key
    write_shard(shard_path(tmp_path, "train", 0), tensors, records)
    write_manifest(tmp_path, {"splits": {"train": {"num_items": 2, "shard_size": 2}}, "scaling_factor": 1.0})
    data = CacheDataset(tmp_path, "train")
    assert json.loads(data[0]["attributes"]) == {"heart_rate": 80}
    assert json.loads(data[1]["attributes"]) == {}

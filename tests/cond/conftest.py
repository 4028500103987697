"""Fixtures: a tiny random T5 (real from_pretrained path) and a synthetic encode cache."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from medsora.cond import save_tiny_t5
from medsora.data.cache import shard_path, write_manifest, write_shard
from medsora.encoding.fingerprint import run_fingerprint

MODALITIES = ("endoscopy", "mri")
LATENT = (4, 2, 4, 4)  # C×T×h×w of a 5-frame 32×32 clip


@pytest.fixture(scope="session")
def tiny_t5(tmp_path_factory):
    return save_tiny_t5(tmp_path_factory.mktemp("tiny-t5"))


def write_modality_cache(cfg, n_train: int = 8, n_val: int = 2, text_encoder=None) -> torch.Tensor:
    """An encode cache at ``cfg.data.cache`` whose latents are +1 (endoscopy) or −1 (mri) plus noise.

    The fingerprint is the run's own, so the loaders accept it. With ``text_encoder`` (a
    ``T5TextEncoder``) the captions' features are precomputed as ``medsora.encode`` does.
    Returns the two patterns (2×C×T×h×w), in ``MODALITIES`` order.
    """
    from medsora.cond.text_encoder import text_encoder_identity
    from medsora.data.cache import text_settings
    from medsora.encode import encode_captions

    g = torch.Generator().manual_seed(0)
    patterns = torch.stack([torch.ones(LATENT), -torch.ones(LATENT)])
    root = Path(cfg.data.cache)
    splits = {}
    for split, n in (("train", n_train), ("val", n_val)):
        mods = [MODALITIES[i % 2] for i in range(n)]
        mean = patterns[[i % 2 for i in range(n)]] + 0.1 * torch.randn(n, *LATENT, generator=g)
        records = [{"caption": f"a {m} video with a polyp near the center" if i % 3 else "", "modality": m,
                    "path": f"{split}/{i}.mp4"} for i, m in enumerate(mods)]
        flow = torch.zeros(n, LATENT[1], LATENT[2] // 2, LATENT[3] // 2, 2)  # unused: align is off
        text = None
        if text_encoder is not None:
            text = encode_captions(text_encoder, cfg.cond, [r["caption"] for r in records], mods, "cpu",
                                   torch.float32)
        write_shard(shard_path(root, split, 0), {"latent_mean": mean, "latent_std": torch.full_like(mean, 0.05),
                                                 "flow": flow}, records, text=text)
        splits[split] = {"num_items": n, "shard_size": n}
    text_entry = None
    if text_encoder is not None:
        text_entry = {**text_settings(cfg.cond, text_encoder_identity(str(text_encoder.folder))),
                      "dim": text_encoder.dim, "dtype": "float32"}
    write_manifest(root, {"splits": splits, "scaling_factor": 1.0, "fingerprint": run_fingerprint(cfg),
                          "text": text_entry})
    return patterns


@pytest.fixture(scope="session")
def modality_cache():
    """:func:`write_modality_cache` (test modules cannot import conftest under importlib mode)."""
    return write_modality_cache

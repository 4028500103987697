"""Size presets: the ``configs/model/*.yaml`` files, built by name.

The YAML files are the single source of the preset values (config is data); this
module reads one into the typed ``ModelConfig`` schema and builds it, without
composing a whole run (which would need data/vae settings too).
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

from omegaconf import DictConfig, OmegaConf

from medsora.backbone.model import MedSoraDiT
from medsora.backbone.schema import ModelConfig
from medsora.config.fields import yaml_word

__all__ = ["PRESETS", "INTENDED_SIZE", "preset_config", "build_preset", "local_attention_keys"]

PRESETS = ("tiny", "medsora_s", "medsora_b", "medsora_l", "medsora_xl")
INTENDED_SIZE = {"tiny": 64, "medsora_s": 128, "medsora_b": 128, "medsora_l": 128, "medsora_xl": 128}
"""Clip side (pixels) each preset is meant for: the demo's 64 px, MedSora's 128² (8× VAE, patch 2)."""


def local_attention_keys(cfg, size: int) -> tuple[int, int]:
    """(keys a local-attention query sees, tokens in a frame) for ``model:`` settings at ``size``² clips.

    Local attention is only local when the first is smaller than the second.
    """
    side = size // 8 // int(cfg.patch)
    if cfg.local_attn == "raster1d":
        keys = min((2 * int(cfg.window_reach) + 1) * int(cfg.window), side * side)
    else:
        keys = min(int(cfg.window), side) ** 2 * (2 * int(cfg.window_frames) + 1)
    return keys, side * side


def preset_config(name: str, overrides: Sequence[str] = ()) -> DictConfig:
    """The typed ``model:`` section of ``configs/model/<name>.yaml`` plus ``overrides`` (``"depth=4"`` ...)."""
    from medsora.config import config_dir  # the config system imports this package's schema

    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; expected one of {PRESETS} (configs/model/<name>.yaml)")
    path = config_dir() / "model" / f"{name}.yaml"
    cfg = OmegaConf.merge(OmegaConf.structured(ModelConfig), OmegaConf.load(path), OmegaConf.from_dotlist(list(overrides)))
    for field in dataclasses.fields(ModelConfig):  # "mamba_recompute=off" means the word, as on the command line
        if "choices" in field.metadata:
            cfg[field.name] = yaml_word(cfg[field.name], field.metadata["choices"])
    return cfg


def build_preset(name: str, in_channels: int = 16, overrides: Sequence[str] = (), **kwargs) -> MedSoraDiT:
    """``MedSoraDiT.from_config(preset_config(name, overrides), in_channels, **kwargs)``.

    Wrap in ``with torch.device("meta"):`` to count parameters without allocating them.
    """
    return MedSoraDiT.from_config(preset_config(name, overrides), in_channels, **kwargs)

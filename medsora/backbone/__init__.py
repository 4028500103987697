"""The spatio-temporal Mamba diffusion backbone (MedSoraDiT), its sub-blocks and presets.

Names are imported lazily so that ``medsora.config.schema`` (which reads
``medsora.backbone.schema``) does not pull in the model code and ``medsora.ssm``.
"""
from __future__ import annotations

import importlib

from medsora.backbone.schema import BLOCK_TYPES, ModelConfig

_LAZY = {
    "MedSoraDiT": "medsora.backbone.model",
    "PRESETS": "medsora.backbone.presets",
    "preset_config": "medsora.backbone.presets",
    "build_preset": "medsora.backbone.presets",
}

__all__ = ["MedSoraDiT", "ModelConfig", "BLOCK_TYPES", "PRESETS", "preset_config", "build_preset"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'medsora.backbone' has no attribute {name!r}")

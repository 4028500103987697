"""Recurrent inference for the Mamba layers: the per-layer cache of conv and SSM states.

``InferenceParams`` has the fields of ``mamba_ssm.utils.generation.InferenceParams`` (either can be
passed to the layers): ``key_value_memory_dict[layer_idx] = (conv_state, ssm_state)`` and
``seqlen_offset``, the number of steps already consumed. With ``seqlen_offset == 0`` a layer's
forward starts fresh and fills the cache; afterwards a one-step input runs ``step()`` and, beyond
``mamba_ssm`` (which only decodes one token at a time), a longer input continues the scan from the
cached states in one parallel pass: how a temporal scan carries its state across the windows of a
long video. The caller advances ``seqlen_offset`` after each call, as with ``mamba_ssm``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch


@dataclass
class InferenceParams:
    max_seqlen: int
    max_batch_size: int
    seqlen_offset: int = 0
    batch_size_offset: int = 0
    key_value_memory_dict: dict = field(default_factory=dict)
    lengths_per_sample: Optional[torch.Tensor] = None

    def reset(self, max_seqlen: int, max_batch_size: int) -> None:
        self.max_seqlen, self.max_batch_size, self.seqlen_offset = max_seqlen, max_batch_size, 0
        if self.lengths_per_sample is not None:
            self.lengths_per_sample.zero_()


def layer_states(layer, inference_params, batch_size: int):
    """The ``(conv_state, ssm_state)`` of ``layer`` in the cache, allocated (zeros) on first use."""
    if layer.layer_idx is None:
        raise ValueError(f"{type(layer).__name__}: inference_params needs the layer built with layer_idx=<int> "
                         f"(its key in inference_params.key_value_memory_dict)")
    cache = inference_params.key_value_memory_dict
    if layer.layer_idx not in cache:
        cache[layer.layer_idx] = layer.allocate_inference_cache(batch_size, inference_params.max_seqlen)
    return cache[layer.layer_idx]

"""Frozen image encoder for ``align.target=flow_image`` (MedSora's flow image -> DINO ViT recipe).

Loaded only from a local path (``align.teacher.encoder``):

* a folder saved with ``transformers`` ``save_pretrained`` (e.g. a DINO ViT-S/8): its
  ``last_hidden_state`` patch tokens are used (leading CLS/register tokens dropped);
* a ``torch.export`` program (``.pt2``, exported with a dynamic batch dimension) or a
  TorchScript file (any other suffix), returning ``N×D×h×w`` feature maps or ``N×L×D``
  tokens (``L`` a square, or a square after up to 4 leading CLS/register tokens).
"""
from __future__ import annotations

import math
from pathlib import Path

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

# DINO / timm / torchvision ViTs are trained on ImageNet-normalised RGB.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class FlowImageEncoder(nn.Module):
    """Frozen encoder of flow images: ``uint8 N×3×H×W -> N×D×gh×gw`` patch features.

    Args:
        path: a transformers model folder, a ``.pt2`` exported program or a TorchScript file.
        size: images are resized (bilinear) to ``size×size`` before the encoder.
        layers: 1-based encoder layers whose hidden states are returned, concatenated along ``D``
            (MedSora's reference aligns backbone layer i with encoder layer i; transformers
            folders only); empty = the last hidden state.
    """

    def __init__(self, path: str, size: int = 224, layers: Sequence[int] = ()):
        super().__init__()
        p = Path(path).expanduser()
        if not p.exists():
            raise FileNotFoundError(
                f"align.teacher.encoder: {p} does not exist. target=flow_image needs a local image encoder: "
                "a transformers folder (model.save_pretrained(DIR), e.g. a DINO ViT), a torch.export .pt2 file "
                "or a TorchScript file; or use align.target=raft_motion / flow, which need no encoder."
            )
        self.path, self.size, self.layers = p, size, tuple(int(v) for v in layers)
        if self.layers and not p.is_dir():
            raise ValueError(f"align.teacher.per_layer: per-layer features need a transformers folder "
                             f"(output_hidden_states); {p} is an exported/TorchScript file")
        if p.is_dir():
            from transformers import AutoModel

            self.model = AutoModel.from_pretrained(str(p), local_files_only=True)
            self.kind = "transformers"
        elif p.suffix == ".pt2":
            self.model = torch.export.load(str(p)).module()
            self.kind = "exported"
        else:
            self.model = torch.jit.load(str(p), map_location="cpu")
            self.kind = "torchscript"
        for param in self.model.parameters():
            param.requires_grad_(False)
        self.train(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        with torch.no_grad():
            self.dim = int(self(torch.zeros(1, 3, size, size, dtype=torch.uint8)).shape[1])

    def train(self, mode: bool = True) -> "FlowImageEncoder":
        """Stays in eval mode: the encoder is frozen."""
        self.training = False
        if self.kind != "exported":  # exported graphs are fixed in inference form and refuse train()/eval()
            self.model.eval()
        return self

    def _tokens_to_map(self, tokens: torch.Tensor) -> torch.Tensor:
        n, length, dim = tokens.shape
        for drop in range(0, 5):  # CLS (+ up to 4 register tokens) lead the patch tokens
            side = math.isqrt(length - drop)
            if side * side == length - drop:
                return tokens[:, drop:].transpose(1, 2).reshape(n, dim, side, side)
        raise ValueError(f"{self.path}: cannot arrange {length} encoder tokens into a square patch grid")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``images: N×3×H×W`` uint8 flow images -> ``N×D×gh×gw`` features."""
        x = images.float().div(255.0)
        x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        x = (x - self.mean) / self.std
        if self.kind == "transformers" and self.layers:
            hidden = self.model(pixel_values=x, output_hidden_states=True).hidden_states
            if max(self.layers) >= len(hidden):
                raise ValueError(f"{self.path}: the encoder has {len(hidden) - 1} layers; align.layers asks for "
                                 f"layer {max(self.layers)}")
            out = torch.cat([hidden[i] for i in self.layers], dim=-1)
            patch = getattr(self.model.config, "patch_size", None)
            if patch:
                grid = self.size // patch
                out = out[:, -grid * grid:]
        elif self.kind == "transformers":
            out = self.model(pixel_values=x).last_hidden_state
            patch = getattr(self.model.config, "patch_size", None)
            if patch:  # keep exactly the patch tokens: the trailing (size/patch)² ones
                grid = self.size // patch
                out = out[:, -grid * grid:]
        else:
            out = self.model(x)
        if not torch.is_tensor(out):
            raise ValueError(f"{self.path}: the encoder must return a tensor, got {type(out).__name__}")
        if out.ndim == 4:
            return out
        if out.ndim == 3:
            return self._tokens_to_map(out)
        raise ValueError(f"{self.path}: expected N×D×h×w maps or N×L×D tokens, got shape {tuple(out.shape)}")

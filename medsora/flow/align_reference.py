"""MedSora's reference OFRA loss, reproduced exactly (``align=ofra_reference``).

The reference aligns the hidden states after *every* layer's spatial Mamba with the *matching
layer* of a frozen image encoder (DINO ViT-S/8) run on RAFT flow rendered as images:

1. each hidden state is layer-normalised without affine parameters;
2. the teacher's ``tokens × D_t`` feature matrix is resized to the hidden's ``tokens × D_h`` by
   bilinear interpolation, as if it were an image (``projector: resize``) — or, with our learned
   projector (``projector: mlp``), the hidden states were already projected to ``D_t``;
3. per sample, layer and feature dimension, ``1 − ρ`` with ``ρ`` the Pearson correlation of that
   dimension across all of the sample's tokens; averaged over dimensions and layers;
4. weighted per sample by ``1/(t+1)`` and averaged over the batch;
5. a hinge at ``margin`` (0.01) on that weighted mean: ``max(0, mean − margin)``.

Because the hinge comes after the weight, noisy steps (large t, small weight) fall under the margin
and get no alignment gradient: the term acts at low noise. Our default (:class:`AlignLoss`) correlates
per token, hinges before weighting and uses margin 0 (see README, "Flow alignment").
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ReferenceAlignLoss", "resize_features"]


def resize_features(features: torch.Tensor, tokens: int, dim: int) -> torch.Tensor:
    """The reference's bilinear resize of a ``B×N×D`` feature matrix to ``B×tokens×dim``."""
    if features.shape[1:] == (tokens, dim):
        return features
    return F.interpolate(features[:, None].float(), size=(tokens, dim), mode="bilinear", align_corners=False)[:, 0]


def _pearson_per_dim(h: torch.Tensor, f: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """``B×N×D, B×N×D -> B×D``: correlation of each feature dimension across the N tokens."""
    h = h - h.mean(dim=1, keepdim=True)
    f = f - f.mean(dim=1, keepdim=True)
    return (h * f).sum(1) / (h.norm(dim=1) * f.norm(dim=1)).clamp_min(eps)


class ReferenceAlignLoss(nn.Module):
    """The reference OFRA objective over several layers (module docstring).

    Args:
        weight: λ (reference 0.1), multiplied into the ``align`` term.
        margin: hinge margin on the weighted mean (reference 0.01).
        projector: ``resize`` (the reference's bilinear resize of the teacher features) or ``mlp``
            (hidden states already projected to the teacher's width by learned projectors).
    """

    def __init__(self, weight: float = 0.1, margin: float = 0.01, projector: str = "resize", layers: int = 1,
                 per_layer_targets: bool = False):
        super().__init__()
        if projector not in ("resize", "mlp"):
            raise ValueError(f"align.projector={projector!r}: use 'resize' (the reference) or 'mlp'")
        self.weight, self.margin, self.projector = weight, margin, projector
        self.layers, self.per_layer_targets = layers, per_layer_targets

    def forward(self, hiddens, targets, t: torch.Tensor) -> dict:
        """As :meth:`layerwise`, for lists or for layer-concatenated tensors.

        Tensors: the backbone's align output ``B×T×h×w×(L·D)`` is split into the ``L = layers``
        aligned layers; the teacher's targets likewise when ``per_layer_targets`` (the encoder's
        matching layers), else the one target (RAFT features, flow) serves every layer.
        """
        if torch.is_tensor(hiddens):
            hiddens = list(hiddens.chunk(self.layers, dim=-1))
        if torch.is_tensor(targets):
            targets = list(targets.chunk(self.layers, dim=-1)) if self.per_layer_targets else [targets] * len(hiddens)
        return self.layerwise(hiddens, targets, t)

    def layerwise(self, hiddens: Sequence[torch.Tensor], targets: Sequence[torch.Tensor], t: torch.Tensor) -> dict:
        """Alignment terms.

        Args:
            hiddens: per aligned layer, ``B×…×D_h`` hidden states (token axes flattened here).
            targets: per aligned layer, the matching teacher features ``B×…×D_t`` (no gradient).
            t: ``B`` timesteps (integers for DDPM; for flow matching ``1000·t``, see README).
        Returns:
            ``{"align": λ·L, "align_raw": L, "align_sim": mean ρ (detached)}``.
        """
        if len(hiddens) != len(targets) or not hiddens:
            raise ValueError(f"align=ofra_reference: {len(hiddens)} hidden layers for {len(targets)} teacher layers")
        per_layer, sims = [], []
        for h, f in zip(hiddens, targets):
            b = h.shape[0]
            h = F.layer_norm(h.float().reshape(b, -1, h.shape[-1]), (h.shape[-1],))
            f = f.detach().float().reshape(b, -1, f.shape[-1])
            if self.projector == "resize":
                f = resize_features(f, h.shape[1], h.shape[2])
            elif f.shape != h.shape:
                raise ValueError(f"align.projector=mlp: projected hidden {tuple(h.shape)} vs teacher {tuple(f.shape)}")
            rho = _pearson_per_dim(h, f)
            per_layer.append((1.0 - rho).mean(dim=1))
            sims.append(rho.detach().mean())
        per_sample = torch.stack(per_layer).mean(dim=0) / (t.float() + 1.0)
        raw = F.relu(per_sample.mean() - self.margin)
        return {"align": self.weight * raw, "align_raw": raw, "align_sim": torch.stack(sims).mean()}

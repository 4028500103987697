"""Outputs of the backbone: the adaLN final layer, unpatchify, and the alignment projector."""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["FinalLayer", "unpatchify", "AlignProjector"]


class FinalLayer(nn.Module):
    """DiT's final layer: ``x: B×T×h×w×D, c: B×D -> B×T×h×w×(patch²·out_channels)``.

    Its modulation and output linear are zeroed by ``initialize_weights`` so the
    untrained model predicts exactly zero.
    """

    def __init__(self, hidden: int, patch: int, out_channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 2 * hidden))
        self.linear = nn.Linear(hidden, patch * patch * out_channels)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c)[:, None, None, None, :].chunk(2, dim=-1)
        return self.linear(self.norm(x) * (1 + scale) + shift)


def unpatchify(x: torch.Tensor, patch: int, channels: int) -> torch.Tensor:
    """x: B×T×h×w×(patch·patch·C) -> B×C×T×(h·patch)×(w·patch)."""
    b, t, h, w, _ = x.shape
    x = x.reshape(b, t, h, w, patch, patch, channels).permute(0, 6, 1, 2, 4, 3, 5)
    return x.reshape(b, channels, t, h * patch, w * patch)


class AlignProjector(nn.Module):
    """REPA's projector ``Linear-SiLU-Linear-SiLU-Linear`` applied per token.

    ``x: B×T×h×w×hidden -> B×T×h×w×out_dim``; it lives in the backbone so the
    alignment loss can stay a pure function of features and targets.
    """

    def __init__(self, hidden: int, projector_hidden: int, out_dim: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(hidden, projector_hidden), nn.SiLU(),
            nn.Linear(projector_hidden, projector_hidden), nn.SiLU(),
            nn.Linear(projector_hidden, out_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

"""The residual unit every sub-block shares: adaLN-Zero around a token mixer."""
from __future__ import annotations

import abc
from typing import Optional

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

__all__ = ["SubBlock", "MLPBlock"]


class SubBlock(nn.Module, abc.ABC):
    """``x + gate ⊙ mix(norm(x) ⊙ (1 + scale) + shift)`` with ``shift, scale, gate`` from ``c``.

    Subclasses implement :meth:`mix` on the modulated grid ``h: B×T×H×W×D`` and set
    ``kind`` (the name used in ``model.blocks``). The modulation linear is zeroed by
    ``MedSoraDiT.initialize_weights`` (adaLN-Zero), so a fresh sub-block is the identity.
    The normalisation has no affine parameters: adaLN's shift/scale replace them (DiT).
    """

    kind = "base"
    # Recompute this sub-block in backward, keeping only its input (``model.checkpoint_blocks``).
    checkpointed = False

    @classmethod
    @abc.abstractmethod
    def from_config(cls, cfg, layer_index: int, context_dim: int) -> "SubBlock":
        """The sub-block of layer ``layer_index`` (0-based) for the ``model:`` settings ``cfg``
        (:class:`medsora.backbone.schema.ModelConfig`); ``context_dim`` is the condition tokens' width.

        Each kind reads the settings it needs here, so a new option of a kind is a schema
        field plus this method and the code that uses it.
        """

    def __init__(self, hidden: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 3 * hidden))

    @abc.abstractmethod
    def mix(self, h: torch.Tensor, context: Optional[torch.Tensor], context_mask: Optional[torch.Tensor]) -> torch.Tensor:
        """h: B×T×H×W×D (normalised, modulated) -> B×T×H×W×D, before the gate."""

    def forward(
        self,
        x: torch.Tensor,
        c: torch.Tensor,
        context: Optional[torch.Tensor] = None,
        context_mask: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """x: B×T×H×W×D, c: B×D -> B×T×H×W×D."""
        if self.checkpointed and torch.is_grad_enabled():
            return checkpoint(self._residual, x, c, context, context_mask, use_reentrant=False)
        return self._residual(x, c, context, context_mask)

    def _residual(self, x, c, context, context_mask):
        shift, scale, gate = self.adaLN_modulation(c)[:, None, None, None, :].chunk(3, dim=-1)
        h = self.norm(x) * (1 + scale) + shift
        return x + gate * self.mix(h, context, context_mask)


class MLPBlock(SubBlock):
    """DiT's pointwise MLP (``Linear-GELU(tanh)-Linear``) as an adaLN-Zero sub-block.

    Closes every layer when ``model.mlp_ratio > 0``; MedSora's own blocks have none.
    """

    kind = "mlp"

    def __init__(self, hidden: int, mlp_ratio: float):
        super().__init__(hidden)
        inner = int(hidden * mlp_ratio)
        self.fc1 = nn.Linear(hidden, inner)
        self.act = nn.GELU(approximate="tanh")
        self.fc2 = nn.Linear(inner, hidden)

    @classmethod
    def from_config(cls, cfg, layer_index: int, context_dim: int) -> "MLPBlock":
        return cls(cfg.hidden, cfg.mlp_ratio)

    def mix(self, h, context, context_mask):
        return self.fc2(self.act(self.fc1(h)))

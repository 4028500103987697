"""The encoded condition handed to the backbone, and its batching for guidance."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass
class Condition:
    """What the backbone receives from :class:`medsora.cond.ConditionEncoder`.

    Attributes:
        pooled: B×hidden — added to the timestep embedding (adaLN-Zero modulation).
        tokens: B×S×hidden — context of the ``cross_attn`` blocks; ``None`` without text.
        mask: B×S bool, True for a real token; ``None`` without text.
    """

    pooled: Tensor
    tokens: Optional[Tensor] = None
    mask: Optional[Tensor] = None

    @property
    def batch_size(self) -> int:
        return self.pooled.shape[0]

    def model_kwargs(self) -> dict:
        """Keyword arguments of ``MedSoraDiT.forward``: ``cond``, ``context``, ``context_mask``."""
        return {"cond": self.pooled, "context": self.tokens, "context_mask": self.mask}

    def pad_to(self, length: int) -> "Condition":
        """The same condition with tokens right-padded to ``length`` by masked zeros.

        Padding changes nothing under masked attention; it lets conditions of different
        caption lengths be concatenated along the batch (CFG's two branches).
        """
        if self.tokens is None:
            return self
        extra = length - self.tokens.shape[1]
        if extra < 0:
            raise ValueError(f"cannot pad {self.tokens.shape[1]} tokens to {length}")
        return Condition(self.pooled, F.pad(self.tokens, (0, 0, 0, extra)), F.pad(self.mask, (0, extra), value=False))

    @staticmethod
    def cat(conditions: Sequence["Condition"]) -> "Condition":
        """Stack conditions along the batch (e.g. conditional + unconditional for CFG), see :meth:`pad_to`."""
        if not conditions:
            raise ValueError("Condition.cat needs at least one condition")
        with_text = {c.tokens is not None for c in conditions}
        if len(with_text) != 1:
            raise ValueError("Condition.cat: cannot mix conditions with and without text tokens")
        pooled = torch.cat([c.pooled for c in conditions])
        if not with_text.pop():
            return Condition(pooled)
        length = max(c.tokens.shape[1] for c in conditions)
        padded = [c.pad_to(length) for c in conditions]
        return Condition(pooled, torch.cat([c.tokens for c in padded]), torch.cat([c.mask for c in padded]))

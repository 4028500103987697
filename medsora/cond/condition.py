"""The encoded condition handed to the backbone, and its batching for guidance."""
from __future__ import annotations

from dataclasses import dataclass, replace
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
        context_latents: B×C×T×h×w clean latents the clip must contain (first frame for
            image-to-video, the previous window's last frames for long video), see
            :class:`medsora.cond.context.ContextLatents`; ``None`` without context channels.
        context_mask: B×1×T×h×w bool, where ``context_latents`` are given.

    The pooled vector already sums timestep-free conditions: modality, text and the named
    attributes (each with its null embedding for classifier-free guidance).
    """

    pooled: Tensor
    tokens: Optional[Tensor] = None
    mask: Optional[Tensor] = None
    context_latents: Optional[Tensor] = None
    context_mask: Optional[Tensor] = None

    @property
    def batch_size(self) -> int:
        return self.pooled.shape[0]

    def model_kwargs(self) -> dict:
        """Keyword arguments of ``MedSoraDiT.forward``: ``cond``, ``context``, ``context_mask``, and with
        context latents ``context_latents``, ``context_latent_mask`` (samplers keep them clean)."""
        kwargs = {"cond": self.pooled, "context": self.tokens, "context_mask": self.mask}
        if self.context_latents is not None:
            kwargs.update(context_latents=self.context_latents, context_latent_mask=self.context_mask)
        return kwargs

    def with_context(self, context) -> "Condition":
        """This condition with ``context`` (a :class:`ContextLatents`, or ``None`` for none) attached."""
        if context is None:
            return replace(self, context_latents=None, context_mask=None)
        return replace(self, context_latents=context.latents, context_mask=context.mask)

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
        return replace(self, tokens=F.pad(self.tokens, (0, 0, 0, extra)), mask=F.pad(self.mask, (0, extra), value=False))

    @staticmethod
    def cat(conditions: Sequence["Condition"]) -> "Condition":
        """Stack conditions along the batch (e.g. conditional + unconditional for CFG), see :meth:`pad_to`."""
        if not conditions:
            raise ValueError("Condition.cat needs at least one condition")
        with_text = {c.tokens is not None for c in conditions}
        if len(with_text) != 1:
            raise ValueError("Condition.cat: cannot mix conditions with and without text tokens")
        if len({c.context_latents is not None for c in conditions}) != 1:
            raise ValueError("Condition.cat: cannot mix conditions with and without context latents")
        pooled = torch.cat([c.pooled for c in conditions])
        context = {}
        if conditions[0].context_latents is not None:
            context = {"context_latents": torch.cat([c.context_latents for c in conditions]),
                       "context_mask": torch.cat([c.context_mask for c in conditions])}
        if not with_text.pop():
            return Condition(pooled, **context)
        length = max(c.tokens.shape[1] for c in conditions)
        padded = [c.pad_to(length) for c in conditions]
        return Condition(pooled, torch.cat([c.tokens for c in padded]), torch.cat([c.mask for c in padded]), **context)

"""The condition of a training batch: modality/text/attributes with their CFG dropout, plus the
first-frame context of image-to-video — the part of a training step that belongs to ``medsora.cond``.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from medsora.cond.condition import Condition
from medsora.cond.context import ContextLatents

__all__ = ["batch_condition", "first_frame_context"]


def first_frame_context(x0: Tensor) -> ContextLatents:
    """Latent frame 0 of ``x0`` (B×C×T×h×w) as context: the causal VAE encodes video frame 0 alone into it."""
    return ContextLatents.frames(x0[:, :, :1], [0], x0.shape[2])


def batch_condition(encoder, cond_cfg, batch: dict, x0: Tensor, rng, train: bool,
                    hidden: int) -> tuple[Optional[Condition], dict[str, Tensor]]:
    """The :class:`Condition` of a batch, and logged-only terms.

    Every random draw comes from ``rng`` (:class:`medsora.training.batch_random.BatchRandom`), in a fixed
    order — whole-condition dropout, then per-attribute dropout, then first-frame dropout, each only
    when that condition exists — so resumed and multi-process runs draw what one process would.

    Args:
        encoder: the run's :class:`medsora.cond.ConditionEncoder` or ``None``.
        cond_cfg: the ``cond:`` section (``dropout``, ``first_frame``, ``first_frame_dropout``).
        batch: the data batch (``caption``, ``modality``, ``attributes`` JSON rows, ``path``,
            ``text_hidden``/``text_mask`` from an encode cache).
        x0: B×C×T×h×w scaled clean latents (their frame 0 is the image-to-video context).
        train: draw CFG dropout (training) or condition on everything (validation).
        hidden: the backbone's width (a zero pooled vector when only the context conditions).
    Returns:
        (condition or ``None``, ``{"attr_missing/<name>": share of clips without a value}``).
    """
    n = x0.shape[0]
    device = x0.device
    logged: dict[str, Tensor] = {}
    cond = None
    if encoder is not None:
        drop = rng.rand((n,)) < cond_cfg.dropout if train else torch.zeros(n, dtype=torch.bool, device=device)
        specs = encoder.attribute_specs
        attributes, attribute_drop = None, {s.name: torch.zeros(n, dtype=torch.bool, device=device) for s in specs}
        if specs:
            attributes = encoder.attribute_batch(batch.get("attributes") or [None] * n, n, batch.get("path"))
            if train:
                attribute_drop = encoder.attribute_dropout(n, rng.rand((n, len(specs))))
            for name, missing in attributes.missing().items():
                logged[f"attr_missing/{name}"] = torch.tensor(missing / n, device=device)
        text = None
        if "text_hidden" in batch and encoder.text_encoder is not None and not encoder.use_template:
            from medsora.cond.text_encoder import TextFeatures

            text = TextFeatures(batch["text_hidden"], batch["text_mask"])  # precomputed by medsora.encode
        cond = encoder(captions=batch.get("caption"), modalities=batch.get("modality"), drop=drop, text=text,
                       attributes=attributes, attribute_drop=attribute_drop)
    first, first_dropout = ((encoder.first_frame, encoder.first_frame_dropout) if encoder is not None
                            else (bool(cond_cfg.first_frame), float(cond_cfg.first_frame_dropout)))
    if first:
        context = first_frame_context(x0)
        if train and first_dropout > 0:
            context = context.drop(rng.rand((n,)) < first_dropout)
        if cond is None:
            cond = Condition(torch.zeros(n, hidden, device=device, dtype=x0.dtype))
        cond = cond.with_context(context)
    return cond, logged

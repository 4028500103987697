"""Caption policy: manifest captions, the modality template, Bora's stage-1 replacement.

Token-level truncation needs the tokenizer and lives in :mod:`medsora.cond.text_encoder`.
"""
from __future__ import annotations

from typing import Optional, Sequence

TEMPLATE_KEY = "{modality}"


def check_template(template: str) -> str:
    """Return ``template`` if it names the modality, else raise a :class:`ValueError` naming ``cond.template``."""
    if TEMPLATE_KEY not in template:
        raise ValueError(
            f"cond.template = {template!r} must contain '{TEMPLATE_KEY}' "
            "(e.g. 'This is a {modality} video.')"
        )
    return template


def _as_list(values: Optional[Sequence[Optional[str]]], batch_size: int, name: str) -> list:
    if values is None:
        return [None] * batch_size
    if len(values) != batch_size:
        raise ValueError(f"{name}: got {len(values)} entries for a batch of {batch_size}")
    return list(values)


def prepare_captions(
    captions: Optional[Sequence[Optional[str]]],
    modalities: Optional[Sequence[Optional[str]]],
    batch_size: int,
    template: str,
    use_template: bool = False,
) -> list[Optional[str]]:
    """The text each sample is conditioned on.

    A caption that is absent (``None``), empty or blank becomes ``template`` filled with
    the sample's modality; with ``use_template`` (Bora stage 1, modality alignment) every
    caption does. A sample with neither caption nor modality gets ``None``: it has no
    text, and the condition encoder gives it the null text.

    Args:
        captions: B strings (or ``None`` entries), or ``None`` for no captions at all.
        modalities: B modality names (or ``None`` entries), or ``None``.
        batch_size: B.
        template: e.g. ``"This is a {modality} video."``.
        use_template: replace every caption by the template.
    Returns:
        B stripped captions or ``None`` entries.
    """
    captions = _as_list(captions, batch_size, "captions")
    modalities = _as_list(modalities, batch_size, "modalities")
    texts: list[Optional[str]] = []
    for caption, modality in zip(captions, modalities):
        caption = (caption or "").strip()
        if use_template or not caption:
            modality = (modality or "").strip()
            texts.append(template.format(modality=modality) if modality else None)
        else:
            texts.append(caption)
    return texts

"""Conditioning: modality class embedding, frozen T5 captions (Bora), named clinical attributes and
context latents (image-to-video, long video), with CFG dropout.

``build_condition_encoder(cfg.cond, cfg.model.hidden, modalities)`` gives a
:class:`ConditionEncoder` (or ``None``); calling it on a batch's captions/modalities
gives a :class:`Condition` whose ``model_kwargs()`` feed ``MedSoraDiT.forward``.

Names are imported on first access: ``medsora.config.schema`` imports ``medsora.cond.schema``,
and composing a config must not pay for importing diffusers.
"""
from importlib import import_module

_EXPORTS = {
    "AttributeBatch": "attributes",
    "AttributeEmbedding": "attributes",
    "AttributeSpec": "attributes",
    "AttributeValueError": "attribute_spec",
    "attribute_specs": "attribute_spec",
    "ContextLatents": "context",
    "apply_context": "context",
    "check_template": "captions",
    "prepare_captions": "captions",
    "Condition": "condition",
    "ConditionEncoder": "encoder",
    "build_condition_encoder": "encoder",
    "masked_mean": "encoder",
    "ModalityEmbedding": "modality",
    "normalise_modality": "modality",
    "CaptionTruncatedWarning": "text_encoder",
    "T5TextEncoder": "text_encoder",
    "TextFeatures": "text_encoder",
    "text_encoder_identity": "text_encoder",
    "save_tiny_t5": "tiny_t5",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'medsora.cond' has no attribute {name!r}")
    return getattr(import_module(f"medsora.cond.{_EXPORTS[name]}"), name)

"""A tiny randomly initialised T5 encoder + tokenizer, saved as a ``from_pretrained`` folder.

For tests and offline smoke runs of text conditioning (like the tiny-config models
of diffusers' and transformers' own tests): it exercises the real loading and encoding
path with no download, and carries no language knowledge. The tokenizer is T5's
Unigram tokenizer (transformers' ``T5Tokenizer``, backed by ``tokenizers``, no
sentencepiece needed) over whole words of medical-video captions plus single
characters, so any ASCII text tokenises (unknown words letter by letter).
"""
from __future__ import annotations

import string
from pathlib import Path

import torch

CAPTION_WORDS = (
    "This is a an the of with and in on near video endoscopy colonoscopy ultrasound echocardiogram "
    "mri microscopy cell cells polyp center view four-chamber heart moving camera tissue"
).split()


def save_tiny_t5(folder: str | Path, d_model: int = 32, num_layers: int = 2, seed: int = 0) -> Path:
    """Write a tiny random ``T5EncoderModel`` and its tokenizer to ``folder``.

    Args:
        folder: created if needed; afterwards ``cond.text_encoder=folder`` loads it.
        d_model: T5 hidden size (the text feature width D).
        num_layers: encoder layers.
        seed: weight initialisation seed (same seed, same weights).
    Returns:
        The folder.
    """
    from transformers import T5Config, T5EncoderModel, T5Tokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    vocab += [(f"▁{w}", -1.0) for w in CAPTION_WORDS]
    vocab += [(c, -5.0) for c in string.ascii_letters + string.digits + string.punctuation]
    tokenizer = T5Tokenizer(vocab=vocab, extra_ids=0)
    tokenizer.save_pretrained(folder)
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=d_model,
        d_kv=max(d_model // 4, 4),
        d_ff=2 * d_model,
        num_layers=num_layers,
        num_heads=4,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=32,
        feed_forward_proj="gated-gelu",  # T5 v1.1, as Bora's and Open-Sora's T5-XXL
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = T5EncoderModel(config)
    model.save_pretrained(folder)
    return folder

"""Frozen T5 text encoder loaded from a local folder, and its (cacheable) features.

Caption features are precomputed into the encode cache by ``python -m medsora.encode``
(:func:`medsora.encode.encode_captions`: the training caption policy, then
:meth:`TextFeatures.unpack` per item); the cache's collate pads them back
(:func:`medsora.data.cache.collate_items`) and training passes
``TextFeatures(batch["text_hidden"], batch["text_mask"])`` to the condition encoder.

Stage-1 (template) runs encode the templates online instead; with precomputed
features the T5 weights are never loaded (the model is loaded on first use).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
OBTAIN_HINT = (
    "point cond.text_encoder at a folder holding a T5 encoder saved with save_pretrained "
    "(config.json, the weights, the tokenizer files), e.g. "
    "`huggingface-cli download google/t5-v1_1-xxl --local-dir PATH` on a machine with internet "
    "(Bora and Open-Sora use T5 v1.1 XXL; google/t5-v1_1-base is enough for small runs)"
)


class CaptionTruncatedWarning(UserWarning):
    """A caption had more tokens than ``cond.max_tokens`` and was cut."""


@dataclass
class TextFeatures:
    """T5 features of a batch of captions.

    Attributes:
        hidden: B×S×D last hidden states, zero at padding.
        mask: B×S bool, True for a real token (a prefix of each row); an all-False row
            is a sample without text.
    """

    hidden: Tensor
    mask: Tensor

    def unpack(self, dtype: Optional[torch.dtype] = None) -> list[Tensor]:
        """Per-sample L_i×D tensors of the real tokens (on the CPU), for a cache."""
        hidden = self.hidden.detach().cpu()
        if dtype is not None:
            hidden = hidden.to(dtype)
        return [h[m] for h, m in zip(hidden, self.mask.cpu())]

    @staticmethod
    def pack(items: Sequence[Tensor]) -> "TextFeatures":
        """Inverse of :meth:`unpack`: right-pad L_i×D tensors into B×S×D (float32) with a mask."""
        hidden = pad_sequence([h.float() for h in items], batch_first=True)
        lengths = torch.tensor([h.shape[0] for h in items])
        mask = torch.arange(hidden.shape[1])[None, :] < lengths[:, None]
        return TextFeatures(hidden, mask)


WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.pt", "*.pth")
HEAD_BYTES = 1 << 20


def text_encoder_identity(path: Optional[str]) -> Optional[str]:
    """A short fingerprint of a T5 folder, or ``None`` when the folder is not on this machine.

    Hashes ``config.json``, the tokenizer files, and each weight file's name, size and
    first MiB (the safetensors header and the first tensors): any other checkpoint changes
    it, and a 20 GB T5-XXL is fingerprinted in milliseconds. The folder's path is not part
    of it, so a cache made on one machine is recognised on another.
    """
    import hashlib

    if not path:
        return None
    folder = Path(path).expanduser()
    if not (folder / "config.json").is_file():
        return None
    digest = hashlib.sha256()
    for name in sorted(p.name for p in folder.iterdir() if p.is_file()):
        file = folder / name
        weights = any(file.match(pattern) for pattern in WEIGHT_PATTERNS)
        if not (weights or name == "config.json" or name.startswith(("tokenizer", "spiece", "special_tokens"))):
            continue
        digest.update(f"{name}:{file.stat().st_size}:".encode())
        with file.open("rb") as fh:
            digest.update(fh.read(HEAD_BYTES) if weights else fh.read())
    return digest.hexdigest()[:16]


def _folder(path: Optional[str]) -> Path:
    if not path:
        raise ValueError(f"cond.text is true but cond.text_encoder is not set: {OBTAIN_HINT}")
    folder = Path(path).expanduser()
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"cond.text_encoder = {path}: no T5 config.json in that folder; {OBTAIN_HINT}")
    return folder


class T5TextEncoder:
    """A frozen T5 encoder and its tokenizer, from a local ``from_pretrained`` folder.

    Deliberately not an ``nn.Module``: the frozen weights (4.7B parameters for T5-XXL)
    must stay out of the trainable model's state dict, checkpoints and EMA copies.
    ``copy.deepcopy`` returns the same object so an EMA copy shares it. The weights are
    loaded on the first :meth:`encode`, so runs on precomputed features never hold them.

    Args:
        path: the folder (``cond.text_encoder``).
        max_tokens: captions are cut to this many tokens, EOS included (Bora: 120).
        dtype: dtype of the T5 weights; features are returned in float32.
    """

    def __init__(self, path: str, max_tokens: int = 120, dtype: torch.dtype = torch.float32):
        from transformers import AutoTokenizer, T5Config

        self.folder = _folder(path)
        if max_tokens < 2:
            raise ValueError(f"cond.max_tokens = {max_tokens}: needs room for at least one token and EOS")
        self.max_tokens = max_tokens
        self.dtype = dtype
        try:
            self.config = T5Config.from_pretrained(self.folder, local_files_only=True)
            self.tokenizer = AutoTokenizer.from_pretrained(self.folder, local_files_only=True)
        except (OSError, ValueError) as err:
            raise FileNotFoundError(
                f"cond.text_encoder = {path}: cannot load the T5 config/tokenizer ({err}); if the folder "
                f"only has spiece.model, `pip install sentencepiece protobuf` lets transformers convert it; "
                f"{OBTAIN_HINT}"
            ) from err
        self.dim = self.config.d_model
        self._model = None

    @classmethod
    def from_config(cls, cond_cfg) -> "T5TextEncoder":
        """Build from the ``cond:`` section (``text_encoder``, ``max_tokens``, ``text_dtype``)."""
        return cls(cond_cfg.text_encoder, cond_cfg.max_tokens, DTYPES[cond_cfg.text_dtype])

    def __deepcopy__(self, memo) -> "T5TextEncoder":
        return self

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def model(self):
        """The ``T5EncoderModel``, in eval mode with ``requires_grad`` off (loaded on first use)."""
        if self._model is None:
            from transformers import T5EncoderModel

            try:
                model = T5EncoderModel.from_pretrained(self.folder, dtype=self.dtype, local_files_only=True)
            except OSError as err:
                raise FileNotFoundError(
                    f"cond.text_encoder = {self.folder}: cannot load the T5 weights ({err}); {OBTAIN_HINT}"
                ) from err
            self._model = model.eval().requires_grad_(False)
        return self._model

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text, EOS included, before truncation."""
        return [len(ids) for ids in self.tokenizer(list(texts))["input_ids"]]

    def encode(self, texts: Sequence[Optional[str]], device: Optional[torch.device | str] = None) -> TextFeatures:
        """Encode B texts; ``None`` entries give an all-False mask row (no text).

        Texts longer than ``max_tokens`` are truncated with a :class:`CaptionTruncatedWarning`.
        The T5 moves to ``device`` (default: where it is) and runs without autocast: T5 is
        known to overflow in float16 autocast.

        Returns:
            :class:`TextFeatures` with hidden B×S×D float32 and mask B×S on ``device``,
            S = the longest tokenised text (≤ max_tokens).
        """
        strings = [t or "" for t in texts]
        long = [(t, n) for t, n in zip(strings, self.count_tokens(strings)) if n > self.max_tokens]
        if long:
            text, n = max(long, key=lambda item: item[1])
            warnings.warn(
                f"{len(long)} of {len(strings)} captions exceed cond.max_tokens={self.max_tokens} tokens "
                f"and are truncated (longest: {n} tokens, {text[:60]!r}...)",
                CaptionTruncatedWarning,
                stacklevel=2,
            )
        batch = self.tokenizer(strings, padding="longest", truncation=True, max_length=self.max_tokens,
                               return_tensors="pt")
        model = self.model
        device = torch.device(device) if device is not None else model.device
        if model.device != device:
            model.to(device)
        present = torch.tensor([t is not None for t in texts], device=device)
        ids, attention = batch["input_ids"].to(device), batch["attention_mask"].to(device)
        with torch.no_grad(), torch.autocast(device.type, enabled=False):
            hidden = model(input_ids=ids, attention_mask=attention).last_hidden_state.float()
        mask = attention.bool() & present[:, None]
        return TextFeatures(hidden * mask[..., None], mask)

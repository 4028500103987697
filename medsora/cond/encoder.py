"""The condition encoder: modality and caption -> pooled vector + context tokens, with CFG dropout."""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from diffusers.models.embeddings import PixArtAlphaTextProjection
from torch import Tensor, nn

from medsora.cond.captions import check_template, prepare_captions
from medsora.cond.condition import Condition
from medsora.cond.modality import ModalityEmbedding, normalise_modality
from medsora.cond.schema import CondConfig
from medsora.cond.text_encoder import T5TextEncoder, TextFeatures
from medsora.config.fields import section


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean of x: B×S×D over the positions where mask: B×S is True -> B×D."""
    weights = mask.to(x.dtype)[..., None]
    return (x * weights).sum(1) / weights.sum(1).clamp(min=1.0)


class ConditionEncoder(nn.Module):
    """Encodes each sample's modality and caption into a :class:`Condition`.

    * modality: a class embedding (``ModalityEmbedding``), null class for dropped samples;
    * caption: frozen T5 features -> context tokens (PixArt caption projection, GELU-tanh)
      and a pooled vector (masked mean of the T5 features -> projection, SiLU, as SD3's
      pooled text projection); dropped samples get a learned null sequence of
      ``null_tokens`` tokens instead of their T5 features, so the null text is learned
      with the model and exists without loading T5.
    * pooled = modality embedding + text pooled vector (B×hidden).

    Condition dropout (classifier-free guidance training) drops a sample's whole
    condition — modality and text together — with probability ``dropout`` in training
    mode, so the null condition is the unconditional model. Absent inputs are null too:
    ``modalities=None`` is the null class; a sample with neither caption nor modality has
    the null text. The null rows always enter the graph (through ``torch.where``), so
    under DDP no parameter goes without a gradient in a step where nothing is dropped.

    Args:
        hidden: the backbone's hidden size.
        config: the ``cond:`` settings (a :class:`~medsora.cond.schema.CondConfig`, the ``cond``
            section of a composed run config, or ``None`` for the defaults). Read here:
            ``dropout`` (condition dropout probability in [0, 1)), ``null_tokens`` (length of the
            learned null text sequence), ``template`` (caption of a sample without one, e.g.
            "This is a {modality} video.") and ``use_template`` (Bora stage 1: every caption
            becomes the template). A new option of the encoder is a schema field plus its use here.
        modalities: class names; empty disables the modality embedding (``build_condition_encoder``
            resolves them from ``cond.modalities`` or the data set).
        text_encoder: a frozen :class:`T5TextEncoder`; ``None`` disables text.
        **overrides: ``CondConfig`` fields replacing those of ``config`` (``dropout=0.0``).
    """

    def __init__(
        self,
        hidden: int,
        config: Optional[CondConfig] = None,
        modalities: Sequence[str] = (),
        text_encoder: Optional[T5TextEncoder] = None,
        **overrides,
    ):
        super().__init__()
        cfg = section(CondConfig, config, overrides)
        dropout, null_tokens = cfg.dropout, cfg.null_tokens
        if not modalities and text_encoder is None:
            raise ValueError("ConditionEncoder needs modalities or a text encoder (cond.modality / cond.text)")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"cond.dropout = {dropout}: must be in [0, 1) (0.1 is the usual CFG rate)")
        if cfg.use_template and text_encoder is None:
            raise ValueError("cond.use_template replaces captions by the template: it needs cond.text: true")
        if null_tokens < 1:
            raise ValueError(f"cond.null_tokens = {null_tokens}: must be >= 1")
        self.config = cfg
        self.hidden = hidden
        self.dropout = dropout
        self.template = check_template(cfg.template)
        self.use_template = cfg.use_template
        self.modality = ModalityEmbedding(modalities, hidden) if modalities else None
        # A plain attribute, not a submodule: the frozen T5 stays out of state dicts (see T5TextEncoder).
        self.text_encoder = text_encoder
        if text_encoder is not None:
            dim = text_encoder.dim
            self.token_proj = PixArtAlphaTextProjection(dim, hidden, act_fn="gelu_tanh")
            self.pool_proj = PixArtAlphaTextProjection(dim, hidden, act_fn="silu")
            # Open-Sora's learned null caption: random tokens at the T5 features' scale.
            self.null_text = nn.Parameter(torch.randn(null_tokens, dim) / dim**0.5)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def modalities(self) -> tuple[str, ...]:
        return self.modality.names if self.modality is not None else ()

    def forward(
        self,
        captions: Optional[Sequence[Optional[str]]] = None,
        modalities: Optional[Sequence[Optional[str]]] = None,
        drop: Optional[Tensor] = None,
        text: Optional[TextFeatures] = None,
    ) -> Condition:
        """Encode a batch.

        Args:
            captions: B captions (empty -> template); ignored without text conditioning.
            modalities: B modality names; ``None`` entries or ``None`` -> null class.
            drop: B bool, samples to replace by the null condition; ``None`` draws it with
                probability ``dropout`` in training mode and drops nothing in eval mode.
            text: precomputed T5 features of the captions (encode cache) instead of
                ``captions``; not allowed with ``use_template``, whose captions are templates.
        Returns:
            :class:`Condition` with pooled B×hidden and, with text, tokens B×S×hidden, mask B×S.
        """
        batch_size = self._batch_size(captions, modalities, drop, text)
        if drop is None:
            if self.training and self.dropout > 0:
                drop = torch.rand(batch_size, device=self.device) < self.dropout
            else:
                drop = torch.zeros(batch_size, dtype=torch.bool, device=self.device)
        drop = drop.to(device=self.device, dtype=torch.bool)
        if text is not None and (self.text_encoder is None or self.use_template):
            raise ValueError(
                "precomputed text features need text conditioning (cond.text: true) without "
                "cond.use_template (whose captions are all templates): pass captions/modalities instead"
            )
        if self.text_encoder is not None and text is None:
            if drop.all():  # every sample takes the null text: no need to run (or load) T5
                dim = self.text_encoder.dim
                text = TextFeatures(torch.zeros(batch_size, 0, dim, device=self.device),
                                    torch.zeros(batch_size, 0, dtype=torch.bool, device=self.device))
            else:
                texts = prepare_captions(captions, modalities, batch_size, self.template, self.use_template)
                text = self.text_encoder.encode(texts, device=self.device)
        return self._assemble(modalities, text, drop)

    def null(self, batch_size: int) -> Condition:
        """The unconditional condition (null modality, null text) for CFG's unconditional branch."""
        return self(drop=torch.ones(batch_size, dtype=torch.bool, device=self.device))

    def negative(self, prompt: str | Sequence[str], batch_size: int) -> Condition:
        """CFG's unconditional branch with a negative prompt: the prompt's text, null modality.

        The prompt is encoded as given (no template); an empty prompt is the null condition.
        """
        if self.text_encoder is None:
            raise ValueError("a negative prompt needs text conditioning (cond.text: true)")
        prompts = [prompt] * batch_size if isinstance(prompt, str) else list(prompt)
        if len(prompts) != batch_size:
            raise ValueError(f"negative prompts: got {len(prompts)} for a batch of {batch_size}")
        text = self.text_encoder.encode([p.strip() or None for p in prompts], device=self.device)
        return self._assemble(None, text, torch.zeros(batch_size, dtype=torch.bool, device=self.device))

    def guidance_pair(
        self,
        captions: Optional[Sequence[Optional[str]]] = None,
        modalities: Optional[Sequence[Optional[str]]] = None,
        negative_prompt: Optional[str | Sequence[str]] = None,
    ) -> tuple[Condition, Condition]:
        """The conditional and unconditional branches of classifier-free guidance.

        The unconditional branch is :meth:`null`, or :meth:`negative` when a non-empty
        ``negative_prompt`` is given. Both come back with token sequences of one length
        (masked padding), so their ``model_kwargs()`` concatenate along the batch.
        """
        cond = self(captions, modalities, drop=torch.zeros(self._batch_size(captions, modalities, None, None),
                                                          dtype=torch.bool, device=self.device))
        b = cond.batch_size
        uncond = self.negative(negative_prompt, b) if negative_prompt else self.null(b)
        if cond.tokens is None:
            return cond, uncond
        length = max(cond.tokens.shape[1], uncond.tokens.shape[1])
        return cond.pad_to(length), uncond.pad_to(length)

    def _batch_size(self, captions, modalities, drop, text) -> int:
        for given in (captions, modalities, drop):
            if given is not None:
                return len(given)
        if text is not None:
            return text.hidden.shape[0]
        raise ValueError("ConditionEncoder: pass captions, modalities, text or drop (to know the batch size)")

    def _assemble(self, modalities, text: Optional[TextFeatures], drop: Tensor) -> Condition:
        pooled = torch.zeros(drop.shape[0], self.hidden, device=self.device, dtype=self._dtype())
        if self.modality is not None:
            pooled = pooled + self.modality(modalities, drop)
        if self.text_encoder is None:
            return Condition(pooled)
        tokens, mask, text_pooled = self._text(text, drop)
        return Condition(pooled + text_pooled, tokens, mask)

    def _dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def _text(self, text: TextFeatures, drop: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """T5 features B×S×D (+ mask) -> tokens B×S'×hidden, mask B×S', pooled B×hidden."""
        hidden = text.hidden.to(device=self.device, dtype=self._dtype())
        mask = text.mask.to(device=self.device, dtype=torch.bool)
        if hidden.shape[:2] != mask.shape or hidden.shape[-1] != self.null_text.shape[-1]:
            raise ValueError(
                f"text features: hidden {tuple(hidden.shape)} and mask {tuple(mask.shape)} must be "
                f"B×S×{self.null_text.shape[-1]} and B×S (the T5 of cond.text_encoder)"
            )
        drop = drop | ~mask.any(1)  # a sample without text gets the null text
        n_null = self.null_text.shape[0]
        length = max(hidden.shape[1], n_null)
        hidden = F.pad(hidden, (0, 0, 0, length - hidden.shape[1]))
        mask = F.pad(mask, (0, length - mask.shape[1]), value=False)
        null = F.pad(self.null_text, (0, 0, 0, length - n_null))
        null_mask = torch.arange(length, device=self.device) < n_null
        hidden = torch.where(drop[:, None, None], null, hidden)
        mask = torch.where(drop[:, None], null_mask, mask)
        return self.token_proj(hidden), mask, self.pool_proj(masked_mean(hidden, mask))


def build_condition_encoder(
    cond_cfg, hidden: int, modalities: Optional[Sequence[str]] = None
) -> Optional[ConditionEncoder]:
    """The condition encoder a ``cond:`` config asks for, or ``None`` when nothing is conditioned.

    Args:
        cond_cfg: the ``cond:`` section (:class:`medsora.cond.schema.CondConfig`).
        hidden: the backbone's hidden size.
        modalities: the data set's modality names (its manifest), used when
            ``cond.modalities`` is empty; the classes are sorted so that the same set
            always gives the same indices.
    """
    if not cond_cfg.modality and not cond_cfg.text:
        return None
    names: list[str] = []
    if cond_cfg.modality:
        given = list(cond_cfg.modalities) or list(modalities or [])
        names = sorted({normalise_modality(n) for n in given if n and n.strip()})
        if not names:
            raise ValueError(
                "cond.modality is true but there are no modality classes: set cond.modalities=[...] "
                "or use a data set whose manifest has a 'modality' column"
            )
    text_encoder = T5TextEncoder.from_config(cond_cfg) if cond_cfg.text else None
    return ConditionEncoder(hidden, cond_cfg, modalities=names, text_encoder=text_encoder)

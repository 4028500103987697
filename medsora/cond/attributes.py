"""Named clinical attributes (scalar or label) read from manifest columns, and their embedding.

``cond.attributes`` declares each attribute: ``kind: scalar`` with a ``range`` used to normalise
(heart rate 40–160 bpm, ejection fraction 0–100 %), or ``kind: label`` with a closed list of
``values`` (pathology: [none, polyp, colitis]). Each has its own null embedding and dropout
probability, so classifier-free guidance works per attribute; a clip without a value takes the
null embedding (counted, never an error); a value outside the range or list is an error naming
the clip and the attribute (:mod:`medsora.cond.attribute_spec`).

Values travel through batches as one JSON object per clip (``batch["attributes"]``, the clip's
manifest columns), so the raw-video and encode-cache paths carry them the same way and a missing
value needs no placeholder.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

import torch
from torch import Tensor, nn

from medsora.cond.attribute_spec import (AttributeSpec, AttributeValueError, attribute_specs, check_dataset,
                                         is_missing, parse_assignments)

__all__ = ["AttributeSpec", "AttributeValueError", "AttributeBatch", "AttributeEmbedding", "attribute_specs",
           "check_dataset", "is_missing", "parse_assignments"]

FOURIER_SCALE = 1000.0
"""Normalised scalars in [0, 1] are embedded like DiT timesteps in [0, 1000]: sinusoids of log-spaced
frequencies resolve differences of 1/1000 of the declared range."""


@dataclass
class AttributeBatch:
    """Parsed attribute values of a batch.

    Attributes:
        values: name -> B float (normalised scalar) or B long (label index); 0 where missing.
        present: name -> B bool, False where the clip has no value (it takes the null embedding).
    """

    values: dict[str, Tensor]
    present: dict[str, Tensor]

    @property
    def batch_size(self) -> int:
        return next(iter(self.present.values())).shape[0] if self.present else 0

    def missing(self) -> dict[str, int]:
        """Clips without a value, per attribute."""
        return {name: int((~p).sum()) for name, p in self.present.items()}

    @staticmethod
    def from_rows(specs: Sequence[AttributeSpec], rows: Sequence[Optional[Mapping[str, Any] | str]],
                  where: Optional[Sequence[str]] = None) -> "AttributeBatch":
        """Parse B rows (a dict of column -> value, its JSON text, or ``None``) against ``specs``.

        Args:
            where: B names for error messages (clip paths); default ``row i``.
        Raises:
            AttributeValueError: a present value outside its range or list (naming the clip and attribute).
        """
        parsed = [json.loads(r) if isinstance(r, str) else (r or {}) for r in rows]
        where = list(where) if where is not None else [f"row {i}" for i in range(len(parsed))]
        values, present = {}, {}
        for spec in specs:
            got = [row.get(spec.column) for row in parsed]
            present[spec.name] = torch.tensor([not is_missing(v) for v in got], dtype=torch.bool)
            numbers = [spec.parse(v, w) if not is_missing(v) else 0 for v, w in zip(got, where)]
            dtype = torch.float32 if spec.kind == "scalar" else torch.long
            values[spec.name] = torch.tensor(numbers, dtype=dtype)
        return AttributeBatch(values, present)


class AttributeEmbedding(nn.Module):
    """Sum of per-attribute embeddings (B×hidden), each with its own learned null vector.

    * scalar: the value normalised to [0, 1] -> sinusoidal Fourier features (diffusers'
      ``get_timestep_embedding`` of ``value·1000``, as DiT embeds timesteps) -> MLP (Linear, SiLU, Linear);
    * label: an embedding table with one extra row, the null class.

    A missing or dropped attribute contributes its null vector. Null vectors enter the graph through
    ``torch.where`` in every call, so under DDP no parameter goes without a gradient in a step where
    nothing is dropped.

    Args:
        specs: the declared attributes.
        hidden: the backbone's hidden size.
        frequency_dim: Fourier features per scalar.
    """

    def __init__(self, specs: Sequence[AttributeSpec], hidden: int, frequency_dim: int = 128):
        super().__init__()
        if not specs:
            raise ValueError("AttributeEmbedding needs at least one declared attribute (cond.attributes)")
        self.specs = tuple(specs)
        self.hidden = hidden
        self.frequency_dim = frequency_dim
        self.scalar = nn.ModuleDict()
        self.label = nn.ModuleDict()
        self.null = nn.ParameterDict()
        for spec in self.specs:
            if spec.kind == "scalar":
                self.scalar[spec.name] = nn.Sequential(nn.Linear(frequency_dim, hidden), nn.SiLU(),
                                                       nn.Linear(hidden, hidden))
                nn.init.normal_(self.scalar[spec.name][0].weight, std=0.02)
                nn.init.normal_(self.scalar[spec.name][2].weight, std=0.02)
                self.null[spec.name] = nn.Parameter(torch.randn(hidden) * 0.02)
            else:
                self.label[spec.name] = nn.Embedding(len(spec.values) + 1, hidden)
                nn.init.normal_(self.label[spec.name].weight, std=0.02)  # as DiT's label embedding

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.specs)

    def embed(self, spec: AttributeSpec, values: Tensor, use: Tensor) -> Tensor:
        """One attribute: B values -> B×hidden; rows where ``use`` is False get the null embedding."""
        device = self._device()
        if spec.kind == "scalar":
            from diffusers.models.embeddings import get_timestep_embedding

            features = get_timestep_embedding(values.to(device).float() * FOURIER_SCALE, self.frequency_dim,
                                              flip_sin_to_cos=True, downscale_freq_shift=0)
            mlp = self.scalar[spec.name]
            emb = mlp(features.to(mlp[0].weight.dtype))
            return torch.where(use[:, None], emb, self.null[spec.name].to(emb.dtype))
        table = self.label[spec.name]
        idx = torch.where(use, values.to(device).long(), torch.full_like(values.to(device).long(), len(spec.values)))
        return table(idx)

    def forward(self, batch: Optional[AttributeBatch], drop: Mapping[str, Tensor], batch_size: int) -> Tensor:
        """Embed a batch.

        Args:
            batch: parsed values (``None``: every attribute missing).
            drop: name -> B bool, attributes replaced by their null embedding (CFG dropout or guidance).
            batch_size: B.
        Returns:
            B×hidden.
        """
        device = self._device()
        out = None
        for spec in self.specs:
            if batch is not None and spec.name in batch.values:
                values, present = batch.values[spec.name], batch.present[spec.name].to(device)
            else:
                values = torch.zeros(batch_size)
                present = torch.zeros(batch_size, dtype=torch.bool, device=device)
            if values.shape[0] != batch_size:
                raise ValueError(f"attribute '{spec.name}': {values.shape[0]} values for a batch of {batch_size}")
            use = present & ~drop.get(spec.name, torch.zeros_like(present)).to(device)
            emb = self.embed(spec, values, use)
            out = emb if out is None else out + emb
        return out

    def _device(self) -> torch.device:
        return next(self.parameters()).device


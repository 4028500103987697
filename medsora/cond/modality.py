"""Modality class embedding with a null class for classifier-free guidance."""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor, nn


def normalise_modality(name: str) -> str:
    """Manifest spellings differ in case and spaces ("MRI ", "mri"): compare them normalised."""
    return name.strip().lower()


class ModalityEmbedding(nn.Module):
    """One learned vector per modality, plus a null vector at index ``len(names)``.

    diffusers' ``LabelEmbedding`` is the same table, but its forced-drop path rebuilds
    the drop mask with ``torch.tensor`` on the CPU and it only has a null row when its own
    dropout is positive; the condition encoder needs one drop mask shared by the modality
    and the text branch, on any device, so the lookup is written here.

    Index i is the i-th name: a checkpoint is only meaningful with the same names in the
    same order (``build_condition_encoder`` sorts them; runs store them in their config).

    Args:
        names: modality class names (normalised to stripped lower case).
        hidden: embedding width (the backbone's hidden size).
    """

    def __init__(self, names: Sequence[str], hidden: int):
        super().__init__()
        self.names = tuple(normalise_modality(n) for n in names)
        if not self.names or len(set(self.names)) != len(self.names):
            raise ValueError(f"cond.modalities = {list(names)}: needs at least one class and no duplicates")
        self.null_index = len(self.names)
        self._index = {name: i for i, name in enumerate(self.names)}
        self.table = nn.Embedding(len(self.names) + 1, hidden)
        nn.init.normal_(self.table.weight, std=0.02)  # as DiT's label embedding

    def indices(self, modalities: Optional[Sequence[Optional[str]]], batch_size: int) -> Tensor:
        """Class indices, B long; ``None`` (all or per sample) is the null class."""
        if modalities is None:
            modalities = [None] * batch_size
        if len(modalities) != batch_size:
            raise ValueError(f"modalities: got {len(modalities)} entries for a batch of {batch_size}")
        out = []
        for name in modalities:
            if name is None or not name.strip():
                out.append(self.null_index)
                continue
            key = normalise_modality(name)
            if key not in self._index:
                raise ValueError(
                    f"unknown modality {name!r}; this model knows {list(self.names)} "
                    "(cond.modalities, or the data set's manifest when it is empty)"
                )
            out.append(self._index[key])
        return torch.tensor(out, dtype=torch.long, device=self.table.weight.device)

    def forward(self, modalities: Optional[Sequence[Optional[str]]], drop: Tensor) -> Tensor:
        """Embed modality names.

        Args:
            modalities: B names, ``None`` entries, or ``None``.
            drop: B bool — these samples get the null class.
        Returns:
            B×hidden.
        """
        idx = self.indices(modalities, drop.shape[0])
        idx = torch.where(drop, torch.full_like(idx, self.null_index), idx)
        return self.table(idx)

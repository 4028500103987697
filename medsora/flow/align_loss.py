"""OFRA alignment loss between the backbone's projected hidden states and the flow teacher's targets."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

KINDS = ("pearson", "cosine")


class AlignLoss(nn.Module):
    """Per-token alignment loss, returned as named terms.

    For each token (one vector of ``D`` features per latent frame and spatial position):

    * ``pearson`` (MedSora): ``1 - r``, ``r`` the Pearson correlation of the two ``D``-vectors
      (both centred over ``D``, then cosine). MedSora correlates each feature dimension across
      all tokens instead; per token is used here because, with a learned projector, it asks
      each token to carry its own motion pattern and is independent of batch composition;
    * ``cosine`` (REPA): ``1 - cos`` (REPA's ``-cos`` shifted by the constant 1, same gradient,
      so that both kinds are >= 0 and the margin means the same thing).

    The per-token loss goes through a hinge ``max(0, l - margin)`` (MedSora: 0.01), is averaged
    over tokens, weighted per sample by ``1/(t+1)`` when ``timestep_weighting`` (MedSora; it
    concentrates the term on low-noise steps) and averaged over the batch.

    Args:
        kind: ``pearson`` | ``cosine``.
        weight: λ, multiplied into the ``align`` term.
        timestep_weighting: weight samples by ``1/(t+1)``.
        margin: hinge margin on the per-token loss.
    """

    def __init__(self, kind: str = "pearson", weight: float = 0.1, timestep_weighting: bool = True,
                 margin: float = 0.0):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"align.loss: '{kind}' is not one of {list(KINDS)}")
        self.kind, self.weight, self.timestep_weighting, self.margin = kind, weight, timestep_weighting, margin

    @classmethod
    def from_config(cls, align_cfg) -> "AlignLoss":
        """Build from the ``align:`` config section."""
        return cls(align_cfg.loss, align_cfg.weight, align_cfg.timestep_weighting, align_cfg.margin)

    def similarity(self, projected: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-token similarity in ``[-1, 1]``: ``B×T×h×w×D, B×T×h×w×D -> B×T×h×w``."""
        p, q = projected.float(), target.float()
        if self.kind == "pearson":
            p = p - p.mean(dim=-1, keepdim=True)
            q = q - q.mean(dim=-1, keepdim=True)
        return F.cosine_similarity(p, q, dim=-1, eps=1e-6)

    def forward(self, projected: torch.Tensor, target: torch.Tensor, t: torch.Tensor) -> dict[str, torch.Tensor]:
        """Alignment terms.

        Args:
            projected: ``B×T×h×w×D`` projector output of the backbone.
            target: ``B×T×h×w×D`` teacher targets (online or cached); no gradient flows into it.
            t: ``B`` DDPM steps τ (integers ``0 .. num_train_timesteps-1``; fractional for flow matching,
                whose objective maps its continuous t to the step of equal signal-to-noise ratio:
                ``FlowMatchingObjective.align_steps``).
        Returns:
            ``{"align": λ·L`` (the term to add to the training loss), ``"align_raw": L`` (before λ),
            ``"align_sim":`` mean per-token similarity (detached, for logging)``}``.
        """
        if projected.shape != target.shape:
            raise ValueError(
                f"alignment: projector output {tuple(projected.shape)} and targets {tuple(target.shape)} differ "
                "(both B×T×h×w×D): the backbone's projector must output the teacher's D "
                "(medsora.flow.target_dim(align_cfg)) on the same token grid"
            )
        if t.shape != projected.shape[:1]:
            raise ValueError(f"alignment: t must have shape ({projected.shape[0]},), got {tuple(t.shape)}")
        sim = self.similarity(projected, target.detach())
        per_token = 1.0 - sim
        if self.margin > 0:
            per_token = F.relu(per_token - self.margin)
        per_sample = per_token.flatten(1).mean(dim=1)
        if self.timestep_weighting:
            per_sample = per_sample / (t.to(per_sample.dtype) + 1.0)
        raw = per_sample.mean()
        return {"align": self.weight * raw, "align_raw": raw, "align_sim": sim.detach().mean()}

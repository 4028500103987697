"""How much generated clips look like the real clips of their modality: colour and motion statistics.

A cheap, model-free check used by the demo's summary and its test: each clip is reduced to its
per-channel colour histogram and to the histogram of its absolute frame-to-frame differences;
the distance of a sample to its modality is the total-variation distance between its
histograms and the mean histograms of that modality's real clips (0 = identical, 1 = disjoint).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

__all__ = ["clip_histograms", "modality_references", "modality_distances"]


def clip_histograms(videos: Tensor, bins: int = 16) -> Tensor:
    """Normalised histograms of ``B×3×F×H×W`` clips in [-1, 1] -> ``B×4×bins``.

    Rows 0-2: each colour channel over [-1, 1]; row 3: ``|frame_{k+1} − frame_k|`` (channel
    mean) over [0, 1] (all zeros for single-frame clips).
    """
    v = videos.detach().float().clamp(-1, 1).cpu()
    b = v.shape[0]
    out = torch.zeros(b, 4, bins)
    for i in range(b):
        for c in range(3):
            out[i, c] = torch.histc(v[i, c], bins=bins, min=-1, max=1)
        if v.shape[2] > 1:
            diff = (v[i, :, 1:] - v[i, :, :-1]).abs().mean(0) / 2  # [0, 1]
            out[i, 3] = torch.histc(diff, bins=bins, min=0, max=1)
    return out / out.sum(-1, keepdim=True).clamp(min=1)


def modality_references(videos: Tensor, labels: Sequence[str], bins: int = 16) -> dict[str, Tensor]:
    """Mean histograms (``4×bins``) of the real clips of each modality."""
    hists = clip_histograms(videos, bins)
    names = sorted(set(labels))
    return {m: hists[[i for i, l in enumerate(labels) if l == m]].mean(0) for m in names}


def modality_distances(samples: Tensor, labels: Sequence[str], references: dict[str, Tensor],
                       bins: int = 16) -> dict[str, float]:
    """Distances of samples to the real clips of their own modality (and to the others').

    Args:
        samples: ``B×3×F×H×W`` in [-1, 1]; labels: the modality each sample was generated for.
        references: from :func:`modality_references`.
    Returns:
        ``{"colour": mean TV distance of the colour histograms to the sample's modality,
        "motion": the same for frame differences, "colour_other": mean colour distance to the
        other modalities}`` (lower is closer).
    """
    hists = clip_histograms(samples, bins)
    own_c, own_m, other_c = [], [], []
    for h, label in zip(hists, labels):
        tv = {m: 0.5 * (h - ref).abs().sum(-1) for m, ref in references.items()}  # 4 rows each
        own_c.append(tv[label][:3].mean())
        own_m.append(tv[label][3])
        other_c += [d[:3].mean() for m, d in tv.items() if m != label]
    mean = lambda xs: float(torch.stack(xs).mean()) if xs else float("nan")  # noqa: E731
    return {"colour": mean(own_c), "motion": mean(own_m), "colour_other": mean(other_c)}

"""Packed variable-length sequences: several clips of different lengths in one row of a scan."""
from __future__ import annotations

import torch


def seq_idx_from_cu_seqlens(cu_seqlens: torch.Tensor, seqlen: int) -> torch.Tensor:
    """``seq_idx`` (1×seqlen, int32: which sequence each step belongs to) from cumulative lengths
    ``cu_seqlens`` (k+1,: 0, l₀, l₀+l₁, …, seqlen), as ``mamba_ssm`` expects them.

    Built once per batch (it reads ``cu_seqlens[-1]`` to check it), outside the scan.
    """
    cu = torch.as_tensor(cu_seqlens)
    if cu.dim() != 1 or cu.numel() < 2 or cu.is_floating_point() or int(cu[0]) != 0 or int(cu[-1]) != seqlen:
        raise ValueError(f"cu_seqlens must be integers (k+1,) from 0 to the packed length {seqlen}, "
                         f"got {cu.tolist() if cu.numel() < 20 else tuple(cu.shape)}")
    steps = torch.arange(seqlen, device=cu.device)
    return torch.searchsorted(cu[1:].contiguous(), steps, right=True).to(torch.int32)[None]

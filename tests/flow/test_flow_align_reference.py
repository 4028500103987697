"""The reference OFRA loss against a direct transcription of its formula."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from medsora.flow.align_reference import ReferenceAlignLoss


def transcription(hiddens, targets, t, margin, resize):
    """Loops and numpy's corrcoef: 1 − Pearson per feature dim across tokens, mean over dims and
    layers, / (t+1), batch mean, hinge on the weighted mean."""
    total = 0.0
    b = hiddens[0].shape[0]
    for i in range(b):
        layer_losses = []
        for h, f in zip(hiddens, targets):
            hi = h[i].reshape(-1, h.shape[-1]).double().numpy()
            hi = (hi - hi.mean(1, keepdims=True)) / np.sqrt(hi.var(1, keepdims=True) + 1e-5)  # LayerNorm, no affine
            fi = f[i].reshape(-1, f.shape[-1]).float()
            if resize:
                fi = F.interpolate(fi[None, None], size=hi.shape, mode="bilinear", align_corners=False)[0, 0]
            fi = fi.double().numpy()
            rhos = [np.corrcoef(hi[:, d], fi[:, d])[0, 1] for d in range(hi.shape[1])]
            layer_losses.append(np.mean([1 - r for r in rhos]))
        total += np.mean(layer_losses) / (float(t[i]) + 1)
    return max(total / b - margin, 0.0)


@pytest.mark.parametrize("resize", [True, False])
def test_matches_transcription(resize):
    torch.manual_seed(0)
    hiddens = [torch.randn(3, 2, 4, 4, 12) for _ in range(3)]
    dt = 7 if resize else 12
    targets = [h[..., :dt] * 0.5 + torch.randn(3, 2, 4, 4, dt) if resize else h + torch.randn_like(h) for h in hiddens]
    if resize:  # the teacher has another token count too
        targets = [f.reshape(3, -1, dt)[:, :20] for f in targets]
    t = torch.tensor([0, 3, 10])
    loss = ReferenceAlignLoss(weight=0.1, margin=0.01, projector="resize" if resize else "mlp")
    out = loss(hiddens, targets, t)
    expected = transcription(hiddens, targets, t, 0.01, resize)
    assert out["align_raw"].item() == pytest.approx(expected, rel=1e-4, abs=1e-6)
    assert out["align"].item() == pytest.approx(0.1 * expected, rel=1e-4, abs=1e-7)


def test_hinge_after_the_weight_silences_noisy_steps():
    torch.manual_seed(1)
    h = torch.randn(2, 16, 8, requires_grad=True)
    f = torch.randn(2, 16, 8)
    loss = ReferenceAlignLoss(margin=0.01, projector="mlp")
    high = loss([h], [f], torch.tensor([900, 999]))  # (1 − ρ) ≈ 1 divided by ~1000 < 0.01
    assert high["align"].item() == 0.0
    high["align"].backward()
    assert h.grad is None or h.grad.abs().sum() == 0
    low = loss([h], [f], torch.tensor([0, 1]))
    assert low["align"].item() > 0
    low["align"].backward()
    assert h.grad.abs().sum() > 0


def test_perfect_alignment_is_zero_and_layer_counts_must_match():
    h = torch.randn(2, 10, 6)
    loss = ReferenceAlignLoss(margin=0.0, projector="mlp")
    assert loss([h], [F.layer_norm(h, (6,)) * 3 + 1], torch.zeros(2))["align_raw"].item() == pytest.approx(0, abs=1e-5)
    with pytest.raises(ValueError, match="2 hidden layers for 1 teacher layers"):
        loss([h, h], [h], torch.zeros(2))

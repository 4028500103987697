"""AlignLoss: per-token 1 - pearson / 1 - cos, timestep weighting, margin, named terms."""
from __future__ import annotations

import pytest
import torch

from medsora.flow import AlignLoss


def _features(b=2, d=16, seed=0):
    return torch.randn(b, 2, 3, 3, d, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("kind", ["pearson", "cosine"])
def test_zero_for_perfectly_aligned_features_and_growing_with_noise(kind):
    loss = AlignLoss(kind, weight=1.0, timestep_weighting=False)
    proj, t = _features(), torch.zeros(2, dtype=torch.long)
    scale = torch.rand(2, 2, 3, 3, 1) + 0.5
    # Pearson is invariant to a per-token affine map, cosine to a per-token positive scale.
    aligned = proj * scale + (torch.randn(2, 2, 3, 3, 1) if kind == "pearson" else 0)
    assert loss(proj, aligned, t)["align"].item() == pytest.approx(0.0, abs=1e-5)
    noise = _features(seed=1)
    values = [loss(proj, proj + s * noise, t)["align"].item() for s in (0.1, 0.5, 1.0, 4.0)]
    assert values == sorted(values) and values[0] > 1e-4 and values[-1] > 0.5
    assert loss(proj, -proj, t)["align"].item() == pytest.approx(2.0, abs=1e-5)


def test_pearson_is_per_token():
    loss = AlignLoss("pearson", weight=1.0, timestep_weighting=False)
    proj, target = _features(), _features(seed=1)
    sim = loss.similarity(proj, target)
    p, q = proj[0, 1, 2, 0], target[0, 1, 2, 0]
    r = torch.corrcoef(torch.stack([p, q]))[0, 1]
    assert sim.shape == (2, 2, 3, 3)
    assert sim[0, 1, 2, 0].item() == pytest.approx(r.item(), abs=1e-5)
    assert loss(proj, target, torch.zeros(2))["align_raw"].item() == pytest.approx(1 - sim.mean().item(), abs=1e-5)


def test_named_terms_weight_timesteps_and_margin():
    proj, target = _features(), _features(seed=1)
    t = torch.tensor([0, 9])
    plain = AlignLoss("cosine", weight=0.1, timestep_weighting=False)(proj, target, t)
    weighted = AlignLoss("cosine", weight=0.1, timestep_weighting=True)(proj, target, t)
    assert set(plain) == {"align", "align_raw", "align_sim"}
    assert plain["align"].item() == pytest.approx(0.1 * plain["align_raw"].item())
    per_sample = 1 - AlignLoss("cosine").similarity(proj, target).flatten(1).mean(1)
    assert weighted["align_raw"].item() == pytest.approx((per_sample[0] / 1 + per_sample[1] / 10).item() / 2, rel=1e-5)
    near = proj + 0.01 * target
    assert AlignLoss("cosine", margin=0.05, timestep_weighting=False)(proj, near, t)["align"].item() == 0.0
    assert AlignLoss("cosine", margin=0.0, timestep_weighting=False)(proj, near, t)["align"].item() > 0.0


def test_gradient_reaches_the_projection_not_the_target():
    proj = _features().requires_grad_(True)
    target = _features(seed=1).requires_grad_(True)
    AlignLoss("pearson")(proj, target, torch.tensor([3, 500]))["align"].backward()
    assert proj.grad is not None and proj.grad.abs().sum() > 0
    assert target.grad is None


def test_shape_mismatch_names_the_fix():
    with pytest.raises(ValueError, match="target_dim"):
        AlignLoss()(_features(d=8), _features(d=16), torch.zeros(2))
    with pytest.raises(ValueError, match="align.loss"):
        AlignLoss("l2")

"""Samplers: correctness on Gaussian data with an exact denoiser, determinism, guidance."""
from __future__ import annotations

import pytest
import torch

from medsora.diffusion import DiffusionConfig, guided_prediction, sample_generators, sample_latents, train_scheduler

MU, SIGMA = 1.5, 0.5


def _oracle(cfg: DiffusionConfig, learn_sigma: bool = False):
    """The exact ε/v prediction for data x0 ~ N(MU, SIGMA²) elementwise."""
    abar = train_scheduler(cfg).alphas_cumprod

    def denoiser(x, t):
        a = abar[t].sqrt().view(-1, 1, 1, 1, 1)
        b = (1 - abar[t]).sqrt().view(-1, 1, 1, 1, 1)
        eps = b * (x - a * MU) / (a**2 * SIGMA**2 + b**2)
        x0 = (x - b * eps) / a
        out = eps if cfg.prediction_type == "epsilon" else a * eps - b * x0
        return torch.cat([out, -torch.ones_like(out)], 1) if learn_sigma else out

    return denoiser


# DDPM with the small posterior variance needs many steps to keep the data's spread (50 steps
# give std 0.45 here); MedSora samples with 250.
@pytest.mark.parametrize("sampler,prediction_type,steps",
                         [("ddpm", "epsilon", 250), ("ddim", "epsilon", 50), ("ddim", "v_prediction", 50)])
def test_samples_follow_the_data_distribution(sampler, prediction_type, steps):
    cfg = DiffusionConfig(prediction_type=prediction_type)
    x = sample_latents(_oracle(cfg), (4, 1, 8, 16, 16), cfg, generators=sample_generators(0, 4),
                       sampler=sampler, steps=steps)
    assert abs(x.mean().item() - MU) < 0.05
    assert abs(x.std().item() - SIGMA) < 0.05


def test_learned_range_at_posterior_variance_equals_fixed_small_ddpm():
    cfg = DiffusionConfig()
    shape = (2, 2, 2, 4, 4)
    fixed = sample_latents(_oracle(cfg), shape, cfg, generators=sample_generators(7, 2), sampler="ddpm", steps=20)
    learned = sample_latents(_oracle(cfg, learn_sigma=True), shape, cfg, generators=sample_generators(7, 2),
                             learn_sigma=True, sampler="ddpm", steps=20)
    torch.testing.assert_close(learned, fixed, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_a_sample_depends_only_on_its_seed(sampler):
    cfg = DiffusionConfig()
    den = _oracle(cfg)
    batch = sample_latents(den, (3, 2, 2, 4, 4), cfg, generators=sample_generators(11, 3), sampler=sampler, steps=8)
    again = sample_latents(den, (3, 2, 2, 4, 4), cfg, generators=sample_generators(11, 3), sampler=sampler, steps=8)
    alone = sample_latents(den, (1, 2, 2, 4, 4), cfg, generators=sample_generators(11, 1, start=2),
                           sampler=sampler, steps=8)
    other = sample_latents(den, (3, 2, 2, 4, 4), cfg, generators=sample_generators(12, 3), sampler=sampler, steps=8)
    assert torch.equal(batch, again)
    torch.testing.assert_close(alone[0], batch[2], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(batch, other)


def test_guidance_scale_one_is_the_conditional_prediction_in_one_call():
    calls = []

    def den(x, t, label):
        calls.append(x.shape[0])
        return torch.cat([x * label.view(-1, 1, 1, 1, 1), x + label.view(-1, 1, 1, 1, 1)], 1)

    x, t = torch.randn(2, 3, 1, 2, 2), torch.tensor([5, 5])
    cond, uncond = {"label": torch.tensor([2.0, 3.0])}, {"label": torch.tensor([0.0, 0.0])}
    out = guided_prediction(den, x, t, 3, cond, uncond, scale=1.0)
    assert torch.equal(out, den(x, t, **cond)) and calls == [2, 2]
    g = guided_prediction(den, x, t, 3, cond, uncond, scale=4.0)
    assert calls[-1] == 4  # conditional and null branches in one batched call
    expected = x * 0 + 4.0 * (den(x, t, **cond)[:, :3] - 0)
    torch.testing.assert_close(g[:, :3], expected)
    torch.testing.assert_close(g[:, 3:], den(x, t, **cond)[:, 3:])  # variance from the conditional branch


def test_bad_step_count_names_the_key():
    cfg = DiffusionConfig()
    with pytest.raises(ValueError, match="diffusion.sample_steps"):
        sample_latents(_oracle(cfg), (1, 1, 1, 2, 2), cfg, generators=sample_generators(0, 1), steps=2000)

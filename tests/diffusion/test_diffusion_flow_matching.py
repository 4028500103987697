"""Flow matching: the loss in closed form, timestep draws and shift, OFRA's weight, Euler/Heun on a Gaussian toy."""
from __future__ import annotations

import math

import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from medsora.diffusion import DiffusionConfig, FlowMatchingObjective, sample_generators, sample_latents, train_scheduler
from medsora.diffusion.time_shift import time_shift
from medsora.training.batch_random import BatchRandom

MU, SIGMA = 1.5, 0.5


def _cfg(**kw) -> DiffusionConfig:
    return DiffusionConfig(objective="flow_matching", sampler="euler", **kw)


def test_loss_on_a_known_pair_is_the_closed_form():
    obj = FlowMatchingObjective(_cfg())
    x0 = torch.tensor([1.0, -2.0, 0.5, 3.0]).view(1, 1, 1, 2, 2).repeat(2, 1, 1, 1, 1)
    eps = torch.tensor([0.0, 1.0, -1.0, 2.0]).view(1, 1, 1, 2, 2).repeat(2, 1, 1, 1, 1)
    t = torch.tensor([0.25, 0.75])
    xt = obj.add_noise(x0, eps, t)
    # x_t = (1 − t)·x0 + t·ε, written out
    torch.testing.assert_close(xt[0].flatten(), torch.tensor([0.75, -1.25, 0.125, 2.75]))
    torch.testing.assert_close(xt[1].flatten(), torch.tensor([0.25, 0.25, -0.625, 2.25]))
    out = torch.zeros_like(x0)  # predicting 0: the loss is the mean of (ε − x0)² = (1+9+2.25+1)/4
    terms = obj.losses(out, x0, xt, t, eps)
    assert terms.keys() == {"denoise"}
    torch.testing.assert_close(terms["denoise"], torch.full((2,), (1.0 + 9.0 + 2.25 + 1.0) / 4))
    assert obj.losses(eps - x0, x0, xt, t, eps)["denoise"].abs().max() == 0
    torch.testing.assert_close(obj.model_timesteps(t), torch.tensor([250.0, 750.0]))


def test_shift_is_the_diffusers_schedule_and_grows_with_the_clip():
    sched = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0)
    base = torch.linspace(1.0, 0.001, 1000)
    torch.testing.assert_close(sched.sigmas, time_shift(base, 3.0), rtol=1e-5, atol=1e-6)
    obj = FlowMatchingObjective(_cfg(shift=1.5, shift_base_tokens=320))
    assert obj.shift_for((5, 8, 8)) == pytest.approx(1.5)
    assert obj.shift_for((5, 16, 16)) == pytest.approx(3.0)  # 4× the positions: √4 × the shift
    assert obj.shift_for((1, 8, 8)) == pytest.approx(1.5 / math.sqrt(5))  # a single frame: less
    assert FlowMatchingObjective(_cfg(shift=2.0)).shift_for((9, 99, 99)) == 2.0  # base 0: fixed


def test_logit_normal_draws_have_the_configured_logit_moments_and_shift_moves_them_to_noise():
    obj = FlowMatchingObjective(_cfg(logit_mean=0.5, logit_std=0.8))
    t = obj.draw_timesteps(BatchRandom(0), (20000,), (5, 8, 8))
    logit = torch.log(t) - torch.log1p(-t)
    assert abs(logit.mean().item() - 0.5) < 0.03 and abs(logit.std().item() - 0.8) < 0.03
    u = FlowMatchingObjective(_cfg(timestep_sampling="uniform")).draw_timesteps(BatchRandom(0), (20000,), (5, 8, 8))
    assert abs(u.mean().item() - 0.5) < 0.01 and u.min() >= 0 and u.max() <= 1
    shifted = FlowMatchingObjective(_cfg(timestep_sampling="uniform", shift=3.0)).draw_timesteps(
        BatchRandom(0), (20000,), (5, 8, 8))
    torch.testing.assert_close(shifted, time_shift(u, 3.0))  # same draws, shifted
    assert shifted.mean() > 0.6


def test_align_weight_matches_the_ddpm_step_of_the_same_noise_level():
    cfg = _cfg()
    obj = FlowMatchingObjective(cfg)
    abar = train_scheduler(cfg).alphas_cumprod.double()
    steps = torch.tensor([0, 3, 10, 250, 500, 990])
    snr = abar[steps] / (1 - abar[steps])
    t = 1.0 / (1.0 + snr.sqrt())  # ((1−t)/t)² = snr
    torch.testing.assert_close(obj.align_steps(t.float()), steps.float(), rtol=1e-3, atol=2e-2)
    ends = obj.align_steps(torch.tensor([0.0, 1.0]))
    assert ends.tolist() == [0.0, 999.0]
    grid = obj.align_steps(torch.linspace(0, 1, 101))
    assert (grid[1:] >= grid[:-1]).all()  # more noise, later step, smaller weight


def _velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The exact E[ε − x0 | x_t] for x0 ~ N(MU, SIGMA²) elementwise (t given as t·1000)."""
    s = (t.float() / 1000).view(-1, 1, 1, 1, 1)
    var = (1 - s) ** 2 * SIGMA**2 + s**2
    x0 = MU + (1 - s) * SIGMA**2 * (x - (1 - s) * MU) / var
    eps = s * (x - (1 - s) * MU) / var
    return eps - x0


@pytest.mark.parametrize("sampler,steps,shift", [("euler", 100, 1.0), ("euler", 100, 3.0), ("heun", 25, 1.0)])
def test_exact_velocity_lands_on_the_data_distribution(sampler, steps, shift):
    cfg = _cfg(shift=shift)
    x = sample_latents(_velocity, (4, 1, 8, 16, 16), cfg, generators=sample_generators(0, 4), sampler=sampler,
                       steps=steps)
    assert abs(x.mean().item() - MU) < 0.03
    assert abs(x.std().item() - SIGMA) < 0.03


def test_learned_sigma_and_bad_settings_are_refused_naming_the_key():
    with pytest.raises(ValueError, match="model.learn_sigma"):
        FlowMatchingObjective(_cfg(), learn_sigma=True)
    with pytest.raises(ValueError, match="diffusion.shift"):
        FlowMatchingObjective(_cfg(shift=0.0))
    with pytest.raises(ValueError, match="diffusion.logit_std"):
        FlowMatchingObjective(_cfg(logit_std=-1.0))

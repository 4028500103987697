"""The training objective: diffusers' forward process, targets, and the learned-sigma bound."""
from __future__ import annotations

import math

import pytest
import torch
from diffusers import DDPMScheduler
from torch.distributions import Normal, kl_divergence

from medsora.diffusion import DiffusionConfig, DiffusionObjective, train_scheduler
from medsora.diffusion.vlb import PosteriorTables, discretized_gaussian_log_likelihood, normal_kl


def _cfg(**kw) -> DiffusionConfig:
    return DiffusionConfig(**kw)


def test_normal_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(1)
    m1, m2, lv1, lv2 = (torch.randn(64, generator=g) for _ in range(4))
    ref = kl_divergence(Normal(m1, (0.5 * lv1).exp()), Normal(m2, (0.5 * lv2).exp()))
    torch.testing.assert_close(normal_kl(m1, lv1, m2, lv2), ref, rtol=1e-5, atol=1e-6)


def test_discretized_likelihood_matches_exact_bin_probability():
    x = torch.tensor([-1.0, -0.5, 0.0, 0.3, 1.0])
    means = torch.tensor([-0.9, -0.4, 0.05, 0.2, 0.95])
    log_scales = torch.full_like(x, math.log(0.1))
    dist = Normal(means, log_scales.exp())
    upper = torch.where(x > 0.999, torch.ones_like(x), dist.cdf(x + 1 / 255))
    lower = torch.where(x < -0.999, torch.zeros_like(x), dist.cdf(x - 1 / 255))
    ref = torch.log(upper - lower)
    # the tanh approximation of the normal CDF is accurate to ~1e-3 in probability
    torch.testing.assert_close(discretized_gaussian_log_likelihood(x, means, log_scales), ref, rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("schedule", ["linear", "scaled_linear"])
def test_learned_range_matches_diffusers_variance(schedule):
    cfg = _cfg(beta_schedule=schedule, beta_start=0.00085 if schedule == "scaled_linear" else 1e-4,
               beta_end=0.012 if schedule == "scaled_linear" else 0.02)
    sched = train_scheduler(cfg, learn_sigma=True)
    tables = PosteriorTables(sched.betas)
    for t in (1, 10, 500, 999):
        v = torch.tensor([-1.0, -0.3, 0.4, 1.0])
        ours = tables.learned_log_variance(v.view(4, 1), torch.full((4,), t)).view(4)
        ref = sched._get_variance(t, predicted_variance=v)
        torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_posterior_mean_matches_diffusers_ddpm_step(prediction_type):
    cfg = _cfg(prediction_type=prediction_type)
    sched = train_scheduler(cfg)
    tables = PosteriorTables(sched.betas)
    g = torch.Generator().manual_seed(0)
    xt, pred = torch.randn(1, 4, 2, 3, 3, generator=g), torch.randn(1, 4, 2, 3, 3, generator=g)
    for t in (0, 7, 640):
        step_gen = torch.Generator().manual_seed(5)
        out = sched.step(pred, t, xt, generator=step_gen).prev_sample
        noise = torch.randn(xt.shape, generator=torch.Generator().manual_seed(5)) if t > 0 else torch.zeros_like(xt)
        mean = out - sched._get_variance(t) ** 0.5 * noise
        tt = torch.tensor([t])
        ours = tables.posterior_mean(tables.predict_x0(pred, xt, tt, prediction_type), xt, tt)
        torch.testing.assert_close(ours, mean, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_perfect_prediction_has_zero_loss_and_recovers_x0(prediction_type):
    obj = DiffusionObjective(_cfg(prediction_type=prediction_type), learn_sigma=True)
    x0 = torch.randn(6, 4, 2, 4, 4)
    xt, t, eps = obj.noise(x0)
    target = obj.target(x0, eps, t)
    torch.testing.assert_close(obj.tables.predict_x0(target, xt, t, prediction_type), x0, rtol=1e-3, atol=1e-3)
    t = torch.clamp(t, min=1)  # at t = 0 the bound is the decoder likelihood, not a KL
    xt = obj.scheduler.add_noise(x0, eps, t)
    target = obj.target(x0, eps, t)
    # variance channels at -1 select the true posterior variance β̃_t: the KL is zero
    terms = obj.losses(torch.cat([target, -torch.ones_like(target)], 1), x0, xt, t, eps)
    assert terms["denoise"].abs().max() < 1e-10
    assert terms["vlb"].abs().max() < 1e-4
    # early steps, where β_t and β̃_t differ most: the wrong variance costs bits
    t = torch.arange(2, 8)
    xt = obj.scheduler.add_noise(x0, eps, t)
    target = obj.target(x0, eps, t)
    right = obj.losses(torch.cat([target, -torch.ones_like(target)], 1), x0, xt, t, eps)["vlb"]
    wrong = obj.losses(torch.cat([target, torch.ones_like(target)], 1), x0, xt, t, eps)["vlb"]
    assert (wrong > right + 1e-3).all()


def test_vlb_trains_only_the_variance_channels():
    obj = DiffusionObjective(_cfg(), learn_sigma=True)
    x0 = torch.randn(3, 4, 2, 4, 4)
    xt, t, eps = obj.noise(x0)
    out = torch.randn(3, 8, 2, 4, 4, requires_grad=True)
    obj.losses(out, x0, xt, t, eps)["vlb"].sum().backward()
    assert out.grad[:, :4].abs().max() == 0
    assert out.grad[:, 4:].abs().max() > 0


def test_v_target_is_diffusers_velocity_and_noise_is_diffusers_add_noise():
    cfg = _cfg(prediction_type="v_prediction")
    obj = DiffusionObjective(cfg)
    ref = DDPMScheduler(num_train_timesteps=1000, prediction_type="v_prediction")
    torch.manual_seed(3)
    x0 = torch.randn(4, 4, 1, 2, 2)
    xt, t, eps = obj.noise(x0)
    torch.testing.assert_close(xt, ref.add_noise(x0, eps, t))
    torch.testing.assert_close(obj.target(x0, eps, t), ref.get_velocity(x0, eps, t))
    assert obj.losses(torch.zeros_like(x0), x0, xt, t, eps).keys() == {"denoise"}


def test_wrong_channel_count_names_the_setting():
    obj = DiffusionObjective(_cfg(), learn_sigma=True)
    x0 = torch.randn(1, 4, 1, 2, 2)
    with pytest.raises(ValueError, match="model.learn_sigma"):
        obj.losses(torch.zeros_like(x0), x0, x0, torch.tensor([3]), x0)

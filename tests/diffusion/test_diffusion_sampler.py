"""Samplers: correctness on Gaussian data with an exact denoiser, determinism, guidance, argument checks."""
from __future__ import annotations

import pytest
import torch

from medsora.diffusion import (SAMPLERS, DiffusionConfig, denoise_loop, guided_prediction, sample_generators,
                               sample_latents, sampling_scheduler, train_scheduler)

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
                         [("ddpm", "epsilon", 250), ("ddim", "epsilon", 50), ("ddim", "v_prediction", 50),
                          ("dpmpp", "epsilon", 25), ("dpmpp", "v_prediction", 25)])
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


def _velocity(x, t):
    """A flow-matching model (t given as t·1000): a fixed nonlinear field, enough for determinism."""
    return torch.tanh(x) * (t.float() / 1000).view(-1, 1, 1, 1, 1) - 0.3


def _setup(sampler: str):
    if SAMPLERS[sampler] == "flow_matching":
        return DiffusionConfig(objective="flow_matching", sampler=sampler), _velocity
    cfg = DiffusionConfig(sampler=sampler)
    return cfg, _oracle(cfg)


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_a_sample_depends_only_on_its_seed(sampler):
    cfg, den = _setup(sampler)
    batch = sample_latents(den, (3, 2, 2, 4, 4), cfg, generators=sample_generators(11, 3), sampler=sampler, steps=8)
    again = sample_latents(den, (3, 2, 2, 4, 4), cfg, generators=sample_generators(11, 3), sampler=sampler, steps=8)
    alone = sample_latents(den, (1, 2, 2, 4, 4), cfg, generators=sample_generators(11, 1, start=2),
                           sampler=sampler, steps=8)
    other = sample_latents(den, (3, 2, 2, 4, 4), cfg, generators=sample_generators(12, 3), sampler=sampler, steps=8)
    assert torch.equal(batch, again)
    torch.testing.assert_close(alone[0], batch[2], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(batch, other)


class _Net(torch.nn.Module):
    """An ε-model that is not an exact denoiser: the Gaussian oracle plus a random nonlinear term."""

    def __init__(self):
        super().__init__()
        self.oracle = _oracle(DiffusionConfig())
        g = torch.Generator().manual_seed(3)
        self.conv = torch.nn.Conv3d(2, 2, 3, padding=1)
        with torch.no_grad():
            for p in self.conv.parameters():
                p.copy_(0.3 * torch.randn(p.shape, generator=g))

    def forward(self, x, t):
        return self.oracle(x, t) + 0.3 * torch.tanh(self.conv(x))


def test_dpm_solver_at_1000_steps_is_ddim_at_1000_steps():
    cfg, net = DiffusionConfig(), _Net().eval()
    shape = (2, 2, 2, 4, 4)
    ddim = sample_latents(net, shape, cfg, generators=sample_generators(5, 2), sampler="ddim", steps=1000)
    dpm = sample_latents(net, shape, cfg, generators=sample_generators(5, 2), sampler="dpmpp", steps=1000)
    few = sample_latents(net, shape, cfg, generators=sample_generators(5, 2), sampler="ddim", steps=10)
    scale = ddim.abs().mean()
    assert (dpm - ddim).abs().max() < 0.01 * scale  # the same ODE solution
    assert (few - ddim).abs().max() > 5 * (dpm - ddim).abs().max()  # a coarse solve is visibly off


@pytest.mark.parametrize("objective,sampler,fit", [("ddpm", "euler", "ddpm or ddim or dpmpp"),
                                                   ("ddpm", "heun", "ddpm or ddim or dpmpp"),
                                                   ("flow_matching", "ddim", "euler or heun"),
                                                   ("flow_matching", "dpmpp", "euler or heun")])
def test_a_sampler_of_another_objective_is_refused_naming_those_that_fit(objective, sampler, fit):
    cfg = DiffusionConfig(objective=objective, sampler="euler" if objective == "flow_matching" else "ddim")
    with pytest.raises(ValueError, match=f"--sampler.*{sampler!r} does not fit.*{objective!r}.*use {fit}$"):
        sample_latents(_velocity, (1, 1, 1, 2, 2), cfg, generators=sample_generators(0, 1), sampler=sampler, steps=4)


def test_hook_sees_every_evaluation_and_the_end():
    """Context frames imposed by the hook stay what it sets (the image-to-video mechanism)."""
    cfg = DiffusionConfig(objective="flow_matching", sampler="euler")
    context = torch.full((1, 1, 1, 2, 2), 0.7)
    seen = []

    def hook(x, t):
        seen.append(None if t is None else float(t))
        x = x.clone()
        level = 0.0 if t is None else float(t) / 1000
        x[:, :, :1] = (1 - level) * context + level * 0.1  # noised to t's level, clean at the end
        return x

    x = sample_latents(_velocity, (1, 1, 3, 2, 2), cfg, generators=sample_generators(0, 1), steps=5, hook=hook)
    sched = sampling_scheduler(cfg, sampler="euler", grid=(3, 2, 2))
    sched.set_timesteps(5)
    assert seen == [*sched.timesteps.tolist(), None]
    assert torch.equal(x[:, :, :1], context)
    # the loop alone, with a scheduler and a model callable
    sched.set_timesteps(5)
    y = denoise_loop(lambda z, t: _velocity(z, t.expand(1)), sched, torch.randn(1, 1, 3, 2, 2))
    assert y.shape == (1, 1, 3, 2, 2)


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


@pytest.mark.parametrize("sampler,steps,scale,match", [
    ("ddim", 2000, 1.0, r"--steps / diffusion.sample_steps = 2000: the ddim sampler takes 1..1000"),
    ("dpmpp", 0, 1.0, r"--steps / diffusion.sample_steps = 0"),
    ("euler", 0, 1.0, r"--steps / diffusion.sample_steps = 0: expected at least 1"),
    ("heun", -3, 1.0, r"--steps / diffusion.sample_steps = -3"),
    ("ddim", 10, -1.0, r"--cfg / diffusion.cfg_scale = -1.0"),
    ("euler", 10, float("nan"), r"--cfg / diffusion.cfg_scale = nan"),
])
def test_bad_sampling_arguments_name_the_argument(sampler, steps, scale, match):
    cfg, den = _setup(sampler)
    with pytest.raises(ValueError, match=match) as err:
        sample_latents(den, (1, 1, 1, 2, 2), cfg, generators=sample_generators(0, 1), sampler=sampler, steps=steps,
                       guidance_scale=scale)
    assert "\n" not in str(err.value)

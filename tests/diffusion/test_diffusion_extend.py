"""Long-video extension in latent space: the window plan, known frames fixed through every sampler of both
objectives in both modes (context latents, replacement), the cross-fade, argument checks, the seam metric."""
from __future__ import annotations

import pytest
import torch

from medsora.backbone import MedSoraDiT
from medsora.config import compose
from medsora.diffusion import sample_generators, sample_latents
from medsora.diffusion import extend as extend_module
from medsora.diffusion.extend import Window, check_extension, extend_latents, extension_mode, plan_windows, seam_frames
from medsora.diffusion.schedules import train_scheduler
from medsora.metrics.seams import frame_differences, seam_statistics, seam_transitions

C, HIDDEN, W = 4, 32, 3
SAMPLERS = [("medsora", "ddpm"), ("medsora", "ddim"), ("medsora", "dpmpp"), ("flow_matching", "euler"),
            ("flow_matching", "heun")]


def test_windows_cover_the_clip_with_the_context_and_overlap_asked():
    plan = plan_windows(33, 5)  # a 17-frame model (5 latent frames) to 129 frames
    assert len(plan) == 8 and plan[0] == Window(0, 0, 0, 5)
    assert [w.start for w in plan[1:]] == [4, 8, 12, 16, 20, 24, 28] and all(w.new == 4 for w in plan[1:])
    assert sum(w.new for w in plan) == 33 and seam_frames(plan) == [5, 9, 13, 17, 21, 25, 29]
    blended = plan_windows(17, 5, context=1, overlap=1)
    assert [(w.start, w.known, w.blend, w.keep) for w in blended] == [(0, 0, 0, 5), (3, 1, 1, 5), (6, 1, 1, 5),
                                                                    (9, 1, 1, 5), (12, 1, 1, 5)]
    assert plan_windows(16, 5, 1, 1)[-1] == Window(12, 1, 1, 4)  # sampled whole; frames past the end are dropped
    assert [w.new for w in plan_windows(7, 5, context=2)] == [5, 2]


@pytest.mark.parametrize("frames,match", [
    (20, r"--frames / num_frames = 20: must be 1 \+ 4k .*e\.g\. 17 or 21"),
    (0, r"--frames / num_frames = 0: must be 1 \+ 4k"),
])
def test_frames_that_are_not_one_plus_four_k_are_refused_naming_frames(frames, match):
    with pytest.raises(ValueError, match=match) as err:
        check_extension(frames, 4, 5)
    assert "\n" not in str(err.value)


def test_extension_arguments_are_checked():
    assert check_extension(129, 4, 5) == 33 and check_extension(9, 4, 5) == 3 and check_extension(10, 1, 5) == 10
    with pytest.raises(ValueError, match=r"--context-frames 3 \+ --overlap 2 .* use at most 4 together"):
        check_extension(65, 4, 5, context=3, overlap=2)
    with pytest.raises(ValueError, match=r"--overlap 1: applies to --frames beyond the training length \(17 frames\)"):
        check_extension(17, 4, 5, overlap=1)
    with pytest.raises(ValueError, match="needs a model trained with context latents"):
        extension_mode(False, "context")
    assert extension_mode(True) == "context" and extension_mode(False) == "replace"


def _model(context_frames: bool):
    torch.manual_seed(0)
    model = MedSoraDiT(C, blocks=["full_attn"], depth=1, hidden=HIDDEN, heads=4, scan_impl="torch",
                       context_frames=context_frames).eval()
    with torch.no_grad():  # adaLN-Zero and the context channels start at zero: make them matter
        for p in model.parameters():
            if (p == 0).all():
                p.normal_(std=0.1)
        if context_frames:
            model.patch_embed.proj.weight[:, C:].normal_(std=0.1)
    return model


def _level(cfg, t: torch.Tensor) -> tuple[float, float]:
    """(signal, noise) coefficients of the forward process at the model's timestep ``t``."""
    if cfg.objective == "flow_matching":
        sigma = float(t) / cfg.num_train_timesteps
        return 1.0 - sigma, sigma
    abar = float(train_scheduler(cfg).alphas_cumprod[int(t)])
    return abar ** 0.5, (1.0 - abar) ** 0.5


@pytest.mark.parametrize("mode", ["context", "replace"])
@pytest.mark.parametrize("diffusion,sampler", SAMPLERS)
def test_known_latents_stay_fixed_through_every_window_for_every_sampler(diffusion, sampler, mode):
    """Context mode: the model sees the clean known frames at every evaluation, in both guidance branches.
    Replacement: it sees them at exactly the noise level of the step, with one noise draw per window."""
    cfg = compose("diffusion_demo", [f"diffusion={diffusion}", "diffusion.sample_steps=4"]).diffusion
    model, total, known = _model(mode == "context"), 7, 2
    cond = {"cond": torch.randn(2, HIDDEN), "context": None, "context_mask": None}
    uncond = {"cond": torch.zeros(2, HIDDEN), "context": None, "context_mask": None}
    if mode == "context":
        empty = {"context_latents": torch.zeros(2, C, W, 8, 8), "context_latent_mask": torch.zeros(2, 1, W, 8, 8).bool()}
        cond, uncond = {**cond, **empty}, {**uncond, **empty}
    calls = []

    def denoiser(x, t, **kwargs):
        calls.append((x[:2, :, :known].clone(), t[0].clone(), kwargs.get("context_latents")))
        return model(x, t, **kwargs)

    gens = sample_generators(0, 2)
    first = sample_latents(denoiser, (2, C, W, 8, 8), cfg, generators=gens, sampler=sampler, guidance_scale=2.0,
                           cond=cond, uncond=uncond)
    n_first = len(calls)
    clip = extend_latents(denoiser, first, total, cfg, generators=gens, mode=mode, context=known, sampler=sampler,
                          guidance_scale=2.0, cond=cond, uncond=uncond)
    assert clip.shape == (2, C, total, 8, 8) and torch.equal(clip[:, :, :W], first)
    per_window = n_first
    windows = plan_windows(total, W, known)
    assert len(calls) == n_first * len(windows)
    for k, win in enumerate(windows[1:], start=1):
        given = clip[:, :, win.start:win.start + known]
        window_calls = calls[k * per_window:(k + 1) * per_window]
        if mode == "context":  # clean, and handed to the model as context latents too (both branches)
            for x, t, ctx in window_calls:
                assert torch.equal(x, given) and torch.equal(ctx[:2, :, :known], given) and torch.equal(ctx[2:], ctx[:2])
            continue
        x, t, _ = window_calls[0]  # the noise implied at the first (noisiest) step ...
        signal, noise = _level(cfg, t)
        eps = (x - signal * given) / noise
        assert 0.5 < eps.std() < 2
        for x, t, _ in window_calls[1:]:  # ... is the noise of every later step, at that step's level
            signal, noise = _level(cfg, t)
            torch.testing.assert_close(x, signal * given + noise * eps, rtol=1e-5, atol=2e-5)


def test_overlap_cross_fades_linearly_in_latent_space(monkeypatch):
    cfg = compose("diffusion_demo", ["diffusion=flow_matching", "diffusion.sample_steps=2"]).diffusion
    model, outputs = _model(False), []
    real = extend_module.sample_latents

    def recording(*args, **kwargs):
        outputs.append(real(*args, **kwargs))
        return outputs[-1]

    monkeypatch.setattr(extend_module, "sample_latents", recording)
    gens = sample_generators(3, 1)
    first = sample_latents(model, (1, C, 5, 8, 8), cfg, generators=gens)
    clip = extend_latents(model, first, 7, cfg, generators=gens, mode="replace", context=1, overlap=2)
    (win,) = plan_windows(7, 5, 1, 2)[1:]  # start 2: frame 2 given, frames 3 and 4 re-made, 5 and 6 new
    assert (win.start, win.new) == (2, 2) and len(outputs) == 1
    new = outputs[0]
    torch.testing.assert_close(clip[:, :, 3], first[:, :, 3] * 2 / 3 + new[:, :, 1] / 3)
    torch.testing.assert_close(clip[:, :, 4], first[:, :, 4] / 3 + new[:, :, 2] * 2 / 3)
    assert torch.equal(clip[:, :, :3], first[:, :, :3]) and torch.equal(clip[:, :, 5:], new[:, :, 3:])


def test_seam_metric_on_a_known_synthetic_video():
    """Frames that brighten by 0.01 per frame, and by 0.03 across the seams: the ratio is 3 by construction."""
    stride, seams = 4, [5, 9]  # a 5-latent window extended by 4 latent frames twice: 13 latent, 49 video frames
    steps = torch.full((48,), 0.01, dtype=torch.float64)
    steps[seam_transitions(seams, stride)] = 0.03
    assert seam_transitions(seams, stride) == [16, 32]
    levels = torch.cat([torch.zeros(1, dtype=torch.float64), steps.cumsum(0)])
    video = levels.view(1, 1, 49, 1, 1).expand(2, 3, 49, 4, 4) - 0.5
    diffs = frame_differences(video)
    assert diffs.shape == (2, 48)
    stats = seam_statistics(diffs, seams, stride)
    assert stats["seams"] == 2 and stats["seam"] == pytest.approx(0.03) and stats["within"] == pytest.approx(0.01)
    assert stats["ratio"] == pytest.approx(3.0) and stats["ratio_same_phase"] == pytest.approx(3.0)
    video = video.clone()
    video[:, :, 2::4] += 0.02  # a flicker inside every latent group (frames 2, 6, …): changes only the all-transition mean
    stats = seam_statistics(frame_differences(video), seams, stride)
    assert stats["ratio_same_phase"] == pytest.approx(3.0) and stats["ratio"] < 2.0
    with pytest.raises(ValueError, match="do not fit a video of 49 frames"):
        seam_statistics(diffs, [9, 13], stride)

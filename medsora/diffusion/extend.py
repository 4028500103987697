"""Long videos: autoregressive extension in latent space, one training-length window at a time.

A model trained on clips of ``W`` latent frames samples a clip of ``T > W`` latent frames window by
window. The first window is a plain sample (the same call, the same noise: bit-equal to
``generate`` without ``num_frames``); every later window starts ``context`` latent frames before the
end of what exists, is given those frames, and appends what follows them. Two ways to give them:

* ``context`` — the model was trained with context latents (``cond.first_frame: true``, the
  CogVideoX-I2V channels of :mod:`medsora.cond.context`): the known frames go in as clean context
  latents with their mask, in both guidance branches, and the sampler keeps them clean at every step.
  Image-to-video and extension are then literally one mechanism with different frames.
* ``replace`` — any other model: inpainting in time (RePaint, Lugmayr et al. 2022; SDEdit-style
  conditioning; diffusers' inpainting pipelines do the same in space). Before every model evaluation
  the known frames are overwritten with themselves noised to the level the model is about to see
  (the objective's own forward process, one fixed draw of noise per window so the known frames follow
  the forward trajectory of a deterministic sampler), and after the last step with their clean values.
  RePaint's resampling ("jumps back") is not done: it multiplies the cost by its jump count.

``overlap`` adds ``K`` latent frames after the context that both windows generate; they are
cross-faded linearly in latent space (weights ``(i+1)/(K+1)`` for the new window's frame ``i``).
The last window is a whole window as well; frames past the end are dropped.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

import torch
from diffusers.utils.torch_utils import randn_tensor
from torch import Tensor
from tqdm.auto import tqdm

from medsora.diffusion.guidance import Denoiser
from medsora.diffusion.sampler import sample_latents
from medsora.diffusion.schema import DiffusionConfig

__all__ = ["EXTEND_MODES", "Window", "check_extension", "extend_latents", "extension_mode", "plan_windows",
           "seam_frames"]

EXTEND_MODES = ("context", "replace")


@dataclass(frozen=True)
class Window:
    """One sampling window of a long clip (indices in latent frames of the whole clip).

    Attributes:
        start: the window's first latent frame.
        known: frames at its start that are given (the previous windows' last frames), kept fixed.
        blend: the next frames, which the previous window also made: cross-faded.
        keep: frames of the window that are used (``known + blend + new``); the rest is dropped.
    """

    start: int
    known: int
    blend: int
    keep: int

    @property
    def new(self) -> int:
        """Latent frames this window adds to the clip."""
        return self.keep - self.known - self.blend


def check_extension(num_frames: int, stride: int, window: int, context: int = 1, overlap: int = 0) -> int:
    """Latent frames of a ``num_frames`` clip, after checking the long-video arguments (one line each).

    Args:
        num_frames: video frames asked for (``--frames``); ``1 + stride·k``.
        stride: the VAE's temporal stride (4 for the causal VAE, 1 for ``vae=sd``).
        window: latent frames of a training clip (the model's window).
        context / overlap: ``--context-frames`` / ``--overlap``.
    Raises:
        ValueError: naming the argument and the fix.
    """
    if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1 or (num_frames - 1) % stride:
        low = num_frames - (num_frames - 1) % stride if isinstance(num_frames, int) and num_frames > 1 else 1
        raise ValueError(f"--frames / num_frames = {num_frames}: must be 1 + {stride}k (the VAE's frame stride), "
                         f"e.g. {low} or {low + stride}")
    total = 1 + (int(num_frames) - 1) // stride
    if context < 1 or overlap < 0:
        raise ValueError(f"--context-frames = {context} / --overlap = {overlap}: need context >= 1 and overlap >= 0")
    if total > window and context + overlap >= window:
        raise ValueError(f"--context-frames {context} + --overlap {overlap} latent frames leave no new frame in a "
                         f"window of {window} latent frames (the training clip): use at most {window - 1} together")
    if total <= window and overlap:
        raise ValueError(f"--overlap {overlap}: applies to --frames beyond the training length "
                         f"({1 + stride * (window - 1)} frames)")
    return total


def plan_windows(total: int, window: int, context: int = 1, overlap: int = 0) -> list[Window]:
    """The windows that cover ``total`` latent frames with ``window``-frame samples.

    The first is a plain window; each later one starts ``context + overlap`` frames before the end
    of the clip so far and adds ``window - context - overlap`` frames (the last one fewer).
    """
    plan = [Window(0, 0, 0, min(window, total))]
    length = plan[0].keep
    step = window - context - overlap
    if step < 1 and total > window:
        raise ValueError(f"context {context} + overlap {overlap} must be < window {window}")
    while length < total:
        new = min(step, total - length)
        plan.append(Window(length - context - overlap, context, overlap, context + overlap + new))
        length += new
    return plan


def seam_frames(plan: list[Window]) -> list[int]:
    """Latent frames where a window's own frames begin (the first frame after its context)."""
    return [w.start + w.known for w in plan[1:]]


def extension_mode(context_trained: bool, mode: Optional[str] = None) -> str:
    """``context`` for a model trained with context latents, else ``replace`` (or ``mode`` when given)."""
    if mode is None:
        return "context" if context_trained else "replace"
    if mode not in EXTEND_MODES:
        raise ValueError(f"extension mode {mode!r}: expected one of {EXTEND_MODES}")
    if mode == "context" and not context_trained:
        raise ValueError("extension mode 'context' needs a model trained with context latents (cond.first_frame: "
                         "true); use 'replace'")
    return mode


def _noiser(cfg: DiffusionConfig, learn_sigma: bool):
    """``noise(x0, eps, t)``: x0 at the level of a sampler timestep ``t`` (as the model sees it)."""
    if cfg.objective == "flow_matching":
        n = float(cfg.num_train_timesteps)  # FlowMatch schedulers' timesteps are σ·N

        def noise(x0: Tensor, eps: Tensor, t: Tensor) -> Tensor:
            sigma = (t.float() / n).to(x0.device)
            return (1.0 - sigma) * x0 + sigma * eps
        return noise
    from medsora.diffusion.schedules import train_scheduler

    scheduler = train_scheduler(cfg, learn_sigma)

    def noise(x0: Tensor, eps: Tensor, t: Tensor) -> Tensor:  # √ᾱ_t·x0 + √(1−ᾱ_t)·ε (diffusers' add_noise)
        return scheduler.add_noise(x0, eps, t.reshape(1).long().expand(x0.shape[0]).to(x0.device))
    return noise


def _with_context(kwargs: Optional[Mapping], known: Tensor, length: int) -> dict:
    from medsora.cond.context import ContextLatents

    if kwargs is None or "context_latents" not in kwargs:
        raise ValueError("extension mode 'context' needs conditions with context latents (cond.first_frame model)")
    ctx = ContextLatents.frames(known, list(range(known.shape[2])), length)
    return {**kwargs, "context_latents": ctx.latents, "context_latent_mask": ctx.mask}


@torch.no_grad()
def extend_latents(denoiser: Denoiser, first: Tensor, total: int, cfg: DiffusionConfig, *,
                   generators: list[torch.Generator], mode: str, context: int = 1, overlap: int = 0,
                   learn_sigma: bool = False, sampler: Optional[str] = None, steps: Optional[int] = None,
                   guidance_scale: Optional[float] = None, cond: Optional[Mapping] = None,
                   uncond: Optional[Mapping] = None, device: torch.device | str = "cpu",
                   dtype: torch.dtype = torch.float32, progress: bool = False) -> Tensor:
    """Extend the first window ``first`` (B×C×W×h×w, already sampled) to ``total`` latent frames.

    Args:
        denoiser, cfg, learn_sigma, sampler, steps, guidance_scale, cond, uncond, device, dtype: as
            :func:`medsora.diffusion.sample_latents` (every window is one such call).
        generators: the generators that drew the first window, consumed further by each window, so the
            clip is a function of the seeds alone.
        mode: ``context`` or ``replace`` (see the module docstring, :func:`extension_mode`).
        context / overlap: latent frames given / cross-faded per window (:func:`plan_windows`).
        progress: a bar over the windows (and each window's steps).
    Returns:
        B×C×total×h×w latents; the first ``W`` equal ``first``.
    """
    if mode not in EXTEND_MODES:
        raise ValueError(f"extension mode {mode!r}: expected one of {EXTEND_MODES}")
    b, c, window, h, w = first.shape
    plan = plan_windows(total, window, context, overlap)
    clip = torch.empty(b, c, total, h, w, dtype=first.dtype, device=first.device)
    clip[:, :, :window] = first[:, :, :plan[0].keep]
    noise = _noiser(cfg, learn_sigma) if mode == "replace" else None
    bar = tqdm(total=len(plan), initial=1, desc=f"long video ({mode})", unit="window", disable=not progress)
    for win in plan[1:]:
        known = clip[:, :, win.start:win.start + win.known].float()
        hook, cond_w, uncond_w = None, cond, uncond
        if mode == "context":
            cond_w = _with_context(cond, known, window)
            uncond_w = _with_context(uncond, known, window) if uncond is not None else None
        else:
            eps = randn_tensor(tuple(known.shape), generator=generators, device=known.device, dtype=torch.float32)

            def hook(x: Tensor, t: Optional[Tensor], known=known, eps=eps) -> Tensor:
                x = x.clone()
                x[:, :, :known.shape[2]] = known if t is None else noise(known, eps, t)
                return x
        out = sample_latents(denoiser, (b, c, window, h, w), cfg, generators=generators, learn_sigma=learn_sigma,
                             sampler=sampler, steps=steps, guidance_scale=guidance_scale, cond=cond_w,
                             uncond=uncond_w, device=device, dtype=dtype, progress=progress, hook=hook)
        at = win.start + win.known
        for i in range(win.blend):  # linear cross-fade from the previous window's frame to this one's
            weight = (i + 1) / (win.blend + 1)
            clip[:, :, at + i] = (1 - weight) * clip[:, :, at + i] + weight * out[:, :, win.known + i]
        clip[:, :, at + win.blend:win.start + win.keep] = out[:, :, win.known + win.blend:win.keep]
        bar.update(1)
    bar.close()
    return clip

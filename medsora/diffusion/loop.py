"""The one sampling loop every sampler runs: a model callable, a diffusers scheduler, a hook."""
from __future__ import annotations

from typing import Callable, Optional

from torch import Tensor
from tqdm.auto import tqdm

__all__ = ["StepHook", "denoise_loop"]

StepHook = Callable[[Tensor, Optional[Tensor]], Tensor]
"""``hook(x, t) -> x``: called with the current sample before every model evaluation (``t`` the
timestep the model is about to see) and once after the last step with ``t = None``. Context
latents (first frame for image-to-video, earlier frames for long video) are re-imposed here:
noised to the level of ``t`` before an evaluation, clean at the end."""


def denoise_loop(predict: Callable[[Tensor, Tensor], Tensor], scheduler, x: Tensor, *,
                 hook: Optional[StepHook] = None, step_kwargs: Optional[dict] = None,
                 progress: bool = False, desc: str = "sampling") -> Tensor:
    """Run ``scheduler`` from ``x`` (its initial noise, already times ``init_noise_sigma``).

    Args:
        predict: ``predict(model_input: B×C×T×H×W, t: 0-d timestep) -> what scheduler.step expects``
            (the guided ε/v/velocity prediction; DDPM with learned sigma also the variance channels).
        scheduler: a diffusers scheduler after ``set_timesteps``.
        hook: see :data:`StepHook`.
        step_kwargs: extra arguments of ``scheduler.step`` (generators, DDIM's eta).
    Returns:
        The final sample, like ``x``.
    """
    step_kwargs = step_kwargs or {}
    scale = getattr(scheduler, "scale_model_input", None)
    for t in tqdm(scheduler.timesteps, desc=desc, disable=not progress, leave=False):
        if hook is not None:
            x = hook(x, t)
        model_in = scale(x, t) if scale is not None else x
        x = scheduler.step(predict(model_in, t), t, x, **step_kwargs).prev_sample
    if hook is not None:
        x = hook(x, None)
    return x

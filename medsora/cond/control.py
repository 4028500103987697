"""The two guidance branches of a sampling batch, with every control a model was trained for:
modality, prompt, named attributes (optionally guided alone) and the first-frame context."""
from __future__ import annotations

from typing import Optional, Sequence

import torch

from medsora.cond.condition import Condition
from medsora.cond.context import ContextLatents
from medsora.cond.first_frame import encode_first_frame

__all__ = ["control_pair"]


def control_pair(module, n: int, modalities: Optional[Sequence[str]] = None, prompts: Optional[Sequence[str]] = None,
                 negative_prompt: Optional[str] = None, attributes: Optional[Sequence] = None,
                 guide: Optional[Sequence[str]] = None, first_frames: Optional[torch.Tensor] = None,
                 frames: Optional[int] = None):
    """(cond, uncond) :class:`Condition` for ``n`` samples of a ``DiffusionModule``, or (None, None).

    The first-frame context (image-to-video) is given to both branches, as CogVideoX-I2V does: guidance
    then steers modality/text/attributes around a fixed start, and the context is kept clean by the
    sampler in both. A ``cond.first_frame`` model sampled without ``first_frames`` generates from
    nothing (the context-dropped path it was trained on).

    ``frames``: latent frames of the sampled clip (default the training clip's; shorter for ``--frames``).

    Raises:
        ValueError: a control the model was not trained for (naming the option to drop).
    """
    encoder = module.cond_encoder
    first = bool(module.cfg.cond.first_frame)
    if first_frames is not None and not first:
        raise ValueError("this model was not trained for image-to-video (cond.first_frame is off): drop --image")
    if encoder is None:
        if modalities or prompts or attributes or guide:
            raise ValueError("this model is unconditional (cond.modality, cond.text and cond.attributes are off): "
                             "drop --modality/--prompt/--attr")
        cond = uncond = None
    else:
        if (attributes or guide) and not encoder.attribute_specs:
            raise ValueError("this model has no attributes (cond.attributes is empty): drop --attr/--guide-attr")
        if modalities is None and prompts is None:
            prompts = [""] * n  # without prompts, captions fall back to the template
        cond, uncond = encoder.guidance_pair(prompts, modalities, negative_prompt=negative_prompt,
                                             attributes=attributes, guide=guide)
    if not first:
        return cond, uncond
    device = module.device
    _, height, width = module.latent_grid()
    shape = (n, module.in_channels, frames or module.latent_grid()[0], height, width)
    if first_frames is None:
        context = ContextLatents.empty(shape, device=device)
    else:
        if not module.can_decode:
            raise ValueError("image-to-video encodes the image with the VAE: set vae.ckpt=PATH (or --vae)")
        if first_frames.shape[0] != n:
            raise ValueError(f"got {first_frames.shape[0]} first frames for {n} samples")
        latent = encode_first_frame(module._vae.on(device), first_frames.to(device).float(), module.scaling_factor)
        if tuple(latent.shape[-2:]) != (height, width):
            raise ValueError(f"the image gives {tuple(latent.shape[-2:])} latents, the model samples "
                             f"{(height, width)}: preprocess it to data.size={module.cfg.data.size}")
        context = ContextLatents.frames(latent, [0], shape[2])
    if cond is None:
        cond = uncond = Condition(torch.zeros(n, int(module.cfg.model.hidden), device=device))
    return cond.with_context(context), uncond.with_context(context)

"""Sampling of the diffusion LightningModule: conditions for CFG and ``generate`` (a mixin).

Kept apart from :mod:`medsora.training.diffusion_module` (training wiring). It relies on the module's ``backbone``,
``cond_encoder``, ``in_channels``, ``latent_grid()``, ``scaling_factor``, ``can_decode``, ``_vae`` and
``cfg``; ``medsora.sample`` and the sweeps call ``generate``.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch

from medsora.diffusion import sample_generators, sample_latents

__all__ = ["SamplingMixin"]


class SamplingMixin:
    """``condition_for`` and ``generate`` for :class:`medsora.training.diffusion_module.DiffusionModule`."""

    def conditioning(self) -> str:
        """What the model is conditioned on, in words (for messages)."""
        enc = self.cond_encoder
        if enc is None:
            return "nothing (unconditional: cond.modality and cond.text are off)"
        parts = []
        if enc.modality is not None:
            parts.append(f"modality ({', '.join(enc.modalities)})")
        if enc.text_encoder is not None:
            parts.append(f"text through the template {enc.template!r} only (cond.use_template)" if enc.use_template
                         else "text (captions)")
        if enc.attributes is not None:
            parts.append(f"attributes ({', '.join(enc.attributes.names)})")
        return " and ".join(parts)

    def check_conditions(self, modalities=None, prompts=None, negative_prompt: Optional[str] = None) -> None:
        """Refuse conditions the model was not trained on, naming what it is conditioned on.

        A modality needs the modality embedding or a text model (the template names it); a prompt
        or a negative prompt needs free-text conditioning.
        """
        enc = self.cond_encoder
        what = self.conditioning()
        free_text = enc is not None and enc.text_encoder is not None and not enc.use_template
        if (prompts or negative_prompt) and not free_text:
            flag = "--prompt" if prompts else "--negative-prompt"
            raise ValueError(f"{flag}: this model is not conditioned on free text; it is conditioned on {what}"
                             + ("; give --modality instead" if enc is not None else "; drop " + flag))
        if modalities and (enc is None or (enc.modality is None and enc.text_encoder is None)):
            raise ValueError(f"--modality: this model is not conditioned on modality; it is conditioned on {what}")

    def condition_for(self, n: int, modalities: Optional[Sequence[str]] = None,
                      prompts: Optional[Sequence[str]] = None, negative_prompt: Optional[str] = None,
                      attributes: Optional[Sequence] = None, guide_attributes: Optional[Sequence[str]] = None,
                      first_frames: Optional[torch.Tensor] = None, frames: Optional[int] = None):
        """(cond, uncond) Conditions for n samples (token lengths matched), or (None, None).

        ``first_frames`` (n×3×H×W in [-1, 1], preprocessed like the training clips) become the
        context latents of both branches (image-to-video); see :func:`medsora.cond.control.control_pair`.
        """
        from medsora.cond.control import control_pair

        self.check_conditions(modalities, prompts, negative_prompt)

        return control_pair(self, n, modalities, prompts, negative_prompt, attributes, guide_attributes,
                            first_frames, frames)

    @torch.no_grad()
    def generate(self, num: int, seed: int = 0, sampler: Optional[str] = None, steps: Optional[int] = None,
                 guidance_scale: Optional[float] = None, modalities: Optional[Sequence[str]] = None,
                 prompts: Optional[Sequence[str]] = None, negative_prompt: Optional[str] = None,
                 batch_size: int = 8, progress: bool = False, return_labels: bool = False, decode: bool = True,
                 start: int = 0, generators: Optional[Sequence[torch.Generator]] = None, attributes=None,
                 guide_attributes: Optional[Sequence[str]] = None, first_frames: Optional[torch.Tensor] = None,
                 num_frames: Optional[int] = None, overlap: int = 0, context_frames: int = 1,
                 extend_mode: Optional[str] = None):
        """Sample ``num`` videos; sample i is a function of ``seed + start + i`` alone.

        Args:
            modalities / prompts: per-sample conditions (a single value is repeated); a
                modality-conditioned model without them cycles through its modalities.
            attributes: per-sample attribute rows (``{column: value}``; one dict is repeated), see
                ``cond.attributes``; absent attributes take their null embedding.
            guide_attributes: guide on these attributes alone (the unconditional branch drops only them).
            first_frames: image-to-video, ``num×3×H×W`` (or one ``3×H×W``) in [-1, 1], preprocessed like
                the training clips; each sample's clip starts from its frame.
            batch_size: samples per sampler batch (does not change the result).
            decode: return decoded videos (else the scaled latents).
            generators: one CPU generator per sample, in place of ``seed`` (the exported pipeline's
                ``generator=``); they are consumed.
            num_frames: video frames (``1 + 4k``; default the training clip's): up to the training length one
                pass, beyond it window by window (:mod:`medsora.diffusion.extend`, ``overlap``,
                ``context_frames``, ``extend_mode``), decoded chunk by chunk (:mod:`medsora.vae.chunked_decode`).
        Returns:
            ``B×3×F×H×W`` videos in [-1, 1] on the CPU (or latents ``B×C×T×h×w``), and with
            ``return_labels`` the per-sample label list (modality or prompt) for display.
        """
        if decode and not self.can_decode:
            raise ValueError("decoding samples needs the VAE: set vae.ckpt=PATH")
        expand = lambda v: None if v is None else ([v] * num if isinstance(v, str) else list(v))  # noqa: E731
        modalities, prompts = expand(modalities), expand(prompts)
        if isinstance(attributes, (dict, str)):
            attributes = [attributes] * num
        if first_frames is not None and first_frames.dim() == 3:
            first_frames = first_frames[None].expand(num, -1, -1, -1)
        for given, what in ((modalities, "modalities"), (prompts, "prompts"), (attributes, "attribute rows"),
                            (first_frames, "first frames")):
            if given is not None and len(given) != num:
                raise ValueError(f"got {len(given)} {what} for {num} samples")
        grid, total = self.latent_grid(), None
        if num_frames is not None:
            from medsora.diffusion.extend import check_extension
            from medsora.vae.select import temporal_stride

            total = check_extension(num_frames, temporal_stride(self.cfg.vae), grid[0], context_frames, overlap)
            grid = (min(total, grid[0]), *grid[1:])
        autocast = self.device.type == "cuda" and str(self.cfg.trainer.precision) in ("auto", "bf16-mixed", "bf16-true")
        outs, labels = [], []
        for chunk in range(0, num, batch_size):
            n = min(batch_size, num - chunk)
            part = lambda v: None if v is None else v[chunk:chunk + n]  # noqa: E731
            mods = part(modalities)
            if mods is None and prompts is None and self.cond_encoder is not None:
                mods = self._cycle(n, start + chunk)  # a modality model shows each modality in turn
            cond, uncond = self.condition_for(n, mods, part(prompts), negative_prompt, part(attributes),
                                              guide_attributes, part(first_frames), grid[0])
            if cond is not None:
                kwargs = dict(cond=cond.model_kwargs(), uncond=uncond.model_kwargs())
                labels += list(part(prompts) or mods or [""] * n)
            else:
                kwargs = {}
            gens = (list(generators[chunk:chunk + n]) if generators is not None
                    else sample_generators(seed, n, start + chunk))
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=autocast):
                z = sample_latents(
                    self.backbone, (n, self.in_channels, *grid), self.cfg.diffusion, generators=gens,
                    learn_sigma=self.cfg.model.learn_sigma, sampler=sampler, steps=steps, guidance_scale=guidance_scale,
                    device=self.device, progress=progress, **kwargs,
                )
                if total is not None and total > grid[0]:
                    from medsora.diffusion.extend import extend_latents, extension_mode

                    z = extend_latents(self.backbone, z, total, self.cfg.diffusion, generators=gens,
                                       mode=extension_mode(bool(self.cfg.cond.first_frame), extend_mode),
                                       context=context_frames, overlap=overlap, learn_sigma=self.cfg.model.learn_sigma,
                                       sampler=sampler, steps=steps, guidance_scale=guidance_scale,
                                       device=self.device, progress=progress, **kwargs)
                    if decode:  # window by window: memory does not grow with the length
                        from medsora.vae.chunked_decode import decode_chunked

                        z = decode_chunked(self._vae.on(self.device), z / self.scaling_factor, grid[0])
                elif decode:
                    z = self._vae.on(self.device).decode(z / self.scaling_factor).float().clamp(-1, 1)
            outs.append(z.float().cpu())
        result = torch.cat(outs)
        return (result, labels or None) if return_labels else result

    def _cycle(self, n: int, offset: int = 0) -> Optional[list[str]]:
        """Modalities for samples offset .. offset+n-1, cycling through the model's classes."""
        names = list(self.cond_encoder.modalities) if self.cond_encoder is not None else []
        return [names[(offset + i) % len(names)] for i in range(n)] if names else None

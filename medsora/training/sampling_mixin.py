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
                      prompts: Optional[Sequence[str]] = None, negative_prompt: Optional[str] = None):
        """(cond, uncond) Conditions for n samples (token lengths matched), or (None, None)."""
        self.check_conditions(modalities, prompts, negative_prompt)
        if self.cond_encoder is None:
            return None, None
        if modalities is None and prompts is None:
            prompts = [""] * n  # without prompts, captions fall back to the template
        return self.cond_encoder.guidance_pair(prompts, modalities, negative_prompt=negative_prompt)

    @torch.no_grad()
    def generate(self, num: int, seed: int = 0, sampler: Optional[str] = None, steps: Optional[int] = None,
                 guidance_scale: Optional[float] = None, modalities: Optional[Sequence[str]] = None,
                 prompts: Optional[Sequence[str]] = None, negative_prompt: Optional[str] = None,
                 batch_size: int = 8, progress: bool = False, return_labels: bool = False, decode: bool = True,
                 start: int = 0, generators: Optional[Sequence[torch.Generator]] = None):
        """Sample ``num`` videos; sample i is a function of ``seed + start + i`` alone.

        Args:
            modalities / prompts: per-sample conditions (a single value is repeated); a
                modality-conditioned model without them cycles through its modalities.
            batch_size: samples per sampler batch (does not change the result).
            decode: return decoded videos (else the scaled latents).
            generators: one CPU generator per sample, in place of ``seed`` (the exported pipeline's
                ``generator=``); they are consumed.
        Returns:
            ``B×3×F×H×W`` videos in [-1, 1] on the CPU (or latents ``B×C×T×h×w``), and with
            ``return_labels`` the per-sample label list (modality or prompt) for display.
        """
        if decode and not self.can_decode:
            raise ValueError("decoding samples needs the VAE: set vae.ckpt=PATH")
        expand = lambda v: None if v is None else ([v] * num if isinstance(v, str) else list(v))  # noqa: E731
        modalities, prompts = expand(modalities), expand(prompts)
        for given, what in ((modalities, "modalities"), (prompts, "prompts")):
            if given is not None and len(given) != num:
                raise ValueError(f"got {len(given)} {what} for {num} samples")
        autocast = self.device.type == "cuda" and str(self.cfg.trainer.precision) in ("auto", "bf16-mixed", "bf16-true")
        outs, labels = [], []
        for chunk in range(0, num, batch_size):
            n = min(batch_size, num - chunk)
            part = lambda v: None if v is None else v[chunk:chunk + n]  # noqa: E731
            mods = part(modalities)
            if mods is None and prompts is None and self.cond_encoder is not None:
                mods = self._cycle(n, start + chunk)  # a modality model shows each modality in turn
            cond, uncond = self.condition_for(n, mods, part(prompts), negative_prompt)
            if cond is not None:
                kwargs = dict(cond=cond.model_kwargs(), uncond=uncond.model_kwargs())
                labels += list(part(prompts) or mods or [""] * n)
            else:
                kwargs = {}
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=autocast):
                z = sample_latents(
                    self.backbone, (n, self.in_channels, *self.latent_grid()), self.cfg.diffusion,
                    generators=(list(generators[chunk:chunk + n]) if generators is not None
                                else sample_generators(seed, n, start + chunk)), learn_sigma=self.cfg.model.learn_sigma,
                    sampler=sampler, steps=steps, guidance_scale=guidance_scale, device=self.device,
                    progress=progress, **kwargs,
                )
                if decode:
                    z = self._vae.on(self.device).decode(z / self.scaling_factor).float().clamp(-1, 1)
            outs.append(z.float().cpu())
        result = torch.cat(outs)
        return (result, labels or None) if return_labels else result

    def _cycle(self, n: int, offset: int = 0) -> Optional[list[str]]:
        """Modalities for samples offset .. offset+n-1, cycling through the model's classes."""
        names = list(self.cond_encoder.modalities) if self.cond_encoder is not None else []
        return [names[(offset + i) % len(names)] for i in range(n)] if names else None

"""``VAEModule``: trains the frequency-compensated causal VAE (``stage: vae``).

Wiring only: :class:`~medsora.vae.model.FreqCompVAE`, :class:`~medsora.vae.losses.VAELoss`,
AdamW. Each loss term is logged under ``train/<term>`` and ``val/<term>`` (plus
``val/psnr`` and ``val/hf_error``); validation reconstructions are logged next to
their inputs as animated images (TensorBoard, *Images* tab, ``val/reconstruction``).

The latent scale factor of the diffusion stage (``1/std`` of posterior samples on
training data, as in latent diffusion) is measured for free during training: a
bias-corrected running average (decay ``vae.scale_ema``) of the first two moments of
the latents each step draws, reduced over ranks. ``vae.scaling_factor`` fixes it
instead. Checkpoints carry it, with everything :func:`medsora.vae.load_vae` needs to
rebuild the VAE, under ``checkpoint["medsora_vae"]``.
"""
from __future__ import annotations

from typing import Optional

import torch
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig, OmegaConf
from torchmetrics.functional.image import peak_signal_noise_ratio

from medsora.training.module_base import MedSoraModule
from medsora.vae.checkpoint import CHECKPOINT_KEY
from medsora.vae.losses import VAELoss
from medsora.vae.model import FreqCompVAE
from medsora.vae.spectrum import high_frequency_error
from medsora.vae.video_log import log_reconstructions

__all__ = ["VAEModule", "CHECKPOINT_KEY"]


class VAEModule(MedSoraModule):
    """LightningModule of the VAE stage.

    Args:
        cfg: the run config (composed ``DictConfig`` or its plain-dict form). Uses
            ``cfg.vae`` (model, losses, ``vae.lr``, ``vae.train_base``), ``cfg.train``
            (``betas``, ``weight_decay``, ``warmup_steps``) and ``cfg.seed``.

    Batches: ``{"video": B×3×F×H×W in [-1, 1], ...}`` with ``F = 1 + 4k``.
    """

    RNG_STREAM = ("vae",)

    def __init__(self, cfg: DictConfig | dict):
        super().__init__(cfg)
        v = self.cfg.vae
        if not v.train_base and (not v.pretrained or not v.freq_comp):
            raise ValueError(
                "vae.train_base=false freezes the base VAE and trains only the compensation branches, which "
                f"needs a pretrained base and the branches (vae.pretrained={v.pretrained}, "
                f"vae.freq_comp={v.freq_comp}): set vae.pretrained=DIR (a local CogVideoX VAE folder) and "
                "vae.freq_comp=true, or vae.train_base=true"
            )
        self.vae = FreqCompVAE.from_config(v).train()  # from_pretrained returns eval mode
        if not v.train_base:
            self.vae.base.requires_grad_(False)
        if v.grad_checkpointing:
            self.vae.base.enable_gradient_checkpointing()
        self.loss = VAELoss.from_config(v)
        # EMA of E[z], EMA of E[z²], number of updates (see the module docstring)
        self.register_buffer("latent_moments", torch.zeros(3))
        self._val_clips: Optional[tuple[torch.Tensor, torch.Tensor]] = None

    # ------------------------------------------------------------------ latent scale
    @property
    def scaling_factor(self) -> Optional[float]:
        """``vae.scaling_factor`` if set, else ``1/std`` of the training latents (None before any step)."""
        if self.cfg.vae.scaling_factor is not None:
            return float(self.cfg.vae.scaling_factor)
        m1, m2, n = (float(x) for x in self.latent_moments)
        if n == 0:
            return None
        correction = 1.0 - self.cfg.vae.scale_ema ** n
        var = m2 / correction - (m1 / correction) ** 2
        return 1.0 / max(var, 1e-12) ** 0.5

    @torch.no_grad()
    def _update_moments(self, z: torch.Tensor) -> None:
        batch = torch.stack([z.float().mean(), z.float().square().mean()])
        if self._trainer is not None:
            batch = self.trainer.strategy.reduce(batch, reduce_op="mean")
        decay = self.cfg.vae.scale_ema
        self.latent_moments[:2].mul_(decay).add_((1 - decay) * batch.to(self.latent_moments))
        self.latent_moments[2] += 1

    # ------------------------------------------------------------------ steps
    def training_step(self, batch: dict, batch_idx: int):
        video = batch["video"]
        posterior = self.vae.encode(video)
        # posterior noise from the step key: resumed and multi-process runs draw what one run draws
        z = posterior.mean + posterior.std * self.step_random("train", self.current_epoch, batch_idx).randn(
            posterior.mean.shape, dtype=posterior.mean.dtype
        )
        recon = self.vae.decode(z)
        terms = self.loss(recon, video, posterior)
        if not self.finite_or_skip(terms):
            return None
        self._update_moments(z)
        b = video.shape[0]
        self.log("train/loss", terms["loss"], prog_bar=True, batch_size=b)
        self.log_dict({f"train/{k}": t.detach() for k, t in terms.items() if k != "loss"}, batch_size=b)
        if self.cfg.vae.scaling_factor is None:
            self.log("train/latent_std", 1.0 / self.scaling_factor, batch_size=b)
        return terms["loss"]

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        video = batch["video"]
        posterior = self.vae.encode(video)
        recon = self.vae.decode(posterior.mode())
        terms = self.loss(recon, video, posterior)
        b = video.shape[0]
        self.log_dict({f"val/{k}": t for k, t in terms.items()}, batch_size=b, sync_dist=True)
        recon = recon.clamp(-1, 1)
        psnr = peak_signal_noise_ratio(recon, video, data_range=(-1.0, 1.0), reduction="none", dim=(1, 2, 3, 4))
        self.log("val/psnr", psnr.mean(), batch_size=b, sync_dist=True, prog_bar=True)
        self.log("val/hf_error", high_frequency_error(recon, video).mean(), batch_size=b, sync_dist=True)
        if batch_idx == 0 and self.cfg.vae.log_videos > 0:
            n = self.cfg.vae.log_videos
            self._val_clips = (video[:n].detach().cpu(), recon[:n].detach().cpu())

    def on_validation_epoch_end(self) -> None:
        if self._val_clips is not None and isinstance(self.logger, TensorBoardLogger) and self.global_rank == 0:
            log_reconstructions(self.logger.experiment, "val/reconstruction", *self._val_clips, self.global_step)
        self._val_clips = None

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self):
        return self.adamw([p for p in self.vae.parameters() if p.requires_grad], lr=self.cfg.vae.lr)

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint[CHECKPOINT_KEY] = {
            "vae": OmegaConf.to_container(self.cfg.vae, resolve=True),
            "base_config": {k: v for k, v in self.vae.base.config.items() if not k.startswith("_")},
            "scaling_factor": self.scaling_factor,
        }

"""What both LightningModules (diffusion and VAE) share: the run config, per-step seeding, the
non-finite-step skip, and AdamW with linear warm-up. One implementation, so a fix reaches both stages."""
from __future__ import annotations

import functools
import math
from typing import Iterable, Optional

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from medsora.config.schema import RunConfig
from medsora.training.batch_random import BatchRandom, step_seed
from medsora.training.callbacks import all_finite

__all__ = ["MedSoraModule", "run_config", "warmup_factor"]


def run_config(cfg: DictConfig | dict) -> DictConfig:
    """A validated read-only run config from a composed config or a plain dict (checkpoint hparams)."""
    if isinstance(cfg, DictConfig):
        return cfg
    merged = OmegaConf.merge(OmegaConf.structured(RunConfig), OmegaConf.create(cfg))
    OmegaConf.set_readonly(merged, True)
    return merged


def warmup_factor(step: int, steps: int, decay_to: int = 0, floor: float = 1.0) -> float:
    """Learning-rate factor of optimizer step ``step``: linear over ``steps`` steps, then 1 (0 steps: always 1);
    with ``decay_to > steps``, a half cosine from 1 after the warm-up down to ``floor`` at step ``decay_to``."""
    if step < steps:
        return (step + 1) / steps
    if decay_to <= steps:
        return 1.0
    done = min(1.0, (step - steps) / (decay_to - steps))
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * done))


class MedSoraModule(L.LightningModule):
    """Base of :class:`~medsora.training.diffusion_module.DiffusionModule` and
    :class:`~medsora.training.vae_module.VAEModule`.

    * ``self.cfg``: the validated run config; the hyper-parameters saved in checkpoints are its
      plain form plus ``extra_hparams``.
    * :meth:`step_random`: the random draws of a step, a pure function of (``seed``, ``RNG_STREAM``, key).
    * :meth:`finite_or_skip`: whether a step's loss is finite on every rank; if not, ``last_skip``
      records the terms and the step must return ``None`` (see ``NonFiniteLossGuard``).
    * :meth:`adamw`: AdamW (``train.betas``, ``train.weight_decay``) with a per-step linear warm-up
      over ``train.warmup_steps``, then constant or (``train.lr_schedule: cosine``) a cosine decay to
      ``train.min_lr_ratio`` at ``trainer.max_steps``.
    """

    RNG_STREAM: tuple = ()
    """Prefix of every step key, so that two stages with one seed draw different numbers."""

    def __init__(self, cfg: DictConfig | dict, **extra_hparams):
        super().__init__()
        self.cfg = run_config(cfg)
        self.save_hyperparameters({"cfg": OmegaConf.to_container(self.cfg, resolve=True), **extra_hparams})
        self.last_skip: Optional[str] = None

    def step_random(self, *key) -> BatchRandom:
        """The draws of the global batch keyed by ``key`` (e.g. ``"train", epoch, batch_idx``); this rank's rows."""
        world = self.trainer.world_size if self._trainer is not None else 1
        return BatchRandom(step_seed(self.cfg.seed, *self.RNG_STREAM, *key), self.global_rank, world, self.device)

    def finite_or_skip(self, terms: dict[str, Tensor]) -> bool:
        """True when ``terms["loss"]`` is finite on every rank; else records the terms in ``last_skip``."""
        if not all_finite(terms["loss"], self.trainer.strategy):
            self.last_skip = ", ".join(f"{k}={v.item():.4g}" for k, v in terms.items())
            return False
        self.last_skip = None
        return True

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        """Lightning's clipping, except under FSDP: there ``trainer.gradient_clip_val`` is applied with
        ``FullyShardedDataParallel.clip_grad_norm_`` on the wrapped root (the norm over all shards), which
        Lightning's FSDP precision plugin does not do."""
        clip = float(self.cfg.trainer.gradient_clip_val or 0)
        if self.cfg.trainer.strategy == "fsdp":
            if clip > 0:
                self.trainer.strategy.model.clip_grad_norm_(clip)
            return
        self.clip_gradients(optimizer, gradient_clip_val=gradient_clip_val,
                            gradient_clip_algorithm=gradient_clip_algorithm)

    def adamw(self, params: Iterable[torch.nn.Parameter], lr: float) -> dict:
        """AdamW over ``params`` with the ``train:`` recipe and a per-step warm-up schedule."""
        train = self.cfg.train
        optimizer = torch.optim.AdamW(params, lr=lr, betas=tuple(train.betas), weight_decay=train.weight_decay)
        cosine = train.lr_schedule == "cosine"
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, functools.partial(
            warmup_factor, steps=int(train.warmup_steps), decay_to=int(self.cfg.trainer.max_steps) if cosine else 0,
            floor=float(train.min_lr_ratio)))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

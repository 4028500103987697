"""The diffusion LightningModule: denoising (+ VLB) + λ·OFRA on VAE latents, AdamW; sampling comes from
:class:`medsora.training.sampling_mixin.SamplingMixin`.

Wiring only; the pieces are plain modules: ``MedSoraDiT`` (backbone), ``DiffusionObjective`` and
``sample_latents`` (diffusers schedulers), ``AlignLoss``/``FlowTeacher`` (OFRA), the condition
encoder (``medsora.cond``) and the frozen VAE (``medsora.vae.load_vae``).

Batches are either raw clips ``{"video": B×3×F×H×W, "caption", "modality"}`` (the VAE encodes
them and the teacher makes flow targets on the fly) or encode-cache items ``{"latent_mean",
"latent_std": B×C×T×h×w, "flow": B×T×h'×w'×D, ...}`` (``data.cache``). Every random draw of a
step comes from :class:`medsora.training.batch_random.BatchRandom`, keyed by (seed, epoch, batch index),
so resumed and multi-process runs reproduce single uninterrupted runs.
"""
from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import torch
from lightning.pytorch.utilities import rank_zero_info
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from medsora.config import ConfigError
from medsora.config.schema import RunConfig
from medsora.diffusion import DiffusionObjective
from medsora.pretrained.checkpoint_file import load_checkpoint
from medsora.pretrained.frozen import Frozen
from medsora.training.batch_random import BatchRandom
from medsora.training.module_base import MedSoraModule, run_config
from medsora.training.sampling_mixin import SamplingMixin
from medsora.training.vae_record import RECORD_KEY, check_vae, vae_fingerprint

__all__ = ["DiffusionModule", "run_config", "LOSS_TERMS"]

LOSS_TERMS = ("denoise", "vlb", "align")
"""Terms summed into the training loss (others, e.g. ``align_sim``, are only logged)."""


class DiffusionModule(SamplingMixin, MedSoraModule):
    """Latent video diffusion with the MedSora backbone and optical-flow alignment.

    Args:
        cfg: a composed run config (``medsora.config.loader``) or its plain-dict form.
        modalities: the data set's modality names (class list of the modality embedding when
            ``cond.modalities`` is empty).
        for_training: build the training-only parts (flow teacher, ``train.init_from``); off
            for sampling from a checkpoint.
    """

    def __init__(self, cfg: DictConfig | dict, modalities: Optional[Sequence[str]] = None, for_training: bool = True,
                 latents: Optional[dict] = None):
        modalities = sorted(set(modalities or []))
        super().__init__(cfg, modalities=modalities)
        cfg = self.cfg
        self.modalities = modalities
        self.in_channels = int(cfg.vae.latent_channels)
        self._check_config()

        self._vae, vae_factor = self._load_vae(cfg)
        # a checkpoint's record (medsora.training.vae_record) fixes the scale: sampling needs no encode cache
        self.scaling_factor = float(latents["scaling_factor"]) if latents else self._scaling_factor(cfg, vae_factor)
        self.vae_record = {"scaling_factor": self.scaling_factor, "vae_ckpt": cfg.vae.ckpt,
                           "vae_fingerprint": vae_fingerprint(self._vae.module) if self._vae is not None else None}

        from medsora.cond import build_condition_encoder
        from medsora.training.model_factory import build_backbone

        if cfg.align.enabled:
            from medsora.flow.layers import build_align_loss

            self.align_loss = build_align_loss(cfg.align)
        else:
            self.align_loss = None
        self.cond_encoder = build_condition_encoder(cfg.cond, cfg.model.hidden, self.modalities)
        self.backbone = build_backbone(cfg)
        self.objective = DiffusionObjective(cfg.diffusion, learn_sigma=cfg.model.learn_sigma)
        self._teacher = None
        if for_training and cfg.align.enabled and not cfg.data.cache:
            from medsora.flow import FlowTeacher

            self._teacher = Frozen(FlowTeacher.from_config(cfg.align))
        for kind in cfg.train.frozen_blocks:
            for _, param in self.backbone.named_block_parameters(kind):
                param.requires_grad_(False)
        if for_training and cfg.train.init_from:
            self.init_weights_from(cfg.train.init_from)

    # ------------------------------------------------------------------ setup
    def _check_config(self) -> None:
        cfg = self.cfg
        if cfg.train.joint_images < 0:
            raise ConfigError(f"train.joint_images = {cfg.train.joint_images}: must be >= 0")
        if cfg.train.joint_images and cfg.data.cache:
            raise ConfigError(
                f"train.joint_images = {cfg.train.joint_images} draws single frames from the raw clips, but "
                "data.cache is set and a cache holds clip latents only: add train.joint_images=0 to train from the "
                "cache, or unset data.cache (and set vae.ckpt) for joint image-video training"
            )
        if not cfg.data.cache and not cfg.vae.ckpt:
            raise ConfigError(
                "the diffusion stage needs latents: set vae.ckpt=PATH (a VAEModule checkpoint, e.g. from "
                "python -m medsora.fit experiment=vae_demo) or data.cache=DIR (from python -m medsora.encode)"
            )

    @staticmethod
    def _load_vae(cfg) -> tuple[Optional[Frozen], Optional[float]]:
        if not cfg.vae.ckpt:
            return None, None
        from medsora.vae import load_vae

        vae, factor = load_vae(cfg.vae.ckpt)
        if vae.latent_channels != cfg.vae.latent_channels:
            raise ConfigError(f"vae.ckpt={cfg.vae.ckpt} makes {vae.latent_channels}-channel latents but "
                              f"vae.latent_channels = {cfg.vae.latent_channels}: set vae.latent_channels="
                              f"{vae.latent_channels} (or use the vae config the VAE was trained with)")
        return Frozen(vae), float(factor)

    @staticmethod
    def _scaling_factor(cfg, vae_factor: Optional[float]) -> float:
        if cfg.data.cache:
            from medsora.data.cache import read_manifest

            cache_factor = float(read_manifest(cfg.data.cache)["scaling_factor"])
            if vae_factor is not None and not math.isclose(cache_factor, vae_factor, rel_tol=1e-6):
                raise ValueError(
                    f"data.cache={cfg.data.cache} was encoded with latent scaling factor {cache_factor} but "
                    f"vae.ckpt={cfg.vae.ckpt} has {vae_factor}: re-encode the cache with this VAE"
                )
            return cache_factor
        return float(vae_factor)

    def on_fit_start(self) -> None:
        # Compiled here, after the EMA callback copied the module in setup(): a compiled
        # forward is bound to its module, so a copy of it would call the original's.
        if self.cfg.train.compile:
            self.backbone.compile()

    @property
    def can_decode(self) -> bool:
        """Whether sampled latents can be decoded to videos (a VAE checkpoint is configured)."""
        return self._vae is not None

    def init_weights_from(self, path: str) -> None:
        """Initialise from another run's checkpoint (stage chaining, e.g. Bora stage 2 from stage 1).

        Loads the checkpoint's ``state_dict`` (its EMA weights when it had EMA) wherever names and
        shapes match; parameters the other run lacks keep their initialisation.

        Raises:
            ValueError: a shared tensor has another shape, or nothing matches.
        """
        state = load_checkpoint(path)["state_dict"]
        own = self.state_dict()
        shapes = [f"{k}: {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in state.items()
                  if k in own and own[k].shape != v.shape]
        if shapes:
            raise ValueError(f"train.init_from={path}: tensors of another shape (checkpoint vs this model): "
                             + "; ".join(shapes[:5]) + " — the model config must match the earlier stage")
        matched = {k: v for k, v in state.items() if k in own}
        if not matched:
            raise ValueError(f"train.init_from={path}: no parameter names in common with this model")
        self.load_state_dict(matched, strict=False)
        fresh = sorted(set(own) - set(matched))
        rank_zero_info(f"initialised {len(matched)} tensors from {path}; {len(fresh)} keep their initialisation"
                       + (f" (e.g. {fresh[0]})" if fresh else ""))

    # ---------------------------------------------------------------- batches
    def latent_grid(self) -> tuple[int, int, int]:
        """(T, h, w) of the latents of a ``data.num_frames``×``data.size``² clip."""
        f, s = int(self.cfg.data.num_frames), int(self.cfg.data.size)
        return 1 + (f - 1) // 4, s // 8, s // 8

    @staticmethod
    def samples_in(batch: dict) -> int:
        """Number of clips in a batch."""
        return int((batch["latent_mean"] if "latent_mean" in batch else batch["video"]).shape[0])

    def tokens_in(self, batch: dict) -> int:
        """Backbone tokens of a batch (B·T·h·w after patching), for throughput."""
        p = self.cfg.model.patch
        if "latent_mean" in batch:
            b, _, t, h, w = batch["latent_mean"].shape
        else:
            b, _, f, hp, wp = batch["video"].shape
            t, h, w = 1 + (f - 1) // 4, hp // 8, wp // 8
        return int(b * t * (h // p) * (w // p))

    def _encode(self, video: Tensor, rng: BatchRandom, lead: tuple[int, ...]) -> Tensor:
        """Scaled latent samples of ``video`` (N×3×F×H×W); the noise is drawn with leading axes
        ``lead`` (clips first, so every rank draws the rows one process would)."""
        vae = self._vae.on(self.device)
        with torch.no_grad():
            dist = vae.encode(video)
            mean, std = dist.mean.float(), dist.std.float()
        noise = rng.randn((*lead, *mean.shape[1:])).reshape(mean.shape)
        return (mean + std * noise) * self.scaling_factor

    def _latents(self, batch: dict, rng: BatchRandom) -> tuple[Tensor, Optional[Tensor]]:
        """(x0: B×C×T×h×w scaled latents, flow targets B×T×h'×w'×D or None)."""
        want_flow = self.align_loss is not None
        if "latent_mean" in batch:
            mean, std = batch["latent_mean"].float(), batch["latent_std"].float()
            x0 = (mean + std * rng.randn(mean.shape)) * self.scaling_factor
            flow = batch["flow"] if want_flow else None
        else:
            video = batch["video"]
            x0 = self._encode(video, rng, (video.shape[0],))
            flow = None
            if want_flow:
                _, _, t, h, w = x0.shape
                p = self.cfg.model.patch
                flow = self._teacher.on(self.device).targets(video, latent_grid=(t, h // p, w // p))
        if x0.shape[1] != self.in_channels:
            raise ValueError(f"latents have {x0.shape[1]} channels but vae.latent_channels = {self.in_channels}: "
                             "set vae.latent_channels to the VAE's (or the cache's) latent width")
        return x0, flow

    def _condition(self, batch: dict, n: int, rng: BatchRandom, train: bool):
        if self.cond_encoder is None:
            return None
        drop = rng.rand((n,)) < self.cfg.cond.dropout if train else torch.zeros(n, dtype=torch.bool,
                                                                                device=self.device)
        text = None
        if "text_hidden" in batch and self.cond_encoder.text_encoder is not None and not self.cond_encoder.use_template:
            from medsora.cond.text_encoder import TextFeatures

            text = TextFeatures(batch["text_hidden"], batch["text_mask"])  # precomputed by medsora.encode
        return self.cond_encoder(captions=batch.get("caption"), modalities=batch.get("modality"), drop=drop,
                                 text=text)

    def _denoise(self, x0: Tensor, t: Tensor, eps: Tensor, cond, flow: Optional[Tensor]) -> dict[str, Tensor]:
        xt = self.objective.scheduler.add_noise(x0, eps, t)
        kwargs = cond.model_kwargs() if cond is not None else {}
        if flow is not None:
            out, feats = self.backbone(xt, t, return_align=True, **kwargs)
        else:
            out, feats = self.backbone(xt, t, **kwargs), None
        terms = {k: v.mean() for k, v in self.objective.losses(out, x0, xt, t, eps).items()}
        if feats is not None:
            terms.update(self.align_loss(feats, flow.to(feats.device), t))
        return terms

    def _joint_images(self, batch: dict, cond, rng: BatchRandom) -> dict[str, Tensor]:
        """Denoising terms of ``train.joint_images`` single frames per clip, as T = 1 latents."""
        video = batch["video"]
        b, c, f, h, w = video.shape
        k = int(self.cfg.train.joint_images)
        idx = rng.randint(f, (b, k))  # leading axis = clips, so ranks draw what one process would
        frames = video.permute(0, 2, 1, 3, 4)[torch.arange(b, device=video.device)[:, None], idx.to(video.device)]
        frames = frames.reshape(b * k, c, 1, h, w)
        x0 = self._encode(frames, rng, (b, k))
        t = rng.randint(self.objective.num_timesteps, (b, k)).reshape(b * k)
        eps = rng.randn((b, k, *x0.shape[1:])).reshape(x0.shape)
        if cond is not None:
            from medsora.cond import Condition

            rep = lambda v: None if v is None else v.repeat_interleave(k, dim=0)  # noqa: E731
            cond = Condition(rep(cond.pooled), rep(cond.tokens), rep(cond.mask))
        return self._denoise(x0, t, eps, cond, None)

    def loss_terms(self, batch: dict, rng: BatchRandom, train: bool = True) -> dict[str, Tensor]:
        """All named terms of a batch; ``loss`` is the sum of :data:`LOSS_TERMS`."""
        x0, flow = self._latents(batch, rng)
        b = x0.shape[0]
        cond = self._condition(batch, b, rng, train)
        t = rng.randint(self.objective.num_timesteps, (b,))
        eps = rng.randn(x0.shape)
        terms = self._denoise(x0, t, eps, cond, flow)
        if self.cfg.train.joint_images and "video" in batch:
            images = self._joint_images(batch, cond, rng)
            n_video = x0.numel()
            n_image = x0.shape[0] * int(self.cfg.train.joint_images) * x0[0, :, :1].numel()  # T = 1 each
            for name in ("denoise", "vlb"):
                if name in terms:
                    terms[f"{name}_video"], terms[f"{name}_image"] = terms[name], images[name]
                    # the mean over all video and image elements, as one concatenated batch would give
                    terms[name] = (terms[name] * n_video + images[name] * n_image) / (n_video + n_image)
        terms["loss"] = sum(terms[k] for k in LOSS_TERMS if k in terms)
        return terms

    # --------------------------------------------------------------- training
    def training_step(self, batch: dict, batch_idx: int):
        terms = self.loss_terms(batch, self.step_random("train", self.current_epoch, batch_idx), train=True)
        loss = terms["loss"]
        if not self.finite_or_skip(terms):
            return None
        b = self.samples_in(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=b)
        self.log_dict({f"train/{k}": v.detach() for k, v in terms.items() if k != "loss"}, batch_size=b)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        rng = self.step_random("val", batch_idx)
        terms = self.loss_terms(batch, rng, train=False)
        self.log_dict({f"val/{k}": v for k, v in terms.items()}, sync_dist=True, batch_size=self.samples_in(batch),
                      prog_bar=False)

    def on_before_optimizer_step(self, optimizer) -> None:
        if self.global_step % max(1, self.trainer.log_every_n_steps):
            return
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        if grads:
            # before clipping: the size of the update the data asked for
            self.log("train/grad_norm", torch.nn.utils.get_total_norm(grads), on_step=True, on_epoch=False)

    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        if not params:
            raise ValueError("no trainable parameters: train.frozen_blocks freezes every block")
        # linear warmup over optimizer steps, then constant (MedSora/DiT use a constant rate)
        return self.adamw(params, lr=self.cfg.train.lr)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint[RECORD_KEY] = dict(self.vae_record)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """A resumed run must decode with the VAE it was trained with (see ``vae_record``)."""
        record = checkpoint.get(RECORD_KEY)
        if record:
            check_vae(record, self.vae_record["vae_fingerprint"], str(self.cfg.vae.ckpt), "the resumed checkpoint")

    @classmethod
    def from_checkpoint(cls, path: str, map_location: Any = "cpu", overrides: Optional[dict] = None,
                        force_vae: bool = False) -> "DiffusionModule":
        """A module for sampling from a training checkpoint (its EMA weights when EMA was on).

        The latent scale and the VAE's fingerprint come from the checkpoint; a VAE with another
        fingerprint is refused (:class:`medsora.training.vae_record.VAEMismatchError`) unless ``force_vae``.

        Args:
            overrides: nested dict merged into the stored config, e.g. ``{"vae": {"ckpt": PATH}}``
                when the VAE checkpoint moved.
        """
        ckpt = load_checkpoint(path, map_location)
        hp = ckpt.get("hyper_parameters") or {}
        if "cfg" not in hp or hp["cfg"].get("stage") != "diffusion":
            stage = hp.get("cfg", {}).get("stage", "unknown")
            raise ValueError(f"{path}: not a diffusion-stage checkpoint (stage: {stage}); sample from the "
                             "checkpoints/last.ckpt of a diffusion run (e.g. experiment=diffusion_demo)")
        cfg = OmegaConf.merge(OmegaConf.structured(RunConfig), OmegaConf.create(hp["cfg"]),
                              OmegaConf.create(overrides or {}))
        OmegaConf.set_readonly(cfg, True)
        record = ckpt.get(RECORD_KEY)
        module = cls(cfg, hp.get("modalities"), for_training=False, latents=record)
        if record:
            check_vae(record, module.vae_record["vae_fingerprint"], str(cfg.vae.ckpt), str(path), force=force_vae)
        module.load_state_dict(ckpt["state_dict"])
        return module.eval()

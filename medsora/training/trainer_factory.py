"""``lightning.Trainer`` of a run from ``trainer:``/``train:``, with MedSora's callbacks."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable, Optional, Sequence

import lightning as L
import torch
from lightning.pytorch.callbacks import LearningRateMonitor

from medsora.config import ConfigError
from medsora.training.callbacks import EMA, DataCounters, NonFiniteLossGuard, SampleVideos, Throughput
from medsora.training.checkpointing import AtomicCheckpointIO, RunCheckpoint
from medsora.training.progress import StepProgressBar

__all__ = ["build_trainer", "build_strategy", "resolve_precision", "parse_devices", "batch_size_of"]

# Both are expected here: VideoDataModule resumes the data order mid-epoch (Lightning cannot see
# that), and DiffusionModule.training_step returns None on purpose to skip a non-finite step.
warnings.filterwarnings("ignore", message=".*resuming from a checkpoint that ended before the epoch ended")
warnings.filterwarnings("ignore", message=".*`training_step` returned `None`")
# A moved run folder resumes where it now lives (medsora.training.checkpointing): expected, not a problem.
warnings.filterwarnings("ignore", message="The dirpath has changed from")


def parse_devices(devices: str):
    """``trainer.devices``: "auto", a count ("8") or a list of indices ("0,1")."""
    text = str(devices).strip()
    if text == "auto":
        return "auto"
    if "," in text:
        return [int(d) for d in text.split(",") if d.strip()]
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"trainer.devices = {devices!r}: use auto, a count like 2, or indices like 0,1") from None


def resolve_precision(cfg) -> str:
    """``auto`` precision: bf16 mixed on a GPU (MedSora's setting), fp32 on the CPU."""
    precision = str(cfg.trainer.precision)
    if precision != "auto":
        return precision
    on_gpu = cfg.trainer.accelerator in ("gpu", "cuda") or (cfg.trainer.accelerator == "auto" and torch.cuda.is_available())
    return "bf16-mixed" if on_gpu else "32-true"


def build_strategy(cfg):
    """``trainer.strategy``; ``fsdp`` is Lightning's FSDP sharding parameters, gradients and optimiser state per
    ``MedSoraLayer`` (GPUs only: torch's FSDP refuses CPU devices, and so does Lightning), with full-state-dict
    checkpoints, so a run resumes exactly with any strategy or device count."""
    name = str(cfg.trainer.strategy)
    if name != "fsdp":
        return name
    if cfg.train.ema:
        raise ConfigError("trainer.strategy=fsdp with train.ema=true: Lightning's weight averaging keeps an unsharded "
                         "copy and cannot follow FSDP's sharded parameters; set train.ema=false (or use "
                         "trainer.strategy=ddp)")
    from lightning.pytorch.strategies import FSDPStrategy

    from medsora.backbone.layers import MedSoraLayer

    if cfg.trainer.accelerator == "cpu" or not torch.cuda.is_available():
        raise ConfigError(f"trainer.strategy=fsdp needs CUDA GPUs (torch's FSDP has no CPU backend; accelerator="
                         f"{cfg.trainer.accelerator}, CUDA available: {torch.cuda.is_available()}): on the CPU use "
                         f"trainer.strategy=ddp")
    return FSDPStrategy(auto_wrap_policy={MedSoraLayer}, state_dict_type="full")


def batch_size_of(batch: dict) -> int:
    """Clips in a raw or cached batch."""
    return int((batch["latent_mean"] if "latent_mean" in batch else batch["video"]).shape[0])


def build_trainer(cfg, logger, *, datamodule=None, tokens_fn: Optional[Callable[[dict], int]] = None,
                  sample_videos: bool = False, extra_callbacks: Sequence = ()) -> L.Trainer:
    """The Trainer of a run.

    Callbacks: atomic checkpoints every ``trainer.checkpoint_every_n_steps`` steps and at the
    final step, plus ``last.ckpt`` (always the newest state); EMA (``train.ema``, ``train.ema_decay``); the non-finite loss guard;
    learning rate, throughput (samples/s, tokens/s with ``tokens_fn``), peak memory and data
    counters; the data-order resume hook; sample videos (``sample_videos``, every
    ``trainer.sample_every_n_steps`` and at the end).
    """
    t = cfg.trainer
    log_dir = Path(logger.log_dir) if logger is not None else Path(cfg.out_dir) / cfg.name
    callbacks = [
        RunCheckpoint(log_dir / "checkpoints", int(t.checkpoint_every_n_steps)),
        NonFiniteLossGuard(t.max_bad_steps, float(t.max_skipped_fraction)),
        Throughput(batch_size_of, tokens_fn),
    ]
    if logger is not None:
        callbacks.append(LearningRateMonitor(logging_interval="step"))
    if datamodule is not None:
        callbacks.append(DataCounters(datamodule))
    if cfg.train.ema:
        callbacks.append(EMA(decay=float(cfg.train.ema_decay)))
    if sample_videos:  # written at the clips' frame rate (8 fps when the data has none)
        fps = getattr(datamodule, "fps", None) or 8
        callbacks.append(SampleVideos(every_n_steps=int(t.sample_every_n_steps), num=8, seed=int(cfg.seed), fps=fps))
    if t.enable_progress_bar:
        callbacks.append(StepProgressBar())
    callbacks.extend(extra_callbacks)
    validate_by_steps = t.val_check_interval is not None
    return L.Trainer(
        accelerator=t.accelerator,
        devices=parse_devices(t.devices),
        num_nodes=int(t.num_nodes),
        strategy=build_strategy(cfg),
        precision=resolve_precision(cfg),
        max_steps=int(t.max_steps),
        max_epochs=int(t.max_epochs),
        log_every_n_steps=int(t.log_every_n_steps),
        val_check_interval=int(t.val_check_interval) if validate_by_steps else None,
        check_val_every_n_epoch=None if validate_by_steps else 1,
        limit_val_batches=t.limit_val_batches,
        accumulate_grad_batches=int(t.accumulate_grad_batches),
        # under FSDP the module clips with FSDP's own sharded norm (MedSoraModule.configure_gradient_clipping):
        # Lightning's FSDP precision plugin refuses norm clipping
        gradient_clip_val=None if t.strategy == "fsdp" else (float(t.gradient_clip_val) or None),
        enable_progress_bar=bool(t.enable_progress_bar),
        deterministic=bool(t.deterministic),
        num_sanity_val_steps=0,
        use_distributed_sampler=False,  # ResumableSampler shards by rank (see medsora.data.order)
        logger=logger if logger is not None else False,
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        default_root_dir=str(log_dir),
        enable_model_summary=True,
    )

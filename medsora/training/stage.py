"""Train one stage (``vae`` or ``diffusion``) as a run config says: logger, loaders, module, trainer.

What ``python -m medsora.fit experiment=NAME`` runs (:mod:`medsora.fit` is its command line);
the demo (:mod:`medsora.training.demo`), the sweeps and the tests call :func:`fit_stage` directly.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger

from medsora.training.checkpointing import remove_stale_temporaries, resolve_ckpt

__all__ = ["StageResult", "build_datamodule", "fit_stage", "run_logger", "stage_summary"]


@dataclass
class StageResult:
    """Where a finished stage left its outputs."""

    stage: str
    log_dir: Path
    last_ckpt: Optional[Path]
    samples: Optional[Path] = None
    seconds: float = 0.0
    metrics: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)  # what the user should know about the run (printed in the summary)


_VERSIONS_ENV = "MEDSORA_LOG_VERSIONS"


def run_logger(cfg, ckpt: Optional[Path]) -> TensorBoardLogger:
    """The run's logger; a resumed run keeps writing into the version folder it resumes from.

    The version is fixed before training starts and handed to the processes that
    ``trainer.strategy=ddp`` launches (they re-run this command) through the environment, so
    that every rank agrees on the run folder.
    """
    import json

    run_root = (Path(cfg.out_dir) / cfg.name).resolve()
    versions = json.loads(os.environ.get(_VERSIONS_ENV, "{}"))
    launched = int(os.environ.get("LOCAL_RANK", "0")) > 0  # a rank started by Lightning's ddp launcher
    version = versions.get(str(run_root)) if launched else None
    if version is None and ckpt is not None and ckpt.resolve().parent.name == "checkpoints" \
            and ckpt.resolve().parent.parent.parent == run_root:
        version = ckpt.resolve().parent.parent.name
    logger = TensorBoardLogger(save_dir=cfg.out_dir, name=cfg.name, version=version, default_hp_metric=False)
    if version is None:
        version = f"version_{logger.version}" if isinstance(logger.version, int) else str(logger.version)
        logger = TensorBoardLogger(save_dir=cfg.out_dir, name=cfg.name, version=version, default_hp_metric=False)
    os.environ[_VERSIONS_ENV] = json.dumps({**versions, str(run_root): version})
    return logger


def _is_first_process() -> bool:
    """Rank 0 (or a single process): the one that may tidy the run folder."""
    return all(int(os.environ.get(var, "0")) == 0 for var in ("RANK", "LOCAL_RANK", "NODE_RANK"))


def _resume_callbacks(cfg, ckpt: Optional[Path]) -> list:
    """Refuse a resume whose settings changed outside the policy; apply a changed learning rate."""
    if ckpt is None:
        return []
    from omegaconf import OmegaConf

    from medsora.training.checkpointing import load_checkpoint
    from medsora.training.resume_policy import ResumeLearningRate, check_resume

    saved = (load_checkpoint(ckpt).get("hyper_parameters") or {}).get("cfg")
    if not isinstance(saved, dict):
        return []
    changed = check_resume(ckpt, saved, OmegaConf.to_container(cfg, resolve=True))
    lr_key = "vae.lr" if cfg.stage == "vae" else "train.lr"
    return [ResumeLearningRate(changed[lr_key][1])] if lr_key in changed else []


def _remove_failed_start(log_dir: Path, fresh_folder: bool, trainer) -> None:
    """A start that failed before its first step leaves no empty ``version_N`` folder behind."""
    import shutil

    steps = trainer.global_step if trainer is not None else 0
    if fresh_folder and steps == 0 and _is_first_process() and log_dir.is_dir() \
            and not any(log_dir.glob("checkpoints/*.ckpt")):
        shutil.rmtree(log_dir, ignore_errors=True)


def _module(cfg, modalities):
    if cfg.stage == "vae":
        from medsora.training.vae_module import VAEModule

        return VAEModule(cfg)
    from medsora.training.diffusion_module import DiffusionModule

    return DiffusionModule(cfg, modalities)


def build_datamodule(cfg):
    """The run's ``VideoDataModule`` (videos, the demo set or an encode cache), set up: the one data path
    of training (``trainer.fit(module, datamodule=dm)``). An encode cache is first checked against the
    run (:func:`medsora.training.cache_check.check_cache`)."""
    from medsora.data.datamodule import VideoDataModule

    if cfg.data.cache:
        from medsora.training.cache_check import check_cache

        check_cache(cfg)
    dm = VideoDataModule(cfg.data, seed=int(cfg.seed))
    dm.prepare_data()
    dm.setup("fit")
    if cfg.cond.attributes:
        from medsora.training.attribute_check import check_attributes

        check_attributes(cfg, dm)
    return dm


def fit_stage(cfg, callbacks: Sequence = (), module=None) -> StageResult:
    """Train one stage (``cfg.stage``: ``vae`` or ``diffusion``) as the config says.

    Args:
        cfg: the composed run config.
        callbacks: extra Lightning callbacks (e.g. to record losses).
        module: a LightningModule to train instead of the one the config describes.
    Returns:
        The stage's log folder, its ``last.ckpt`` and (diffusion) its final sample folder.
    """
    from medsora.training.trainer_factory import build_trainer

    began = time.perf_counter()
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    run_root = Path(cfg.out_dir) / cfg.name
    if _is_first_process():
        remove_stale_temporaries(run_root)  # a kill -9 during a checkpoint write leaves one
    ckpt = resolve_ckpt(cfg.ckpt, run_root)
    callbacks = [*callbacks, *_resume_callbacks(cfg, ckpt)]
    logger = run_logger(cfg, ckpt)
    fresh_folder = not Path(logger.log_dir).exists()
    trainer = None
    try:
        dm = build_datamodule(cfg)
        module = module if module is not None else _module(cfg, dm.modalities)
        diffusion = cfg.stage == "diffusion"
        trainer = build_trainer(cfg, logger, datamodule=dm, tokens_fn=module.tokens_in if diffusion else None,
                                sample_videos=diffusion and getattr(module, "can_decode", False),
                                extra_callbacks=callbacks)
        trainer.fit(module, datamodule=dm, ckpt_path=str(ckpt) if ckpt else None, weights_only=True)
    except BaseException:
        _remove_failed_start(Path(logger.log_dir), fresh_folder, trainer)
        raise
    last = Path(logger.log_dir) / "checkpoints" / "last.ckpt"
    samples = None
    for cb in trainer.callbacks:
        if getattr(cb, "last_dir", None) is not None:
            samples = cb.last_dir
    metrics = {k: float(v) for k, v in trainer.logged_metrics.items() if getattr(v, "numel", lambda: 1)() == 1}
    return StageResult(cfg.stage, Path(logger.log_dir), last if last.is_file() else None, samples,
                       time.perf_counter() - began, metrics, _validation_notes(cfg, dm, trainer.global_step))


def _validation_notes(cfg, dm, steps: int) -> list[str]:
    """Why a run with validation clips logged no validation: a short run ends before ``val_check_interval``."""
    interval = cfg.trainer.val_check_interval
    if interval is None or steps >= int(interval) or not cfg.trainer.limit_val_batches or dm.val_set is None \
            or not len(dm.val_set):
        return []
    return [f"no validation ran: trainer.val_check_interval={interval} is more than the {steps} steps trained; "
            f"set trainer.val_check_interval={steps} (or less) to get val/ losses and reconstructions"]


def stage_summary(r: StageResult) -> str:
    lines = [f"{r.stage} stage finished in {r.seconds / 60:.1f} min", f"  logs + checkpoints  {r.log_dir}",
             f"  last checkpoint     {r.last_ckpt}"]
    if r.samples is not None:
        lines.append(f"  samples             {r.samples}")
    shown = {k: v for k, v in r.metrics.items() if k in ("train/loss", "val/loss", "val/psnr")}
    if shown:
        lines.append("  last logged         " + ", ".join(f"{k} {v:.4g}" for k, v in sorted(shown.items())))
    lines += [f"  note                {note}" for note in r.notes]
    return "\n".join(lines)

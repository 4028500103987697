"""Training callbacks: non-finite step guard, EMA, throughput and memory, data counters, sample videos.

The learning rate is logged by Lightning's ``LearningRateMonitor`` (wired in
``medsora.training.trainer_factory``). Lightning's ``ThroughputMonitor`` is not used: it reports no step
time or memory, which the sweep tables read (``perf/step_time_s``, ``perf/peak_mem_mb``).
"""
from __future__ import annotations

import functools
import resource
import time
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from lightning.pytorch import Callback
from lightning.pytorch.callbacks import EMAWeightAveraging
from lightning.pytorch.utilities import rank_zero_only, rank_zero_warn

__all__ = ["NonFiniteLossError", "all_finite", "NonFiniteLossGuard", "EMA", "ema_decay_at", "Throughput", "SampleVideos", "DataCounters"]


class NonFiniteLossError(RuntimeError):
    """Too many consecutive training steps had a NaN/Inf loss."""


def all_finite(loss: torch.Tensor, strategy) -> bool:
    """Whether the loss is finite on every rank.

    The decision is reduced across processes so that all ranks skip together; a rank that
    skipped its backward alone would leave the others waiting in DDP's gradient all-reduce.
    """
    bad = not bool(torch.isfinite(loss.detach()).all())
    return not strategy.reduce_boolean_decision(bad, all=False)


def _clip_names(batch) -> list[str]:
    """``path`` (and ``#clip`` when a video gives several) of each clip of a batch."""
    if not isinstance(batch, dict) or "path" not in batch:
        return []
    clips = batch.get("clip")
    clips = clips.tolist() if hasattr(clips, "tolist") else [0] * len(batch["path"])
    return [f"{p}#{int(c)}" if int(c) else str(p) for p, c in zip(batch["path"], clips)]


class NonFiniteLossGuard(Callback):
    """Counts and logs skipped steps, naming their clips; stops after more than ``max_bad_steps``
    in a row, or when more than ``max_skipped_fraction`` of the steps (once ``MIN_STEPS`` are seen)
    were skipped — clips that keep producing non-finite losses then stop the run instead of
    silently discarding a share of its batches.

    The module skips a step by returning ``None`` from ``training_step`` (Lightning then runs no
    backward and no optimizer step) and records why in ``pl_module.last_skip``.

    Args:
        max_bad_steps: ``trainer.max_bad_steps``.
        max_skipped_fraction: ``trainer.max_skipped_fraction``.
    """

    MIN_STEPS = 20

    def __init__(self, max_bad_steps: int = 20, max_skipped_fraction: float = 0.1):
        self.max_bad_steps = int(max_bad_steps)
        self.max_skipped_fraction = float(max_skipped_fraction)
        self.consecutive = 0
        self.total = 0
        self.seen = 0
        self.offenders: dict[str, int] = {}  # clip -> skipped steps it was in

    def _worst(self, limit: int = 5) -> str:
        worst = sorted(self.offenders.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
        return ", ".join(f"{name} ({count}×)" for name, count in worst)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        reason = getattr(pl_module, "last_skip", None)
        self.seen += 1
        if reason is None:
            self.consecutive = 0
        else:
            self.consecutive += 1
            self.total += 1
            names = _clip_names(batch)
            for name in names:
                self.offenders[name] = self.offenders.get(name, 0) + 1
            rank_zero_warn(f"non-finite loss at global step {trainer.global_step} (epoch {trainer.current_epoch}, "
                           f"batch {batch_idx}): {reason}; step skipped, no update "
                           f"({self.consecutive} in a row, {self.total} in total)"
                           + (f"; clips: {', '.join(names)}" if names else ""))
            if self.seen >= self.MIN_STEPS and self.total > self.max_skipped_fraction * self.seen:
                raise NonFiniteLossError(
                    f"{self.total} of {self.seen} training steps ({self.total / self.seen:.0%}) had a non-finite loss, "
                    f"more than trainer.max_skipped_fraction={self.max_skipped_fraction:g}: stopping. Clips in the "
                    f"most skipped steps: {self._worst() or 'unknown'}. Check them (python -m medsora.data check "
                    "ROOT), remove them, or lower train.lr."
                )
            if self.consecutive > self.max_bad_steps:
                raise NonFiniteLossError(
                    f"{self.consecutive} consecutive training steps had a non-finite loss, the last at global step "
                    f"{trainer.global_step} (epoch {trainer.current_epoch}, batch {batch_idx}): {reason}. "
                    f"More than trainer.max_bad_steps={self.max_bad_steps}: stopping. Lower train.lr, add "
                    "train.warmup_steps, check the data (python -m medsora.data check ROOT) or resume from an "
                    "earlier checkpoint (ckpt=PATH)."
                )
        pl_module.log("train/skipped_steps", float(self.total), on_step=True, on_epoch=False)

    def state_dict(self) -> dict:
        return {"consecutive": self.consecutive, "total": self.total, "seen": self.seen,
                "offenders": dict(self.offenders)}

    def load_state_dict(self, state_dict: dict) -> None:
        self.consecutive, self.total = int(state_dict["consecutive"]), int(state_dict["total"])
        self.seen = int(state_dict.get("seen", 0))
        self.offenders = {str(k): int(v) for k, v in state_dict.get("offenders", {}).items()}


def ema_decay_at(decay: float, num_averaged: int) -> float:
    """The decay of update number ``num_averaged`` (0-based): ``min(decay, (1 + n) / (10 + n))``.

    diffusers' ``EMAModel`` warm-up: early averages forget the random initialisation quickly, so
    a short run (the CPU demo) samples from trained weights; from ~10⁵ updates on it is the
    plain ``decay`` (0.9999 for MedSora/DiT).
    """
    return min(float(decay), (1.0 + num_averaged) / (10.0 + num_averaged))


def _ema_update(ema_params: list, current_params: list, num_averaged: torch.Tensor, decay: float) -> None:
    """ema ← decay_n·ema + (1 − decay_n)·current for a list of tensors (one fused call per device).

    Like ``torch.optim.swa_utils.get_ema_multi_avg_fn`` plus the warm-up of :func:`ema_decay_at`.
    """
    d = ema_decay_at(decay, int(num_averaged))
    if torch.is_floating_point(ema_params[0]) or torch.is_complex(ema_params[0]):
        torch._foreach_lerp_(ema_params, current_params, 1.0 - d)
    else:
        for e, c in zip(ema_params, current_params):
            e.copy_(e * d + c * (1.0 - d))


class EMA(EMAWeightAveraging):
    """Lightning's EMA of the weights, adapted to MedSora.

    * The averaged copy lives on the training device (Lightning's default is the module's
      device at ``setup``, which is still the CPU before the strategy moves the model).
    * The decay warms up as in diffusers' ``EMAModel`` (:func:`ema_decay_at`).
    * A skipped (non-finite) step does not update the average: the weights did not change.
    * At the end of training the raw weights stay in the module (Lightning copies the average
      over them), so that the final ``last.ckpt`` still resumes exactly; use :meth:`averaged`
      for sampling.
    * Buffers are not averaged (the backbone's buffers are constants).

    Checkpoints store the average in ``state_dict`` and the raw weights in
    ``current_model_state`` (Lightning's format); validation runs on the average.
    """

    def __init__(self, decay: float = 0.9999):
        super().__init__(decay=decay, use_buffers=False)
        # torch's get_ema_avg_fn is a closure (ddp_spawn cannot pickle it) without warm-up
        self._kwargs.pop("avg_fn", None)
        self._kwargs["multi_avg_fn"] = functools.partial(_ema_update, decay=float(decay))

    def setup(self, trainer, pl_module, stage: str) -> None:
        if self._device is None:
            self._device = trainer.strategy.root_device
        super().setup(trainer, pl_module, stage)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if getattr(pl_module, "last_skip", None) is not None:
            self._latest_update_step = trainer.global_step
            return
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_train_end(self, trainer, pl_module) -> None:
        """Keep the raw weights in the module (see the class docstring)."""

    def averaged(self):
        """The averaged copy of the LightningModule (eval-ready), or ``None`` before ``fit``."""
        return None if self._average_model is None else self._average_model.module


class Throughput(Callback):
    """Logs speed and memory every ``log_every_n_steps`` optimizer steps.

    ``perf/step_time_s`` (wall time per training batch, from the batch's arrival to the end of its
    optimizer step: loading the next batch is not counted), ``perf/step_cpu_s`` (the process's CPU
    time over the same intervals, all its threads: on a shared machine the figure that load does
    not inflate), ``perf/samples_per_s`` and ``perf/tokens_per_s`` (this rank), and ``perf/peak_mem_mb``
    (CUDA peak allocation, or the process's peak resident memory on CPU). Time spent outside
    training batches (validation, sampling) is not counted.

    Args:
        samples_fn: clips in a batch; tokens_fn: backbone tokens in a batch (optional).
    """

    def __init__(self, samples_fn: Callable[[Any], int], tokens_fn: Optional[Callable[[Any], int]] = None):
        self.samples_fn, self.tokens_fn = samples_fn, tokens_fn
        self._reset()

    def _reset(self) -> None:
        self._time, self._cpu, self._batches, self._samples, self._tokens = 0.0, 0.0, 0, 0, 0
        self._start: Optional[float] = None
        self._cpu_start = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._start = time.perf_counter()
        self._cpu_start = time.process_time()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._start is None:
            return
        device = trainer.strategy.root_device
        self._batches += 1
        self._samples += self.samples_fn(batch)
        self._tokens += self.tokens_fn(batch) if self.tokens_fn else 0
        log_now = trainer.global_step % max(1, trainer.log_every_n_steps) == 0
        if log_now and device.type == "cuda":
            torch.cuda.synchronize(device)  # only here: the interval's kernels are then all counted
        self._time += time.perf_counter() - self._start
        self._cpu += time.process_time() - self._cpu_start
        self._start = None
        if not log_now or self._time <= 0:
            return
        metrics = {"perf/step_time_s": self._time / self._batches, "perf/step_cpu_s": self._cpu / self._batches,
                   "perf/samples_per_s": self._samples / self._time}
        if self.tokens_fn:
            metrics["perf/tokens_per_s"] = self._tokens / self._time
        if device.type == "cuda":
            metrics["perf/peak_mem_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
        else:
            metrics["perf/peak_mem_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        pl_module.log_dict({k: float(v) for k, v in metrics.items()}, on_step=True, on_epoch=False)
        self._reset()


class SampleVideos(Callback):
    """Sample videos from fixed noise with the EMA weights every N steps and at the end.

    Writes ``<log_dir>/samples/step_XXXXXXX/`` (mp4, gif, contact sheet) and adds each clip to
    TensorBoard as an animated image. The noise of sample i is seeded ``seed + i`` every time,
    so successive sets show the same draws as the model trains.

    Args:
        every_n_steps: ``trainer.sample_every_n_steps`` (0: only at the end).
        num: videos per set; seed: noise seed; steps: sampler steps (``diffusion.sample_steps``
            when None); fps: of the written files.
    """

    def __init__(self, every_n_steps: int = 0, num: int = 4, seed: int = 0, steps: Optional[int] = None,
                 fps: int = 8):
        self.every_n_steps, self.num, self.seed, self.steps, self.fps = int(every_n_steps), num, seed, steps, fps
        self.last_dir: Optional[Path] = None
        self._done_step = -1

    def _module(self, trainer, pl_module):
        for cb in trainer.callbacks:
            if isinstance(cb, EMA) and cb.averaged() is not None:
                return cb.averaged()
        return pl_module

    @rank_zero_only
    def _write(self, trainer, pl_module) -> None:
        step = trainer.global_step
        if step == self._done_step or not getattr(pl_module, "can_decode", False):
            return
        self._done_step = step
        module = self._module(trainer, pl_module)
        was_training = module.training
        module.eval()
        try:
            videos, labels = module.generate(self.num, seed=self.seed, steps=self.steps, return_labels=True)
        finally:
            module.train(was_training)
        from medsora.data.video_io import tensorboard_video, write_videos

        out = Path(trainer.log_dir or trainer.default_root_dir) / "samples" / f"step_{step:07d}"
        write_videos(videos, out, fps=self.fps, labels=labels)
        self.last_dir = out
        writer = getattr(trainer.logger, "experiment", None)
        if hasattr(writer, "_get_file_writer"):  # a TensorBoard SummaryWriter
            for i, video in enumerate(videos):
                tensorboard_video(writer, f"samples/{i:02d}" + (f"_{labels[i]}" if labels else ""), video, step,
                                  self.fps)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.every_n_steps > 0 and trainer.global_step > 0 and trainer.global_step % self.every_n_steps == 0:
            self._write(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        self._write(trainer, pl_module)


class DataCounters(Callback):
    """Logs the data module's counters of skipped inputs (``data/bad_files``, short clips)."""

    def __init__(self, datamodule):
        self.datamodule = datamodule

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step % max(1, trainer.log_every_n_steps) or not hasattr(self.datamodule, "counters"):
            return
        for name, value in self.datamodule.counters().items():
            pl_module.log(f"data/{name}", float(value), on_step=True, on_epoch=False)

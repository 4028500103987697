"""The typed schema of a whole run: one dataclass per component, composed here.

Each component owns its schema beside its code (``medsora/<component>/schema.py``);
this file only assembles them and holds the trainer/optimisation settings.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from medsora.backbone.schema import ModelConfig
from medsora.cond.schema import CondConfig
from medsora.data.schema import DataConfig
from medsora.diffusion.schema import DiffusionConfig
from medsora.flow.schema import AlignConfig
from medsora.config.fields import choice
from medsora.vae.schema import VAEConfig


@dataclass
class TrainerConfig:
    """Arguments of ``lightning.Trainer`` plus MedSora's step guards and logging cadence."""

    accelerator: str = choice("auto", "auto", "cpu", "gpu", "cuda", "mps")
    devices: str = "auto"  # "auto", a count ("8") or a list ("0,1")
    num_nodes: int = 1
    strategy: str = choice("auto", "auto", "ddp", "ddp_spawn", "ddp_find_unused_parameters_true", "fsdp", "deepspeed")
    precision: str = choice("auto", "auto", "32-true", "bf16-mixed", "16-mixed", "bf16-true")
    max_steps: int = 1000
    max_epochs: int = -1
    log_every_n_steps: int = 10
    val_check_interval: Optional[int] = None  # steps between validations; None = once per epoch
    limit_val_batches: float = 1.0
    accumulate_grad_batches: int = 1
    gradient_clip_val: float = 1.0
    sample_every_n_steps: int = 0  # 0 = only at the end
    checkpoint_every_n_steps: int = 500
    max_bad_steps: int = 20  # consecutive non-finite losses before the run stops
    max_skipped_fraction: float = 0.1  # share of skipped (non-finite) steps, once 20 are seen, that stops the run
    enable_progress_bar: bool = True
    deterministic: bool = False


@dataclass
class TrainConfig:
    """Optimisation recipe (AdamW, warmup, EMA, freezing, compile)."""

    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    warmup_steps: int = 0
    ema_decay: float = 0.9999
    ema: bool = True
    frozen_blocks: List[str] = field(default_factory=list)  # block types whose params are frozen
    init_from: Optional[str] = None  # checkpoint whose weights initialise this run (stage chaining)
    compile: bool = False
    joint_images: int = 0  # extra single frames per clip for joint image-video training


@dataclass
class RunConfig:
    """Root of every run's configuration (``python -m medsora.fit --print-config`` shows it)."""

    name: str = "run"
    stage: str = choice("diffusion", "vae", "diffusion", "demo")
    seed: int = 25126
    ckpt: Optional[str] = None  # "last" or a path: resume exactly
    out_dir: str = "lightning_logs"
    data: DataConfig = field(default_factory=DataConfig)
    vae: VAEConfig = field(default_factory=VAEConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    align: AlignConfig = field(default_factory=AlignConfig)
    cond: CondConfig = field(default_factory=CondConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


GROUPS = ("data", "vae", "model", "diffusion", "align", "cond", "train", "trainer")

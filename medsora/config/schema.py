"""The typed schema of a whole run: one dataclass per component, composed here.

Each component owns its schema beside its code (``medsora/<component>/schema.py``);
this file only assembles them and holds the trainer/optimisation settings.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, List, Optional

from medsora.backbone.schema import ModelConfig
from medsora.cond.schema import CondConfig
from medsora.data.schema import DataConfig
from medsora.diffusion.schema import DiffusionConfig
from medsora.flow.schema import AlignConfig
from medsora.config.fields import bounded, choice, path_to
from medsora.vae.schema import VAEConfig


@dataclass
class TrainerConfig:
    """Arguments of ``lightning.Trainer`` plus MedSora's step guards and logging cadence."""

    accelerator: str = choice("auto", "auto", "cpu", "gpu", "cuda", "mps")
    devices: str = "auto"  # "auto", a count ("8") or a list ("0,1")
    num_nodes: int = bounded(1, 1, 100000)
    strategy: str = choice("auto", "auto", "ddp", "ddp_spawn", "ddp_find_unused_parameters_true", "fsdp", "deepspeed")
    precision: str = choice("auto", "auto", "32-true", "bf16-mixed", "16-mixed", "bf16-true")
    max_steps: int = bounded(1000, 1, also=(-1,))  # -1: no step limit (max_epochs decides)
    max_epochs: int = bounded(-1, 1, also=(-1,))
    log_every_n_steps: int = bounded(10, 1)
    val_check_interval: Optional[int] = bounded(None, 1)  # steps between validations; None = once per epoch
    limit_val_batches: float = bounded(1.0, 0.0)
    accumulate_grad_batches: int = bounded(1, 1, 65536)
    gradient_clip_val: float = bounded(1.0, 0.0)
    sample_every_n_steps: int = bounded(0, 0)  # 0 = only at the end
    checkpoint_every_n_steps: int = bounded(500, 1)  # the final step is always saved too
    max_bad_steps: int = bounded(20, 0)  # consecutive non-finite losses before the run stops
    max_skipped_fraction: float = bounded(0.1, 0.0, 1.0)  # share of skipped (non-finite) steps, once 20 are seen, that stops the run
    enable_progress_bar: bool = True
    deterministic: bool = False

    @staticmethod
    def checks(c) -> Iterator[tuple[str, str]]:
        """``devices``: auto, a count or a list of indices."""
        import re

        if not re.fullmatch(r"auto|\d+|\d+(,\d+)*,?", str(c.devices).strip()):
            yield "devices", "must be auto, a count like 2, or indices like 0,1"


@dataclass
class TrainConfig:
    """Optimisation recipe (AdamW, warmup, EMA, freezing, compile)."""

    lr: float = bounded(1e-4, 0.0, 1e3)
    weight_decay: float = bounded(0.0, 0.0)
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    warmup_steps: int = bounded(0, 0)
    # after the warm-up: "constant" (the paper's recipe) or "cosine" decay to min_lr_ratio · lr at trainer.max_steps
    lr_schedule: str = choice("constant", "constant", "cosine")
    min_lr_ratio: float = bounded(0.1, 0.0, 1.0)
    ema_decay: float = bounded(0.9999, 0.0, 1.0)
    ema: bool = True
    frozen_blocks: List[str] = field(default_factory=list)  # block types whose params are frozen
    init_from: Optional[str] = path_to("file")  # checkpoint whose weights initialise this run (stage chaining)
    compile: bool = False
    joint_images: int = bounded(0, 0, 1024)  # extra single frames per clip for joint image-video training

    @staticmethod
    def checks(c) -> Iterator[tuple[str, str]]:
        """``betas``: Adam's two decay rates."""
        if len(c.betas) != 2 or not all(0.0 <= b < 1.0 for b in c.betas):
            yield "betas", "must be two numbers in [0, 1), e.g. [0.9, 0.999]"


@dataclass
class RunConfig:
    """Root of every run's configuration (``python -m medsora.fit --print-config`` shows it)."""

    name: str = "run"
    stage: str = choice("diffusion", "vae", "diffusion", "demo")
    seed: int = bounded(25126, 0, 2**32 - 1)
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

    @staticmethod
    def checks(c) -> Iterator[tuple[str, str]]:
        """Rules across sections: what the backbone taps must exist in the pattern it builds."""
        if c.stage in ("diffusion", "demo") and c.align.enabled:
            if c.align.tap not in list(c.model.blocks):
                yield "align.tap", f"is not in model.blocks = {list(c.model.blocks)}: pick one of them"
            if not list(c.align.get("layers", [])) and c.align.depth > c.model.depth:  # align.layers: checked by the backbone
                yield "align.depth", f"is deeper than model.depth = {c.model.depth}"
        if c.train.lr_schedule == "cosine" and c.trainer.max_steps < 1:
            yield "train.lr_schedule", "cosine decays over trainer.max_steps: set trainer.max_steps (it is -1)"
        stride = 1 if c.vae.kind == "sd" else 4  # medsora.vae.select.temporal_stride: the VAE decides
        if (c.data.num_frames - 1) % stride:
            yield "data.num_frames", ("must be 1 + 4k (1, 5, 9, 13, 17, ...): the causal VAE compresses time 4x after "
                                      "the first frame (vae=sd, frame by frame, takes any count)")
        if c.stage in ("diffusion", "demo") and (c.data.size // 8) % c.model.patch:
            yield "model.patch", (f"must divide the latent side data.size/8 = {c.data.size // 8}")


GROUPS = ("data", "vae", "model", "diffusion", "align", "cond", "train", "trainer")

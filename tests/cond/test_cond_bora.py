"""Bora's two stages as experiments: modal_align (templates, temporal blocks frozen) -> instruct."""
from __future__ import annotations

import pytest
import torch
from lightning.pytorch.callbacks import Callback

from medsora.training.checkpointing import load_checkpoint
from medsora.config import compose
from medsora.fit import fit_stage
from medsora.training.diffusion_module import DiffusionModule

TINY = [
    "model.depth=1", "model.hidden=32", "model.heads=4", "model.d_state=8", "model.headdim=8", "model.window=2",
    "model.scan_impl=torch", "model.learn_sigma=false", "vae.latent_channels=4", "align=off", "trainer=cpu",
    "data.root=demo", "data.size=32", "data.num_frames=5", "data.batch_size=4", "diffusion.sample_steps=4",
    "train.joint_images=0", "train.lr=3e-3", "train.ema_decay=0.9", "trainer.enable_progress_bar=false",
    "trainer.log_every_n_steps=1",
    "trainer.limit_val_batches=0", "cond.modalities=[endoscopy,mri]", "cond.max_tokens=16",
]


class OptimizerParams(Callback):
    """Records which parameters the optimiser was given."""

    def on_train_start(self, trainer, pl_module):
        self.ids = {id(p) for group in trainer.optimizers[0].param_groups for p in group["params"]}


def _params(module, kind):
    return {name: p.detach().clone() for name, p in module.backbone.named_block_parameters(kind)}


@pytest.fixture(scope="module")
def stage1(tmp_path_factory, tiny_t5, modality_cache):
    root = tmp_path_factory.mktemp("bora")
    common = [*TINY, f"cond.text_encoder={tiny_t5}", f"data.cache={root / 'cache'}", f"out_dir={root / 'runs'}"]
    cfg = compose("modal_align", [*common, "trainer.max_steps=3"])
    modality_cache(cfg)
    module = DiffusionModule(cfg)
    before = {k: v.clone() for k, v in module.state_dict().items() if isinstance(v, torch.Tensor)}
    recorder = OptimizerParams()
    result = fit_stage(cfg, callbacks=[recorder], module=module)
    return dict(cfg=cfg, common=common, module=module, before=before, optimizer_ids=recorder.ids, result=result)


def test_recipes(tmp_path):
    base = ["data.root=demo", f"cond.text_encoder={tmp_path}"]  # a path that must exist (checked at start-up)
    align = compose("modal_align", base)
    assert align.cond.use_template and align.cond.text and align.cond.modality and align.cond.dropout == 0.1
    assert list(align.train.frozen_blocks) == ["temporal_mamba"]
    # cross_attn last: the other sub-blocks keep their indices in an unconditional checkpoint
    assert list(align.model.blocks) == ["local_attn", "spatial_mamba", "temporal_mamba", "cross_attn"]
    (tmp_path / "stage1.ckpt").write_bytes(b"")
    instruct = compose("instruct", [*base, f"train.init_from={tmp_path / 'stage1.ckpt'}"])
    assert not instruct.cond.use_template and list(instruct.train.frozen_blocks) == []
    assert instruct.train.init_from == str(tmp_path / "stage1.ckpt") and instruct.model == align.model


def test_stage1_keeps_temporal_blocks_frozen_and_out_of_the_optimiser(stage1):
    module, before = stage1["module"], stage1["before"]
    assert stage1["result"].last_ckpt is not None and module.global_step == 3
    frozen = dict(module.backbone.named_block_parameters("temporal_mamba"))
    assert frozen and not any(p.requires_grad for p in frozen.values())
    for name, p in frozen.items():
        assert torch.equal(p.detach(), before[f"backbone.{name}"]), name
    trainable = {id(p) for p in module.parameters() if p.requires_grad}
    assert stage1["optimizer_ids"] == trainable
    assert not stage1["optimizer_ids"] & {id(p) for p in frozen.values()}
    # everything else trains: the spatial and cross-attention blocks and the condition encoder
    for kind in ("spatial_mamba", "cross_attn"):
        changed = [n for n, p in module.backbone.named_block_parameters(kind)
                   if not torch.equal(p.detach(), before[f"backbone.{n}"])]
        assert changed, kind
    assert not torch.equal(module.cond_encoder.modality.table.weight.detach(),
                           before["cond_encoder.modality.table.weight"])
    assert not torch.equal(module.cond_encoder.token_proj.linear_1.weight.detach(),
                           before["cond_encoder.token_proj.linear_1.weight"])


def test_stage2_starts_from_stage1_and_trains_everything(stage1):
    last = stage1["result"].last_ckpt
    cfg = compose("instruct", [*stage1["common"], f"train.init_from={last}", "trainer.max_steps=2"])
    module = DiffusionModule(cfg)
    saved = load_checkpoint(last)["state_dict"]
    own = module.state_dict()
    assert set(own) == set(saved)
    for key, value in saved.items():
        assert torch.equal(own[key], value), key
    assert all(p.requires_grad for p in module.parameters())
    assert module.cond_encoder.use_template is False
    temporal = _params(module, "temporal_mamba")
    fit_stage(cfg, module=module)
    moved = [n for n, p in module.backbone.named_block_parameters("temporal_mamba")
             if not torch.equal(p.detach(), temporal[n])]
    assert moved  # the blocks frozen in stage 1 train in stage 2


def test_sampling_from_the_checkpoint_with_a_negative_prompt(stage1):
    """A stage-1 (template-only) model samples by modality with guidance, and refuses a free-text negative
    prompt naming what it is conditioned on (its captions were all the template)."""
    module = DiffusionModule.from_checkpoint(str(stage1["result"].last_ckpt))
    assert module.cond_encoder.text_encoder.folder == stage1["module"].cond_encoder.text_encoder.folder
    common = dict(num=2, seed=3, steps=2, modalities=["endoscopy", "mri"], decode=False)
    plain = module.generate(guidance_scale=1.0, **common)
    guided = module.generate(guidance_scale=3.0, **common)
    assert plain.shape == (2, 4, 2, 4, 4) and torch.isfinite(guided).all()
    assert not torch.allclose(guided, plain)
    with pytest.raises(ValueError, match="--negative-prompt: this model is not conditioned on free text"):
        module.generate(guidance_scale=3.0, negative_prompt="blurry camera", **common)
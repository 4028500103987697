"""experiment=bora_reference_stage1/2: Bora's recipe composes as stated and starts from Open-Sora STDiT weights."""
from __future__ import annotations

import pytest
import torch

from medsora.config import compose
from medsora.vae.frame_vae import save_tiny_sd_vae

@pytest.fixture(scope="module")
def sd_dir(tmp_path_factory):
    return save_tiny_sd_vae(tmp_path_factory.mktemp("sd-vae"))


def test_the_two_stages_carry_bora_s_recipe(sd_dir, tiny_t5_dir, tmp_path):
    from medsora.vae.select import latent_frames

    REQUIRED = ["data.root=demo", f"vae.pretrained={sd_dir}", f"cond.text_encoder={tiny_t5_dir}"]  # noqa: N806
    (tmp_path / "stage1.ckpt").write_bytes(b"")
    one = compose("bora_reference_stage1", REQUIRED)
    two = compose("bora_reference_stage2", [*REQUIRED, f"train.init_from={tmp_path / 'stage1.ckpt'}"])
    for cfg in (one, two):
        assert cfg.model.preset == "stdit" and list(cfg.model.blocks) == ["spatial_attn", "temporal_attn", "cross_attn"]
        assert (cfg.model.hidden, cfg.model.depth, cfg.model.heads, cfg.model.mlp_ratio) == (1152, 28, 16, 4.0)
        assert cfg.vae.kind == "sd" and cfg.vae.scaling_factor == 0.18215 and cfg.vae.latent_channels == 4
        assert (cfg.data.size, cfg.data.num_frames, cfg.data.adaptive_interval) == (256, 16, True)
        assert latent_frames(cfg.vae, cfg.data.num_frames) == 16  # T = F with the frame-wise VAE
        assert cfg.cond.text and not cfg.cond.modality and cfg.cond.max_tokens == 120
        assert cfg.train.lr == 1e-5 and not cfg.align.enabled
    assert one.data.balance == "modality" and two.data.balance == "smallest"
    assert one.cond.use_template and not two.cond.use_template
    assert list(one.train.frozen_blocks) == ["temporal_attn"] and list(two.train.frozen_blocks) == []
    # Bora on our backbone (modal_align / instruct) takes the same data policy and stage-2 rate
    assert compose("modal_align", REQUIRED).data.balance == "modality"
    instruct = compose("instruct", [*REQUIRED, f"train.init_from={tmp_path / 'stage1.ckpt'}"])
    assert instruct.data.balance == "smallest" and instruct.train.lr == 1e-5


def test_stage1_starts_from_an_open_sora_stdit_checkpoint(sd_dir, tiny_t5_dir, tiny_vae_ckpt, tmp_path, run_overrides):
    from medsora.backbone.stdit_keys import stdit_shapes
    from medsora.cond.text_encoder import T5TextEncoder
    from medsora.training.diffusion_module import DiffusionModule

    dim = T5TextEncoder(str(tiny_t5_dir)).dim
    g = torch.Generator().manual_seed(1)
    state = {k: torch.randn(s, generator=g) for k, s in stdit_shapes(hidden=32, depth=1, caption_channels=dim,
                                                                      tokens=8, frames=4, spatial_tokens=4).items()}
    path = tmp_path / "opensora.pth"
    torch.save(state, path)
    cfg = compose("bora_reference_stage1", [*run_overrides(tmp_path, tiny_vae_ckpt, tiny_t5_dir),
                                            f"vae.pretrained={sd_dir}", "data.num_frames=4", "model.mlp_ratio=4",
                                            f"train.init_from={path}"])
    module = DiffusionModule(cfg)
    bb = module.backbone
    assert torch.equal(bb.patch_embed.proj.weight, state["x_embedder.proj.weight"])
    spatial = bb.layers[0].blocks[0].adaLN_modulation[1]
    torch.testing.assert_close(spatial.bias, state["t_block.1.bias"][:96] + state["blocks.0.scale_shift_table"][:3].reshape(-1))
    assert torch.equal(module.cond_encoder.token_proj.linear_1.weight, state["y_embedder.y_proj.fc1.weight"])
    assert torch.equal(module.cond_encoder.null_text, state["y_embedder.y_embedding"])
    # temporal attention stays frozen in stage 1
    assert not any(p.requires_grad for _, p in bb.named_block_parameters("temporal_attn"))

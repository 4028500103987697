"""model=stdit and the Open-Sora 1.0 STDiT key mapping (random tensors of Open-Sora's names and shapes)."""
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from medsora.backbone import MedSoraDiT
from medsora.backbone.presets import preset_config
from medsora.backbone.stdit_keys import load_stdit_weights, map_stdit_state_dict
from medsora.cond.encoder import ConditionEncoder

from omegaconf import OmegaConf

from medsora.backbone.schema import ModelConfig


def stdit_config(overrides=()):
    from medsora.config import config_dir

    return OmegaConf.merge(OmegaConf.structured(ModelConfig), OmegaConf.load(config_dir() / "model" / "stdit.yaml"),
                           OmegaConf.from_dotlist(list(overrides)))


def opensora_state(hidden, depth, in_ch=4, caption=4096, tokens=120, patch=2, learn_sigma=True, frames=16,
                   spatial=256, device="cpu"):
    """An Open-Sora 1.0 STDiT state dict (names and shapes of opensora/models/stdit/stdit.py @ v1.0.0)."""
    g = torch.Generator().manual_seed(0)
    out_ch = 2 * in_ch if learn_sigma else in_ch
    shapes = {
        "pos_embed": (1, spatial, hidden), "pos_embed_temporal": (1, frames, hidden),
        "x_embedder.proj.weight": (hidden, in_ch, 1, patch, patch), "x_embedder.proj.bias": (hidden,),
        "t_embedder.mlp.0.weight": (hidden, 256), "t_embedder.mlp.0.bias": (hidden,),
        "t_embedder.mlp.2.weight": (hidden, hidden), "t_embedder.mlp.2.bias": (hidden,),
        "t_block.1.weight": (6 * hidden, hidden), "t_block.1.bias": (6 * hidden,),
        "y_embedder.y_embedding": (tokens, caption),
        "y_embedder.y_proj.fc1.weight": (hidden, caption), "y_embedder.y_proj.fc1.bias": (hidden,),
        "y_embedder.y_proj.fc2.weight": (hidden, hidden), "y_embedder.y_proj.fc2.bias": (hidden,),
        "final_layer.scale_shift_table": (2, hidden),
        "final_layer.linear.weight": (patch * patch * out_ch, hidden), "final_layer.linear.bias": (patch * patch * out_ch,),
    }
    for i in range(depth):
        b = f"blocks.{i}."
        shapes.update({
            b + "scale_shift_table": (6, hidden),
            b + "attn.qkv.weight": (3 * hidden, hidden), b + "attn.qkv.bias": (3 * hidden,),
            b + "attn.proj.weight": (hidden, hidden), b + "attn.proj.bias": (hidden,),
            b + "cross_attn.q_linear.weight": (hidden, hidden), b + "cross_attn.q_linear.bias": (hidden,),
            b + "cross_attn.kv_linear.weight": (2 * hidden, hidden), b + "cross_attn.kv_linear.bias": (2 * hidden,),
            b + "cross_attn.proj.weight": (hidden, hidden), b + "cross_attn.proj.bias": (hidden,),
            b + "mlp.fc1.weight": (4 * hidden, hidden), b + "mlp.fc1.bias": (4 * hidden,),
            b + "mlp.fc2.weight": (hidden, 4 * hidden), b + "mlp.fc2.bias": (hidden,),
            b + "attn_temp.qkv.weight": (3 * hidden, hidden), b + "attn_temp.qkv.bias": (3 * hidden,),
            b + "attn_temp.proj.weight": (hidden, hidden), b + "attn_temp.proj.bias": (hidden,),
        })
    if device == "meta":
        return {k: torch.empty(s, device="meta") for k, s in shapes.items()}
    return {k: torch.randn(s, generator=g) * 0.2 for k, s in shapes.items()}


class Model(nn.Module):
    """The two parts a DiffusionModule holds, under its attribute names."""

    def __init__(self, cfg, caption=4096, tokens=120):
        super().__init__()
        self.backbone = MedSoraDiT(4, cfg)
        self.cond_encoder = ConditionEncoder(int(cfg.hidden), text_encoder=SimpleNamespace(dim=caption),
                                             text=True, null_tokens=tokens)


def test_the_module_shape_table_agrees_with_this_transcription():
    from medsora.backbone.stdit_keys import stdit_shapes

    ours = {k: tuple(v.shape) for k, v in opensora_state(1152, 28, device="meta").items()}
    assert stdit_shapes() == ours


def test_stdit_yaml_is_stdit_xl2():
    cfg = stdit_config()
    assert (cfg.hidden, cfg.depth, cfg.heads, cfg.patch, cfg.mlp_ratio) == (1152, 28, 16, 2, 4.0)
    assert list(cfg.blocks) == ["spatial_attn", "temporal_attn", "cross_attn"] and cfg.learn_sigma


def test_xl2_names_and_shapes_map_onto_our_model():
    cfg = stdit_config()
    with torch.device("meta"):
        model = Model(cfg)
    mapping = load_stdit_weights(model, opensora_state(1152, 28, device="meta"), cfg)
    assert not mapping.unknown
    assert set(mapping.unmapped) == {"pos_embed", "pos_embed_temporal", "final_layer.scale_shift_table"}
    own = model.state_dict()
    # every backbone parameter is covered except the final adaLN (no equivalent)
    left = sorted(k for k in own if k not in mapping.state)
    assert left == ["backbone.final_layer.adaLN_modulation.1.bias", "backbone.final_layer.adaLN_modulation.1.weight",
                    "cond_encoder.pool_proj.linear_1.bias", "cond_encoder.pool_proj.linear_1.weight",
                    "cond_encoder.pool_proj.linear_2.bias", "cond_encoder.pool_proj.linear_2.weight"]
    assert "final_layer.scale_shift_table" in mapping.report()


def _t2i_attention(x, qkv, proj, heads):
    """Open-Sora's Attention (qkv -> B,N,3,heads,hd -> softmax(qk^T/sqrt(hd)) v -> proj)."""
    b, n, c = x.shape
    q, k, v = F.linear(x, *qkv).reshape(b, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
    attn = (q @ k.transpose(-2, -1) / math.sqrt(c // heads)).softmax(-1)
    return F.linear((attn @ v).transpose(1, 2).reshape(b, n, c), *proj)


def test_mapped_weights_compute_what_stdit_computes():
    torch.manual_seed(0)
    hidden, heads, depth = 32, 4, 2
    cfg = stdit_config([f"hidden={hidden}", f"heads={heads}", f"depth={depth}"])
    model = Model(cfg, caption=24, tokens=6)
    sd = opensora_state(hidden, depth, caption=24, tokens=6)
    load_stdit_weights(model, sd, cfg)
    bb = model.backbone
    b, t, h, w = 2, 3, 4, 4
    x = torch.randn(b, t, h, w, hidden)
    steps = torch.tensor([3.0, 700.0])

    # timestep embedding (Open-Sora's TimestepEmbedder: cos|sin of t * 10000^(-k/128), MLP)
    freqs = torch.exp(-math.log(10000) * torch.arange(128) / 128)
    emb = torch.cat([torch.cos(steps[:, None] * freqs), torch.sin(steps[:, None] * freqs)], -1)
    t_vec = F.linear(F.silu(F.linear(emb, sd["t_embedder.mlp.0.weight"], sd["t_embedder.mlp.0.bias"])),
                     sd["t_embedder.mlp.2.weight"], sd["t_embedder.mlp.2.bias"])
    torch.testing.assert_close(bb.t_embedder(steps), t_vec)

    ln = lambda v: F.layer_norm(v, (hidden,), eps=1e-6)  # noqa: E731
    for i in range(depth):
        mod = (sd[f"blocks.{i}.scale_shift_table"][None] + F.linear(F.silu(t_vec), sd["t_block.1.weight"],
                                                                    sd["t_block.1.bias"]).reshape(b, 6, -1))
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = [m[:, None] for m in mod.unbind(1)]
        seq = x.reshape(b, -1, hidden)
        blocks = dict(zip(bb.block_types(), bb.layers[i].blocks))
        # spatial branch: x + gate_msa * attn(t2i_modulate(norm1(x)))
        xm = (ln(seq) * (1 + scale_msa) + shift_msa).reshape(b * t, h * w, hidden)
        want = seq + gate_msa * _t2i_attention(
            xm, (sd[f"blocks.{i}.attn.qkv.weight"], sd[f"blocks.{i}.attn.qkv.bias"]),
            (sd[f"blocks.{i}.attn.proj.weight"], sd[f"blocks.{i}.attn.proj.bias"]), heads).reshape(b, -1, hidden)
        torch.testing.assert_close(blocks["spatial_attn"](x, t_vec).reshape(b, -1, hidden), want, atol=1e-5, rtol=1e-5)
        # MLP branch: x + gate_mlp * mlp(t2i_modulate(norm2(x)))
        hm = ln(seq) * (1 + scale_mlp) + shift_mlp
        mlp = F.linear(F.gelu(F.linear(hm, sd[f"blocks.{i}.mlp.fc1.weight"], sd[f"blocks.{i}.mlp.fc1.bias"]),
                              approximate="tanh"), sd[f"blocks.{i}.mlp.fc2.weight"], sd[f"blocks.{i}.mlp.fc2.bias"])
        torch.testing.assert_close(blocks["mlp"](x, t_vec).reshape(b, -1, hidden), seq + gate_mlp * mlp,
                                   atol=1e-5, rtol=1e-5)
        # temporal branch: STDiT's gate, no shift/scale (ours keeps its LayerNorm: the stated approximation)
        shift, scale, gate = blocks["temporal_attn"].adaLN_modulation(t_vec).chunk(3, -1)
        assert shift.abs().max() == 0 and scale.abs().max() == 0
        torch.testing.assert_close(gate, gate_msa[:, 0])
        # cross-attention: ungated (gate 1), projections Open-Sora's
        shift, scale, gate = blocks["cross_attn"].adaLN_modulation(t_vec).chunk(3, -1)
        assert torch.equal(gate, torch.ones_like(gate)) and shift.abs().max() == 0
    # caption projection (y_embedder.y_proj: fc1 - GELU(tanh) - fc2)
    y = torch.randn(2, 5, 24)
    want = F.linear(F.gelu(F.linear(y, sd["y_embedder.y_proj.fc1.weight"], sd["y_embedder.y_proj.fc1.bias"]),
                           approximate="tanh"), sd["y_embedder.y_proj.fc2.weight"], sd["y_embedder.y_proj.fc2.bias"])
    torch.testing.assert_close(model.cond_encoder.token_proj(y), want)
    # patch embedding and output linear are the same tensors
    assert torch.equal(bb.patch_embed.proj.weight, sd["x_embedder.proj.weight"])
    assert torch.equal(bb.final_layer.linear.weight, sd["final_layer.linear.weight"])


def test_wrong_width_and_unknown_keys_are_named():
    cfg = stdit_config(["hidden=32", "heads=4", "depth=2"])
    sd = opensora_state(48, 2, caption=24, tokens=6)
    with pytest.raises(ValueError, match="t_block.1.weight"):
        map_stdit_state_dict(sd, cfg)
    sd = opensora_state(32, 3, caption=24, tokens=6)
    with pytest.raises(ValueError, match="3 blocks but model.depth=2"):
        map_stdit_state_dict(sd, cfg)
    sd = opensora_state(32, 2, caption=24, tokens=6)
    sd["blocks.0.attn.q_norm.weight"] = torch.ones(8)
    assert map_stdit_state_dict(sd, cfg).unknown == ["blocks.0.attn.q_norm.weight"]
    with pytest.raises(ValueError, match="does not know: blocks.0.attn.q_norm.weight"):
        load_stdit_weights(Model(cfg, caption=24, tokens=6), sd, cfg)
    with pytest.raises(ValueError, match="model=stdit"):
        map_stdit_state_dict(sd, preset_config("tiny"))

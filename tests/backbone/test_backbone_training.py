"""Training behaviour: the tiny preset overfits one batch, every parameter learns,
gradient checkpointing changes no gradient, and block kinds can be frozen."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from medsora.backbone import build_preset


def _noisy_batch():
    """One fixed noisy-latent batch (B=2, C=4, T=2, 8×8) and its noise target, DDPM-style."""
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(2, 4, 2, 8, 8, generator=gen)
    noise = torch.randn(x0.shape, generator=gen)
    alpha_bar = torch.tensor([0.9, 0.3]).view(2, 1, 1, 1, 1)
    xt = alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * noise
    return xt, torch.tensor([100, 700]), noise


def test_tiny_preset_overfits_one_batch_and_every_parameter_learns():
    torch.manual_seed(0)
    model = build_preset("tiny", in_channels=4, overrides=["scan_impl=torch"])
    initial = {name: p.detach().clone() for name, p in model.named_parameters()}
    xt, t, noise = _noisy_batch()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)
    first = F.mse_loss(model(xt, t), noise).item()
    losses = []
    for _ in range(200):
        loss = F.mse_loss(model(xt, t), noise)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if losses[-1] < first / 10:
            break
    assert losses[-1] < first / 10, f"loss {first:.3f} -> {losses[-1]:.3f} after {len(losses)} steps"
    # adaLN-Zero must not leave a dead sub-block: every tensor moved away from its initial value.
    frozen = [name for name, p in model.named_parameters() if torch.equal(p, initial[name])]
    assert frozen == []


def _loss_and_grads(model, xt, t, noise):
    out, align = model(xt, t, return_align=True)
    loss = F.mse_loss(out, noise) + align.square().mean()
    model.zero_grad()
    loss.backward()
    return loss.detach(), {name: p.grad.clone() for name, p in model.named_parameters()}


def test_gradient_checkpointing_gives_the_same_gradients(small_model, waker):
    model = waker(small_model(blocks=("local_attn", "spatial_mamba", "temporal_mamba"), depth=3, mlp_ratio=2.0,
                              align_dim=6, align_depth=2, projector_hidden=8))
    checkpointed = copy.deepcopy(model)
    checkpointed.grad_checkpointing = True
    xt, t, noise = _noisy_batch()
    loss, grads = _loss_and_grads(model, xt, t, noise)
    loss_ckpt, grads_ckpt = _loss_and_grads(checkpointed, xt, t, noise)
    torch.testing.assert_close(loss_ckpt, loss)
    assert grads.keys() == grads_ckpt.keys()
    for name in grads:
        torch.testing.assert_close(grads_ckpt[name], grads[name], atol=1e-6, rtol=1e-5, msg=name)
    assert sum(g.abs().sum() for g in grads.values()) > 0


def test_named_block_parameters_freeze_one_kind(small_model, waker):
    model = waker(small_model(mlp_ratio=2.0))
    assert model.block_types() == ("local_attn", "spatial_mamba", "temporal_mamba", "mlp")
    temporal = dict(model.named_block_parameters("temporal_mamba"))
    assert temporal and all(".blocks.2." in name for name in temporal)
    assert all(any(p is q for q in model.parameters()) for p in temporal.values())
    per_block = sum(p.numel() for p in model.blocks_of_kind("temporal_mamba")[0].parameters())
    assert sum(p.numel() for p in temporal.values()) == per_block * len(model.layers)
    for p in temporal.values():
        p.requires_grad_(False)
    xt, t, noise = _noisy_batch()
    F.mse_loss(model(xt, t), noise).backward()
    for name, p in model.named_parameters():
        assert (p.grad is None) == (name in temporal), name
    with pytest.raises(ValueError, match="temporal_attn"):
        list(model.named_block_parameters("temporal_attn"))

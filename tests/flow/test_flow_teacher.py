"""FlowTeacher: frozen RAFT, weight resolution, flows, targets on the latent token grid."""
from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from torchvision.models.optical_flow import raft_small

from medsora.flow import AlignLoss, FlowTeacher, TeacherWeightsError, latent_frame_groups, token_grid
from medsora.flow.raft_weights import build_raft, hub_checkpoint


def _teacher(target="raft_motion", **kw) -> FlowTeacher:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return FlowTeacher("raft_small", "random", iters=1, target=target, **kw)


@pytest.fixture(scope="module")
def teacher():
    return _teacher()


def _video(b=1, c=3, f=5, h=64, w=64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(b, c, f, h, w, generator=gen) * 2 - 1


def test_random_weights_warn_loudly_and_are_seeded():
    with pytest.warns(UserWarning, match="RANDOMLY INITIALISED"):
        a = build_raft("raft_small", "random", seed=3)
    with pytest.warns(UserWarning):
        b = build_raft("raft_small", "random", seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_missing_weights_error_names_cache_path_and_config_key(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(TeacherWeightsError) as err:
        build_raft("raft_small", "default")
    msg = str(err.value)
    assert str(hub_checkpoint("raft_small")) in msg and "align.teacher.weights=" in msg
    with pytest.raises(TeacherWeightsError, match="does not exist.*align.teacher.weights=default"):
        build_raft("raft_small", str(tmp_path / "nope.pth"))


def test_weights_from_hub_cache_and_from_local_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    reference = raft_small(weights=None)
    cached = hub_checkpoint("raft_small", "C_T_V1")
    cached.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), cached)
    local = tmp_path / "raft.pth"
    torch.save(reference.state_dict(), local)
    for weights in ("C_T_V1", str(local)):
        model = build_raft("raft_small", weights)
        assert not model.training
        assert all(torch.equal(x, y) for x, y in zip(model.state_dict().values(), reference.state_dict().values()))
    with pytest.raises(TeacherWeightsError, match="not a torchvision raft_large state dict"):
        build_raft("raft_large", str(local))


def test_teacher_is_frozen_through_an_optimiser_step(teacher):
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student = nn.Linear(3, teacher.dim)
    # Even a careless optimiser that is handed the teacher's parameters must leave them alone.
    opt = torch.optim.AdamW(list(student.parameters()) + list(teacher.parameters()), lr=0.1)
    teacher.train()
    assert not teacher.training and not teacher.raft.training
    assert not any(p.requires_grad for p in teacher.parameters())
    video = _video().requires_grad_(True)
    grid = token_grid(5, 64, 64)
    target = teacher.targets(video, grid)
    assert not target.requires_grad
    pooled = torch.nn.functional.adaptive_avg_pool3d(video, grid).permute(0, 2, 3, 4, 1)
    loss = AlignLoss("pearson")(student(pooled), target, torch.zeros(1))["align"]
    loss.backward()
    opt.step()
    assert student.weight.grad is not None and video.grad is not None
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())


def test_flows_match_raft_on_a_native_size(teacher):
    video = _video(b=2, f=2, h=128, w=136)
    pairs = teacher.raft(video[:, :, 0], video[:, :, 1], num_flow_updates=1)[-1]
    torch.testing.assert_close(teacher.flows(video), pairs.view(2, 1, 2, 128, 136))


@pytest.mark.parametrize("f,h,w", [(3, 64, 64), (2, 36, 52), (2, 130, 33)])
def test_flow_shapes_for_any_size(teacher, f, h, w):
    flows = teacher.flows(_video(f=f, h=h, w=w))
    assert flows.shape == (1, f - 1, 2, h, w) and torch.isfinite(flows).all()


def test_grayscale_is_repeated_to_rgb(teacher):
    gray = _video(c=1, f=3)
    torch.testing.assert_close(teacher.targets(gray, (2, 4, 4)), teacher.targets(gray.repeat(1, 3, 1, 1, 1), (2, 4, 4)))


@pytest.mark.parametrize("target,dim,b,f,h,w", [
    ("raft_motion", 96 + 82, 2, 5, 64, 64), ("raft_motion", 96 + 82, 1, 9, 32, 32), ("flow", 2 * 3 * 3, 1, 5, 48, 32),
])
def test_target_shapes(target, dim, b, f, h, w):
    teacher = _teacher(target, flow_cells=3)
    grid = token_grid(f, h, w)
    out = teacher.targets(_video(b=b, f=f, h=h, w=w), grid)
    assert teacher.dim == dim
    assert out.shape == (b, *grid, dim) and out.dtype == torch.float32 and torch.isfinite(out).all()


def test_flow_target_is_pooled_flow_in_frame_units(teacher):
    flow_teacher = _teacher("flow", flow_cells=1)
    video = _video(f=3, h=48, w=32)
    flows = flow_teacher.flows(video)  # 1×2×2×48×32, pixels
    target = flow_teacher.targets(video, (2, 3, 2))  # temporal stride 2: latent 1 <- mean of flows 0, 1
    mean = flows.mean(dim=1)[0] / torch.tensor([32.0, 48.0]).view(2, 1, 1)
    expected = torch.nn.functional.adaptive_avg_pool2d(mean, (3, 2)).permute(1, 2, 0)
    torch.testing.assert_close(target[0, 1], expected, rtol=1e-4, atol=1e-6)


def test_latent_frame_mapping():
    assert latent_frame_groups(9, 3) == [[0], [0, 1, 2, 3], [4, 5, 6, 7]]
    assert latent_frame_groups(3, 3) == [[0], [0], [1]]
    with pytest.raises(ValueError, match="causal VAE"):
        latent_frame_groups(8, 3)
    with pytest.raises(ValueError, match="1 \\+ 4·k frames"):
        token_grid(8, 64, 64)


def test_each_latent_frame_sees_only_its_own_flows(teacher):
    """Changing pixel frame j moves flows j-1 and j; only latent frames holding those flows may change."""
    video = _video(f=5)
    last, second = video.clone(), video.clone()
    last[:, :, 4] = -last[:, :, 4]  # flow 3 -> latent frame 1 only
    second[:, :, 1] = -second[:, :, 1]  # flows 0, 1 -> latent frames 0 (flow 0 -> 1) and 1
    out = teacher.targets(torch.cat([video, last, second]), (2, 4, 4))
    changed = (out[1:] - out[:1]).abs().flatten(2).amax(-1)
    assert changed[0, 0] == 0 and changed[0, 1] > 0
    assert changed[1, 0] > 0 and changed[1, 1] > 0


def test_targets_do_not_depend_on_batch_composition(teacher):
    video = _video(b=2, f=3)
    together = teacher.targets(video, (2, 4, 4))
    alone = torch.cat([teacher.targets(video[i:i + 1], (2, 4, 4)) for i in range(2)])
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-5)


def _tiny_vit(folder):
    from transformers import ViTConfig, ViTModel

    config = ViTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                       image_size=32, patch_size=8)
    ViTModel(config).save_pretrained(folder)
    return folder


def test_flow_image_target_with_local_encoders(tmp_path):
    exported = tmp_path / "enc.pt2"
    batch = torch.export.Dim("batch")
    program = torch.export.export(nn.Conv2d(3, 12, 8, stride=8), (torch.zeros(2, 3, 32, 32),),
                                  dynamic_shapes=({0: batch},))
    torch.export.save(program, str(exported))
    video = _video(b=2, f=2, h=64, w=64)  # one flow per clip; latent frames 0 and 1 both hold it
    for path, dim in ((str(exported), 12), (str(_tiny_vit(tmp_path / "vit")), 16)):
        teacher = _teacher("flow_image", encoder=path, encoder_size=32)
        out = teacher.targets(video, (2, 4, 4))
        assert teacher.dim == dim and out.shape == (2, 2, 4, 4, dim) and torch.isfinite(out).all()
        torch.testing.assert_close(out[:, 0], out[:, 1])
    # flow_to_image normalises by the largest flow: per clip, so a clip's target ignores its batch mates
    # (up to a uint8 colour flipping where RAFT's batched and single flows differ by float rounding).
    alone = torch.cat([teacher.targets(video[:1], (2, 4, 4)), teacher.targets(video[1:], (2, 4, 4))])
    torch.testing.assert_close(out, alone, rtol=0, atol=2e-3)
    with pytest.raises(ValueError, match="align.teacher.encoder=PATH"):
        _teacher("flow_image")
    with pytest.raises(FileNotFoundError, match="align.teacher.encoder: .* does not exist"):
        _teacher("flow_image", encoder=str(tmp_path / "missing"))

"""VBench-style dimensions: flicker, dynamic degree, motion smoothness, consistency, imaging quality."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from medsora.metrics.base import VideoScore
from medsora.metrics.consistency import FeatureConsistency, load_clip_encoder, load_dino_encoder, pair_consistency
from medsora.metrics.dynamic_degree import DynamicDegree, is_dynamic, top_magnitude
from medsora.metrics.flow_fields import backward_warp, video_flows
from medsora.metrics.imaging_quality import ImagingQuality
from medsora.metrics.motion_smoothness import MotionSmoothness, interpolate_midframes
from medsora.metrics.temporal_flickering import TemporalFlickering, flicker_score


def global_shift_flow(video: torch.Tensor) -> torch.Tensor:
    """A flow estimator for tests: the integer global translation between consecutive frames found by phase
    correlation, as a constant field. video B×3×F×H×W in [-1, 1] -> B×(F-1)×2×H×W."""
    gray = video.mean(1).double()
    a, b = torch.fft.fft2(gray[:, :-1]), torch.fft.fft2(gray[:, 1:])
    cross = b * a.conj()
    peak = torch.fft.ifft2(cross / (cross.abs() + 1e-12)).real
    h, w = gray.shape[-2:]
    idx = peak.flatten(2).argmax(-1)
    dy, dx = idx // w, idx % w
    dy = torch.where(dy > h // 2, dy - h, dy).float()
    dx = torch.where(dx > w // 2, dx - w, dx).float()
    flow = torch.stack((dx, dy), dim=-1)[..., None, None]
    return flow.expand(*flow.shape[:3], h, w).contiguous()


def _texture(h: int = 64, w: int = 64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(1, 3, h // 4, w // 4, generator=g)
    return (nn.functional.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)[0] * 255)


def _video(offsets, h: int = 64, w: int = 64) -> torch.Tensor:
    """uint8 T×H×W×3: a smooth texture circularly shifted right by offsets[t] pixels in frame t."""
    base = _texture(h, w)
    frames = [torch.roll(base, shifts=int(o), dims=-1) for o in offsets]
    return torch.stack(frames).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def test_flicker_static_is_one_and_alternating_known():
    assert flicker_score(_video([0] * 6)) == 1.0
    alternating = torch.zeros(4, 8, 8, 3, dtype=torch.uint8)
    alternating[1::2] = 51  # |diff| = 51 everywhere -> (255 - 51) / 255 = 0.8
    assert flicker_score(alternating) == pytest.approx(0.8)
    metric = TemporalFlickering()
    metric.update(_video([0] * 4), {}, real=False)
    metric.update(alternating, {}, real=False)
    assert metric.compute()["temporal_flickering"] == pytest.approx(0.9)


def test_phase_correlation_flow_recovers_shift():
    video = _video([0, 3, 6]).permute(3, 0, 1, 2)[None].float() / 127.5 - 1
    flow = global_shift_flow(video)
    assert flow.shape == (1, 2, 2, 64, 64)
    assert torch.all(flow[:, :, 0] == 3) and torch.all(flow[:, :, 1] == 0)


def test_dynamic_degree_static_zero_moving_one():
    metric = DynamicDegree(global_shift_flow)
    metric.update(_video([0] * 16), {"fps": 8.0}, real=False)
    metric.update(_video([0] * 16), {"fps": None}, real=False)  # frame folders: fps unknown -> 8
    assert metric.compute()["dynamic_degree"] == 0.0
    moving = DynamicDegree(global_shift_flow)
    moving.update(_video([3 * t for t in range(16)]), {"fps": 8.0}, real=False)
    assert moving.compute()["dynamic_degree"] == 1.0
    # Half the videos move: the dimension is a share.
    moving.update(_video([0] * 16), {"fps": 8.0}, real=False)
    assert moving.compute()["dynamic_degree"] == 0.5


def test_dynamic_degree_threshold_scales_with_size_and_fps():
    # 64 px frames at 8 fps: threshold 6 * 64/256 = 1.5 px; 16 frames need 4 pairs above it.
    assert is_dynamic(torch.tensor([2.0] * 4 + [0.0] * 11), fps=8, height=64, width=80, frames=16)
    assert not is_dynamic(torch.tensor([2.0] * 3 + [0.0] * 12), fps=8, height=64, width=80, frames=16)
    # At 4 fps the threshold doubles (factor 8/4).
    assert not is_dynamic(torch.tensor([2.0] * 15), fps=4, height=64, width=80, frames=16)
    # A 30 fps video is sampled every 4th frame before the flow.
    seen = []
    metric = DynamicDegree(lambda v: seen.append(v.shape[2]) or global_shift_flow(v))
    metric.update(_video([0] * 32), {"fps": 30.0}, real=False)
    assert seen == [8]


def test_top_magnitude_is_mean_of_largest_five_percent():
    flows = torch.zeros(1, 2, 10, 10)
    flows[0, 0, 0, :5] = 3.0  # 5 of 100 pixels move by 3
    flows[0, 1, 9, 0] = 4.0
    assert top_magnitude(flows).item() == pytest.approx((4 * 3 + 4) / 5)


def test_video_flows_chunks_agree_with_one_pass():
    video = _video([0, 1, 3, 4, 6, 9, 10, 12, 13])
    whole = video_flows(global_shift_flow, video, chunk=64)
    chunked = video_flows(global_shift_flow, video, chunk=3)
    assert whole.shape == (8, 2, 64, 64)
    torch.testing.assert_close(chunked, whole)
    calls = []
    budget = video_flows(lambda v: calls.append(v.shape[2]) or global_shift_flow(v), video, max_pixels=64 * 64 * 3)
    assert calls == [4, 4, 3] and torch.equal(budget, whole)  # 3 frame areas -> windows of 4 frames


def test_backward_warp_shifts_by_the_flow():
    image = _texture(16, 16)[None]
    flow = torch.zeros(1, 2, 16, 16)
    flow[:, 0] = -2.0  # sample 2 px to the left: content moves right by 2
    warped = backward_warp(image, flow)
    torch.testing.assert_close(warped[..., 2:], image[..., :-2])


def test_interpolation_with_exact_flows_recreates_the_midframe():
    video = _video([0, 1, 2])
    forward = torch.zeros(1, 2, 64, 64)
    forward[:, 0] = 2.0
    mid = interpolate_midframes(video[0::2], forward, -forward)
    # Exact except at the border columns the warp cannot see.
    assert (mid[0, :, 1:-1].int() - video[1, :, 1:-1].int()).abs().max() <= 1


def test_motion_smoothness_static_one_smooth_above_jerky():
    def score(offsets):
        metric = MotionSmoothness(global_shift_flow)
        metric.update(_video(offsets), {}, real=False)
        return metric.compute()["motion_smoothness"]

    assert score([0] * 9) == 1.0
    smooth = score([t for t in range(9)])
    jerky = score([t + (5 if t % 2 else 0) for t in range(9)])  # odd frames jump off the path
    assert smooth > 0.99 and jerky < smooth - 0.02


def test_consistency_formula_matches_vbench_loop():
    feats = torch.randn(6, 10)
    expected, count = 0.0, 0
    unit = torch.nn.functional.normalize(feats, dim=-1)
    for i in range(1, 6):
        prev = max(0.0, float(unit[i - 1] @ unit[i]))
        first = max(0.0, float(unit[0] @ unit[i]))
        expected += (prev + first) / 2
        count += 1
    result = pair_consistency(feats)
    assert result.count == count and result.total == pytest.approx(expected, abs=1e-6)


@pytest.fixture(scope="module")
def encoder_folders(tmp_path_factory):
    from transformers import CLIPConfig, CLIPModel, ViTConfig, ViTModel

    root = tmp_path_factory.mktemp("encoders")
    torch.manual_seed(0)
    tiny = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, image_size=224,
                patch_size=32)
    ViTModel(ViTConfig(**tiny), add_pooling_layer=False).save_pretrained(root / "dino")
    text = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, vocab_size=64,
                max_position_embeddings=8, bos_token_id=0, eos_token_id=1)
    CLIPModel(CLIPConfig(text_config=text, vision_config=tiny, projection_dim=16)).save_pretrained(root / "clip")
    return root


@pytest.mark.parametrize("kind", ["dino", "clip"])
def test_consistency_with_local_encoders(encoder_folders, kind):
    encoder = (load_dino_encoder if kind == "dino" else load_clip_encoder)(encoder_folders / kind)
    name = "subject_consistency" if kind == "dino" else "background_consistency"
    metric = FeatureConsistency(name, encoder)
    metric.update(_video([0] * 5, h=48, w=72), {}, real=False)
    assert metric.compute()[name] == pytest.approx(1.0, abs=1e-6)
    noise = torch.randint(0, 256, (5, 48, 72, 3), dtype=torch.uint8)
    metric.update(noise, {}, real=False)
    pooled = metric.compute()[name]
    assert pooled < 1.0
    # Pooled over frame pairs: 4 pairs of 1.0 and 4 pairs of the noise video.
    assert pooled == pytest.approx((4 + metric.scores["fake"][1].total) / 8)
    # Preprocessing as VBench: DINO keeps the aspect ratio (short side 224), CLIP crops 224×224.
    assert tuple(encoder.preprocess(noise).shape[-2:]) == ((224, 336) if kind == "dino" else (224, 224))


def test_imaging_quality_resizes_longer_side_and_divides_by_100():
    class Brightness(nn.Module):
        def __init__(self):
            super().__init__()
            self.sizes = []

        def forward(self, x):
            self.sizes.append(tuple(x.shape[-2:]))
            return x.mean() * 100

    scorer = Brightness()
    metric = ImagingQuality(scorer)
    video = torch.full((3, 300, 1024, 3), 51, dtype=torch.uint8)
    metric.update(video, {}, real=False)
    assert scorer.sizes == [(150, 512)] * 3
    assert metric.compute()["imaging_quality"] == pytest.approx(0.2, abs=1e-3)
    assert metric.scores["fake"][0] == VideoScore(pytest.approx(0.2, abs=1e-3), 1)

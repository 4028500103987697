"""Reconstruction metrics: PSNR, SSIM, LPIPS, high-frequency error, and pairing of videos of different size."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity
from torchmetrics.functional.image import structural_similarity_index_measure

from medsora.metrics.base import align_pair, to_uint8_frames
from medsora.metrics.reconstruction import PSNR, SSIM, HighFrequencyError, LPIPSMetric, high_band_mask, load_lpips


def _random_video(t=3, h=32, w=40, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 200, (t, h, w, 3), generator=g, dtype=torch.uint8)


def _run(metric, real, fake):
    metric.update_pair(real, fake)
    return metric.compute()


def test_psnr_known_value_and_identical_cap():
    real = _random_video()
    fake = real + 51  # every value off by 0.2 -> MSE 0.04 -> 10 log10(25) dB
    assert _run(PSNR(), real, fake)["psnr"] == pytest.approx(10 * math.log10(25), abs=1e-4)
    assert _run(PSNR(), real, real)["psnr"] == pytest.approx(100.0)


def test_ssim_constant_images_closed_form():
    # Constant frames have no variance: SSIM = (2ab + C1) / (a^2 + b^2 + C1) with C1 = (0.01)^2.
    a, b = 102, 153
    real = torch.full((2, 24, 24, 3), a, dtype=torch.uint8)
    fake = torch.full((2, 24, 24, 3), b, dtype=torch.uint8)
    a, b, c1 = a / 255, b / 255, 0.01 ** 2
    # float32 round-off in the windowed variances (~1e-7 against C2 = 9e-4) bounds the agreement to ~1e-4.
    assert _run(SSIM(), real, fake)["ssim"] == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), abs=5e-4)
    assert _run(SSIM(), real, real)["ssim"] == pytest.approx(1.0, abs=1e-6)



def test_ssim_map_matches_skimage_away_from_the_borders():
    # torchmetrics averages the whole reflection-padded map, skimage crops 5 px borders; inside they agree.
    g = torch.Generator().manual_seed(0)
    real = torch.nn.functional.interpolate(torch.rand(1, 1, 8, 10, generator=g, dtype=torch.float64), size=(32, 40),
                                           mode="bilinear")
    fake = (real + 0.1 * torch.randn(real.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    _, full = structural_similarity_index_measure(fake, real, data_range=1.0, return_full_image=True)
    _, reference = structural_similarity(real[0, 0].numpy(), fake[0, 0].numpy(), data_range=1.0, full=True,
                                         gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    np.testing.assert_allclose(full[0, 0, 5:-5, 5:-5].numpy(), reference[5:-5, 5:-5], atol=1e-10)


def test_hf_error_ignores_brightness_and_sees_lost_detail():
    real = _random_video(h=32, w=32)
    shifted = real + 20  # a DC change only
    assert _run(HighFrequencyError(), real, shifted)["hf_error"] == pytest.approx(0.0, abs=1e-12)
    # Replace every frame by its mean (all detail lost): the relative error is exactly 1.
    flat = real.float().mean(dim=(1, 2), keepdim=True).expand_as(real).round().to(torch.uint8)
    # The error is (rounded mean - mean), a DC term, minus the source's detail: same high-band energy.
    result = _run(HighFrequencyError(), real, flat)
    assert result["hf_error_rel"] == pytest.approx(1.0, abs=1e-6)
    assert result["hf_error"] > 0


def test_hf_error_is_the_high_band_share_of_the_mse():
    real = torch.zeros(1, 16, 16, 3, dtype=torch.uint8)
    checker = (torch.arange(16)[:, None] + torch.arange(16)[None, :]) % 2  # Nyquist pattern
    fake = (checker * 51).to(torch.uint8)[None, :, :, None].expand(1, 16, 16, 3).contiguous()
    mse = float(((fake.float() - real.float()) / 255).square().mean())
    # Only the DC and the Nyquist bin carry energy; the DC bin is low band, the Nyquist one high.
    expected = mse - (0.1) ** 2  # the error's mean is 0.1, whose square is the DC share of the MSE
    assert _run(HighFrequencyError(), real, fake)["hf_error"] == pytest.approx(expected, rel=1e-6)


def test_high_band_mask_is_radial_above_quarter_cycle():
    mask = high_band_mask(8, 8)
    assert not mask[0, 0] and not mask[0, 2] and mask[0, 3] and mask[4, 4] and mask[2, 2]  # sqrt(.25²+.25²) > .25
    assert not mask[1, 1]


def _smooth_video(t: int, h: int, w: int) -> torch.Tensor:
    """uint8 T×H×W×3 with smooth content (resampling it changes values little)."""
    y, x = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    frames = [torch.stack([torch.sin(6 * x + k), torch.cos(5 * y - k), torch.sin(4 * (x + y) + 0.5 * k)], -1)
              for k in range(t)]
    return ((torch.stack(frames) + 1) * 127.5).round().to(torch.uint8)


def test_align_pair_compares_the_clip_frames_and_the_pipeline_crop():
    """A clip the data pipeline made (frames 2, 5, 8, 11; short side resized, centre crop) is paired with exactly those
    source frames and that crop: near-identical, where the old pairing (leading frames, crop stretched) was not."""
    from medsora.data.transforms import preprocess_frames
    from medsora.metrics.base import PairingError

    source = _smooth_video(t=14, h=48, w=64)
    indices = [2, 5, 8, 11]
    clip = preprocess_frames(source[indices].numpy(), size=32)  # 3×4×32×32 in [-1, 1]
    recon = to_uint8_frames(clip[None])[0]
    with pytest.raises(PairingError, match="--pair-stride"):
        align_pair(source, recon)
    r, f, resampled = align_pair(source, recon, start=2, stride=3)
    assert resampled and r.shape == f.shape == (4, 3, 32, 32)
    assert (r - f).abs().max() < 2 / 255
    metric = PSNR()
    metric.update_pair(source, recon, start=2, stride=3)
    metric.update_pair(source, source)
    result = metric.compute()
    assert result["psnr_pairs"] == 2 and result["psnr_resampled_pairs"] == 1 and result["psnr"] > 50
    # the misaligned comparison the old pairing made: leading frames, the crop stretched to the source's size
    stretched = torch.nn.functional.interpolate(f, size=(48, 64), mode="bilinear", antialias=True)
    old = PSNR().frame_scores(source[:4].permute(0, 3, 1, 2).float() / 255, stretched).mean()
    assert old < 30
    with pytest.raises(PairingError, match="do not fit"):
        align_pair(source, recon, start=20, stride=3)


def test_to_uint8_frames_round_trips_model_range():
    video = torch.linspace(-1, 1, 2 * 3 * 2 * 4 * 5).view(2, 3, 2, 4, 5)
    frames = to_uint8_frames(video)
    assert len(frames) == 2 and frames[0].shape == (2, 4, 5, 3) and frames[0].dtype == torch.uint8
    torch.testing.assert_close(frames[1].permute(3, 0, 1, 2).float() / 127.5 - 1, video[1], atol=1 / 255, rtol=0)


def test_lpips_loads_a_local_alexnet_file(tmp_path):
    import torchvision

    torch.manual_seed(0)
    path = tmp_path / "alexnet-owt-7be5be79.pth"
    alexnet = torchvision.models.alexnet(weights=None)
    torch.save(alexnet.state_dict(), path)
    model = load_lpips(path)
    torch.testing.assert_close(getattr(model.net.slice2, "3").weight, alexnet.features[3].weight)
    real, other = _random_video(t=2, seed=3), _random_video(t=2, seed=4)
    assert _run(LPIPSMetric(model), real, real)["lpips"] == pytest.approx(0.0, abs=1e-6)
    assert _run(LPIPSMetric(model), real, other)["lpips"] > 0
    bad = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="not a torchvision AlexNet"):
        load_lpips(bad)

"""VAE losses: focal frequency weighting, KL, temporal difference, LPIPS from a local file."""
from __future__ import annotations

import inspect
import math
import warnings
from pathlib import Path

import pytest
import torch
import torchvision
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
from torchmetrics.functional.image import lpips as tm_lpips

from medsora.vae.losses import VAELoss, focal_frequency_loss, kl_divergence, temporal_difference_loss
from medsora.vae.lpips import LPIPS, load_lpips


def _cosine_video(amp: float, fy: int, fx: int, size: int = 16) -> torch.Tensor:
    y, x = torch.meshgrid(torch.arange(size, dtype=torch.float64), torch.arange(size, dtype=torch.float64),
                          indexing="ij")
    return (amp * torch.cos(2 * math.pi * (fy * y + fx * x) / size)).expand(1, 1, 2, size, size)


def test_focal_frequency_loss_down_weights_easy_frequencies():
    target = torch.zeros(1, 1, 2, 16, 16, dtype=torch.float64)
    assert focal_frequency_loss(target, target) == 0
    # one error frequency: weight 1 on its bins, so FFL = MSE (orthonormal FFT, Parseval)
    one = _cosine_video(1.0, 1, 2)
    torch.testing.assert_close(focal_frequency_loss(one, target), one.square().mean())
    # two: the weaker one (amplitude 0.5) is weighted by 0.5/1 (alpha = 1): (1/2 + 0.5 · 0.5²/2) vs MSE (1 + 0.25)/2
    two = one + _cosine_video(0.5, 3, 1)
    torch.testing.assert_close(focal_frequency_loss(two, target), torch.tensor(0.5625, dtype=torch.float64))
    torch.testing.assert_close(two.square().mean(), torch.tensor(0.625, dtype=torch.float64))


def test_focal_weights_are_not_differentiated():
    target = torch.zeros(1, 1, 1, 8, 8)
    recon = (0.3 * torch.randn(1, 1, 1, 8, 8)).requires_grad_()
    focal_frequency_loss(recon, target).backward()
    spec = torch.fft.fft2(recon.detach(), norm="ortho")
    weight = spec.abs() / spec.abs().max()  # the focal weight, held constant
    expected = 2 * torch.fft.ifft2(weight * spec, norm="ortho").real / recon.numel()
    torch.testing.assert_close(recon.grad, expected, rtol=1e-4, atol=1e-7)


def test_kl_matches_the_closed_form():
    mean, logvar = torch.randn(2, 4, 3, 2, 2), torch.randn(2, 4, 3, 2, 2).clamp(-3, 3)
    posterior = DiagonalGaussianDistribution(torch.cat([mean, logvar], dim=1))
    expected = 0.5 * (mean**2 + logvar.exp() - 1 - logvar).mean()
    torch.testing.assert_close(kl_divergence(posterior), expected)
    standard = DiagonalGaussianDistribution(torch.zeros(1, 8, 1, 2, 2))
    assert kl_divergence(standard) == 0


def test_temporal_loss_ignores_static_offsets_and_sees_wrong_motion():
    target = torch.randn(1, 3, 5, 8, 8)
    assert temporal_difference_loss(target + 0.3, target) < 1e-6
    frozen = target[:, :, :1].expand_as(target)
    assert temporal_difference_loss(frozen, target) > 0.1
    assert temporal_difference_loss(target[:, :, :1], target[:, :, :1]) == 0


@pytest.fixture(scope="module")
def alexnet_file(tmp_path_factory) -> Path:
    """A torchvision-format AlexNet file with random weights (features only: the part LPIPS uses)."""
    torch.manual_seed(5)
    path = tmp_path_factory.mktemp("lpips") / "alexnet.pth"
    torch.save({f"features.{k}": v for k, v in torchvision.models.alexnet().features.state_dict().items()}, path)
    return path


def test_lpips_loads_the_backbone_from_the_file_and_the_heads_from_torchmetrics(alexnet_file):
    lp = LPIPS(alexnet_file)
    state = torch.load(alexnet_file, weights_only=True)
    assert torch.equal(lp.net.net.slice1.get_submodule("0").weight, state["features.0.weight"])
    assert torch.equal(lp.net.net.slice5.get_submodule("10").weight, state["features.10.weight"])
    heads = torch.load(Path(inspect.getfile(tm_lpips)).parent / "lpips_models" / "alex.pth", map_location="cpu",
                       weights_only=True)
    assert torch.equal(lp.net.lin0.model[1].weight, heads["lin0.model.1.weight"])
    assert not any(p.requires_grad for p in lp.parameters())


def test_lpips_is_zero_for_identical_videos_and_differentiable(alexnet_file, video):
    lp = LPIPS(alexnet_file)
    x = video(frames=3, size=32)
    assert lp(x, x).item() == pytest.approx(0.0, abs=1e-7)
    recon = (x + 0.2 * torch.randn_like(x)).clamp(-1, 1).requires_grad_()
    value = lp(recon, x)
    value.backward()
    assert value > 0 and recon.grad.abs().sum() > 0


def test_lpips_missing_or_bad_weights(alexnet_file, tmp_path):
    missing = tmp_path / "alexnet-missing.pth"
    with pytest.raises(FileNotFoundError, match=r"alexnet-missing.pth \(vae.lpips_weights"):
        load_lpips(str(missing), "required")
    with pytest.warns(UserWarning, match=r"alexnet-missing.pth.*LPIPS loss term is off"):
        assert load_lpips(str(missing), "optional") is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_lpips(str(missing), "off") is None
    bad = tmp_path / "bad.pth"
    torch.save({"weight": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match=r"bad.pth \(vae.lpips_weights\) is not a torchvision AlexNet"):
        load_lpips(str(bad), "required")
    assert isinstance(load_lpips(str(alexnet_file), "required"), LPIPS)


def test_vae_loss_returns_named_weighted_terms(alexnet_file, video):
    x = video(frames=5, size=32)
    recon = (x + 0.1 * torch.randn_like(x)).clamp(-1, 1)
    posterior = DiagonalGaussianDistribution(torch.randn(1, 8, 2, 4, 4))
    loss = VAELoss(kl_weight=0.01, ffl_weight=0.1, lpips_weight=0.2, temporal_weight=0.5, lpips=LPIPS(alexnet_file))
    terms = loss(recon, x, posterior)
    assert set(terms) == {"l1", "kl", "ffl", "lpips", "temporal", "loss"}
    expected = terms["l1"] + 0.01 * terms["kl"] + 0.1 * terms["ffl"] + 0.2 * terms["lpips"] + 0.5 * terms["temporal"]
    torch.testing.assert_close(terms["loss"], expected)
    assert "lpips" not in loss.state_dict() and not list(loss.parameters())  # kept out of checkpoints
    plain = VAELoss(kl_weight=0.01, ffl_weight=0.0, lpips_weight=0.2, temporal_weight=0.0, lpips=None)
    assert set(plain(recon, x, posterior)) == {"l1", "kl", "loss"}

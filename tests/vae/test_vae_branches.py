"""The frequency tools and the compensation branches: Haar/FFT bands, zero init, causality."""
from __future__ import annotations

import math

import pytest
import torch

from medsora.vae.frequency import CausalBranch3D, FrequencyBranch2D
from medsora.vae.spectrum import haar_dwt, haar_idwt, high_frequency_error, high_pass


def _cosine(h: int, w: int, fy: float, fx: float) -> torch.Tensor:
    """``h×w`` cosine of fy, fx cycles per sample (exactly periodic on the grid)."""
    y, x = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    return torch.cos(2 * math.pi * (fy * y + fx * x))


def test_haar_is_orthonormal_and_invertible():
    x = torch.randn(2, 3, 8, 6, dtype=torch.float64)
    ll, high = haar_dwt(x)
    assert ll.shape == (2, 3, 4, 3) and high.shape == (2, 9, 4, 3)
    torch.testing.assert_close(haar_idwt(ll, high), x)
    torch.testing.assert_close(ll.square().sum() + high.square().sum(), x.square().sum())  # energy kept
    torch.testing.assert_close(haar_dwt(torch.ones(1, 1, 4, 4))[1], torch.zeros(1, 3, 2, 2))  # constant: no detail


def test_high_pass_keeps_the_upper_half_of_the_spectrum():
    low, high = _cosine(16, 16, 1 / 16, 2 / 16), _cosine(16, 16, 0, 6 / 16)
    torch.testing.assert_close(high_pass(low), torch.zeros_like(low), rtol=0, atol=1e-12)
    torch.testing.assert_close(high_pass(high), high, rtol=0, atol=1e-12)
    torch.testing.assert_close(high_pass(low + high), high, rtol=0, atol=1e-12)


def test_high_frequency_error_matches_the_metric_definition():
    """Error energy above 0.25 cycles/pixel (radial), per value, in [0, 1] units (medsora.metrics' hf_error)."""
    target = torch.zeros(1, 3, 2, 16, 16)
    low_err = 0.5 * _cosine(16, 16, 1 / 16, 0).float().expand(1, 3, 2, 16, 16)
    high_err = 0.5 * _cosine(16, 16, 0, 0.5).float().expand(1, 3, 2, 16, 16)  # Nyquist: ±0.5, i.e. ±0.25 in [0, 1]
    assert high_frequency_error(target + low_err, target).item() < 1e-9
    torch.testing.assert_close(high_frequency_error(target + high_err, target), torch.tensor([0.25**2]))
    torch.testing.assert_close(high_frequency_error(target + high_err + low_err, target), torch.tensor([0.25**2]))


@pytest.mark.parametrize("kind", ["haar", "fft"])
def test_2d_branch_starts_as_identity_and_adds_only_high_frequencies(kind):
    branch = FrequencyBranch2D(channels=4, hidden=8, kind=kind)
    h = torch.randn(2, 4, 3, 8, 10)
    assert torch.equal(branch(h), h)  # zero-initialised
    torch.nn.init.normal_(branch.conv2.weight, std=0.3)
    with torch.no_grad():
        delta = branch(h) - h
    assert delta.abs().max() > 1e-3
    if kind == "fft":
        torch.testing.assert_close(high_pass(delta), delta, rtol=0, atol=1e-5)
    else:  # pure Haar detail: every 2×2 block of the residual sums to zero
        torch.testing.assert_close(haar_dwt(delta.transpose(1, 2).flatten(0, 1))[0], torch.zeros(6, 4, 4, 5),
                                   rtol=0, atol=1e-5)


def test_2d_branch_works_per_frame_on_odd_sizes():
    branch = FrequencyBranch2D(channels=2, hidden=4, kind="haar")
    torch.nn.init.normal_(branch.conv2.weight, std=0.3)
    h = torch.randn(1, 2, 4, 5, 7)
    with torch.no_grad():
        full = branch(h)
        one = branch(h[:, :, 2:3])
    assert full.shape == h.shape
    torch.testing.assert_close(one, full[:, :, 2:3])  # independent of the other frames / the clip length


def test_3d_branch_is_zero_initialised_causal_and_chunkable():
    branch = CausalBranch3D(channels=4, groups=2, dropout=0.0).eval()
    h = torch.randn(1, 4, 6, 5, 5)
    assert torch.equal(branch(h)[0], h)
    torch.nn.init.normal_(branch.conv.conv.weight, std=0.3)
    with torch.no_grad():
        out = branch(h)[0]
        h2 = h.clone()
        h2[:, :, 4] += torch.randn(1, 4, 5, 5)
        out2 = branch(h2)[0]
        first, cache = branch(h[:, :, :3])
        second, _ = branch(h[:, :, 3:], cache)
    torch.testing.assert_close(out2[:, :, :4], out[:, :, :4], rtol=0, atol=0)
    assert (out2[:, :, 4:] - out[:, :, 4:]).abs().amax(dim=(0, 1, 3, 4)).min() > 1e-4
    torch.testing.assert_close(torch.cat([first, second], 2), out, rtol=0, atol=1e-6)
    assert branch(torch.randn(1, 4, 3, 5, 5))[0].shape == (1, 4, 3, 5, 5)  # batch size 1 is fine


def test_unknown_frequency_kind_is_refused():
    with pytest.raises(ValueError, match="vae.freq_kind"):
        FrequencyBranch2D(4, 8, kind="wavelet")

"""Chunked selective scan (S6) against the sequential recurrence: outputs, states, gradients, pieces, stability."""
from __future__ import annotations

import functools

import pytest
import torch

import medsora.ssm.chunked_selective_scan as chunked
from medsora.ssm import selective_scan, selective_scan_ref

GRAD_INPUTS = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias", "initial_state")


def make_inputs(l, b=2, d=6, n=4, groups=None, dtype=torch.float32, init=True, seed=0):
    gen = torch.Generator().manual_seed(seed)

    def r(*shape, scale=1.0):
        return (torch.randn(*shape, generator=gen, dtype=torch.float64) * scale).to(dtype).requires_grad_()

    bc = (b, n, l) if groups is None else (b, groups, n, l)
    A = -(torch.rand(d, n, generator=gen, dtype=torch.float64) * 3 + 0.1)
    return dict(u=r(b, d, l), delta=r(b, d, l), A=A.to(dtype).requires_grad_(), B=r(*bc), C=r(*bc), D=r(d),
                z=r(b, d, l), delta_bias=r(d, scale=0.5), initial_state=r(b, d, n) if init else None)


def run(fn, inp, loss_seed=1):
    y, s = fn(inp["u"], inp["delta"], inp["A"], inp["B"], inp["C"], D=inp["D"], z=inp["z"],
              delta_bias=inp["delta_bias"], delta_softplus=True, return_last_state=True,
              initial_state=inp["initial_state"])
    gen = torch.Generator().manual_seed(loss_seed)
    loss = (y.float() * torch.randn(y.shape, generator=gen)).sum() + (s.float() * torch.randn(s.shape, generator=gen)).sum()
    names = [k for k in GRAD_INPUTS if inp[k] is not None]
    return y.detach(), s.detach(), dict(zip(names, torch.autograd.grad(loss, [inp[k] for k in names])))


@functools.lru_cache(maxsize=None)
def reference(l, init, groups):
    return run(selective_scan_ref, make_inputs(l, init=init, groups=groups))


def assert_close(fast, ref, rtol, atol):
    (y, s, g), (yr, sr, gr) = fast, ref
    torch.testing.assert_close(y.double(), yr.double(), rtol=rtol, atol=atol)
    torch.testing.assert_close(s.double(), sr.double(), rtol=rtol, atol=atol)
    for k in gr:
        scale = gr[k].abs().max().clamp_min(1.0)
        torch.testing.assert_close(g[k].double() / scale, gr[k].double() / scale, rtol=rtol, atol=atol, msg=k)


@pytest.mark.parametrize("groups", [None, 2])
@pytest.mark.parametrize("init", [False, True])
@pytest.mark.parametrize("l", [1, 7, 64, 257, 1024])
def test_fp32_parity_with_reference(l, init, groups):
    assert_close(run(selective_scan, make_inputs(l, init=init, groups=groups)), reference(l, init, groups),
                 rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("step_elems", [1, 1 << 14])
@pytest.mark.parametrize("groups", [None, 2])
def test_multi_block_parity_for_both_step_schemes(monkeypatch, step_elems, groups):
    """Blocks of 16 steps; one op per step (step_elems=1) or sub-chunks scanned together."""
    monkeypatch.setattr(chunked, "_BLOCK_ELEMS", 64)
    monkeypatch.setattr(chunked, "_STEP_ELEMS", step_elems)
    assert chunked._plan(257, 48)[1] == (1 if step_elems == 1 else 4)
    assert_close(run(selective_scan, make_inputs(257, groups=groups)), reference(257, True, groups),
                 rtol=1e-4, atol=1e-4)


def test_bf16_inputs_parity():
    """bf16 inputs (fp32 accumulation inside): outputs rounded to bf16, so ~1e-2 relative."""
    inp = make_inputs(257, dtype=torch.bfloat16)
    ref_inp = {k: (v.detach().double().requires_grad_() if v is not None else None) for k, v in inp.items()}
    fast, ref = run(selective_scan, inp), run(selective_scan_ref, ref_inp)
    assert fast[0].dtype == torch.bfloat16
    assert_close(fast, ref, rtol=2e-2, atol=3e-2)


def test_two_halves_with_carried_state_equal_the_whole():
    inp = make_inputs(300)
    u, delta, z = inp["u"], inp["delta"], inp["z"]
    kw = dict(D=inp["D"], delta_bias=inp["delta_bias"], delta_softplus=True, return_last_state=True)
    y, s = selective_scan(u, delta, inp["A"], inp["B"], inp["C"], z=z, initial_state=inp["initial_state"], **kw)
    cut = 123
    y1, s1 = selective_scan(u[..., :cut], delta[..., :cut], inp["A"], inp["B"][..., :cut], inp["C"][..., :cut],
                            z=z[..., :cut], initial_state=inp["initial_state"], **kw)
    y2, s2 = selective_scan(u[..., cut:], delta[..., cut:], inp["A"], inp["B"][..., cut:], inp["C"][..., cut:],
                            z=z[..., cut:], initial_state=s1, **kw)
    torch.testing.assert_close(torch.cat([y1, y2], -1), y, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(s2, s, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("step_elems", [1, 1 << 14])
def test_gradcheck_float64(monkeypatch, step_elems):
    monkeypatch.setattr(chunked, "_STEP_ELEMS", step_elems)  # one op per step, or sub-chunks together
    inp = make_inputs(9, b=1, d=2, n=2, dtype=torch.float64)

    def f(*tensors):
        kw = dict(zip(GRAD_INPUTS, tensors))
        return selective_scan(kw["u"], kw["delta"], kw["A"], kw["B"], kw["C"], D=kw["D"], z=kw["z"],
                              delta_bias=kw["delta_bias"], delta_softplus=True, return_last_state=True,
                              initial_state=kw["initial_state"])

    assert torch.autograd.gradcheck(f, [inp[k] for k in GRAD_INPUTS], eps=1e-6, atol=1e-6)


def test_long_sequence_with_strong_decay_is_finite_and_exact():
    """L = 16384 with Δ·A down to about -60 per step: no overflow, no NaN, same as the recurrence."""
    l = 16384
    gen = torch.Generator().manual_seed(0)
    u = torch.randn(1, 2, l, generator=gen).requires_grad_()
    delta = (torch.rand(1, 2, l, generator=gen) * 4).requires_grad_()
    A = torch.tensor([[-15.0, -1.0], [-0.5, -8.0]], requires_grad=True)
    B, C = torch.randn(1, 2, l, generator=gen), torch.randn(1, 2, l, generator=gen)
    y, s = selective_scan(u, delta, A, B, C, return_last_state=True)
    (y.sum() + s.sum()).backward()
    assert torch.isfinite(y).all() and torch.isfinite(s).all()
    assert all(torch.isfinite(t.grad).all() for t in (u, delta, A))
    with torch.no_grad():
        yr, sr = selective_scan_ref(u, delta, A, B, C, return_last_state=True)
    torch.testing.assert_close(y, yr, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(s, sr, rtol=1e-4, atol=1e-4)


def test_bad_shapes_are_reported():
    inp = make_inputs(8)
    with pytest.raises(ValueError, match="selective_scan A: expected d×n"):
        selective_scan(inp["u"], inp["delta"], inp["A"][:3], inp["B"], inp["C"])
    with pytest.raises(ValueError, match="selective_scan B"):
        selective_scan(inp["u"], inp["delta"], inp["A"], inp["B"][..., :4], inp["C"])

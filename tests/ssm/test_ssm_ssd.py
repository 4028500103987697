"""Chunked SSD (both cores) against the sequential recurrence: outputs, states, gradients, pieces, stability."""
from __future__ import annotations

import functools

import pytest
import torch

import medsora.ssm.chunked_ssd as ssd_module
import medsora.ssm.ssd_factored as factored
from medsora.ssm import ssd, ssd_ref

GRAD_INPUTS = ("x", "dt", "A", "B", "C", "D", "z", "dt_bias", "initial_states")


def make_inputs(l, b=2, h=4, p=4, g=2, n=4, dtype=torch.float32, init=True, dt_scale=1.0, seed=0):
    gen = torch.Generator().manual_seed(seed)

    def r(*shape, scale=1.0):
        return (torch.randn(*shape, generator=gen, dtype=torch.float64) * scale).to(dtype).requires_grad_()

    return dict(
        x=r(b, l, h, p), dt=r(b, l, h, scale=dt_scale), A=(-torch.rand(h, generator=gen, dtype=torch.float64) * 2 - 0.1)
        .to(dtype).requires_grad_(), B=r(b, l, g, n), C=r(b, l, g, n), D=r(h), z=r(b, l, h, p), dt_bias=r(h, scale=0.5),
        initial_states=r(b, h, p, n) if init else None)


def run(fn, inp, chunk, loss_seed=1):
    """Outputs, final state and the gradients of a random projection of both."""
    y, s = fn(inp["x"], inp["dt"], inp["A"], inp["B"], inp["C"], chunk, D=inp["D"], z=inp["z"],
              dt_bias=inp["dt_bias"], dt_softplus=True, initial_states=inp["initial_states"], return_final_states=True)
    gen = torch.Generator().manual_seed(loss_seed)
    wy, ws = torch.randn(y.shape, generator=gen), torch.randn(s.shape, generator=gen)
    loss = (y.float() * wy).sum() + (s.float() * ws).sum()
    names = [k for k in GRAD_INPUTS if inp[k] is not None]
    grads = torch.autograd.grad(loss, [inp[k] for k in names])
    return y.detach(), s.detach(), dict(zip(names, grads))


@functools.lru_cache(maxsize=None)
def reference(l, init):
    return run(ssd_ref, make_inputs(l, init=init), None)


def assert_close(fast, ref, rtol, atol):
    (y, s, g), (yr, sr, gr) = fast, ref
    torch.testing.assert_close(y.double(), yr.double(), rtol=rtol, atol=atol)
    torch.testing.assert_close(s.double(), sr.double(), rtol=rtol, atol=atol)
    for k in gr:
        scale = gr[k].abs().max().clamp_min(1.0)  # gradients of many summed terms: relative to their size
        torch.testing.assert_close(g[k].double() / scale, gr[k].double() / scale, rtol=rtol, atol=atol, msg=k)


@pytest.mark.parametrize("init", [False, True])
@pytest.mark.parametrize("chunk", [16, 64, 256])
@pytest.mark.parametrize("l", [1, 7, 64, 257, 1024])
def test_fp32_parity_with_reference(l, chunk, init):
    assert_close(run(ssd, make_inputs(l, init=init), chunk), reference(l, init), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("l", [7, 257])
def test_per_head_core_parity(monkeypatch, l):
    monkeypatch.setattr(ssd_module, "SHORT_MAX_LEN", 0)  # l = 7 would take the one-chunk path
    """Force the robust per-head core (used when a chunk's decay range is too wide to factor)."""
    monkeypatch.setattr(ssd_module, "factor_range_limit", lambda dA: -1.0)
    calls = []
    monkeypatch.setattr(ssd_module.SSDPerHeadCore, "apply", _spy(ssd_module.SSDPerHeadCore.apply, calls))
    assert_close(run(ssd, make_inputs(l), 64), reference(l, True), rtol=1e-4, atol=1e-4)
    assert calls


@pytest.mark.parametrize("init", [False, True])
@pytest.mark.parametrize("l", [5, 17, 48])
def test_one_chunk_path_equals_the_chunked_core(monkeypatch, l, init):
    """Sequences of <= SHORT_MAX_LEN steps skip the chunk state: same outputs, final states and gradients."""
    calls = []
    monkeypatch.setattr(ssd_module, "ssd_short", _spy(ssd_module.ssd_short, calls))
    short = run(ssd, make_inputs(l, init=init), 64)
    assert len(calls) == 1 and calls[0][-1] is True  # asked for the final state
    monkeypatch.setattr(ssd_module, "SHORT_MAX_LEN", 0)
    chunked = run(ssd, make_inputs(l, init=init), 64)
    assert len(calls) == 1
    assert_close(short, chunked, rtol=1e-5, atol=1e-5)
    assert_close(short, run(ssd_ref, make_inputs(l, init=init), None), rtol=1e-4, atol=1e-4)


def test_one_chunk_path_only_below_its_length_and_the_chunk(monkeypatch):
    calls = []
    monkeypatch.setattr(ssd_module, "ssd_short", _spy(ssd_module.ssd_short, calls))
    run(ssd, make_inputs(ssd_module.SHORT_MAX_LEN + 1, init=False), 64)
    run(ssd, make_inputs(20, init=False), 16)  # longer than the chunk: chunked
    assert not calls
    inp = make_inputs(9, init=False)
    y = ssd(inp["x"], inp["dt"], inp["A"], inp["B"], inp["C"], 64, dt_softplus=True)  # no final state asked
    assert y.shape == inp["x"].shape and len(calls) == 1 and calls[0][-1] is False


def test_one_chunk_path_is_finite_for_strong_decay():
    inp = make_inputs(40, init=False, dt_scale=30.0)
    y, s, grads = run(ssd, inp, 64)
    assert torch.isfinite(y).all() and torch.isfinite(s).all()
    assert all(torch.isfinite(g).all() for g in grads.values())


def test_wide_decay_range_halves_the_chunk_then_falls_back(monkeypatch):
    inp = make_inputs(256, dt_scale=1.0)
    calls = []
    monkeypatch.setattr(ssd_module.SSDFactoredCore, "apply", _spy(ssd_module.SSDFactoredCore.apply, calls))
    dA = torch.nn.functional.softplus(inp["dt"] + inp["dt_bias"]) * inp["A"]
    wide_at_64 = factored.chunk_decay_range(dA.detach(), 64)
    monkeypatch.setattr(ssd_module, "factor_range_limit", lambda dA: wide_at_64 - 1e-3)
    assert_close(run(ssd, inp, 64), reference(256, True), rtol=1e-4, atol=1e-4)
    assert calls and calls[0][6] < 64  # ran with a smaller chunk (args: x, dt, dA, B, C, S0, Q, D, y_given, keep)


@pytest.mark.parametrize("monotone", [True, False])
def test_factored_core_at_the_edge_of_its_range(monkeypatch, monotone):
    """Decay ranges just under the limit (e^±60 factors when the decay never grows, e^±30 otherwise)."""
    calls = []
    monkeypatch.setattr(ssd_module.SSDFactoredCore, "apply", _spy(ssd_module.SSDFactoredCore.apply, calls))
    l, Q = 192, 64
    gen = torch.Generator().manual_seed(3)
    limit = factored.MONOTONE_FACTOR_RANGE_LIMIT if monotone else factored.FACTOR_RANGE_LIMIT
    step = 0.95 * limit / Q
    dt = (torch.rand(2, l, 2, generator=gen, dtype=torch.float64) * 0.2 + 0.9) * step
    if not monotone:
        dt[:, ::7] *= -0.5  # a few growing steps; dt_softplus=False lets dt be negative
    inp = dict(x=torch.randn(2, l, 2, 3, generator=gen, dtype=torch.float64), dt=dt,
               A=torch.tensor([-1.0, -0.5], dtype=torch.float64), B=torch.randn(2, l, 1, 4, generator=gen,
                                                                          dtype=torch.float64),
               C=torch.randn(2, l, 1, 4, generator=gen, dtype=torch.float64))
    inp = {k: v.float().requires_grad_() for k, v in inp.items()}
    ref_inp = {k: v.detach().double().requires_grad_() for k, v in inp.items()}

    def go(fn, t):
        y, s = fn(t["x"], t["dt"], t["A"], t["B"], t["C"], Q, return_final_states=True)
        g = torch.autograd.grad((y * y.detach().sign()).sum() + s.sum(), list(t.values()))
        return y, s, g

    (y, s, g), (yr, sr, gr) = go(ssd, inp), go(ssd_ref, ref_inp)
    assert calls and calls[0][6] == Q  # (x, dt, dA, B, C, S0, Q, keep_states)
    torch.testing.assert_close(y.double(), yr, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(s.double(), sr, rtol=1e-4, atol=1e-4)
    for a, b in zip(g, gr):
        scale = b.abs().max().clamp_min(1.0)
        torch.testing.assert_close(a.double() / scale, b / scale, rtol=1e-4, atol=1e-4)


def test_multi_segment_parity(monkeypatch):
    monkeypatch.setattr(factored, "_SEGMENT_ELEMS", 300)  # a few chunks per segment
    assert_close(run(ssd, make_inputs(257, init=True), 16), reference(257, True), rtol=1e-4, atol=1e-4)


def test_bf16_inputs_parity():
    """bf16 inputs (fp32 accumulation inside): outputs rounded to bf16, so ~1e-2 relative."""
    inp = make_inputs(257, dtype=torch.bfloat16)
    ref_inp = {k: (v.detach().double().requires_grad_() if v is not None else None) for k, v in inp.items()}
    fast, ref = run(ssd, inp, 64), run(ssd_ref, ref_inp, None)
    assert fast[0].dtype == torch.bfloat16
    assert_close(fast, ref, rtol=2e-2, atol=3e-2)


def test_two_halves_with_carried_state_equal_the_whole():
    inp = make_inputs(300)
    args = [inp[k] for k in ("x", "dt", "A", "B", "C")]
    kw = dict(D=inp["D"], z=inp["z"], dt_bias=inp["dt_bias"], dt_softplus=True, return_final_states=True)
    y, s = ssd(*args, 64, initial_states=inp["initial_states"], **kw)
    first = [a[:, :123] if a.dim() > 1 else a for a in args]
    second = [a[:, 123:] if a.dim() > 1 else a for a in args]
    kw1 = dict(kw, z=inp["z"][:, :123])
    kw2 = dict(kw, z=inp["z"][:, 123:])
    y1, s1 = ssd(*first, 64, initial_states=inp["initial_states"], **kw1)
    y2, s2 = ssd(*second, 64, initial_states=s1, **kw2)
    torch.testing.assert_close(torch.cat([y1, y2], 1), y, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(s2, s, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("force_per_head", [False, True])
def test_gradcheck_float64(monkeypatch, force_per_head):
    calls = []
    if force_per_head:
        monkeypatch.setattr(ssd_module, "factor_range_limit", lambda dA: -1.0)
    core = ssd_module.SSDPerHeadCore if force_per_head else ssd_module.SSDFactoredCore
    monkeypatch.setattr(core, "apply", _spy(core.apply, calls))
    inp = make_inputs(5, b=1, h=2, p=2, g=1, n=2, dtype=torch.float64)
    names = [k for k in GRAD_INPUTS]

    def f(*tensors):
        kw = dict(zip(names, tensors))
        return ssd(kw["x"], kw["dt"], kw["A"], kw["B"], kw["C"], 2, D=kw["D"], z=kw["z"], dt_bias=kw["dt_bias"],
                   dt_softplus=True, initial_states=kw["initial_states"], return_final_states=True)

    assert torch.autograd.gradcheck(f, [inp[k] for k in names], eps=1e-6, atol=1e-6)
    assert calls  # the intended core ran


def test_long_sequence_with_strong_decay_is_finite_and_exact():
    """L = 16384 with A·dt down to about -40 per step: no overflow, no NaN, same as the recurrence."""
    l = 16384
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, l, 1, 2, generator=gen).requires_grad_()
    dt = (torch.rand(1, l, 1, generator=gen) * 4).requires_grad_()
    A = torch.tensor([-10.0], requires_grad=True)
    B, C = torch.randn(1, l, 1, 2, generator=gen), torch.randn(1, l, 1, 2, generator=gen)
    y, s = ssd(x, dt, A, B, C, 256, return_final_states=True)
    (y.sum() + s.sum()).backward()
    assert torch.isfinite(y).all() and torch.isfinite(s).all()
    assert all(torch.isfinite(t.grad).all() for t in (x, dt, A))
    with torch.no_grad():
        yr, sr = ssd_ref(x, dt, A, B, C, return_final_states=True)
    torch.testing.assert_close(y, yr, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(s, sr, rtol=1e-4, atol=1e-4)


def test_bad_shapes_are_reported():
    inp = make_inputs(8)
    with pytest.raises(ValueError, match="ssd dt: expected b×l×h"):
        ssd(inp["x"], inp["dt"][:, :4], inp["A"], inp["B"], inp["C"], 4)
    with pytest.raises(ValueError, match="multiple of the number of B/C groups"):
        ssd(inp["x"], inp["dt"], inp["A"], inp["B"].repeat(1, 1, 3, 1)[:, :, :3], inp["C"].repeat(1, 1, 3, 1)[:, :, :3], 4)


def _spy(fn, calls):
    def wrapped(*args):
        calls.append(args)
        return fn(*args)
    return wrapped


def test_inference_keeps_one_segment_of_states(monkeypatch):
    """Without autograd the factored core stores the chunk states of one segment, not of the sequence,
    and gives the same output and final state as with autograd."""
    monkeypatch.setattr(factored, "_SEGMENT_ELEMS", 300)  # a few chunks per segment
    calls = []
    monkeypatch.setattr(ssd_module.SSDFactoredCore, "apply", _spy(ssd_module.SSDFactoredCore.apply, calls))
    gen = torch.Generator().manual_seed(5)
    b, l, h, p, n = 2, 256, 2, 3, 4
    x, B, C = torch.randn(b, l, h, p, generator=gen), torch.randn(b, l, 1, n, generator=gen), torch.randn(
        b, l, 1, n, generator=gen)
    dt, A = torch.rand(b, l, h, generator=gen) * 0.1, -torch.rand(h, generator=gen)
    S0 = torch.randn(b, h, p, n, generator=gen)
    allocated = []
    real_empty = torch.Tensor.new_empty

    def spy_new_empty(t, *size, **kw):
        out = real_empty(t, *size, **kw)
        allocated.append(tuple(out.shape))
        return out
    monkeypatch.setattr(torch.Tensor, "new_empty", spy_new_empty)
    with torch.no_grad():
        y0, s0 = ssd(x, dt, A, B, C, 16, initial_states=S0, return_final_states=True)
    inference_states = [s for s in allocated if len(s) == 6 and s[-2:] == (p, n)]
    allocated.clear()
    x.requires_grad_(True)
    y1, s1 = ssd(x, dt, A, B, C, 16, initial_states=S0, return_final_states=True)
    training_states = [s for s in allocated if len(s) == 6 and s[-2:] == (p, n)]
    assert [c[-1] for c in calls] == [False, True]  # keep_states
    assert inference_states[0][1] < l // 16 + 1 == training_states[0][1]
    torch.testing.assert_close(y0, y1.detach(), rtol=0, atol=0)
    torch.testing.assert_close(s0, s1.detach(), rtol=0, atol=0)

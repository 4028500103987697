"""``ssd`` as a drop-in for ``mamba_chunk_scan_combined``: positional order, packed sequences (seq_idx,
cu_seqlens), dt_limit, return conventions; the batched (GPU / compiled) core; checked against
state-spaces/mamba's own ``ssd_minimal_discrete`` and ``selective_scan_ref`` (copied into
tests/ssm/mamba_ssm_refs.py)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import medsora.ssm.chunked_ssd as ssd_module
from medsora.ssm import selective_scan, seq_idx_from_cu_seqlens, ssd, ssd_ref


def inputs(l, b=2, h=4, p=3, g=2, n=5, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=gen, dtype=torch.float64).to(dtype)  # noqa: E731
    return dict(x=r(b, l, h, p), dt=F.softplus(r(b, l, h)) * 0.5, A=-(torch.rand(h, generator=gen, dtype=torch.float64)
                * 2 + 0.1).to(dtype), B=r(b, l, g, n), C=r(b, l, g, n), S0=r(b, h, p, n))


def minimal(mamba_refs, x, dt, A, B, C, block, S0=None):
    """mamba_ssm's ssd_minimal_discrete on any length (zero steps appended: decay 1, no input)."""
    h, g = x.shape[2], B.shape[2]
    pad = -x.shape[1] % block
    padt = lambda t: F.pad(t, (0, 0) * (t.dim() - 2) + (0, pad))  # noqa: E731
    rep = lambda t: t.repeat_interleave(h // g, dim=2)  # noqa: E731
    y, s = mamba_refs.ssd_minimal_discrete(padt(x * dt[..., None]), padt(dt * A), padt(rep(B)), padt(rep(C)), block,
                                           None if S0 is None else S0[:, None])
    return y[:, :x.shape[1]], s


@pytest.mark.parametrize("batched", [False, True])
@pytest.mark.parametrize("l,chunk", [(5, 8), (64, 16), (100, 32), (257, 64)])
def test_ssd_matches_mamba_ssm_minimal_discrete(mamba_refs, monkeypatch, batched, l, chunk):
    monkeypatch.setattr(ssd_module, "FORCE_BATCHED", batched)
    t = inputs(l)
    y, s = ssd(t["x"], t["dt"], t["A"], t["B"], t["C"], chunk, None, None, None, t["S0"], return_final_states=True)
    yr, sr = minimal(mamba_refs, t["x"], t["dt"], t["A"], t["B"], t["C"], 16, t["S0"])
    torch.testing.assert_close(y, yr, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(s, sr, rtol=1e-9, atol=1e-9)


def test_selective_scan_matches_mamba_ssm_reference(mamba_refs):
    gen = torch.Generator().manual_seed(1)
    b, d, n, l = 2, 6, 4, 70
    u, delta, z = (torch.randn(b, d, l, generator=gen) for _ in range(3))
    A = -torch.rand(d, n, generator=gen) - 0.1
    B, C = torch.randn(b, 2, n, l, generator=gen), torch.randn(b, 2, n, l, generator=gen)
    D, bias = torch.randn(d, generator=gen), torch.randn(d, generator=gen)
    y, s = selective_scan(u, delta, A, B, C, D, z, bias, True, True)  # selective_scan_fn's positional order
    yr, sr = mamba_refs.selective_scan_ref(u, delta, A, B, C, D, z, bias, True, True)
    torch.testing.assert_close(y, yr, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(s, sr, rtol=1e-4, atol=1e-5)


def test_positional_order_is_mamba_chunk_scan_combined():
    """The 10th argument is initial_states (it used to be dt_softplus: a tensor there was read as a flag)."""
    t = inputs(40, dtype=torch.float32)
    D, z, bias = torch.randn(4), torch.randn(2, 40, 4, 3), torch.randn(4)
    pos = ssd(t["x"], t["dt"], t["A"], t["B"], t["C"], 16, D, z, bias, t["S0"], None, None, True, (0.0, float("inf")),
              True)
    kw = ssd(t["x"], t["dt"], t["A"], t["B"], t["C"], chunk_size=16, D=D, z=z, dt_bias=bias, initial_states=t["S0"],
             dt_softplus=True, return_final_states=True)
    for a, b in zip(pos, kw):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.allclose(pos[0], ssd(t["x"], t["dt"], t["A"], t["B"], t["C"], 16, D, z, bias, None,
                                          dt_softplus=True))


def packed(lengths, seed=0):
    t = inputs(sum(lengths), b=1, seed=seed)
    cu = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()])
    return t, cu, seq_idx_from_cu_seqlens(cu, sum(lengths))


@pytest.mark.parametrize("batched", [False, True])
@pytest.mark.parametrize("lengths,chunk", [((7, 20, 1, 36), 16), ((16, 16, 9), 16), ((3, 5), 64), ((50,), 16)])
def test_packed_sequences_equal_each_sequence_alone(mamba_refs, monkeypatch, batched, lengths, chunk):
    """seq_idx resets the state at every boundary (boundaries inside chunks, on chunk edges, a one-step
    sequence); the initial state feeds the first sequence; varlen states are each sequence's last state."""
    monkeypatch.setattr(ssd_module, "FORCE_BATCHED", batched)
    t, cu, seq = packed(lengths)
    y, final, varlen = ssd(t["x"], t["dt"], t["A"], t["B"], t["C"], chunk, initial_states=t["S0"], seq_idx=seq,
                           cu_seqlens=cu, return_final_states=True, return_varlen_states=True)
    for i, (a, e) in enumerate(zip(cu[:-1].tolist(), cu[1:].tolist())):
        part = {k: v[:, a:e] for k, v in t.items() if k not in ("A", "S0")}
        yr, sr = minimal(mamba_refs, part["x"], part["dt"], t["A"], part["B"], part["C"], 8, t["S0"] if i == 0 else None)
        torch.testing.assert_close(y[:, a:e], yr, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(varlen[i], sr[0], rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(final, varlen[-1:], rtol=1e-9, atol=1e-9)


def test_packed_gradients_match_the_reference_recurrence():
    t, cu, seq = packed((9, 30, 25))
    t = {k: v.requires_grad_() for k, v in t.items()}
    w = torch.randn(t["x"].shape, dtype=torch.float64)
    go = lambda fn: torch.autograd.grad((fn(t["x"], t["dt"], t["A"], t["B"], t["C"], 16, initial_states=t["S0"],  # noqa: E731
                                            seq_idx=seq) * w).sum(), list(t.values()))
    for a, b in zip(go(ssd), go(ssd_ref)):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-9)


def test_dt_limit_clamps_after_softplus_and_state_dtype():
    t = inputs(30, dtype=torch.float32)
    bias = torch.zeros(4)
    y, s = ssd(t["x"], t["dt"], t["A"], t["B"], t["C"], 8, dt_bias=bias, dt_softplus=True, dt_limit=(0.6, 0.8),
               return_final_states=True, state_dtype=torch.bfloat16)
    clamped = F.softplus(t["dt"]).clamp(0.6, 0.8)
    yr = ssd_ref(t["x"], clamped, t["A"], t["B"], t["C"])
    torch.testing.assert_close(y, yr, rtol=1e-4, atol=1e-5)
    assert s.dtype == torch.bfloat16
    assert not torch.allclose(y, ssd(t["x"], t["dt"], t["A"], t["B"], t["C"], 8, dt_bias=bias, dt_softplus=True))


@pytest.mark.parametrize("l,chunk", [(1, 64), (48, 64), (200, 64), (1024, 64), (300, 16)])
def test_batched_core_parity_with_gradients(monkeypatch, l, chunk):
    """The CUDA path's math (the chunk recurrence in one contraction), run here on the CPU."""
    t = inputs(l, dtype=torch.float32)
    t = {k: v.requires_grad_() for k, v in t.items()}
    D, z = torch.randn(4, requires_grad=True), torch.randn(2, l, 4, 3, requires_grad=True)

    def go(fn):
        y, s = fn(t["x"], t["dt"], t["A"], t["B"], t["C"], chunk, D, z, initial_states=t["S0"],
                  return_final_states=True)
        return (y, s, *torch.autograd.grad((y * y.detach()).sum() + s.sum(), [*t.values(), D, z]))
    monkeypatch.setattr(ssd_module, "FORCE_BATCHED", True)
    fast = go(ssd)
    ref = go(ssd_ref)
    for a, b in zip(fast, ref):
        scale = b.abs().max().clamp_min(1.0)
        torch.testing.assert_close(a / scale, b / scale, rtol=1e-4, atol=1e-4)


def test_batched_core_is_finite_for_strong_decay(monkeypatch):
    monkeypatch.setattr(ssd_module, "FORCE_BATCHED", True)
    t = inputs(512, dtype=torch.float32)
    dt = t["dt"] * 40  # dt·A down to about -100 per step: exp of sums would overflow in a naive form
    y, s = ssd(t["x"], dt, t["A"], t["B"], t["C"], 64, return_final_states=True)
    yr, sr = ssd_ref(t["x"].double(), dt.double(), t["A"].double(), t["B"].double(), t["C"].double(),
                     return_final_states=True)
    assert torch.isfinite(y).all() and torch.isfinite(s).all()
    torch.testing.assert_close(y.double(), yr, rtol=1e-4, atol=1e-4)


def test_seq_idx_helper_and_input_errors():
    assert seq_idx_from_cu_seqlens(torch.tensor([0, 2, 5]), 5).tolist() == [[0, 0, 1, 1, 1]]
    t = inputs(10, dtype=torch.float32)
    args = (t["x"], t["dt"], t["A"], t["B"], t["C"], 4)
    with pytest.raises(ValueError, match="seq_idx"):
        ssd(*args, seq_idx=torch.zeros(2, 9, dtype=torch.long))
    with pytest.raises(ValueError, match="cu_seqlens"):
        ssd(*args, return_varlen_states=True)
    with pytest.raises(ValueError, match="batch must be 1"):
        ssd(*args, cu_seqlens=torch.tensor([0, 10]), return_varlen_states=True)
    with pytest.raises(ValueError, match="cu_seqlens"):
        seq_idx_from_cu_seqlens(torch.tensor([0, 3]), 5)

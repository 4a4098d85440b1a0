"""Selective scan: the chunked scan and the decoding step equal the reference recurrence."""
import pytest
import torch
import torch.nn.functional as F

from archlab.nn.ssm import selective_scan_chunked, selective_scan_reference, selective_scan_step


def _inputs(bsz, T, E, N, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=dtype)  # noqa: E731
    return dict(u=r(bsz, T, E), delta=F.softplus(r(bsz, T, E)), A=-torch.exp(r(E, N)), B=r(bsz, T, N), C=r(bsz, T, N),
                D=r(E), h0=r(bsz, E, N))


SHAPES = [(1, 1, 3, 2), (2, 7, 5, 4), (3, 64, 8, 16), (2, 100, 6, 3), (1, 257, 4, 8), (2, 1000, 3, 2)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("chunk", [1, 16, 64])
def test_chunked_equals_reference_float64(shape, chunk):
    x = _inputs(*shape, torch.float64, seed=sum(shape) + chunk)
    y1, h1 = selective_scan_reference(**x, return_state=True)
    y2, h2 = selective_scan_chunked(**x, return_state=True, chunk_size=chunk)
    torch.testing.assert_close(y2, y1, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(h2, h1, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("shape", SHAPES)
def test_chunked_equals_reference_float32(shape):
    x = _inputs(*shape, torch.float32, seed=sum(shape))
    x["u"] = x["u"] * 0.1  # keep |y| ≈ 1 so that atol=1e-5 is the fp32 rounding scale, not a relative one
    y1, h1 = selective_scan_reference(**x, return_state=True)
    y2, h2 = selective_scan_chunked(**x, return_state=True, chunk_size=16)
    torch.testing.assert_close(y2, y1, atol=1e-5, rtol=1.3e-6)
    torch.testing.assert_close(h2, h1, atol=1e-5, rtol=1.3e-6)


def test_state_carries_across_calls_and_steps():
    x = _inputs(2, 40, 5, 4, torch.float64, seed=3)
    y, h = selective_scan_reference(**x, return_state=True)
    # first 25 tokens chunked, the rest token by token with the decoding step
    part = {k: (v[:, :25] if v.dim() == 3 and k != "h0" else v) for k, v in x.items()}
    y_a, state = selective_scan_chunked(**part, return_state=True, chunk_size=8)
    ys = [y_a]
    for t in range(25, 40):
        y_t, state = selective_scan_step(state, x["u"][:, t], x["delta"][:, t], x["A"], x["B"][:, t], x["C"][:, t],
                                         x["D"])
        ys.append(y_t[:, None])
    torch.testing.assert_close(torch.cat(ys, 1), y, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(state, h, atol=1e-12, rtol=1e-12)


def test_gradients_match():
    x = _inputs(2, 37, 4, 3, torch.float64, seed=5)
    for v in x.values():
        v.requires_grad_(True)
    g1 = torch.autograd.grad(selective_scan_reference(**x).square().sum(), list(x.values()))
    g2 = torch.autograd.grad(selective_scan_chunked(**x, chunk_size=8).square().sum(), list(x.values()))
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(b, a, atol=1e-10, rtol=1e-10)


def test_empty_sequence():
    x = _inputs(2, 0, 3, 2, torch.float32, seed=0)
    y, h = selective_scan_chunked(**x, return_state=True)
    assert y.shape == (2, 0, 3) and torch.equal(h, x["h0"])

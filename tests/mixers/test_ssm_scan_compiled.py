"""The compiled scan (torch.compile of the chunked scan) equals the reference recurrence, forward and backward,
and it never silently falls back to eager code."""
import pytest
import torch
import torch.nn.functional as F

from archlab.models import build_model, preset
from archlab.nn import ssm
from archlab.nn.ssm import selective_scan, selective_scan_compiled, selective_scan_reference


def _inputs(bsz, T, E, N, dtype, seed, grad=False):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=dtype)  # noqa: E731
    x = dict(u=r(bsz, T, E) * 0.1, delta=F.softplus(r(bsz, T, E)), A=-torch.exp(r(E, N)), B=r(bsz, T, N),
             C=r(bsz, T, N), D=r(E), h0=r(bsz, E, N))
    return {k: v.requires_grad_(grad) for k, v in x.items()}


@pytest.mark.parametrize("shape", [(2, 7, 5, 4), (3, 32, 8, 16)])
def test_compiled_equals_reference_forward_and_state(shape):
    x = _inputs(*shape, torch.float64, seed=sum(shape))
    y1, h1 = selective_scan_reference(**x, return_state=True)
    y2, h2 = selective_scan_compiled(**x, return_state=True, chunk_size=4)
    torch.testing.assert_close(y2, y1, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(h2, h1, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_compiled_gradients_match_reference(dtype, tol):
    x = _inputs(2, 19, 6, 4, dtype, seed=5, grad=True)
    g1 = torch.autograd.grad(selective_scan_reference(**x).square().sum(), list(x.values()))
    g2 = torch.autograd.grad(selective_scan_compiled(**x, chunk_size=5).square().sum(), list(x.values()))
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(b, a, atol=tol, rtol=tol if dtype == torch.float64 else 1.3e-6 * 10)


def test_compiled_scan_in_a_model_trains_like_the_chunked_one():
    torch.manual_seed(0)
    ref = build_model(preset("mamba-tiny", **{"mixer.ssm.scan": "chunked"}))
    fast = build_model(preset("mamba-tiny", **{"mixer.ssm.scan": "compiled"}))
    fast.load_state_dict(ref.state_dict())
    x = torch.randint(0, 256, (2, 33))
    y_ref, y_fast = ref(x), fast(x)
    torch.testing.assert_close(y_fast, y_ref, atol=1e-5, rtol=1.3e-6)
    y_ref.square().mean().backward()
    y_fast.square().mean().backward()
    for (name, p), q in zip(ref.named_parameters(), fast.parameters(), strict=True):
        torch.testing.assert_close(q.grad, p.grad, atol=1e-5, rtol=1e-4, msg=name)


def test_counting_flops_runs_the_same_arithmetic_eagerly():
    from torch.utils.flop_counter import FlopCounterMode

    counts = {}
    for scan in ("chunked", "compiled"):
        torch.manual_seed(0)
        model = build_model(preset("mamba-tiny", **{"mixer.ssm.scan": scan}))
        with FlopCounterMode(display=False) as fc:
            model(torch.randint(0, 256, (2, 9))).sum().backward()
        counts[scan] = fc.get_total_flops()
    assert counts["compiled"] == counts["chunked"] > 0


def test_too_many_signatures_fail_instead_of_running_eager(monkeypatch):
    monkeypatch.setattr(ssm, "COMPILED_SIGNATURES_MAX", 1)
    torch._dynamo.reset()
    ssm._compiled_chunked_scan.cache_clear()
    selective_scan_compiled(**_inputs(1, 3, 2, 2, torch.float32, seed=1))
    with pytest.raises(Exception, match="(?i)recompil"):
        selective_scan_compiled(**_inputs(1, 5, 2, 2, torch.float32, seed=1))
    torch._dynamo.reset()
    ssm._compiled_chunked_scan.cache_clear()


def test_unknown_scan_is_refused():
    with pytest.raises(ValueError, match="scan impl 'fast' unknown"):
        selective_scan(*_inputs(1, 2, 2, 2, torch.float32, seed=0).values(), impl="fast")

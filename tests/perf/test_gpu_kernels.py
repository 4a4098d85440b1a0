"""GPU-only fast paths equal their references (skipped without CUDA)."""
import pytest
import torch

from archlab.nn.ssm import selective_scan_chunked, selective_scan_reference

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def _inputs(batch, T, E, N, device="cuda"):
    u = torch.randn(batch, T, E, device=device)
    delta = torch.nn.functional.softplus(torch.randn(batch, T, E, device=device) - 1)
    A = -torch.exp(torch.randn(E, N, device=device))
    B, C = torch.randn(batch, T, N, device=device), torch.randn(batch, T, N, device=device)
    D = torch.randn(E, device=device)
    h0 = torch.randn(batch, E, N, device=device)
    return u, delta, A, B, C, D, h0


@pytest.mark.parametrize("shape", [(2, 100, 48, 16), (1, 257, 70, 12)])
def test_triton_scan_equals_reference(shape):
    pytest.importorskip("triton")
    from archlab.perf.scan_triton import selective_scan_triton

    torch.manual_seed(0)
    u, delta, A, B, C, D, h0 = _inputs(*shape)
    y_ref, h_ref = selective_scan_reference(u, delta, A, B, C, D, h0, return_state=True)
    y, h = selective_scan_triton(u, delta, A, B, C, D, h0, return_state=True)
    torch.testing.assert_close(y, y_ref, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(h, h_ref, atol=1e-4, rtol=1e-4)
    y2 = selective_scan_triton(u, delta, A, B, C)
    torch.testing.assert_close(y2, selective_scan_reference(u, delta, A, B, C), atol=1e-4, rtol=1e-4)


def test_chunked_scan_equals_reference_on_gpu():
    torch.manual_seed(0)
    u, delta, A, B, C, D, h0 = _inputs(2, 300, 32, 16)
    torch.testing.assert_close(selective_scan_chunked(u, delta, A, B, C, D, h0),
                               selective_scan_reference(u, delta, A, B, C, D, h0), atol=1e-4, rtol=1e-4)


def test_sdpa_is_causal_path_equals_reference_in_bf16():
    from archlab.nn.attention import attention_reference, attention_sdpa

    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 8, 256, 64, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    torch.testing.assert_close(attention_sdpa(q, k, v, is_causal=True), attention_reference(q, k, v, is_causal=True),
                               atol=1e-2, rtol=1.6e-2)


def test_rope_tables_stay_on_gpu_after_dtype_cast():
    from archlab.models import build_model
    from archlab.perf.static_decode import StaticDecoder

    model = build_model("llama-tiny").cuda().to(torch.bfloat16).eval()
    assert model.rope.cos.device.type == "cuda" and model.rope.cos.dtype == torch.float32
    prompt = torch.randint(0, 256, (1, 5), device="cuda")
    assert StaticDecoder(model, 16).generate(prompt, 8).shape == (1, 13)

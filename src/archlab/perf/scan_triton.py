"""Selective scan as one Triton kernel (forward only): the recurrence of archlab.nn.ssm, state kept in registers.

Each program owns one batch row and BLOCK_E channels; it walks t = 0..T-1 doing exactly
`selective_scan_reference`'s step

    h ← exp(Δ_t A) ⊙ h + (Δ_t x_t) B_t,    y_t = C_t · h + D x_t

in fp32, so the (B, T, E, N) intermediates that the chunked scan materialises never touch memory:
it reads u, Δ (B, T, E) and B, C (B, T, N) once and writes y once. Tested equal to the reference
(tests/perf/test_gpu_kernels.py). No backward: use it for inference and benchmarks, the chunked scan for training.
"""
from __future__ import annotations

import torch


def _kernel():
    import triton
    import triton.language as tl

    @triton.jit
    def scan_fwd(u_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, D_ptr, h0_ptr, y_ptr, hT_ptr, T, E, N,
                 HAS_D: tl.constexpr, HAS_H0: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_N: tl.constexpr):
        b = tl.program_id(0)
        e = tl.program_id(1) * BLOCK_E + tl.arange(0, BLOCK_E)
        n = tl.arange(0, BLOCK_N)
        em, nm = e < E, n < N
        m2 = em[:, None] & nm[None, :]
        A = tl.load(A_ptr + e[:, None] * N + n[None, :], mask=m2, other=0.0).to(tl.float32)
        if HAS_H0:
            h = tl.load(h0_ptr + b * E * N + e[:, None] * N + n[None, :], mask=m2, other=0.0).to(tl.float32)
        else:
            h = tl.zeros((BLOCK_E, BLOCK_N), dtype=tl.float32)
        if HAS_D:
            Dv = tl.load(D_ptr + e, mask=em, other=0.0).to(tl.float32)
        row_e = b * T * E
        row_n = b * T * N
        for t in range(T):
            u = tl.load(u_ptr + row_e + t * E + e, mask=em, other=0.0).to(tl.float32)
            dt = tl.load(dt_ptr + row_e + t * E + e, mask=em, other=0.0).to(tl.float32)
            Bt = tl.load(B_ptr + row_n + t * N + n, mask=nm, other=0.0).to(tl.float32)
            Ct = tl.load(C_ptr + row_n + t * N + n, mask=nm, other=0.0).to(tl.float32)
            h = tl.exp(dt[:, None] * A) * h + (dt * u)[:, None] * Bt[None, :]
            y = tl.sum(h * Ct[None, :], axis=1)
            if HAS_D:
                y += Dv * u
            tl.store(y_ptr + row_e + t * E + e, y.to(y_ptr.dtype.element_ty), mask=em)
        tl.store(hT_ptr + b * E * N + e[:, None] * N + n[None, :], h, mask=m2)

    return scan_fwd


_KERNEL = None


def selective_scan_triton(u, delta, A, B, C, D=None, h0=None, return_state: bool = False, block_e: int = 32):
    """Same contract and result as archlab.nn.ssm.selective_scan_reference; CUDA tensors only, no autograd."""
    global _KERNEL
    if not u.is_cuda:
        raise ValueError("selective_scan_triton needs CUDA tensors; use selective_scan_chunked on the CPU")
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (u, delta, A, B, C, D)):
        raise ValueError("selective_scan_triton has no backward; use selective_scan_chunked for training")
    import triton

    if _KERNEL is None:
        _KERNEL = _kernel()
    batch, T, E = u.shape
    N = A.shape[-1]
    u, delta, A, B, C = (t.contiguous() for t in (u, delta, A, B, C))
    y = torch.empty_like(u)
    hT = torch.empty(batch, E, N, device=u.device, dtype=torch.float32)
    Dc = D.contiguous() if D is not None else u
    h0c = h0.contiguous() if h0 is not None else hT
    grid = (batch, triton.cdiv(E, block_e))
    _KERNEL[grid](u, delta, A, B, C, Dc, h0c, y, hT, T, E, N, HAS_D=D is not None, HAS_H0=h0 is not None,
                  BLOCK_E=block_e, BLOCK_N=triton.next_power_of_2(N))
    hT = hT.to(u.dtype)
    return (y, hT) if return_state else y

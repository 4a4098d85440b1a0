"""Selective scan (Mamba's S6, Gu & Dao 2023): the recurrence, a fast chunked scan, and one decoding step.

Discretised SSM per channel e and state n (zero-order hold on A, Euler on B, as in Mamba):

    h_t = exp(Δ_t A) ⊙ h_{t-1} + Δ_t B_t x_t          (state h: B, E, N)
    y_t = C_t · h_t + D ⊙ x_t

Shapes: u/x (B, T, E), Δ (B, T, E), A (E, N), B_t and C_t (B, T, N), D (E,), h (B, E, N).
`selective_scan_reference` is that recurrence line by line (mamba-minimal style);
`selective_scan_chunked` computes the same thing with all chunks of L tokens advancing together
and the state carried across chunks, in about 2L + T/L Python steps instead of T;
`selective_scan_compiled` is the chunked scan under torch.compile (each step's elementwise ops fused into one
loop), the fast path for training on CPU at short sequences.
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import _get_current_dispatch_mode

from archlab.errors import ConfigError


def selective_scan_reference(u, delta, A, B, C, D=None, h0=None, return_state: bool = False):
    """y_t = C_t·h_t + D x_t with h_t = exp(Δ_t A) h_{t-1} + Δ_t B_t x_t, one step at a time."""
    batch, T, E = u.shape
    N = A.shape[-1]
    h = torch.zeros(batch, E, N, dtype=u.dtype, device=u.device) if h0 is None else h0.to(u.dtype)
    ys = []
    for x_t, d_t, B_t, C_t in zip(u.unbind(1), delta.unbind(1), B.unbind(1), C.unbind(1), strict=True):
        dA = torch.exp(d_t[:, :, None] * A)  # exp(Δ_t A)        (B, E, N)
        dBx = d_t[:, :, None] * B_t[:, None, :] * x_t[:, :, None]  # Δ_t B_t x_t  (B, E, N)
        h = dA * h + dBx
        ys.append((h * C_t[:, None, :]).sum(-1))  # y_t = C_t·h_t  (B, E)
    y = torch.stack(ys, dim=1) if ys else u.new_zeros(batch, 0, E)
    if D is not None:
        y = y + u * D
    return (y, h) if return_state else y


def selective_scan_chunked(u, delta, A, B, C, D=None, h0=None, return_state: bool = False, chunk_size: int = 32):
    """Same result as selective_scan_reference, computed chunk-parallel: T/L chunks advance together.

    Split T into nc chunks of L tokens. (1) Every chunk runs the recurrence from h = 0 at once, so one
    Python step advances all nc chunks: L steps give each chunk's local final state. (2) The state
    entering chunk c+1 is h_in[c+1] = exp(A·ΣΔ_c) h_in[c] + h_local_end[c]  (nc small steps).
    (3) Every chunk reruns its L steps from its true incoming state, emitting y_t = C_t·h_t.
    About 2L + nc sequential steps instead of T (≈ 3√T with L = ⌈√T⌉, capped at chunk_size); same
    elementwise work — the gain is fewer, larger tensor operations.
    """
    batch, T, E = u.shape
    N = A.shape[-1]
    h = torch.zeros(batch, E, N, dtype=u.dtype, device=u.device) if h0 is None else h0.to(u.dtype)
    if T == 0:
        y = u.new_zeros(batch, 0, E)
        return (y, h) if return_state else y
    L = max(1, min(chunk_size, math.isqrt(T - 1) + 1))  # ≈ √T balances 2L in-chunk and T/L carry steps
    nc = -(-T // L)
    pad = nc * L - T
    if pad:  # Δ = 0 pads are identity steps (exp(0·A) = 1, Δ·B·x = 0): they leave the state untouched
        uu, dd, BB, CC = (F.pad(t, (0, 0, 0, pad)) for t in (u, delta, B, C))
    else:
        uu, dd, BB, CC = u, delta, B, C
    # split once along the chunk axis (unbind: one backward op for all steps, where indexing [:, :, t]
    # would cost a full-size gradient per step); a_t = exp(Δ_t A) and b_t = Δ_t x_t B_t are formed per
    # step on (B, nc, E, N) slices that stay in cache, not as (B, T, E, N) tensors
    dts = dd.view(batch, nc, L, E, 1).unbind(2)  # L × (B, nc, E, 1)
    dtx = (dd * uu).view(batch, nc, L, E, 1).unbind(2)
    Bs = BB.view(batch, nc, L, 1, N).unbind(2)  # L × (B, nc, 1, N)
    Cs = CC.view(batch, nc, L, N, 1).unbind(2)  # L × (B, nc, N, 1)

    # a_t = exp(Δ_t A) and b_t = Δ_t x_t B_t per in-chunk step: formed once in pass (1), reused in pass (3)
    terms: list[tuple[torch.Tensor, torch.Tensor]] = []

    def step(h_all, t):  # one recurrence step for every chunk: h ← a_t h + b_t
        a_t, b_t = terms[t] if len(terms) > t else (torch.exp(dts[t] * A), dtx[t] * Bs[t])
        return torch.addcmul(b_t, a_t, h_all)

    if nc == 1:
        hc = h.unsqueeze(1)
    else:
        hc = torch.zeros(batch, nc, E, N, dtype=u.dtype, device=u.device)
        for t in range(L):  # (1) local final states, all chunks in parallel
            terms.append((torch.exp(dts[t] * A), dtx[t] * Bs[t]))
            hc = step(hc, t)
        decay = torch.exp(dd.view(batch, nc, L, E).sum(2).unsqueeze(-1) * A)  # ∏_t exp(Δ_t A) per chunk
        h_in = []
        for hc_c, decay_c in zip(hc.unbind(1)[:-1], decay.unbind(1)[:-1], strict=True):  # (2) carry across chunks
            h_in.append(h)
            h = torch.addcmul(hc_c, decay_c, h)
        hc = torch.stack(h_in + [h], dim=1)  # (B, nc, E, N): the state entering each chunk
    ys = []
    for t in range(L):  # (3) rerun each chunk from its incoming state and read out y_t = C_t·h_t
        hc = step(hc, t)
        ys.append(torch.matmul(hc, Cs[t]))  # (B, nc, E, 1)
    y = torch.stack(ys, dim=2).reshape(batch, nc * L, E)[:, :T]
    h = hc[:, -1]  # the last chunk's state after its last (possibly padded, identity) step
    if D is not None:
        y = y + u * D
    return (y, h) if return_state else y


def selective_scan_step(h, u_t, delta_t, A, B_t, C_t, D=None):
    """One decoding step: h ← exp(Δ A) h + Δ B x;  y = C·h + D x.  u_t, delta_t (B, E); B_t, C_t (B, N)."""
    h = torch.exp(delta_t.unsqueeze(-1) * A) * h + (delta_t * u_t).unsqueeze(-1) * B_t.unsqueeze(1)
    y = (h * C_t.unsqueeze(1)).sum(-1)
    if D is not None:
        y = y + u_t * D
    return y, h


@functools.cache
def _compiled_chunked_scan():
    return torch.compile(selective_scan_chunked, dynamic=False, fullgraph=True)


# one compiled graph per distinct input signature (shapes, strides, grad mode, D/h0 given or not); a sweep's runs
# of one shape reuse it. Past the limit, torch.compile would silently run eager code — with numbers differing in the
# last digits from the compiled ones, so a run's result would depend on what ran before it: fail instead.
COMPILED_SIGNATURES_MAX = 256


def selective_scan_compiled(u, delta, A, B, C, D=None, h0=None, return_state: bool = False, chunk_size: int = 32):
    """selective_scan_chunked compiled by torch.compile (static shapes, whole graph): the same arithmetic with each
    step's exp/mul/addcmul fused, so the (B, nc, E, N) state makes one trip through memory per step instead of
    several. The first call per input signature compiles (seconds; inductor's disk cache makes later processes
    faster); agreement with the reference is tested like the chunked scan's (it reorders float sums). Inside a
    dispatch mode (FlopCounterMode: the cost model), a jit trace or an outer torch.compile, it is the eager chunked
    scan: the same arithmetic, where compiling is not possible or is done by the caller."""
    if _get_current_dispatch_mode() is not None or torch.jit.is_tracing() or torch.compiler.is_compiling():
        return selective_scan_chunked(u, delta, A, B, C, D, h0, return_state, chunk_size)
    with torch._dynamo.config.patch(recompile_limit=COMPILED_SIGNATURES_MAX, fail_on_recompile_limit_hit=True,
                                    accumulated_recompile_limit=max(COMPILED_SIGNATURES_MAX, 256)):
        return _compiled_chunked_scan()(u, delta, A, B, C, D, h0, return_state, chunk_size)


SCANS = {"reference": selective_scan_reference, "chunked": selective_scan_chunked,
         "compiled": selective_scan_compiled}


def selective_scan(u, delta, A, B, C, D=None, h0=None, *, impl: str = "chunked", chunk_size: int = 32,
                   return_state: bool = False):
    """Dispatch to the reference, chunked or compiled scan by name."""
    if impl == "reference":
        return selective_scan_reference(u, delta, A, B, C, D, h0, return_state)
    if impl in SCANS:
        return SCANS[impl](u, delta, A, B, C, D, h0, return_state, chunk_size)
    raise ConfigError(f"scan impl {impl!r} unknown (expected one of {sorted(SCANS)})")

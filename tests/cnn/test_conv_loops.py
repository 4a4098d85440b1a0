"""Seed 003's loop nests (and the unfold path) equal torch's conv2d / max_pool2d / avg_pool2d."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from archlab.nn.conv import (
    Conv2d,
    avg_pool2d_loops,
    avg_pool2d_unfold,
    conv2d_loops,
    conv2d_unfold,
    max_pool2d_loops,
    max_pool2d_unfold,
)

TOL = {"atol": 1e-5, "rtol": 1.3e-6}  # fp32 parity (DESIGN.md)


@st.composite
def conv_case(draw):
    """A tiny random convolution: groups in {1, 2, C} so grouped and depthwise convs are covered."""
    groups = draw(st.sampled_from([1, 2, "depthwise"]))
    cg = draw(st.integers(1, 3))
    if groups == "depthwise":
        groups, cg = draw(st.integers(1, 4)), 1
    c = cg * groups
    m = groups * draw(st.integers(1, 2))
    r, s = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    u = draw(st.integers(1, 3))
    p = draw(st.integers(0, 1))
    h, w = draw(st.integers(max(r - 2 * p, 1), 7)), draw(st.integers(max(s - 2 * p, 1), 7))
    n = draw(st.integers(1, 2))
    bias = draw(st.booleans())
    seed = draw(st.integers(0, 2**16))
    return n, c, h, w, m, r, s, u, p, groups, bias, seed


@settings(max_examples=40, deadline=None)
@given(conv_case())
def test_conv_loops_and_unfold_equal_torch(case):
    n, c, h, w, m, r, s, u, p, groups, bias, seed = case
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, c, h, w, generator=g)
    W = torch.randn(m, c // groups, r, s, generator=g)
    B = torch.randn(m, generator=g) if bias else None
    ref = F.conv2d(X, W, B, stride=u, padding=p, groups=groups)
    torch.testing.assert_close(conv2d_loops(X, W, B, u, p, groups), ref, **TOL)
    torch.testing.assert_close(conv2d_unfold(X, W, B, u, p, groups), ref, **TOL)


@st.composite
def pool_case(draw):
    k = draw(st.integers(1, 3))
    u = draw(st.integers(1, 3))
    p = draw(st.integers(0, k // 2))
    h, w = draw(st.integers(max(k - 2 * p, 1), 7)), draw(st.integers(max(k - 2 * p, 1), 7))
    return draw(st.integers(1, 2)), draw(st.integers(1, 3)), h, w, k, u, p, draw(st.integers(0, 2**16))


@settings(max_examples=40, deadline=None)
@given(pool_case())
def test_pool_loops_and_unfold_equal_torch(case):
    n, c, h, w, k, u, p, seed = case
    X = torch.randn(n, c, h, w, generator=torch.Generator().manual_seed(seed))
    ref_max = F.max_pool2d(X, k, u, p)
    ref_avg = F.avg_pool2d(X, k, u, p)
    torch.testing.assert_close(max_pool2d_loops(X, k, u, p), ref_max, **TOL)
    torch.testing.assert_close(max_pool2d_unfold(X, k, u, p), ref_max, **TOL)
    torch.testing.assert_close(avg_pool2d_loops(X, k, u, p), ref_avg, **TOL)
    torch.testing.assert_close(avg_pool2d_unfold(X, k, u, p), ref_avg, **TOL)


def test_loop_nest_long_sum_float64():
    """A long reduction (C·R·S = 288) in float64 matches torch exactly enough for fp64 tolerances."""
    g = torch.Generator().manual_seed(0)
    X, W = torch.randn(1, 32, 5, 5, generator=g, dtype=torch.float64), torch.randn(4, 32, 3, 3, generator=g,
                                                                                    dtype=torch.float64)
    torch.testing.assert_close(conv2d_loops(X, W, None, 1, 1), F.conv2d(X, W, padding=1))


def test_seed003_formula_output_size():
    """E = (H - R + U)/U with no padding, as seed 003 writes it."""
    X, W = torch.randn(1, 1, 7, 7), torch.randn(1, 1, 3, 3)
    for U in (1, 2, 3):
        assert conv2d_loops(X, W, stride=U).shape[-1] == (7 - 3 + U) // U


@pytest.mark.parametrize("impl", ["unfold", "loops"])
def test_conv_module_impls_share_weights_and_gradients(impl):
    torch.manual_seed(0)
    ref = torch.nn.Conv2d(4, 4, 3, stride=2, padding=1, groups=4)
    mod = Conv2d(4, 4, 3, stride=2, padding=1, groups=4, impl=impl)
    mod.load_state_dict(ref.state_dict())
    x = torch.randn(1, 4, 5, 5)
    torch.testing.assert_close(mod(x), ref(x), **TOL)
    assert isinstance(mod, torch.nn.Conv2d)
    if impl == "unfold":  # the unfold path is differentiable
        mod(x).sum().backward()
        ref(x).sum().backward()
        torch.testing.assert_close(mod.weight.grad, ref.weight.grad, **TOL)

"""Mamba against hand-computed references, without transformers: the D skip, the padding mask, the step path."""
from __future__ import annotations

import math

import pytest
import torch

from archlab.models import build_model, preset
from archlab.nn.mamba import Mamba, SSMConfig
from archlab.nn.mixer import MixerInputs
from archlab.nn.ssm import selective_scan, selective_scan_step
from archlab.registry import Context

LN2 = math.log(2.0)


def _hand_case():
    """E = N = 1, T = 2: A = −1, Δ = ln 2 (so exp(ΔA) = ½), B = 1, C = 2, D = ½, x = (1, 3).

    h₁ = Δ·B·x₁ = ln 2                 y₁ = C h₁ + D x₁ = 2 ln 2 + ½
    h₂ = ½ h₁ + Δ·B·x₂ = 3.5 ln 2     y₂ = C h₂ + D x₂ = 7 ln 2 + 1.5
    """
    f = dict(dtype=torch.float64)
    u = torch.tensor([1.0, 3.0], **f).view(1, 2, 1)
    delta = torch.full((1, 2, 1), LN2, **f)
    A = torch.tensor([[-1.0]], **f)
    B = torch.ones(1, 2, 1, **f)
    C = torch.full((1, 2, 1), 2.0, **f)
    D = torch.tensor([0.5], **f)
    want_y = torch.tensor([2 * LN2 + 0.5, 7 * LN2 + 1.5], **f).view(1, 2, 1)
    want_h = torch.tensor([[[3.5 * LN2]]], **f)
    return (u, delta, A, B, C, D), want_y, want_h


@pytest.mark.parametrize("impl", ["reference", "chunked"])
def test_scan_is_C_h_plus_D_x_on_a_hand_computed_case(impl):
    args, want_y, want_h = _hand_case()
    y, h = selective_scan(*args, impl=impl, chunk_size=1 if impl == "chunked" else 32, return_state=True)
    torch.testing.assert_close(y, want_y, atol=1e-12, rtol=0)
    torch.testing.assert_close(h, want_h, atol=1e-12, rtol=0)


def test_step_is_C_h_plus_D_x_on_a_hand_computed_case():
    (u, delta, A, B, C, D), want_y, want_h = _hand_case()
    h = torch.zeros(1, 1, 1, dtype=torch.float64)
    ys = []
    for t in range(2):
        y, h = selective_scan_step(h, u[:, t], delta[:, t], A, B[:, t], C[:, t], D)
        ys.append(y)
    torch.testing.assert_close(torch.stack(ys, 1), want_y, atol=1e-12, rtol=0)
    torch.testing.assert_close(h, want_h, atol=1e-12, rtol=0)


def test_mixer_with_C_zero_is_exactly_the_D_skip():
    """With C ≡ 0 the SSM path vanishes: out = out_proj((D ⊙ act(conv(x-branch))) ⊙ silu(z)), by hand."""
    torch.manual_seed(0)
    m = Mamba(SSMConfig(d_state=4, d_conv=3), Context(8)).double()
    with torch.no_grad():
        m.x_proj.weight[m.dt_rank + m.d_state:] = 0  # the C rows
        m.D.copy_(torch.linspace(-2, 2, m.d_inner))
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    xb, z = (x @ m.in_proj.weight.T).chunk(2, -1)
    w, b = m.conv1d.weight[:, 0], m.conv1d.bias  # (E, K), (E,)
    K = w.shape[1]
    padded = torch.cat([torch.zeros(2, K - 1, m.d_inner, dtype=x.dtype), xb], 1)
    conv = torch.stack([(padded[:, t:t + K] * w.T).sum(1) + b for t in range(5)], 1)  # causal: x_{t−K+1..t}
    u = conv * torch.sigmoid(conv)  # silu
    want = ((m.D * u) * (z * torch.sigmoid(z))) @ m.out_proj.weight.T
    torch.testing.assert_close(m(x), want, atol=1e-12, rtol=0)
    with torch.no_grad():
        m.D.zero_()
    torch.testing.assert_close(m(x), torch.zeros_like(want), atol=1e-12, rtol=0)


# ----------------------------------------------------------------------------- padding mask
def _lm():
    torch.manual_seed(0)
    cfg = preset("mamba-tiny", vocab_size=50, d_model=16, n_layers=2, **{"mixer.ssm.d_state": 4})
    model = build_model(cfg).double().eval()
    with torch.no_grad():  # larger projections than the init, so the pads would show if they leaked
        for blk in model.decoder.blocks:
            blk.sub["mixer"].in_proj.weight.mul_(3)
    return model


def _left_padded(rows, n_pad=4, pad_id=0):
    width = max(len(r) for r in rows) + n_pad
    ids = torch.full((len(rows), width), pad_id)
    mask = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, width - len(r):], mask[i, width - len(r):] = r, 1
    return ids, mask


def _rows():
    g = torch.Generator().manual_seed(3)
    return [torch.randint(1, 50, (9,), generator=g), torch.randint(1, 50, (6,), generator=g)]


def test_left_padding_with_a_mask_equals_the_unpadded_run():
    model, rows = _lm(), _rows()
    ids, mask = _left_padded(rows)
    with torch.no_grad():
        padded = model(ids, attention_mask=mask)
        unmasked = model(ids)
        for i, r in enumerate(rows):
            alone = model(r[None])[0]
            torch.testing.assert_close(padded[i, -len(r):], alone, atol=1e-10, rtol=0)
            assert (unmasked[i, -len(r):] - alone).abs().max() > 1e-3  # without the mask the pads leak in


def test_left_padded_prefill_then_steps_equal_the_unpadded_run():
    model, rows = _lm(), _rows()
    ids, mask = _left_padded(rows)
    nxt = torch.tensor([[7], [11]])
    with torch.no_grad():
        state = model.init_state(2, ids.shape[1] + 2)
        model(ids, attention_mask=mask, state=state)
        mask = torch.cat([mask, torch.ones_like(nxt)], 1)
        step = model(nxt, attention_mask=mask, state=state)[:, 0]
        for i, r in enumerate(rows):
            alone = model(torch.cat([r, nxt[i]])[None])[0, -1]
            torch.testing.assert_close(step[i], alone, atol=1e-10, rtol=0)
        # like transformers, the steps may also drop the mask once the prefill has seen it
        state = model.init_state(2, ids.shape[1] + 2)
        model(ids, attention_mask=mask[:, :-1], state=state)
        torch.testing.assert_close(model(nxt, state=state)[:, 0], step, atol=1e-10, rtol=0)


def test_padding_mask_of_the_wrong_shape_is_refused():
    m = Mamba(SSMConfig(d_state=4), Context(8))
    with pytest.raises(ValueError, match="padding mask must have shape"):
        m(torch.randn(2, 5, 8), MixerInputs(key_padding=torch.ones(2, 3)))


@pytest.mark.parametrize("kind", ["rnn", "gru", "dilated_conv", "token_mixing"])
def test_mixers_that_cannot_skip_pads_refuse_left_padding_but_take_right_padding(kind):
    model = build_model(preset(f"mixer-{kind}-tiny", vocab_size=50, d_model=16)).eval()
    ids = torch.randint(1, 50, (2, 8), generator=torch.Generator().manual_seed(0))
    right = torch.ones_like(ids)
    right[1, 5:] = 0
    with torch.no_grad():
        out = model(ids, attention_mask=right)  # pads after the real tokens cannot reach them (causal)
        torch.testing.assert_close(out[1, :5], model(ids[1:, :5])[0], atol=1e-5, rtol=0)
        with pytest.raises(ValueError, match=f"left padding.*mixer.kind '{kind}'"):
            model(ids, attention_mask=right.flip(1))


def test_hybrid_mamba_attention_honours_left_padding():
    """mixer-hybrid-tiny (Mamba + RoPE attention): the mask reaches both kinds; RoPE is relative, so the
    shifted positions of the padded run change nothing."""
    torch.manual_seed(0)
    model = build_model(preset("mixer-hybrid-tiny", vocab_size=50, d_model=16)).double().eval()
    rows = _rows()
    ids, mask = _left_padded(rows)
    with torch.no_grad():
        padded = model(ids, attention_mask=mask)
        for i, r in enumerate(rows):
            torch.testing.assert_close(padded[i, -len(r):], model(r[None])[0], atol=1e-9, rtol=0)

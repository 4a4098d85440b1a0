"""Seed 000's Mamba variants (issue 16 item 3) as `mixer.ssm` switches, each changing only what it names:

* `ssm: false` — no selective SSM: y = x after conv1d + activation (identity: x_proj, dt_proj, A_log and D go);
* `activation_position: after_ssm | before_conv` — the activation after the SSM, or before conv1d;
* `conv_kind: rnn` — a per-channel Elman RNN h_t = tanh(w ⊙ h_{t−1} + u ⊙ x_t + b) in place of conv1d.

Each builds, runs, is causal, decodes step by step with its cache exactly as the full forward, equals a hand
composition of the unchanged pieces, and the default path is bit-identical to Mamba's in_proj → conv1d → SiLU →
SSM → gate → out_proj.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from archlab.cost import model_cost
from archlab.cost.crosscheck import crosscheck
from archlab.errors import ConfigError
from archlab.models import build_model, preset
from archlab.nn.mamba import Mamba, SSMConfig
from archlab.nn.mixer import MixerInputs
from archlab.nn.ssm import selective_scan, selective_scan_reference
from archlab.registry import Context

VARIANTS = [{"ssm": False}, {"activation_position": "after_ssm"}, {"activation_position": "before_conv"},
            {"conv_kind": "rnn"}, {"conv_kind": "rnn", "conv_bias": False}, {"ssm": False, "conv_kind": "rnn"}]
ALL = [{}, *VARIANTS]
D = 16


def _mixer(**kw):
    torch.manual_seed(0)
    return Mamba(SSMConfig(d_state=4, d_conv=3, **kw), Context(D)).double()


def _n(m):
    return sum(p.numel() for p in m.parameters())


def _x(T=7, seed=1):
    return torch.randn(2, T, D, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def _load_shared(m, base):
    """Copy every parameter the two mixers share (same name and shape) from base into m."""
    sd = {k: v for k, v in base.state_dict().items() if k in m.state_dict() and m.state_dict()[k].shape == v.shape}
    m.load_state_dict(sd, strict=False)
    return m


def _ssm(m, u):
    delta, B, C = m.ssm_params(u)
    return selective_scan_reference(u, delta, -torch.exp(m.A_log), B, C, m.D)


def _rnn(m, u):
    h, out = torch.zeros_like(u[:, 0]), []
    for t in range(u.shape[1]):
        h = torch.tanh(m.rnn_w * h + m.rnn_u * u[:, t] + (m.rnn_b if m.rnn_b is not None else 0))
        out.append(h)
    return torch.stack(out, 1)


@pytest.mark.parametrize("kw", ALL, ids=str)
def test_builds_and_runs_in_the_lm(kw):
    cfg = preset("mamba-tiny", vocab_size=40, d_model=D, **{f"mixer.ssm.{k}": v for k, v in kw.items()})
    model = build_model(cfg)
    m = model.decoder.blocks[0].sub["mixer"]
    assert all(getattr(m.cfg, k) == v for k, v in kw.items())
    out = model(torch.randint(0, 40, (2, 11)))
    assert out.shape == (2, 11, 40) and torch.isfinite(out).all()
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("kw", ALL, ids=str)
def test_causal(kw):
    m, x = _mixer(**kw), _x(9)
    y = x.clone()
    y[:, 5:] = torch.randn_like(y[:, 5:])
    a, b = m(x), m(y)
    torch.testing.assert_close(a[:, :5], b[:, :5], atol=0, rtol=0)
    assert (a[:, 5:] - b[:, 5:]).abs().max() > 1e-6


@pytest.mark.parametrize("kw", ALL, ids=str)
def test_cached_steps_equal_the_full_forward(kw):
    m, x = _mixer(**kw), _x(9)
    full = m(x)
    state = m.init_state(2, 9, dtype=torch.float64)
    assert ("rnn" in state) == (kw.get("conv_kind") == "rnn") and ("ssm" in state) == kw.get("ssm", True)
    outs = [m(x[:, :4], MixerInputs(state=state))]  # a prefill, then one token at a time
    outs += [m(x[:, t:t + 1], MixerInputs(state=state)) for t in range(4, 9)]
    torch.testing.assert_close(torch.cat(outs, 1), full, atol=1e-10, rtol=0)


def test_lm_cached_decoding_equals_full_forward_for_the_rnn_variant():
    torch.manual_seed(0)
    model = build_model(preset("mamba-tiny", vocab_size=40, d_model=D, **{"mixer.ssm.conv_kind": "rnn"})).eval()
    ids = torch.randint(0, 40, (2, 8))
    with torch.no_grad():
        full = model(ids)
        state = model.init_state(2, 8)
        steps = [model(ids[:, :3], state=state)] + [model(ids[:, t:t + 1], state=state) for t in range(3, 8)]
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=0)


def test_default_path_is_bit_identical_to_the_mamba_composition():
    m, x = _mixer(), _x()
    assert [k for k, _ in m.named_parameters()] == ["A_log", "D", "in_proj.weight", "conv1d.weight", "conv1d.bias",
                                                    "x_proj.weight", "dt_proj.weight", "dt_proj.bias",
                                                    "out_proj.weight"]
    assert set(m.init_state(2, 5)) == {"ssm", "conv"}
    u, z = m.in_proj(x).chunk(2, -1)
    u = F.silu(F.conv1d(F.pad(u.transpose(1, 2), (2, 0)), m.conv1d.weight, m.conv1d.bias, groups=m.d_inner))
    u = u.transpose(1, 2)
    delta, B, C = m.ssm_params(u)
    y = selective_scan(u, delta, -torch.exp(m.A_log.float()), B, C, m.D, None, impl="chunked", chunk_size=32)
    assert torch.equal(m(x), m.out_proj(y * F.silu(z)))
    explicit = _mixer(ssm=True, activation_position="after_conv", conv_kind="conv")
    assert torch.equal(explicit(x), m(x))


def test_no_ssm_is_identity_after_conv_and_activation():
    base, m = _mixer(), _mixer(ssm=False)
    gone = base.x_proj.weight.numel() + base.dt_proj.weight.numel() + base.dt_proj.bias.numel()
    assert _n(base) - _n(m) == gone + base.A_log.numel() + base.D.numel()
    assert m.x_proj is None and not hasattr(m, "A_log") and not hasattr(m, "D")
    _load_shared(m, base)
    x = _x()
    u, z = m.in_proj(x).chunk(2, -1)
    torch.testing.assert_close(m(x), m.out_proj(F.silu(m.conv(u, None)) * F.silu(z)), atol=1e-12, rtol=0)
    assert not torch.allclose(m(x), base(x))


@pytest.mark.parametrize("pos", ["after_ssm", "before_conv"])
def test_activation_position_moves_only_the_activation(pos):
    base, m = _mixer(), _mixer(activation_position=pos)
    assert _n(base) == _n(m)
    m.load_state_dict(base.state_dict())
    x = _x()
    u, z = m.in_proj(x).chunk(2, -1)
    if pos == "after_ssm":
        y = F.silu(_ssm(m, m.conv(u, None)))
    else:
        y = _ssm(m, m.conv(F.silu(u), None))
    torch.testing.assert_close(m(x), m.out_proj(y * F.silu(z)), atol=1e-10, rtol=0)
    assert not torch.allclose(m(x), base(x))


@pytest.mark.parametrize("bias", [True, False])
def test_rnn_replaces_only_conv1d(bias):
    base, m = _mixer(conv_bias=bias), _mixer(conv_kind="rnn", conv_bias=bias)
    assert m.conv1d is None
    conv_params = base.conv1d.weight.numel() + (base.conv1d.bias.numel() if bias else 0)
    assert _n(base) - conv_params + (3 if bias else 2) * base.d_inner == _n(m)  # w, u (and b) per channel
    _load_shared(m, base)
    x = _x()
    u, z = m.in_proj(x).chunk(2, -1)
    y = _ssm(m, F.silu(_rnn(m, u)))
    torch.testing.assert_close(m(x), m.out_proj(y * F.silu(z)), atol=1e-10, rtol=0)
    assert (m.rnn_w > 0).all() and (m.rnn_w < 1).all()  # a stable decaying recurrence at init


def test_invalid_values_are_one_clear_config_error():
    with pytest.raises(ConfigError, match="mixer.ssm.conv_kind"):
        SSMConfig(conv=False, conv_kind="rnn")
    with pytest.raises(ConfigError, match="mixer.ssm.activation_position"):
        SSMConfig(activation_position="after_gate")
    with pytest.raises(ConfigError, match="mixer.ssm.conv_kind"):
        SSMConfig(conv_kind="lstm")


@pytest.mark.parametrize("kw", VARIANTS, ids=str)
def test_cost_walk_counts_every_parameter_and_matches_the_counter(kw):
    cfg = preset("mamba-tiny", **{f"mixer.ssm.{k}": v for k, v in kw.items()})
    with torch.device("meta"):
        n = build_model(cfg).num_parameters()
    assert model_cost(cfg, seq_len=8).params == n
    cc = crosscheck(cfg, seq_len=16)
    assert cc.ok(), cc.line()


@pytest.mark.parametrize("field, value", [("ssm", False), ("activation_position", "after_ssm"),
                                          ("activation_position", "before_conv"), ("conv_kind", "rnn")])
def test_export_to_transformers_refuses_the_variants_naming_the_field(field, value, tmp_path):
    pytest.importorskip("transformers")
    from archlab.interop import to_hf
    from archlab.interop.hf_io import InteropError
    model = build_model(preset("mamba-tiny", **{f"mixer.ssm.{field}": value}))
    with pytest.raises(InteropError, match=f"mixer.ssm.{field}={value!r}"):
        to_hf(model, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kw", ALL, ids=str)
def test_left_padding_with_a_mask_equals_the_unpadded_run(kw):
    torch.manual_seed(0)
    cfg = preset("mamba-tiny", vocab_size=40, d_model=D, **{f"mixer.ssm.{k}": v for k, v in kw.items()})
    model = build_model(cfg).double().eval()
    with torch.no_grad():
        for blk in model.decoder.blocks:  # biases and larger projections, so pads would show if they leaked
            m = blk.sub["mixer"]
            m.in_proj.weight.mul_(3)
            if m.rnn_b is not None:
                m.rnn_b.uniform_(-1, 1)
    r = torch.randint(1, 40, (6,))
    ids = torch.cat([torch.zeros(4, dtype=torch.long), r])[None]
    mask = (torch.arange(10) >= 4).long()[None]
    with torch.no_grad():
        torch.testing.assert_close(model(ids, attention_mask=mask)[0, 4:], model(r[None])[0], atol=1e-10, rtol=0)
        state = model.init_state(1, 11)  # the cached prefill + one step too
        model(ids, attention_mask=mask, state=state)
        step = model(torch.tensor([[7]]), state=state)[0, -1]
        torch.testing.assert_close(step, model(torch.cat([r, torch.tensor([7])])[None])[0, -1], atol=1e-10, rtol=0)

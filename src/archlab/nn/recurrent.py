"""Recurrent mixers (seed 001 "Option 2"): Elman RNN, LSTM, GRU, each as its equations and a fast path.

Elman:  h_t = tanh(W_ih x_t + b_ih + W_hh h_{t−1} + b_hh)
LSTM:   i, f, g, o = σ, σ, tanh, σ of (W_ih x_t + b_ih + W_hh h_{t−1} + b_hh) split in four
        c_t = f ⊙ c_{t−1} + i ⊙ g,   h_t = o ⊙ tanh(c_t)
GRU:    r, z = σ(W_ir x_t + b_ir + W_hr h_{t−1} + b_hr), σ(W_iz x_t + b_iz + W_hz h_{t−1} + b_hz)
        n = tanh(W_in x_t + b_in + r ⊙ (W_hn h_{t−1} + b_hn)),   h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}
The mixer output is out_proj(h_t). The weights live in a torch.nn.RNN/LSTM/GRU (same gate layout as
above), whose cuDNN/MKL kernel is the fast path; `reference=True` runs the loop written here instead.
The state is the Markov summary seed 001 criticises: y_t sees x_{<t} only through h_{t−1}.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from archlab.cost.analytic import LayerCost, rnn_macs_per_token
from archlab.cost.walk import linear_children, tokens
from archlab.errors import ConfigError
from archlab.nn.mixer import NO_INPUTS, Mixer, MixerInputs
from archlab.registry import Context, check_config, register

_CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
_GATES = {"rnn": 1, "gru": 3, "lstm": 4}


def cell_step(kind: str, nonlinearity: str, x, h, c, w_ih, w_hh, b_ih, b_hh):
    """One time step of the module docstring's equations (torch's gate order): x (B, D_in), h and c (B, H)."""
    gi = x @ w_ih.T + b_ih
    gh = h @ w_hh.T + b_hh
    if kind == "rnn":
        f = torch.tanh if nonlinearity == "tanh" else torch.relu
        return f(gi + gh), None
    if kind == "lstm":
        i, f, g, o = (gi + gh).chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c
    ir, iz, in_ = gi.chunk(3, dim=-1)
    hr, hz, hn = gh.chunk(3, dim=-1)
    r, z = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
    n = torch.tanh(in_ + r * hn)
    return (1 - z) * n + z * h, None


@dataclass(frozen=True)
class RNNConfig:
    """Elman RNN / LSTM / GRU mixer (seed 001): h_t = f(W x_t + U h_{t-1} + b)."""

    hidden: int | None = None  # None = d_model
    nonlinearity: Literal["tanh", "relu"] = "tanh"  # Elman RNN only

    def __post_init__(self) -> None:
        check_config(self, "mixer.rnn")


def recurrent_cost(name, m, calls, ctx):
    """RNN/LSTM/GRU mixer: g·H·(D+H) MACs per token (either path: torch cell or the reference loop) + out_proj."""
    cell = m.cell
    bt = sum(b * t for b, t in tokens(calls))
    rows = [LayerCost(f"{name}.cell", m.kind, ctx.take_params(cell),
                      bt * rnn_macs_per_token(m.kind, cell.input_size, m.hidden), bt * m.hidden, bt * cell.input_size,
                      note=f"{m.kind}: g·H·(D+H) per token, g={_GATES[m.kind]}",
                      extra={"state_elems": m.hidden * (2 if m.kind == "lstm" else 1)})]
    return rows + linear_children(name, m, ctx)


class RecurrentMixer(Mixer):
    """One recurrent layer D -> H followed by out_proj H -> D; state (h,) or (h, c) for decoding.

    Registered once per cell kind (the subclasses below); `reference = True` runs the loop instead of torch's.
    """

    kind = "rnn"
    supports_cache = True

    def __init__(self, cfg: RNNConfig, ctx: Context, kind: str | None = None) -> None:
        super().__init__()
        self.kind = kind or type(self).kind
        if self.kind not in _CELLS:
            raise ConfigError(f"recurrent mixer kind {self.kind!r} unknown (expected one of {sorted(_CELLS)})")
        self.hidden, self.reference = cfg.hidden or ctx.d_model, False
        kw = {"nonlinearity": cfg.nonlinearity} if self.kind == "rnn" else {}
        self.cell = _CELLS[self.kind](ctx.d_model, self.hidden, batch_first=True, **kw)
        self.nonlinearity = cfg.nonlinearity
        self.out_proj = nn.Linear(self.hidden, ctx.d_model)

    # ------------------------------------------------------- the equations
    def _step(self, x_t, h, c):
        """One time step of the equations in the module docstring; x_t (B, D), h and c (B, H)."""
        p = self.cell
        return cell_step(self.kind, self.nonlinearity, x_t, h, c, p.weight_ih_l0, p.weight_hh_l0, p.bias_ih_l0,
                         p.bias_hh_l0)

    def recurrence_reference(self, x, h, c):
        """The loop over t: (B, T, D) -> hidden states (B, T, H) and the final (h, c)."""
        hs = []
        for t in range(x.shape[1]):
            h, c = self._step(x[:, t], h, c)
            hs.append(h)
        return torch.stack(hs, dim=1), h, c

    def recurrence_fast(self, x, h, c):
        """torch.nn.{RNN,LSTM,GRU} on the same weights."""
        if self.kind == "lstm":
            out, (h, c) = self.cell(x, (h.unsqueeze(0).contiguous(), c.unsqueeze(0).contiguous()))
        else:
            out, h = self.cell(x, h.unsqueeze(0).contiguous())
        return out, h[0], (c[0] if c is not None else None)

    def forward(self, x: torch.Tensor, inputs: MixerInputs = NO_INPUTS) -> torch.Tensor:
        """(B, T, D) -> (B, T, D), continuing from and updating inputs.state when given."""
        bsz, state = x.shape[0], inputs.state
        zeros = x.new_zeros(bsz, self.hidden)
        h = state["h"] if state is not None else zeros
        c = (state["c"] if state is not None else zeros) if self.kind == "lstm" else None
        run = self.recurrence_reference if self.reference else self.recurrence_fast
        out, h, c = run(x, h, c)
        if state is not None:
            state["h"] = h
            if c is not None:
                state["c"] = c
        return self.out_proj(out)

    def init_state(self, batch: int, max_len: int, device=None, dtype=None) -> dict:
        st = {"h": torch.zeros(batch, self.hidden, device=device, dtype=dtype)}
        if self.kind == "lstm":
            st["c"] = torch.zeros(batch, self.hidden, device=device, dtype=dtype)
        return st


for _kind in _CELLS:  # RNNMixer, LSTMMixer, GRUMixer: one registered class per cell, sharing `mixer.rnn`
    register("mixer", _kind, config=RNNConfig, section="mixer.rnn", cost=recurrent_cost)(
        type(f"{_kind.upper()}Mixer", (RecurrentMixer,), {"kind": _kind, "__module__": __name__}))

"""The Mamba mixer (Gu & Dao 2023, seed 000): in_proj → conv1d → act → selective SSM → gate → out_proj.

    x, z  = in_proj(u)                               two branches of width E·D
    x     = act(conv1d(x))                           depthwise, causal (left-padded by d_conv − 1)
    Δ,B,C = softplus(dt_proj(x_proj(x)[:R])), x_proj(x)[R:R+N], x_proj(x)[R+N:]
    y     = SSM_{A,D}(x; Δ, B, C)                    A = −exp(A_log), h_t = exp(Δ_t A) h_{t−1} + Δ_t B_t x_t,
                                                     y_t = C_t h_t + D ⊙ x_t
    out   = out_proj(y ⊙ gate_act(z))                gate_act is SiLU in Mamba (and in transformers)

`activation` is the function after conv1d only (transformers' `hidden_act`); `gate_activation` the one on
the gate branch z (transformers always uses SiLU there). A padding mask (B, T), 1 = real token, zeroes the
padded positions of the mixer's input and of the SSM's input, exactly as transformers' MambaMixer does, so
left padding leaves the real tokens' outputs equal to the unpadded run.

Parameter names follow transformers' MambaMixer (in_proj, conv1d, x_proj, dt_proj, A_log, D, out_proj).
Ablations (SSMConfig): `selective` lists which of Δ, B, C depend on the input — the others become
learned constants (Δ = softplus(dt_bias), B, C ∈ R^N shared over channels, exactly the shape the
selective ones have per token); () is the LTI model. `conv`, `activation` (after conv1d), `gate`,
`gate_activation` (on z), `d_state`, `A_init`.
Seed 000's variants: `ssm` (False: no SSM at all — y = x after conv1d and the activation, identity, so x_proj,
dt_proj, A_log and D are gone too), `activation_position` (after_conv, the default; after_ssm: y = act(SSM(conv(x)));
before_conv: x = conv(act(x))), `conv_kind` (conv, the default; rnn: a per-channel (diagonal) Elman recurrence
h_t = tanh(w ⊙ h_{t−1} + u ⊙ x_t + b) in place of conv1d, its h_{t−1} carried in the step cache).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from archlab.config import check_positive
from archlab.cost.analytic import LayerCost, ssm_scan_macs_per_token, ssm_state_elems
from archlab.cost.walk import linear_children, tokens
from archlab.errors import ConfigError
from archlab.nn.cache import causal_conv_input
from archlab.nn.ffn import activation as activation_fn
from archlab.nn.mixer import NO_INPUTS, Mixer, MixerInputs
from archlab.nn.ssm import selective_scan, selective_scan_step
from archlab.registry import Context, check_config, register


@dataclass(frozen=True)
class SSMConfig:
    """Mamba's selective SSM block (seed 000): in_proj -> conv1d -> act -> SSM(Δ,B,C) -> gate -> out_proj."""

    d_state: int = 16  # N
    d_conv: int = 4  # depthwise causal conv1d kernel
    expand: int = 2  # inner width E·D
    dt_rank: int | None = None  # None = ceil(D / 16)
    selective: tuple[Literal["delta", "B", "C"], ...] = ("delta", "B", "C")  # input-dependent ones; () = LTI
    conv: bool = True
    activation: Literal["silu", "relu", "gelu", "none"] = "silu"  # after conv1d only (transformers' hidden_act)
    gate: bool = True  # y · gate_activation(z) multiplicative gating
    # on the gate branch z (SiLU in Mamba and transformers, whatever hidden_act)
    gate_activation: Literal["silu", "relu", "gelu", "none"] = "silu"
    A_init: Literal["s4d_real", "random", "constant"] = "s4d_real"  # A_n = -(n+1); random; A = -1/2
    dt_min: float = 0.001
    dt_max: float = 0.1
    dt_init_floor: float = 1e-4
    conv_bias: bool = True
    bias: bool = False  # in_proj / out_proj bias
    # fast and parallel; the recurrence step by step; or the chunked scan under torch.compile (fastest for training
    # on CPU, compiles once per input shape)
    scan: Literal["chunked", "reference", "compiled"] = "chunked"
    chunk_size: int = 32
    ssm: bool = True  # False: no selective SSM, y = x after conv1d + activation (identity; no D skip either)
    # where `activation` sits: between conv1d and the SSM (Mamba), after the SSM, or before conv1d
    activation_position: Literal["after_conv", "after_ssm", "before_conv"] = "after_conv"
    # the local mixer before the SSM: causal depthwise conv1d, or a per-channel Elman RNN
    # h_t = tanh(w ⊙ h_{t-1} + u ⊙ x_t + b) (b only with conv_bias)
    conv_kind: Literal["conv", "rnn"] = "conv"

    def __post_init__(self) -> None:
        check_config(self, "mixer.ssm")
        for name in ("d_state", "d_conv", "expand", "chunk_size"):
            check_positive(f"mixer.ssm.{name}", getattr(self, name))
        if self.conv_kind != "conv" and not self.conv:
            raise ConfigError(f"mixer.ssm.conv_kind: {self.conv_kind!r} replaces conv1d, but mixer.ssm.conv is false "
                              "(set conv: true, or leave conv_kind at 'conv')")


def mamba_cost(name, m, calls, ctx):
    """Mamba block: in/x/dt/out projections (Linear), causal depthwise conv1d, selective scan.

    The conv is applied functionally (F.conv1d on the module's weight), so it is priced here from T:
    B·T·E·K MACs. The scan per token and channel and state: the update h ← exp(ΔA)⊙h + (ΔB)x is one
    MAC (an elementwise addcmul FlopCounterMode cannot see) and the readout y = C·h one MAC (a matmul
    it does see); exp(ΔA), ΔB·x and the gate are `ops`.
    """
    rows = linear_children(name, m, ctx)
    E, N, K = m.d_inner, m.d_state, m.d_conv
    bt = sum(b * t for b, t in tokens(calls))
    if m.conv1d is not None:
        rows.append(LayerCost(f"{name}.conv1d", "conv-depthwise", ctx.take_params(m.conv1d), bt * E * K, bt * E,
                              bt * E, note=f"causal depthwise conv1d k={K}: B·T·E·K"))
    if m.rnn_w is not None:
        own_rnn = [p for p in (m.rnn_w, m.rnn_u, m.rnn_b) if p is not None and id(p) not in ctx.seen]
        ctx.seen.update(id(p) for p in own_rnn)
        rows.append(LayerCost(f"{name}.rnn", "rnn-diagonal", sum(p.numel() for p in own_rnn), 2 * bt * E, bt * E,
                              bt * E, ops=2 * bt * E, counter_visible=False,
                              note="per-channel Elman RNN in place of conv1d: w⊙h + u⊙x, tanh: 2·B·T·E"))
    if not m.use_ssm:
        return rows
    half = ssm_scan_macs_per_token(E, N) // 2
    own = ctx.take_params(m, recurse=False)
    rows.append(LayerCost(f"{name}.scan.update", "ssm-scan", own, bt * half, 0, bt * E, ops=3 * bt * E * N,
                          counter_visible=False,
                          note=f"h←exp(ΔA)⊙h+ΔBx: B·T·E·N, E={E} N={N}; elementwise, invisible to the counter",
                          extra={"state_elems": ssm_state_elems(E, N, K if m.conv1d is not None else 1)
                                 + (E if m.rnn_w is not None else 0)}))
    rows.append(LayerCost(f"{name}.scan.readout", "ssm-scan", 0, bt * half, bt * E, ops=bt * E * (1 + int(m.gate)),
                          note="y=C·h (+Dx, gate): B·T·E·N"))
    return rows


@register("mixer", "mamba", config=SSMConfig, section="mixer.ssm", cost=mamba_cost)
class Mamba(Mixer):
    """Mamba block mixer on (B, T, D) with conv and SSM state caches for step-by-step decoding."""

    uses_padding_mask = True  # zeroes the pads inputs.key_padding marks (transformers' MambaMixer)
    supports_cache = True

    def __init__(self, cfg: SSMConfig, ctx: Context) -> None:
        super().__init__()
        d_model, d_state = ctx.d_model, cfg.d_state
        self.d_model, self.d_state, self.d_conv = d_model, d_state, cfg.d_conv
        self.d_inner = E = cfg.expand * d_model
        self.dt_rank = R = cfg.dt_rank or math.ceil(d_model / 16)
        self.cfg = cfg
        self.selective = frozenset(cfg.selective)
        self.gate = cfg.gate
        self.use_ssm = cfg.ssm
        self.act_position = cfg.activation_position
        self.act = activation_fn(cfg.activation)  # after conv1d (or where activation_position says)
        self.gate_act = activation_fn(cfg.gate_activation)  # on z
        self.A_init, self.dt_min, self.dt_max = cfg.A_init, cfg.dt_min, cfg.dt_max
        self.dt_init_floor = cfg.dt_init_floor
        self.scan, self.chunk_size = cfg.scan, cfg.chunk_size
        self.n_layers = ctx.n_layers  # out_proj is scaled by 1/√n_layers at init, as in mamba_ssm

        self.in_proj = nn.Linear(d_model, 2 * E if cfg.gate else E, bias=cfg.bias)  # x (and z) branches
        # depthwise causal conv; the causal left padding is done in forward so a cached prefix can replace it
        use_conv = cfg.conv and cfg.conv_kind == "conv"
        self.conv1d = nn.Conv1d(E, E, cfg.d_conv, groups=E, bias=cfg.conv_bias) if use_conv else None
        self.rnn_w = self.rnn_u = self.rnn_b = None
        if cfg.conv and cfg.conv_kind == "rnn":  # per-channel Elman RNN: h_t = tanh(w ⊙ h_{t-1} + u ⊙ x_t + b)
            self.rnn_w, self.rnn_u = nn.Parameter(torch.empty(E)), nn.Parameter(torch.empty(E))
            self.rnn_b = nn.Parameter(torch.empty(E)) if cfg.conv_bias else None
        if not cfg.ssm:
            self.selective = frozenset()
            self.x_proj = None
            self.out_proj = nn.Linear(E, d_model, bias=cfg.bias)
            self.reset_parameters_special()
            return
        self.x_proj_sizes = (R if "delta" in self.selective else 0,
                             d_state if "B" in self.selective else 0,
                             d_state if "C" in self.selective else 0)
        n_out = sum(self.x_proj_sizes)
        self.x_proj = nn.Linear(E, n_out, bias=False) if n_out else None
        if "delta" in self.selective:
            self.dt_proj = nn.Linear(R, E, bias=True)  # Δ = softplus(W_dt (x_proj x)[:R] + b_dt)
        else:
            self.dt_bias = nn.Parameter(torch.empty(E))  # LTI Δ = softplus(b_dt), one step size per channel
        if "B" not in self.selective:
            self.B = nn.Parameter(torch.empty(d_state))
        if "C" not in self.selective:
            self.C = nn.Parameter(torch.empty(d_state))
        self.A_log = nn.Parameter(torch.empty(E, d_state))
        self.D = nn.Parameter(torch.empty(E))
        self.out_proj = nn.Linear(E, d_model, bias=cfg.bias)
        self.reset_parameters_special()

    @torch.no_grad()
    def reset_parameters_special(self) -> None:
        """mamba_ssm's init: A (S4D-real A_n = −(n+1)), Δ ∈ [dt_min, dt_max] log-uniform via b_dt, D = 1;
        projections and conv keep PyTorch's fan-in init (U(±1/√fan_in), zero biases), out_proj ÷ √n_layers.

        The LM shell's N(0, 0.02) init must not reach the projections: with it, B_t, C_t and x are so small
        that the SSM path is ~10⁻⁴ of the D skip at init and the selective scan barely trains.
        """
        E, N = self.d_inner, self.d_state
        for lin in (self.in_proj, self.x_proj, self.out_proj, self.conv1d):
            if lin is not None:
                lin.reset_parameters()
                if lin.bias is not None and lin is not self.conv1d:
                    nn.init.zeros_(lin.bias)
        self.out_proj.weight.div_(math.sqrt(self.n_layers))
        if self.rnn_w is not None:  # recurrent weight in (0, 1): a stable decaying memory; input weight U(±1)
            self.rnn_w.uniform_(0.0, 1.0)
            self.rnn_u.uniform_(-1.0, 1.0)
            if self.rnn_b is not None:
                self.rnn_b.zero_()
        if not self.use_ssm:
            return
        if self.A_init == "s4d_real":
            A = torch.arange(1, N + 1, dtype=torch.float32).repeat(E, 1)
        elif self.A_init == "random":
            A = torch.empty(E, N).uniform_(1.0, N + 1.0)
        else:  # "constant": A = −1/2 everywhere
            A = torch.full((E, N), 0.5)
        self.A_log.copy_(torch.log(A))
        self.D.fill_(1.0)
        dt = torch.exp(torch.rand(E) * (math.log(self.dt_max) - math.log(self.dt_min)) + math.log(self.dt_min))
        dt = dt.clamp(min=self.dt_init_floor)
        inv_softplus_dt = dt + torch.log(-torch.expm1(-dt))  # softplus⁻¹(dt)
        if "delta" in self.selective:
            bound = self.dt_rank ** -0.5
            nn.init.uniform_(self.dt_proj.weight, -bound, bound)
            self.dt_proj.bias.copy_(inv_softplus_dt)
        else:
            self.dt_bias.copy_(inv_softplus_dt)
        if "B" not in self.selective:
            self.B.fill_(1.0)  # S4D's B = 1
        if "C" not in self.selective:
            nn.init.normal_(self.C, 0.0, N ** -0.5)

    # ------------------------------------------------------------ pieces
    def ssm_params(self, x: torch.Tensor):
        """Δ (B, T, E), B (B, T, N), C (B, T, N): from the input where selective, learned constants otherwise."""
        bsz, T, E = x.shape
        R, nB, nC = self.x_proj_sizes
        dbc = self.x_proj(x) if self.x_proj is not None else x.new_zeros(bsz, T, 0)
        dt_low, Bx, Cx = torch.split(dbc, [R, nB, nC], dim=-1)
        if "delta" in self.selective:
            delta = F.softplus(self.dt_proj(dt_low))
        else:
            delta = F.softplus(self.dt_bias).expand(bsz, T, E)
        B = Bx if "B" in self.selective else self.B.expand(bsz, T, self.d_state)
        C = Cx if "C" in self.selective else self.C.expand(bsz, T, self.d_state)
        return delta, B, C

    def conv(self, x: torch.Tensor, state: dict | None) -> torch.Tensor:
        """Causal depthwise conv over time: y_t = Σ_k w_k x_{t−K+1+k} + b, with the previous K−1 inputs cached."""
        xin = causal_conv_input(x.transpose(1, 2), self.d_conv - 1, state, "conv")  # (B, E, K-1+T)
        return F.conv1d(xin, self.conv1d.weight, self.conv1d.bias, groups=self.d_inner).transpose(1, 2)

    def rnn(self, x: torch.Tensor, state: dict | None, keep: torch.Tensor | None = None) -> torch.Tensor:
        """Per-channel Elman RNN over time on (B, T, E): h_t = tanh(w ⊙ h_{t−1} + u ⊙ x_t + b), h_{t−1} cached.

        keep (B, T, 1), 1 = real token: padded positions leave h as it was (b would otherwise leak into it)."""
        h = state["rnn"].to(x.dtype) if state is not None else x.new_zeros(x.shape[0], x.shape[2])
        ux = x * self.rnn_u + (self.rnn_b if self.rnn_b is not None else 0.0)
        out = []
        for t in range(x.shape[1]):
            new = torch.tanh(self.rnn_w * h + ux[:, t])
            h = new if keep is None else torch.where(keep[:, t] > 0, new, h)
            out.append(h)
        if state is not None:
            state["rnn"] = h
        return torch.stack(out, dim=1)

    def forward(self, x: torch.Tensor, inputs: MixerInputs = NO_INPUTS) -> torch.Tensor:
        """(B, T, D) -> (B, T, D); with inputs.state, continues from and updates the conv and SSM caches.

        inputs.key_padding (B, T') with T' ≥ T, 1/True = real token: its last T columns mark which of these
        positions are real; padded ones are zeroed before in_proj and again before the SSM (transformers'
        MambaMixer).
        """
        keep, state, pad_mask = None, inputs.state, inputs.key_padding
        if pad_mask is not None:
            if pad_mask.dim() != 2 or pad_mask.shape[0] != x.shape[0] or pad_mask.shape[1] < x.shape[1]:
                raise ValueError(f"Mamba's padding mask must have shape (batch, ≥ seq_len) = ({x.shape[0]}, "
                                 f"≥ {x.shape[1]}), got {tuple(pad_mask.shape)}")
            keep = pad_mask[:, pad_mask.shape[1] - x.shape[1]:, None].to(x.dtype)
            x = x * keep
        xz = self.in_proj(x)
        xb, z = xz.chunk(2, dim=-1) if self.gate else (xz, None)  # (B, T, E) each
        if self.act_position == "before_conv":
            xb = self.act(xb)
        if self.conv1d is not None:
            xb = self.conv(xb, state)
        elif self.rnn_w is not None:
            xb = self.rnn(xb, state, keep)
        if self.act_position == "after_conv":
            xb = self.act(xb)
        if keep is not None:
            xb = xb * keep
        y = self.ssm(xb, state) if self.use_ssm else xb
        if self.act_position == "after_ssm":
            y = self.act(y)
        if z is not None:
            y = y * self.gate_act(z)
        return self.out_proj(y)

    def ssm(self, xb: torch.Tensor, state: dict | None) -> torch.Tensor:
        """The selective SSM y = SSM_{A,D}(x; Δ, B, C) on (B, T, E), continuing from and updating state["ssm"]."""
        delta, B, C = self.ssm_params(xb)
        A = -torch.exp(self.A_log.float())  # (E, N), negative: a stable, decaying state
        h0 = state["ssm"] if state is not None else None
        if state is not None and xb.shape[1] == 1:
            y, h = selective_scan_step(h0 if h0 is not None else 0.0, xb[:, 0], delta[:, 0], A, B[:, 0], C[:, 0],
                                       self.D)
            y = y.unsqueeze(1)
        else:
            y, h = selective_scan(xb, delta, A, B, C, self.D, h0, impl=self.scan, chunk_size=self.chunk_size,
                                  return_state=True)
        if state is not None:
            state["ssm"] = h
        return y

    def init_state(self, batch: int, max_len: int, device=None, dtype=None) -> dict:
        """Empty caches: the last K−1 conv inputs (B, E, K−1) (or the RNN's h (B, E)) and the SSM state h (B, E, N)."""
        st = {}
        if self.use_ssm:
            st["ssm"] = torch.zeros(batch, self.d_inner, self.d_state, device=device, dtype=dtype)
        if self.rnn_w is not None:
            st["rnn"] = torch.zeros(batch, self.d_inner, device=device, dtype=dtype)
        if self.conv1d is not None:
            st["conv"] = torch.zeros(batch, self.d_inner, self.d_conv - 1, device=device, dtype=dtype)
        return st

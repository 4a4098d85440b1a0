"""The classical RNN encoder-decoder (seed 003) and its fix with attention (Bahdanau / Luong).

Plain (Sutskever et al. 2014; Cho et al. 2014) — "pass the last hidden state of the encoding stage; the
decoder uses this last hidden state to do the prediction":

    e_1..e_S, h_S = Encoder(x_1..x_S)      h_S = the state after each row's last REAL source token (per layer,
                                            and the LSTM cell c_S); padding never moves the state
    s_0 = h_S,   s_t = Decoder(y_{t-1}, s_{t-1}),   p(y_t | y_<t, x) = softmax(W_out s_t + b)

h_S is the only link: in this mode the encoder outputs e_s are not even kept in the decoding state.

Attention (Luong et al. 2015 "global attention" with the attentional hidden state; no input feeding):

    a_ts = softmax_s score(s_t, e_s)         over real source positions (padding gets weight exactly 0)
      additive       (Bahdanau et al. 2015; Luong's "concat"):  score = vᵀ tanh(W_q s_t + W_k e_s + b_k)
      multiplicative (Luong's "general"):                        score = s_tᵀ W_a e_s
    c_t = Σ_s a_ts e_s,    s̃_t = tanh(W_c [c_t; s_t]),    p(y_t | y_<t, x) = softmax(W_out s̃_t + b)

The query is the decoder's current top-layer state s_t (Luong), not Bahdanau's s_{t-1} with c_t fed back
into the RNN input; without input feeding the decoder RNN runs over the whole teacher-forced target in one
kernel call. The decoder still starts from the encoder's last state, as in both papers.

One embedding table serves source and target (the seq2seq task's joint BPE); with tie_embeddings the output
layer W_out is that table (through an H→D projection when hidden ≠ d_model). The cell equations and weight
layout are those of archlab.nn.recurrent (torch.nn.RNN/LSTM/GRU weights); `impl: reference` runs the
equations as a Python loop (`archlab.nn.recurrent.cell_step`), `impl: torch` the cuDNN/MKL kernels on packed sequences.

The model keeps the contract of archlab.models.transformer that the seq2seq task and archlab.generate use:
forward(input_ids, attention_mask=, decoder_input_ids=, decoder_attention_mask=, state=) -> logits,
init_state(B, ctx, input_ids=, attention_mask=) with state.reorder(index), num_parameters(), .cfg with
shape == "encoder_decoder".
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from archlab.cost.analytic import LayerCost, numel
from archlab.cost.walk import descends, handles
from archlab.models.rnn_seq2seq_config import CELLS, GATES, RNNSeq2SeqConfig  # noqa: F401 (re-exported)
from archlab.nn.cache import reorder_rows
from archlab.nn.embedding import check_token_ids
from archlab.nn.recurrent import cell_step
from archlab.registry import register

_TORCH_CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


# ----------------------------------------------------------------------------------------------- the cells
def _right_padded(mask: torch.Tensor) -> bool:
    """True when every row of a (B, T) bool mask is ones then zeros (what pack_padded_sequence assumes)."""
    lengths = mask.sum(1)
    return bool((mask == (torch.arange(mask.shape[1], device=mask.device)[None] < lengths[:, None])).all())


class RNNStack(nn.Module):
    """n_layers of one cell kind; (B, T, D_in) -> top-layer outputs (B, T, H) and the last (h, c) per layer."""

    def __init__(self, kind: str, d_in: int, hidden: int, n_layers: int, nonlinearity: str, dropout: float) -> None:
        super().__init__()
        self.kind, self.hidden, self.n_layers, self.nonlinearity = kind, hidden, n_layers, nonlinearity
        self.dropout = dropout if n_layers > 1 else 0.0
        kw = {"nonlinearity": nonlinearity} if kind == "rnn" else {}
        self.rnn = _TORCH_CELLS[kind](d_in, hidden, num_layers=n_layers, batch_first=True, dropout=self.dropout,
                                      **kw)

    def forward(self, x, h, c, mask=None, reference: bool = False):
        """x (B, T, D_in); h, c (L, B, H) or c None; mask (B, T) bool: a False step leaves the state as it is
        (its output is 0). Returns (outputs, h, c)."""
        if reference or (mask is not None and not _right_padded(mask)):
            return self._reference(x, h, c, mask)
        hc = (h, c) if self.kind == "lstm" else h
        if mask is None or bool(mask.all()):
            out, hc = self.rnn(x, hc)
        else:
            lengths = mask.sum(1).cpu()
            packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            out, hc = self.rnn(packed, hc)
            out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        h, c = (hc if self.kind == "lstm" else (hc, None))
        return out, h, c

    def _reference(self, x, h, c, mask):
        """The loop over layers and time of `archlab.nn.recurrent.cell_step` (masked steps keep the state)."""
        hs, cs = [], []
        for layer in range(self.n_layers):
            w = [getattr(self.rnn, f"{n}_l{layer}") for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            hl, cl = h[layer], (c[layer] if c is not None else None)
            outs = []
            for t in range(x.shape[1]):
                hn, cn = cell_step(self.kind, self.nonlinearity, x[:, t], hl, cl, *w)
                if mask is not None:
                    m = mask[:, t, None]
                    hl = torch.where(m, hn, hl)
                    cl = torch.where(m, cn, cl) if cn is not None else None
                    outs.append(hn * m)
                else:
                    hl, cl = hn, cn
                    outs.append(hn)
            hs.append(hl)
            cs.append(cl)
            x = torch.stack(outs, dim=1)
            if layer < self.n_layers - 1 and self.dropout:
                x = F.dropout(x, self.dropout, self.training)
        return x, torch.stack(hs), (torch.stack(cs) if c is not None else None)


class RNNAttention(nn.Module):
    """Scores of a decoder state against the encoder outputs, masked softmax, and the context vector."""

    def __init__(self, kind: str, hidden: int, attn_dim: int) -> None:
        super().__init__()
        self.kind = kind
        if kind == "additive":
            self.w_q = nn.Linear(hidden, attn_dim, bias=False)
            self.w_k = nn.Linear(hidden, attn_dim)
            self.v = nn.Linear(attn_dim, 1, bias=False)
        else:  # multiplicative, Luong "general": s_tᵀ W_a e_s
            self.w_a = nn.Linear(hidden, hidden, bias=False)

    def keys(self, memory: torch.Tensor) -> torch.Tensor:
        """The source-side half of the score, computed once per source: W_k e + b_k or W_a e."""
        return self.w_k(memory) if self.kind == "additive" else self.w_a(memory)

    def forward(self, query, memory, keys, mask=None):
        """query (B, T, H), memory (B, S, H), keys = self.keys(memory), mask (B, S) bool ->
        (context (B, T, H), weights (B, T, S))."""
        if self.kind == "additive":
            scores = self.v(torch.tanh(self.w_q(query)[:, :, None] + keys[:, None])).squeeze(-1)
        else:
            scores = query @ keys.transpose(1, 2)
        if mask is not None:
            scores = scores.masked_fill(~mask[:, None], float("-inf"))
        weights = scores.softmax(-1)
        return weights @ memory, weights


@dataclass
class RNNDecodeState:
    """What decoding carries between steps: the decoder state (L, B, H) and, with attention, the encoder
    outputs and their precomputed keys (the plain model keeps only the encoder's last state)."""

    pos: int
    h: torch.Tensor
    c: torch.Tensor | None = None
    memory: torch.Tensor | None = None
    keys: torch.Tensor | None = None
    memory_mask: torch.Tensor | None = None

    def reorder(self, index: torch.Tensor) -> None:
        """Keep batch rows `index` (beam search); the states (L, B, H) hold the batch in dim 1."""
        self.h, self.c = reorder_rows((self.h, self.c), index, dim=1)
        self.memory, self.keys, self.memory_mask = reorder_rows((self.memory, self.keys, self.memory_mask), index)


class RNNSeq2Seq(nn.Module):
    """Encoder RNN -> (last state | attention) -> decoder RNN -> vocabulary logits."""

    def __init__(self, cfg: RNNSeq2SeqConfig) -> None:
        super().__init__()
        self.cfg = cfg
        D, H = cfg.d_model, cfg.hidden
        self.embed = nn.Embedding(cfg.vocab_size, D)
        self.drop = nn.Dropout(cfg.dropout)
        self.encoder = RNNStack(cfg.cell, D, H, cfg.n_layers, cfg.nonlinearity, cfg.dropout)
        self.decoder = RNNStack(cfg.cell, D, H, cfg.n_layers, cfg.nonlinearity, cfg.dropout)
        self.attention = (RNNAttention(cfg.attention, H, cfg.attn_dim or H) if cfg.attention != "none" else None)
        self.combine = nn.Linear(2 * H, H, bias=False) if self.attention is not None else None  # W_c [c_t; s_t]
        d_out = D if cfg.tie_embeddings else H
        self.out_proj = nn.Linear(H, D, bias=False) if cfg.tie_embeddings and H != D else None
        self.lm_head = nn.Linear(d_out, cfg.vocab_size, bias=False)
        self.out_bias = nn.Parameter(torch.zeros(cfg.vocab_size))
        if cfg.tie_embeddings:
            self.lm_head.weight = self.embed.weight
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every parameter ~ U(−init_range, init_range) (Luong et al. 2015), the output bias 0."""
        for name, p in self.named_parameters():
            if name == "out_bias":
                nn.init.zeros_(p)
            else:
                nn.init.uniform_(p, -self.cfg.init_range, self.cfg.init_range)

    @property
    def position_limit(self) -> int | None:
        """None: a recurrence has no position table and reads any length (archlab.generate's rule)."""
        return None

    # ------------------------------------------------------------------------------------- encoder
    def _mask(self, mask, ids):
        if mask is None:
            return None
        if mask.shape != ids.shape:
            raise ValueError(f"attention_mask has shape {tuple(mask.shape)}; expected (batch, seq_len) = "
                             f"{tuple(ids.shape)} (a 1/0 padding mask)")
        mask = mask.bool()
        if not bool(mask.any(1).all()):
            raise ValueError("a source row has no real token (its attention_mask is all 0)")
        return mask

    def encode(self, input_ids, attention_mask=None):
        """(encoder outputs (B, S, H), last real state h (L, B, H), c or None, bool mask or None)."""
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must have shape (batch, seq_len), got {tuple(input_ids.shape)}")
        check_token_ids(input_ids, self.cfg.vocab_size, "input_ids")
        mask = self._mask(attention_mask, input_ids)
        B = input_ids.shape[0]
        p = self.embed.weight
        h0 = p.new_zeros(self.cfg.n_layers, B, self.cfg.hidden)
        c0 = h0.clone() if self.cfg.cell == "lstm" else None
        x = self.drop(self.embed(input_ids))
        out, h, c = self.encoder(x, h0, c0, mask, reference=self.cfg.impl == "reference")
        return out, h, c, mask

    def _state(self, out, h, c, mask) -> RNNDecodeState:
        if self.attention is None:  # the plain model: the last state is all the decoder gets
            return RNNDecodeState(pos=0, h=h, c=c)
        return RNNDecodeState(pos=0, h=h, c=c, memory=out, keys=self.attention.keys(out), memory_mask=mask)

    # ------------------------------------------------------------------------------------- decoder
    def decode(self, ids, state: RNNDecodeState, return_attention: bool = False):
        """Decoder outputs for target ids (B, T) from `state` (advanced in place); logits (B, T, V)
        (and the attention weights (B, T, S) with return_attention)."""
        if ids.dim() != 2:
            raise ValueError(f"decoder_input_ids must have shape (batch, seq_len), got {tuple(ids.shape)}")
        check_token_ids(ids, self.cfg.vocab_size, "decoder_input_ids")
        if ids.shape[0] != state.h.shape[1]:
            raise ValueError(f"decoder_input_ids has {ids.shape[0]} rows but the decoding state holds "
                             f"{state.h.shape[1]}")
        x = self.drop(self.embed(ids))
        out, state.h, state.c = self.decoder(x, state.h, state.c, reference=self.cfg.impl == "reference")
        weights = None
        if self.attention is not None:
            context, weights = self.attention(out, state.memory, state.keys, state.memory_mask)
            out = torch.tanh(self.combine(torch.cat([context, out], dim=-1)))
        state.pos += ids.shape[1]
        out = self.drop(out)
        if self.out_proj is not None:
            out = self.out_proj(out)
        logits = self.lm_head(out) + self.out_bias
        return (logits, weights) if return_attention else logits

    def forward(self, input_ids, attention_mask=None, decoder_input_ids=None, decoder_attention_mask=None,
                state: RNNDecodeState | None = None) -> torch.Tensor:
        """Target-side logits (B, T, V). With `state` (from init_state) the source is not re-encoded and the
        state advances. decoder_attention_mask is accepted and not needed: the decoder is causal, so right
        padding of the target never changes the logits at real positions."""
        if decoder_input_ids is None:
            raise ValueError("an encoder-decoder model needs decoder_input_ids (the shifted target)")
        if state is None:
            state = self._state(*self.encode(input_ids, attention_mask))
        return self.decode(decoder_input_ids, state)

    def attention_weights(self, input_ids, decoder_input_ids, attention_mask=None) -> torch.Tensor:
        """The attention weights a_ts (B, T, S) of a teacher-forced pass (attention models only)."""
        if self.attention is None:
            raise ValueError("model.attention='none': the plain encoder-decoder has no attention weights")
        return self.decode(decoder_input_ids, self._state(*self.encode(input_ids, attention_mask)),
                           return_attention=True)[1]

    @torch.no_grad()
    def init_state(self, batch: int, max_len: int | None = None, *, input_ids=None, attention_mask=None,
                   device=None, dtype=None) -> RNNDecodeState:
        """Run the encoder on input_ids (B, S) and return the decoder's starting state."""
        if input_ids is None:
            raise ValueError("an encoder-decoder model needs the source input_ids to start decoding")
        if input_ids.shape[0] != batch:
            raise ValueError(f"init_state(batch={batch}) got {input_ids.shape[0]} source rows")
        return self._state(*self.encode(input_ids, attention_mask))

    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        """Distinct parameters (the tied output layer counted once)."""
        # named_parameters() yields a shared (tied) tensor once
        return sum(p.numel() for name, p in self.named_parameters()
                   if not (exclude_embeddings and name.startswith("embed")))


def count_parameters(cfg: RNNSeq2SeqConfig) -> int:
    """Closed form of num_parameters (the test checks it against the built model)."""
    V, D, H, L, g = cfg.vocab_size, cfg.d_model, cfg.hidden, cfg.n_layers, GATES[cfg.cell]
    stack = g * H * (D + H) + 2 * g * H + (L - 1) * (g * H * (2 * H) + 2 * g * H)  # W_ih, W_hh, b_ih, b_hh
    A = cfg.attn_dim or H
    attn = {"none": 0, "additive": 2 * H * A + A + A, "multiplicative": H * H}[cfg.attention]
    combine = 2 * H * H if cfg.attention != "none" else 0
    out = (H * D if H != D else 0) if cfg.tie_embeddings else V * H
    return V * D + 2 * stack + attn + combine + out + V


@register("model", "rnn_seq2seq")
def build_rnn_seq2seq(cfg: RNNSeq2SeqConfig) -> RNNSeq2Seq:
    return RNNSeq2Seq(cfg)


# ----------------------------------------------------------------------------------------------- presets
def _p(**kw) -> RNNSeq2SeqConfig:
    return RNNSeq2SeqConfig(**kw)


register("preset", "rnn-seq2seq-tiny")(lambda: _p(name="rnn-seq2seq-tiny"))
register("preset", "rnn-attn-seq2seq-tiny")(lambda: _p(name="rnn-attn-seq2seq-tiny", attention="additive"))
register("preset", "lstm-seq2seq-tiny")(lambda: _p(name="lstm-seq2seq-tiny", cell="lstm"))
register("preset", "lstm-attn-seq2seq-tiny")(lambda: _p(name="lstm-attn-seq2seq-tiny", cell="lstm",
                                                          attention="multiplicative"))


# ----------------------------------------------------------------------------------------------- cost walk
def _register_cost_handler() -> None:
    """Price the score and context matmuls of RNNAttention (its Linear children are priced by the walk)."""
    @handles(RNNAttention)
    @descends
    def _rnn_attention(name, m, calls, ctx):
        macs = outs = 0
        for call in calls:
            (b, t, h), (_, s, _) = call.args[0], call.args[1]
            pairs = b * t * s
            macs += pairs * h * (2 if m.kind == "multiplicative" else 1)  # (score sᵀk) + context Σ a e
            outs += numel(call.out[0]) if isinstance(call.out, tuple) and isinstance(call.out[0], tuple) else 0
        return [LayerCost(name, "rnn-attention", 0, macs, outs,
                          note="score s·(W_a e) and context Σ a·e: B·T·S·H each (additive: context only; "
                               "vᵀtanh(·) is the v Linear)")]

    @handles(RNNSeq2Seq)
    @descends
    def _rnn_seq2seq(name, m, calls, ctx):  # the model's own parameter: the output bias (children walked on)
        adds = sum(numel(c.out) for c in calls if isinstance(c.out, tuple))
        return [LayerCost("out_bias", "bias", ctx.take_params(m, recurse=False), 0, 0, ops=adds,
                          note="output bias b of softmax(W_out s + b): adds, not MACs")]


_register_cost_handler()

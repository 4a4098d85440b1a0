"""RNNSeq2SeqConfig: the classical RNN encoder-decoder's config (the model is archlab.models.rnn_seq2seq)."""
from __future__ import annotations

from dataclasses import dataclass

from archlab.config import ConfigError, check_choice, check_positive, check_probability

CELLS = ("rnn", "lstm", "gru")
ATTENTIONS = ("none", "additive", "multiplicative")
IMPLS = ("torch", "reference")
GATES = {"rnn": 1, "lstm": 4, "gru": 3}


@dataclass(frozen=True)
class RNNSeq2SeqConfig:
    """An RNN encoder-decoder: `cell` picks RNN/LSTM/GRU, `attention` none (last state only) or a score."""

    arch: str = "rnn_seq2seq"
    name: str = "rnn-seq2seq"
    vocab_size: int = 256
    d_model: int = 64  # embedding width (the RNN input)
    hidden: int = 128  # RNN state width H, encoder and decoder (the encoder's last state starts the decoder)
    n_layers: int = 1  # stacked RNN layers in the encoder and in the decoder
    cell: str = "gru"  # rnn | lstm | gru
    nonlinearity: str = "tanh"  # Elman RNN only: tanh | relu
    attention: str = "none"  # none | additive (Bahdanau) | multiplicative (Luong "general")
    attn_dim: int = 0  # additive score width A (0: hidden)
    max_seq_len: int = 128  # longest source / target the tasks and beam search use
    pad_token_id: int = 0
    dropout: float = 0.0  # on embeddings, between stacked layers, and before the output layer
    tie_embeddings: bool = True  # output layer = the embedding table (via an H→D projection if hidden ≠ d_model)
    init_range: float = 0.1  # every weight ~ U(−r, r) (Luong et al. 2015; Sutskever et al. use 0.08)
    impl: str = "torch"  # torch (cuDNN/MKL kernels, packed sequences) | reference (the equations, a Python loop)

    def __post_init__(self) -> None:
        check_choice("model.arch", self.arch, ("rnn_seq2seq",))
        check_choice("model.cell", self.cell, CELLS)
        check_choice("model.nonlinearity", self.nonlinearity, ("tanh", "relu"))
        check_choice("model.attention", self.attention, ATTENTIONS)
        check_choice("model.impl", self.impl, IMPLS)
        for f in ("vocab_size", "d_model", "hidden", "n_layers", "max_seq_len"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int):
                raise ConfigError(f"model.{f}={v!r} must be a whole number")
            check_positive(f"model.{f}", v)
        check_positive("model.attn_dim", self.attn_dim, allow_zero=True)
        check_probability("model.dropout", self.dropout)
        check_positive("model.init_range", self.init_range)
        if self.nonlinearity != "tanh" and self.cell != "rnn":
            raise ConfigError(f"model.nonlinearity={self.nonlinearity!r} applies to cell='rnn' only "
                              f"(cell={self.cell!r} has fixed gate nonlinearities)")
        if self.attn_dim and self.attention != "additive":
            raise ConfigError(f"model.attn_dim={self.attn_dim} is the additive score's width; "
                              f"attention={self.attention!r} has none (set attention: additive or attn_dim: 0)")
        if not 0 <= self.pad_token_id < self.vocab_size:
            raise ConfigError(f"model.pad_token_id={self.pad_token_id} is outside the vocabulary "
                              f"[0, {self.vocab_size})")

    @property
    def shape(self) -> str:
        """Always an encoder-decoder (what the seq2seq task and beam search dispatch on)."""
        return "encoder_decoder"

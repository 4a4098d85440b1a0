"""TransformerConfig: every architectural choice of the sequence-model shell is a field here.

The same shell builds the three Transformer shapes of seeds 002/004 (encoder-decoder,
encoder-only, decoder-only) and, by swapping `mixer.kind`, Mamba and the seed-001 sequence
mixers. An ablation is a dotted-key diff of this config (see archlab.config.apply_overrides).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from archlab.config import ConfigError, check_choice, check_positive, check_probability

POSITION_KINDS = ("none", "sinusoidal", "learned", "rope")
NORM_PLACEMENTS = ("pre", "post", "none")
NORM_KINDS = ("layernorm", "rmsnorm")
ACTIVATIONS = ("relu", "gelu", "gelu_tanh", "silu", "swiglu", "geglu", "reglu", "none")
ATTN_IMPLS = ("sdpa", "reference")
SHAPES = ("decoder", "encoder", "encoder_decoder")
MIXER_KINDS = ("attention", "mamba", "rnn", "lstm", "gru", "dilated_conv", "token_mixing")
SUBLAYERS = ("mixer", "cross", "ffn")


@dataclass(frozen=True)
class EmbeddingConfig:
    """Token (and segment) embedding: e = E[x]·(√D if scale) + P[pos] + S[segment]."""

    scale: bool = False  # multiply by √D, as in "Attention is all you need" §3.4
    n_segments: int = 0  # BERT token-type (segment) embeddings; 0 = none
    norm: bool = False  # BERT: LayerNorm over the summed embeddings
    shared: bool = True  # encoder-decoder: one embedding table for source and target

    def __post_init__(self) -> None:
        check_positive("embed.n_segments", self.n_segments, allow_zero=True)


@dataclass(frozen=True)
class RopeScalingConfig:
    """RoPE frequency scaling (HF `rope_scaling`): none, linear, or llama3."""

    kind: str = "none"
    factor: float = 1.0
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    original_max_seq_len: int = 8192

    def __post_init__(self) -> None:
        check_choice("pos.rope_scaling.kind", self.kind, ("none", "linear", "llama3"))
        check_positive("pos.rope_scaling.factor", self.factor)


@dataclass(frozen=True)
class PositionConfig:
    """Positional information: none, sinusoidal (seed 002), learned table, or rotary (RoPE)."""

    kind: str = "learned"
    # seed 002: PE(pos, 2i) = sin(pos / 10000^(2i/D)), PE(pos, 2i+1) = cos(...) -> "interleaved";
    # Marian/fairseq put all sines first, then all cosines -> "split".
    sinusoidal_layout: str = "interleaved"
    rope_theta: float = 10000.0
    rope_scaling: RopeScalingConfig = field(default_factory=RopeScalingConfig)

    def __post_init__(self) -> None:
        check_choice("pos.kind", self.kind, POSITION_KINDS)
        check_choice("pos.sinusoidal_layout", self.sinusoidal_layout, ("interleaved", "split"))
        check_positive("pos.rope_theta", self.rope_theta)


@dataclass(frozen=True)
class AttentionConfig:
    """Multi-head attention: softmax(QKᵀ/√d + mask)V per head; GQA/MQA via n_kv_heads."""

    n_heads: int = 4
    n_kv_heads: int | None = None  # None = n_heads (MHA); 1 = MQA; between = GQA
    head_dim: int | None = None  # None = d_model // n_heads
    bias: bool = True  # bias on the q, k, v projections
    out_bias: bool | None = None  # bias on the output projection; None = same as `bias`
    causal: bool = True  # decoder self-attention mask; False lets a decoder see the future
    impl: str = "sdpa"  # "sdpa" (torch fast path) or "reference" (the equation, plain ops)
    dropout: float = 0.0  # on attention probabilities

    def __post_init__(self) -> None:
        check_positive("attn.n_heads", self.n_heads)
        if self.n_kv_heads is not None:
            check_positive("attn.n_kv_heads", self.n_kv_heads)
            if self.n_heads % self.n_kv_heads:
                raise ConfigError(
                    f"attn.n_kv_heads={self.n_kv_heads} must divide attn.n_heads={self.n_heads} "
                    "(each key/value head serves a whole group of query heads)"
                )
        if self.head_dim is not None:
            check_positive("attn.head_dim", self.head_dim)
        check_choice("attn.impl", self.impl, ATTN_IMPLS)
        check_probability("attn.dropout", self.dropout)

    @property
    def kv_heads(self) -> int:
        return self.n_kv_heads or self.n_heads


@dataclass(frozen=True)
class FFNConfig:
    """Position-wise feed-forward: W2·act(W1·x) or, for GLU variants, W2·(act(Wg·x) ⊙ W1·x)."""

    enabled: bool = True
    activation: str = "gelu"
    d_ff: int | None = None  # None = 4·d_model
    bias: bool = True

    def __post_init__(self) -> None:
        check_choice("ffn.activation", self.activation, ACTIVATIONS)
        if self.d_ff is not None:
            check_positive("ffn.d_ff", self.d_ff)

    @property
    def gated(self) -> bool:
        return self.activation in ("swiglu", "geglu", "reglu")


@dataclass(frozen=True)
class NormConfig:
    """Which normalisation: LayerNorm (mean and variance) or RMSNorm (scale only)."""

    kind: str = "layernorm"
    eps: float = 1e-5
    bias: bool = True  # LayerNorm bias (RMSNorm has none)

    def __post_init__(self) -> None:
        check_choice("norm.kind", self.kind, NORM_KINDS)
        check_positive("norm.eps", self.eps)


@dataclass(frozen=True)
class BlockConfig:
    """How sub-layers are wired: norm placement, residual on/off, and their order."""

    norm: str = "pre"  # pre: x + f(norm(x)); post: norm(x + f(x)); none: x + f(x)
    residual: bool = True
    order: tuple[str, ...] = ("mixer", "ffn")  # decoder of an encoder-decoder adds "cross"
    final_norm: bool | None = None  # norm after the last block; None = only with pre-norm
    dropout: float = 0.0  # on each sub-layer output before the residual add

    def __post_init__(self) -> None:
        check_choice("block.norm", self.norm, NORM_PLACEMENTS)
        for i, s in enumerate(self.order):
            check_choice(f"block.order[{i}]", s, SUBLAYERS)
        if len(set(self.order)) != len(self.order):
            raise ConfigError(f"block.order={list(self.order)} repeats a sub-layer")
        if "mixer" not in self.order:
            raise ConfigError(f"block.order={list(self.order)} must contain 'mixer'")
        check_probability("block.dropout", self.dropout)


@dataclass(frozen=True)
class SSMConfig:
    """Mamba's selective SSM block (seed 000): in_proj -> conv1d -> act -> SSM(Δ,B,C) -> gate -> out_proj."""

    d_state: int = 16  # N
    d_conv: int = 4  # depthwise causal conv1d kernel
    expand: int = 2  # inner width E·D
    dt_rank: int | None = None  # None = ceil(D / 16)
    selective: tuple[str, ...] = ("delta", "B", "C")  # which are input-dependent; () = LTI
    conv: bool = True
    activation: str = "silu"  # after conv1d only (transformers' hidden_act)
    gate: bool = True  # y · gate_activation(z) multiplicative gating
    gate_activation: str = "silu"  # on the gate branch z (SiLU in Mamba and transformers, whatever hidden_act)
    A_init: str = "s4d_real"  # A_n = -(n+1); or "random", "constant" (A = -1/2)
    dt_min: float = 0.001
    dt_max: float = 0.1
    dt_init_floor: float = 1e-4
    conv_bias: bool = True
    bias: bool = False  # in_proj / out_proj bias
    scan: str = "chunked"  # "chunked" (fast, parallel) or "reference" (the recurrence, sequential)
    chunk_size: int = 32

    def __post_init__(self) -> None:
        for i, s in enumerate(self.selective):
            check_choice(f"mixer.ssm.selective[{i}]", s, ("delta", "B", "C"))
        check_choice("mixer.ssm.activation", self.activation, ("silu", "relu", "gelu", "none"))
        check_choice("mixer.ssm.gate_activation", self.gate_activation, ("silu", "relu", "gelu", "none"))
        check_choice("mixer.ssm.A_init", self.A_init, ("s4d_real", "random", "constant"))
        check_choice("mixer.ssm.scan", self.scan, ("chunked", "reference"))
        for name in ("d_state", "d_conv", "expand", "chunk_size"):
            check_positive(f"mixer.ssm.{name}", getattr(self, name))


@dataclass(frozen=True)
class RNNConfig:
    """Elman RNN / LSTM / GRU mixer (seed 001): h_t = f(W x_t + U h_{t-1} + b)."""

    hidden: int | None = None  # None = d_model
    nonlinearity: str = "tanh"  # Elman RNN only

    def __post_init__(self) -> None:
        check_choice("mixer.rnn.nonlinearity", self.nonlinearity, ("tanh", "relu"))


@dataclass(frozen=True)
class DilatedConvConfig:
    """WaveNet-style causal dilated conv mixer: layer i uses dilation 2^(i mod cycle)."""

    kernel_size: int = 2
    dilation_cycle: int = 0  # 0 = keep doubling through every layer
    activation: str = "gelu"

    def __post_init__(self) -> None:
        check_positive("mixer.conv.kernel_size", self.kernel_size)
        check_positive("mixer.conv.dilation_cycle", self.dilation_cycle, allow_zero=True)
        check_choice("mixer.conv.activation", self.activation, ("relu", "gelu", "silu", "tanh", "none"))


@dataclass(frozen=True)
class TokenMixingConfig:
    """Seed 001 'Option 1': y = act(W x) with a learned causal T×T matrix W over positions."""

    activation: str = "gelu"
    per_head: int = 1  # independent mixing matrices over channel groups

    def __post_init__(self) -> None:
        check_choice("mixer.token_mixing.activation", self.activation, ("relu", "gelu", "silu", "tanh", "none"))
        check_positive("mixer.token_mixing.per_head", self.per_head)


@dataclass(frozen=True)
class MixerConfig:
    """The sequence-mixing sub-layer: attention, or one of the alternatives (hybrid via pattern)."""

    kind: str = "attention"
    pattern: tuple[str, ...] = ()  # hybrid: per-layer kinds, cycled over the layers
    ssm: SSMConfig = field(default_factory=SSMConfig)
    rnn: RNNConfig = field(default_factory=RNNConfig)
    conv: DilatedConvConfig = field(default_factory=DilatedConvConfig)
    token_mixing: TokenMixingConfig = field(default_factory=TokenMixingConfig)

    def __post_init__(self) -> None:
        check_choice("mixer.kind", self.kind, MIXER_KINDS)
        for i, k in enumerate(self.pattern):
            check_choice(f"mixer.pattern[{i}]", k, MIXER_KINDS)

    def kind_of_layer(self, i: int) -> str:
        return self.pattern[i % len(self.pattern)] if self.pattern else self.kind


@dataclass(frozen=True)
class HeadConfig:
    """Output heads: LM head (tied or not), BERT MLM transform, pooler, classifier."""

    tie: bool = True  # LM head weight = token embedding (Press & Wolf 2017)
    bias: bool = False  # LM head bias (BERT MLM, Marian final_logits_bias)
    lm: bool = True  # build the LM / MLM head at all
    transform: bool = False  # BERT MLM: dense -> GELU -> LayerNorm before the decoder
    pooler: bool = False  # BERT: tanh(W h_[CLS]) pooled output
    n_classes: int = 0  # sequence-classification head on the pooled output; 0 = none


@dataclass(frozen=True)
class TransformerConfig:
    """The whole sequence model. `shape` picks the seed-004 architecture family."""

    vocab_size: int
    d_model: int
    n_layers: int
    max_seq_len: int = 1024
    shape: str = "decoder"
    n_decoder_layers: int | None = None  # encoder-decoder: decoder depth (None = n_layers)
    name: str = "custom"
    embed: EmbeddingConfig = field(default_factory=EmbeddingConfig)
    pos: PositionConfig = field(default_factory=PositionConfig)
    attn: AttentionConfig = field(default_factory=AttentionConfig)
    ffn: FFNConfig = field(default_factory=FFNConfig)
    norm: NormConfig = field(default_factory=NormConfig)
    block: BlockConfig = field(default_factory=BlockConfig)
    mixer: MixerConfig = field(default_factory=MixerConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    dropout: float = 0.0  # embedding dropout
    init_std: float = 0.02
    pad_token_id: int | None = None
    arch: str = "transformer"

    def __post_init__(self) -> None:
        check_choice("arch", self.arch, ("transformer",))
        check_choice("shape", self.shape, SHAPES)
        for name in ("vocab_size", "d_model", "n_layers", "max_seq_len"):
            check_positive(name, getattr(self, name))
        check_probability("dropout", self.dropout)
        a = self.attn
        if a.head_dim is None and self.d_model % a.n_heads:
            raise ConfigError(
                f"attn.n_heads={a.n_heads} must divide d_model={self.d_model} "
                "(or set attn.head_dim explicitly)"
            )
        if self.pos.kind == "rope" and self.head_dim % 2:
            raise ConfigError(f"pos.kind='rope' needs an even head size, got head_dim={self.head_dim}")
        if self.pos.kind == "sinusoidal" and self.d_model % 2:
            raise ConfigError(f"pos.kind='sinusoidal' needs an even d_model, got {self.d_model}")
        if "cross" in self.block.order and self.shape != "encoder_decoder":
            raise ConfigError(f"block.order has 'cross' but shape={self.shape!r}; "
                              "cross-attention needs shape='encoder_decoder'")
        if self.head.n_classes and not self.head.pooler:
            raise ConfigError("head.n_classes > 0 needs head.pooler=true (the classifier reads the pooled output)")
        if self.pad_token_id is not None and not 0 <= self.pad_token_id < self.vocab_size:
            raise ConfigError(f"pad_token_id={self.pad_token_id} is outside the vocabulary [0, {self.vocab_size})")
        kinds = set(self.mixer.pattern or (self.mixer.kind,))
        if self.shape != "decoder" and kinds != {"attention"}:
            raise ConfigError(f"mixer.kind={sorted(kinds)} is only supported with shape='decoder' "
                              f"(got shape={self.shape!r})")

    @property
    def head_dim(self) -> int:
        return self.attn.head_dim or self.d_model // self.attn.n_heads

    @property
    def d_ff(self) -> int:
        return self.ffn.d_ff or 4 * self.d_model

    @property
    def decoder_layers(self) -> int:
        return self.n_decoder_layers or self.n_layers

    @property
    def use_final_norm(self) -> bool:
        return self.block.final_norm if self.block.final_norm is not None else self.block.norm == "pre"

"""TransformerConfig: every architectural choice of the sequence-model shell is a field here.

The same shell builds the three Transformer shapes of seeds 002/004 (encoder-decoder,
encoder-only, decoder-only) and, by swapping `mixer.kind`, Mamba and the seed-001 sequence
mixers. An ablation is a dotted-key diff of this config (see archlab.config.apply_overrides).

The component sections (pos, attn, ffn, norm, and mixer.<section> of each mixer) are the config
classes their components declare and register (archlab.registry); the kinds each accepts are the
registered names. Nothing here lists them.
"""
from __future__ import annotations

from dataclasses import dataclass, field, make_dataclass

import archlab.nn  # noqa: F401  (importing the components registers them and their configs)
from archlab import registry
from archlab.config import ConfigError, check_choice, check_positive, check_probability
from archlab.nn.attention import AttentionConfig
from archlab.nn.conv_mixer import DilatedConvConfig  # noqa: F401  (re-exported: the section classes live here too)
from archlab.nn.ffn import FFNConfig
from archlab.nn.mamba import SSMConfig  # noqa: F401
from archlab.nn.norm import NormConfig
from archlab.nn.position import PositionConfig, RopeScalingConfig  # noqa: F401
from archlab.nn.recurrent import RNNConfig  # noqa: F401
from archlab.nn.token_mixing import TokenMixingConfig  # noqa: F401

NORM_PLACEMENTS = ("pre", "post", "none")
SHAPES = ("decoder", "encoder", "encoder_decoder")
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
class BlockConfig:
    """How sub-layers are wired: norm placement, residual on/off, and their order."""

    norm: str = "pre"  # pre: x + f(norm(x)); post: norm(x + f(x)); none: x + f(x)
    residual: bool = True
    order: tuple[str, ...] = ("mixer", "ffn")  # decoder of an encoder-decoder adds "cross" after "mixer"
    # encoder-decoder only: the decoder block's own order (None = `order` with "cross" after "mixer"), e.g.
    # [cross, ffn] for seed 000's "encoder-decoder attention alone, without masked self-attention"
    decoder_order: tuple[str, ...] | None = None
    final_norm: bool | None = None  # norm after the last block; None = only with pre-norm
    dropout: float = 0.0  # on each sub-layer output before the residual add

    def __post_init__(self) -> None:
        check_choice("block.norm", self.norm, NORM_PLACEMENTS)
        for key in ("order", "decoder_order"):
            order = getattr(self, key)
            if order is None:
                continue
            for i, s in enumerate(order):
                check_choice(f"block.{key}[{i}]", s, SUBLAYERS)
            if len(set(order)) != len(order):
                raise ConfigError(f"block.{key}={list(order)} repeats a sub-layer")
            if not order:
                raise ConfigError(f"block.{key} is empty; expected sub-layers from {list(SUBLAYERS)}")
        check_probability("block.dropout", self.dropout)

    def stack_order(self, *, cross: bool) -> tuple[str, ...]:
        """The sub-layers of an encoder / decoder-only block (cross=False: `order` without "cross") or of an
        encoder-decoder's decoder block (cross=True: `decoder_order`, else `order` with "cross" after "mixer")."""
        if not cross:
            return tuple(s for s in self.order if s != "cross")
        if self.decoder_order is not None:
            return self.decoder_order
        if "cross" in self.order:
            return self.order
        return tuple(x for s in self.order for x in ((s, "cross") if s == "mixer" else (s,)))


def _mixer_post_init(self) -> None:
    registry.check_name("mixer.kind", "mixer", self.kind)
    for i, k in enumerate(self.pattern):
        registry.check_name(f"mixer.pattern[{i}]", "mixer", k)


def _kind_of_layer(self, i: int) -> str:
    return self.pattern[i % len(self.pattern)] if self.pattern else self.kind


def _mixer_sections() -> list[tuple[str, type, object]]:
    """One field `mixer.<name>` per registered mixer config section (sections elsewhere, like attn, excluded)."""
    out: dict[str, type] = {}
    for e in registry.entries("mixer").values():
        if e.section and e.section.startswith("mixer."):
            out.setdefault(e.section.removeprefix("mixer."), e.config)
    return [(name, cls, field(default_factory=cls)) for name, cls in out.items()]


# The sequence-mixing sub-layer: `kind` (attention or any registered mixer; `pattern` cycles kinds over the
# layers for hybrids) and the config section of every registered mixer.
MixerConfig = make_dataclass(
    "MixerConfig", [("kind", str, field(default="attention")), ("pattern", tuple[str, ...], field(default=())),
                    *_mixer_sections()],
    namespace={"__post_init__": _mixer_post_init, "kind_of_layer": _kind_of_layer, "__module__": __name__,
               "__doc__": "The sequence-mixing sub-layer: attention, or any registered mixer (hybrid via pattern)."},
    frozen=True)


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
        self.pos.check_sizes(self.d_model, self.head_dim)
        self._check_pos_placement()
        if "cross" in self.block.order and self.shape != "encoder_decoder":
            raise ConfigError(f"block.order has 'cross' but shape={self.shape!r}; "
                              "cross-attention needs shape='encoder_decoder'")
        self._check_token_mixing()
        if self.head.n_classes and not self.head.pooler:
            raise ConfigError("head.n_classes > 0 needs head.pooler=true (the classifier reads the pooled output)")
        if self.pad_token_id is not None and not 0 <= self.pad_token_id < self.vocab_size:
            raise ConfigError(f"pad_token_id={self.pad_token_id} is outside the vocabulary [0, {self.vocab_size})")
        kinds = set(self.mixer.pattern or (self.mixer.kind,))
        if self.shape != "decoder" and kinds != {"attention"}:
            raise ConfigError(f"mixer.kind={sorted(kinds)} is only supported with shape='decoder' "
                              f"(got shape={self.shape!r})")

    def _check_pos_placement(self) -> None:
        """pos.placement='after_block': only for an encoding added to the residual stream (not RoPE / none), and k
        must leave at least one block after it in every stack (an encoder-decoder uses the same k in both)."""
        p = self.pos
        if p.placement == "embedding":
            return
        if getattr(registry.entry("position", p.kind).builder, "applies_to", None) != "embeddings":
            raise ConfigError(f"pos.placement='after_block' needs positions added to the residual stream (pos.kind "
                              f"learned or sinusoidal); pos.kind={p.kind!r} adds none there, so it has no placement "
                              "(use pos.placement='embedding')")
        depths = {"decoder": [("n_layers", self.n_layers)], "encoder": [("n_layers", self.n_layers)],
                  "encoder_decoder": [("n_layers", self.n_layers), ("n_decoder_layers", self.decoder_layers)]}
        for key, n in depths[self.shape]:
            if p.after_block >= n:
                raise ConfigError(f"pos.after_block={p.after_block} must be < {key}={n} (positions are added "
                                  "after block k and read by the blocks after it; k = 0 is pos.placement='embedding')")

    def _check_token_mixing(self) -> None:
        """Refuse block orders under which no position can read another (seed 000's "omit multi-head attention"
        is allowed where something else still mixes tokens: cross-attention, or the other stack)."""
        b = self.block
        if self.shape != "encoder_decoder":
            if b.decoder_order is not None:
                raise ConfigError(f"block.decoder_order is only for shape='encoder_decoder' "
                                  f"(got shape={self.shape!r}); use block.order")
            if "mixer" not in b.stack_order(cross=False):
                raise ConfigError(f"block.order={list(b.order)} has no 'mixer', so a shape={self.shape!r} model mixes "
                                  "no tokens: each position would be predicted from itself alone (add 'mixer')")
            return
        dec = b.stack_order(cross=True)
        if "cross" not in dec:
            key = "block.decoder_order" if b.decoder_order is not None else "block.order"
            raise ConfigError(f"{key}={list(b.decoder_order or b.order)} gives the encoder-decoder's decoder blocks "
                              f"{list(dec)}, without 'cross': the decoder would never read the encoder "
                              "(set block.decoder_order, e.g. [cross, ffn])")

    @property
    def head_dim(self) -> int:
        return self.attn.head_size(self.d_model)

    @property
    def d_ff(self) -> int:
        return self.ffn.d_ff or 4 * self.d_model

    @property
    def decoder_layers(self) -> int:
        return self.n_decoder_layers or self.n_layers

    @property
    def use_final_norm(self) -> bool:
        return self.block.final_norm if self.block.final_norm is not None else self.block.norm == "pre"

"""The sequence-model shell: encoder-only, decoder-only and encoder-decoder Transformers.

Built only from archlab.nn components chosen by a TransformerConfig. The token mixer of each
layer is pluggable (attention by default; Mamba, RNNs, convolutions via `mixer.kind`).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
from torch import nn

from archlab import registry
from archlab.config import ConfigError
from archlab.errors import UserError
from archlab.models.transformer_config import TransformerConfig
from archlab.nn.attention import CrossAttention, build_mask
from archlab.nn.block import Block
from archlab.nn.cache import reorder_rows
from archlab.nn.embedding import TokenEmbedding, check_token_ids
from archlab.nn.ffn import FeedForward, activation
from archlab.nn.mixer import Mixer, MixerInputs
from archlab.nn.norm import build_norm
from archlab.registry import Context


@dataclass
class DecodeState:
    """Everything incremental decoding carries between steps: position, per-layer caches, encoder memory."""

    pos: int
    layers: list[dict]
    memory: torch.Tensor | None = None
    memory_mask: torch.Tensor | None = None

    def reorder(self, index: torch.Tensor) -> None:
        """Keep batch rows `index` in every cache (beam search)."""
        self.layers = [reorder_rows(layer, index) for layer in self.layers]
        self.memory, self.memory_mask = reorder_rows((self.memory, self.memory_mask), index)


def section(cfg, path: str):
    """The config section at a dotted path of the model config ("attn", "mixer.ssm")."""
    for key in path.split("."):
        if not hasattr(cfg, key):  # a mixer registered after MixerConfig was made (outside archlab.nn)
            raise ConfigError(f"the model config has no section {path!r}: a component's module must be in "
                              "archlab.nn so that its config section exists")
        cfg = getattr(cfg, key)
    return cfg


class Stack(nn.Module):
    """N identical blocks and an optional final norm; with pos.placement='after_block', the absolute position
    vectors (`pos_vectors` of forward) are added to the residual stream after block `pos_after` (1-based)."""

    def __init__(self, cfg: TransformerConfig, n_layers: int, *, causal: bool, cross: bool, rope) -> None:
        super().__init__()
        order = cfg.block.stack_order(cross=cross)
        self.causal = causal
        self.pos_after = cfg.pos.after_block if cfg.pos.placement == "after_block" else None
        # a block order without "mixer" (seed 000's "omit multi-head attention") builds no mixer at all
        self.kinds = [cfg.mixer.kind_of_layer(i) for i in range(n_layers)] if "mixer" in order else []
        blocks = []
        for i in range(n_layers):
            ctx = Context(cfg.d_model, layer_index=i, n_layers=cfg.n_layers, max_len=cfg.max_seq_len,
                          head_dim=cfg.head_dim, dropout=cfg.block.dropout, rope=rope, causal=causal)
            subs: dict[str, Mixer] = {}
            if self.kinds:
                mixer = registry.entry("mixer", self.kinds[i])
                subs["mixer"] = mixer.builder(section(cfg, mixer.section), ctx)
            if cross and "cross" in order:
                subs["cross"] = CrossAttention(cfg.attn, dataclasses.replace(ctx, rope=None, causal=False))
            if cfg.ffn.enabled and "ffn" in order:
                subs["ffn"] = FeedForward(cfg.ffn, ctx)
            blocks.append(Block(subs, order, norm_cfg=cfg.norm, d_model=cfg.d_model, placement=cfg.block.norm,
                                residual=cfg.block.residual, dropout=cfg.block.dropout))
        self.blocks = nn.ModuleList(blocks)
        self.final_norm = build_norm(cfg.norm, cfg.d_model) if cfg.use_final_norm else None

    def mixers(self) -> list[tuple[str, Mixer]]:
        """(kind, module) of each layer's mixer; none when the block order has no "mixer"."""
        return [(kind, block.sub["mixer"]) for kind, block in zip(self.kinds, self.blocks, strict=False)]

    def forward(self, x, inputs: MixerInputs, layers: list[dict] | None = None,
                pos_vectors: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, T, D) through every block; layers: the per-layer caches of a DecodeState, or None; pos_vectors:
        the position vectors of x's tokens, (T, D) or (B, T, D), needed exactly when pos_after is set."""
        if (pos_vectors is None) != (self.pos_after is None):
            raise ValueError(f"Stack.forward: pos_vectors must be given exactly when positions are added after a "
                             f"block (pos_after={self.pos_after}); use Transformer.late_positions(positions)")
        if inputs.key_padding is not None:
            self._check_padding(inputs.key_padding)
        for i, block in enumerate(self.blocks):
            x = block(x, inputs, layers[i] if layers is not None else None)
            if i + 1 == self.pos_after:
                x = x + pos_vectors
        return self.final_norm(x) if self.final_norm is not None else x

    def _check_padding(self, key_padding) -> None:
        """A mixer that does not declare uses_padding_mask reads pads as tokens: with a pad before a real token
        (left padding) its outputs would silently change, so that is refused."""
        blind = sorted({kind for kind, mixer in self.mixers() if not mixer.uses_padding_mask})
        if blind and bool((key_padding[:, 1:].bool() & ~key_padding[:, :-1].bool()).any()):
            raise UserError(f"attention_mask has padding before real tokens (left padding), which mixer.kind "
                            f"{', '.join(map(repr, blind))} cannot skip: pad on the right, or use a mixer that "
                            "honours the mask (attention, mamba)")

    def init_state(self, batch, max_len, device, dtype) -> list[dict]:
        """Per layer, the empty caches of its sub-layers; refused for a mixer that cannot decode step by step."""
        cannot = sorted({kind for kind, mixer in self.mixers() if not mixer.supports_cache})
        if cannot:
            raise UserError(f"mixer.kind {', '.join(map(repr, cannot))} keeps no decoding cache "
                            "(supports_cache=False): decode with use_cache=False")
        return [block.init_state(batch, max_len, device, dtype) for block in self.blocks]


class MLMHead(nn.Module):
    """BERT's prediction-head transform: LayerNorm(act(W h + b))."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(cfg.d_model, cfg.d_model)
        self.act = activation("gelu" if cfg.ffn.gated else cfg.ffn.activation)
        self.norm = build_norm(cfg.norm, cfg.d_model)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.norm(self.act(self.dense(h)))


class Transformer(nn.Module):
    """One model class for seed 004's three shapes; `cfg.shape` selects which stacks exist."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        D = cfg.d_model
        self.tok_embed = TokenEmbedding(cfg.vocab_size, D, cfg.embed.scale)
        self.tgt_embed = (TokenEmbedding(cfg.vocab_size, D, cfg.embed.scale)
                          if cfg.shape == "encoder_decoder" and not cfg.embed.shared else None)
        # the position component acts on the embeddings, or (rotary) on q and k: one table serves every layer
        pos = registry.build("position", cfg.pos.kind, cfg.pos,
                             Context(D, max_len=cfg.max_seq_len, head_dim=cfg.head_dim))
        where = getattr(pos, "applies_to", "embeddings")
        self.pos_embed = pos if where == "embeddings" else None
        self.rope = pos if where == "qk" else None
        self.seg_embed = nn.Embedding(cfg.embed.n_segments, D) if cfg.embed.n_segments else None
        self.embed_norm = build_norm(cfg.norm, D) if cfg.embed.norm else None
        self.embed_drop = nn.Dropout(cfg.dropout)
        self.encoder = (Stack(cfg, cfg.n_layers, causal=False, cross=False, rope=self.rope)
                        if cfg.shape in ("encoder", "encoder_decoder") else None)
        self.decoder = None
        if cfg.shape in ("decoder", "encoder_decoder"):
            n = cfg.n_layers if cfg.shape == "decoder" else cfg.decoder_layers
            self.decoder = Stack(cfg, n, causal=cfg.attn.causal, cross=cfg.shape == "encoder_decoder", rope=self.rope)
        h = cfg.head
        self.mlm_transform = MLMHead(cfg) if h.lm and h.transform else None
        self.lm_head = nn.Linear(D, cfg.vocab_size, bias=h.bias) if h.lm else None
        if self.lm_head is not None and h.tie:
            self.lm_head.weight = (self.tgt_embed or self.tok_embed).weight
        self.pooler = nn.Linear(D, D) if h.pooler else None
        self.classifier = nn.Linear(D, h.n_classes) if h.n_classes else None
        self.reset_parameters()

    # ----------------------------------------------------------------- init
    def reset_parameters(self) -> None:
        """N(0, init_std) weights, zero biases, unit norms; residual outputs scaled by 1/√(2L) (GPT-2)."""
        std = self.cfg.init_std
        n_res = 2 * max(self.cfg.n_layers, 1)
        for name, m in self.named_modules():
            if isinstance(m, nn.Linear):
                s = std / math.sqrt(n_res) if name.endswith(("o_proj", "fc_out")) else std
                nn.init.normal_(m.weight, 0.0, s)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (TokenEmbedding, nn.Embedding)) or type(m).__name__ == "LearnedPositions":
                nn.init.normal_(m.weight, 0.0, std)
        for m in self.modules():  # mixers with structured initialisation (Mamba's A, Δ) redo theirs
            if m is not self and hasattr(m, "reset_parameters_special"):
                m.reset_parameters_special()

    # ------------------------------------------------------------ embedding
    @property
    def position_limit(self) -> int | None:
        """The longest sequence this model can read: max_seq_len when it has a position table (learned or
        sinusoidal) or a fixed-size token mixer; None for RoPE or no positions, which extend to any length
        (as transformers does). `forward` and `archlab.generate` follow this one rule."""
        mixers = [b.sub["mixer"] for stack in (self.encoder, self.decoder) if stack is not None for b in stack.blocks
                  if "mixer" in b.sub]
        fixed = self.pos_embed is not None or any(m.fixed_length for m in mixers)
        return self.cfg.max_seq_len if fixed else None

    def _check(self, ids: torch.Tensor, what: str, offset: int = 0) -> None:
        if ids.dim() != 2:
            raise UserError(f"{what} must have shape (batch, seq_len), got {tuple(ids.shape)}")
        check_token_ids(ids, self.cfg.vocab_size, what)
        end, limit = offset + ids.shape[1], self.position_limit
        if limit is not None and end > limit:
            raise UserError(f"{what} reaches position {end}, beyond the model's max_seq_len={limit} "
                            f"(pos.kind={self.cfg.pos.kind!r} has no positions past it)")
        if self.rope is not None:
            self.rope.ensure(end)

    def embed(self, ids, *, positions, token_type_ids=None, target=False) -> torch.Tensor:
        table = self.tgt_embed if target and self.tgt_embed is not None else self.tok_embed
        x = table(ids)
        if self.pos_embed is not None and self.cfg.pos.placement == "embedding":
            x = x + self.pos_embed(positions)
        if self.seg_embed is not None:
            x = x + self.seg_embed(token_type_ids if token_type_ids is not None else torch.zeros_like(ids))
        if self.embed_norm is not None:
            x = self.embed_norm(x)
        return self.embed_drop(x)

    def late_positions(self, positions: torch.Tensor) -> torch.Tensor | None:
        """The position vectors a stack adds after block pos.after_block (pos.placement='after_block'), for the
        absolute positions of its tokens (cached steps included); None when positions enter at the embedding."""
        return self.pos_embed(positions) if self.cfg.pos.placement == "after_block" else None

    @staticmethod
    def _mixer_inputs(t: int, pos: int, attention_mask, *, causal: bool, device, memory=None,
                      memory_padding=None) -> MixerInputs:
        """The mixers' inputs (nn/mixer.py's one mask vocabulary) for T tokens at positions pos..pos+T, from the
        public masks: attention_mask (B, Tk) padding, or an explicit (B, T, Tk) / (B, 1, T, Tk) attention mask
        (e.g. prefix-LM); memory_padding (B, S) for the memory."""
        padded = attention_mask is not None and attention_mask.dim() == 2
        key_padding, explicit = (attention_mask, None) if padded else (None, attention_mask)
        # a plain causal mask at pos 0 is left to SDPA's is_causal (flash attention cannot take an explicit mask)
        plain = causal and pos == 0 and attention_mask is None
        attn_mask = None if plain else build_mask(t, pos + t, causal=causal, key_mask=key_padding, full_mask=explicit,
                                                  device=device)
        memory_mask = None if memory_padding is None else build_mask(t, memory.shape[1], causal=False,
                                                                     key_mask=memory_padding, device=device)
        return MixerInputs(positions=torch.arange(pos, pos + t, device=device), pos=pos, causal=plain and t > 1,
                           attn_mask=attn_mask, key_padding=key_padding, memory=memory, memory_mask=memory_mask)

    # ------------------------------------------------------------ the stacks
    def encode(self, input_ids, attention_mask=None, token_type_ids=None) -> torch.Tensor:
        """Encoder hidden states (B, S, D), bidirectional attention."""
        if self.encoder is None:
            raise UserError(f"a shape={self.cfg.shape!r} model has no encoder")
        self._check(input_ids, "input_ids")
        inputs = self._mixer_inputs(input_ids.shape[1], 0, attention_mask, causal=False, device=input_ids.device)
        x = self.embed(input_ids, positions=inputs.positions, token_type_ids=token_type_ids)
        return self.encoder(x, inputs, pos_vectors=self.late_positions(inputs.positions))

    def decode(self, ids, *, attention_mask=None, memory=None, memory_mask=None, state=None) -> torch.Tensor:
        """Decoder hidden states (B, T, D); causal unless the config ablates it; cached if `state`."""
        if self.decoder is None:
            raise UserError(f"a shape={self.cfg.shape!r} model has no decoder")
        pos = state.pos if state is not None else 0
        self._check(ids, "decoder_input_ids" if self.encoder is not None else "input_ids", pos)
        if state is not None and memory is None:
            memory, memory_mask = state.memory, state.memory_mask
        if self.encoder is not None and memory is None:
            raise UserError("an encoder-decoder model needs the encoder output (memory) to decode")
        t = ids.shape[1]
        inputs = self._mixer_inputs(t, pos, attention_mask, causal=self.decoder.causal, device=ids.device,
                                    memory=memory, memory_padding=memory_mask)
        x = self.embed(ids, positions=inputs.positions, target=True)
        x = self.decoder(x, inputs, state.layers if state is not None else None,
                         pos_vectors=self.late_positions(inputs.positions))
        if state is not None:
            state.pos = pos + t
        return x

    def hidden_states(self, input_ids, *, attention_mask=None, token_type_ids=None,
                      decoder_input_ids=None, decoder_attention_mask=None, state=None) -> torch.Tensor:
        """Final hidden states of the stack that feeds the LM head."""
        shape = self.cfg.shape
        if shape == "encoder":
            return self.encode(input_ids, attention_mask, token_type_ids)
        if shape == "decoder":
            return self.decode(input_ids, attention_mask=attention_mask, state=state)
        if decoder_input_ids is None:
            raise UserError("an encoder-decoder model needs decoder_input_ids (the shifted target)")
        memory = self.encode(input_ids, attention_mask) if state is None or state.memory is None else None
        return self.decode(decoder_input_ids, attention_mask=decoder_attention_mask, memory=memory,
                           memory_mask=attention_mask if memory is not None else None, state=state)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """LM (or MLM) logits from hidden states."""
        if self.lm_head is None:
            raise UserError("this model was built with head.lm=false and has no LM head")
        if self.mlm_transform is not None:
            h = self.mlm_transform(h)
        return self.lm_head(h)

    def forward(self, input_ids, **kwargs) -> torch.Tensor:
        """Logits (B, T, V): next-token for decoders, masked-token for encoders, target-side for enc-dec."""
        return self.logits(self.hidden_states(input_ids, **kwargs))

    def pooled(self, input_ids, attention_mask=None, token_type_ids=None) -> torch.Tensor:
        """BERT pooled output tanh(W h_[CLS] + b), shape (B, D)."""
        if self.pooler is None:
            raise UserError("this model was built with head.pooler=false")
        h = self.encode(input_ids, attention_mask, token_type_ids)
        return torch.tanh(self.pooler(h[:, 0]))

    def classify(self, input_ids, attention_mask=None, token_type_ids=None) -> torch.Tensor:
        """Sequence-classification logits (B, n_classes) from the pooled output."""
        if self.classifier is None:
            raise UserError("this model was built with head.n_classes=0 (no classifier)")
        return self.classifier(self.pooled(input_ids, attention_mask, token_type_ids))

    # ------------------------------------------------------------- decoding
    @torch.no_grad()
    def init_state(self, batch: int, max_len: int | None = None, *, input_ids=None, attention_mask=None,
                   device=None, dtype=None) -> DecodeState:
        """Empty caches for `batch` sequences; for encoder-decoder, also runs the encoder on input_ids."""
        p = next(self.parameters())
        device, dtype = device or p.device, dtype or p.dtype
        max_len = max_len or self.cfg.max_seq_len
        if self.decoder is None:
            raise UserError("an encoder-only model does not decode token by token")
        state = DecodeState(pos=0, layers=self.decoder.init_state(batch, max_len, device, dtype))
        if self.encoder is not None:
            if input_ids is None:
                raise UserError("an encoder-decoder model needs the source input_ids to start decoding")
            state.memory = self.encode(input_ids, attention_mask)
            state.memory_mask = attention_mask
        return state

    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        """Distinct parameters (tied weights counted once)."""
        # named_parameters() yields a shared (tied) tensor once
        return sum(p.numel() for name, p in self.named_parameters()
                   if not (exclude_embeddings and name.startswith(("tok_embed", "pos_embed", "tgt_embed"))))


@registry.register("model", "transformer")
def build_transformer(cfg: TransformerConfig) -> Transformer:
    return Transformer(cfg)

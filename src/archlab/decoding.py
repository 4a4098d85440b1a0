"""Token-by-token decoding as small objects: sampling options, a model's decoder state, per-row stop tracking.

    Sampling      temperature / top-k / top-p, and `sample(logits)`: the next token of each row
    Decoder       the growing token sequence and its cache: `prefill`, `append`, `step`, `slide`
    StopTracker   which rows are finished (a stop token) and when decoding is over (max_new_tokens)
    sample_loop   prefilled logits -> tokens, one screen: sample, record, stop or step

Shapes: B batch, T sequence, V vocabulary. `archlab.generate.generate` wires these together.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from archlab.errors import UserError

__all__ = ["Sampling", "Decoder", "StopTracker", "sample_loop", "sample_next", "filter_logits", "check_sampling"]


def filter_logits(logits: torch.Tensor, top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
    """Set logits outside the top-k / nucleus (smallest set with cumulative probability ≥ top_p) to -inf."""
    if top_k is not None and top_k > 0 and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and 0.0 < top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        drop = cum - sorted_logits.softmax(-1) >= top_p  # keep tokens until the mass before them reaches top_p
        drop[..., 0] = False
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return logits


def check_sampling(temperature: float, top_k: int | None, top_p: float | None,
                   names: tuple[str, str, str] = ("temperature", "top_k", "top_p")) -> None:
    """Raise ValueError naming the option when a sampling setting is out of range.

    temperature: finite and > 0, or exactly 0 for greedy decoding (argmax); top_k: None or ≥ 1;
    top_p: None or 0 < p ≤ 1.
    """
    t_name, k_name, p_name = names
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not math.isfinite(temperature) \
            or temperature < 0:
        raise UserError(f"{t_name}={temperature!r} must be a finite number > 0 (or exactly 0 for greedy decoding)")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise UserError(f"{k_name}={top_k!r} must be an integer ≥ 1 (leave it unset to keep every token)")
    if top_p is not None and (isinstance(top_p, bool) or not isinstance(top_p, (int, float))
                              or not math.isfinite(top_p) or not 0 < top_p <= 1):
        raise UserError(f"{p_name}={top_p!r} must satisfy 0 < p ≤ 1 (1 keeps every token)")


def sample_next(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Next token ids (B,) from last-position logits (B, V); temperature 0 means greedy (argmax).

    Order (as transformers' logits processors): divide by the temperature first, then keep the top-k /
    nucleus of the tempered distribution, then sample. The nucleus depends on the temperature.
    """
    check_sampling(temperature, top_k, top_p)
    if temperature == 0:
        return logits.argmax(-1)
    logits = filter_logits(logits.float() / temperature, top_k, top_p)
    probs = logits.softmax(-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@dataclass(frozen=True)
class Sampling:
    """How the next token is chosen: temperature (0 = greedy), then top-k and nucleus (top-p) filtering."""

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None

    def __post_init__(self) -> None:
        check_sampling(self.temperature, self.top_k, self.top_p)

    def sample(self, logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Next token ids (B,) from last-position logits (B, V)."""
        return sample_next(logits, self.temperature, self.top_k, self.top_p, generator)


class _Tokens:
    """A (B, n) token buffer that grows by doubling (no O(n²) re-concatenation on long generations)."""

    def __init__(self, ids: torch.Tensor, extra: int) -> None:
        self.buf = ids.new_empty(ids.shape[0], ids.shape[1] + max(min(extra, 4096), 1))
        self.buf[:, :ids.shape[1]] = ids
        self.n = ids.shape[1]

    def append(self, col: torch.Tensor) -> None:
        """Add one column (B,) of tokens."""
        if self.n == self.buf.shape[1]:
            grown = self.buf.new_empty(self.buf.shape[0], 2 * self.n)
            grown[:, :self.n] = self.buf
            self.buf = grown
        self.buf[:, self.n] = col
        self.n += 1

    @property
    def ids(self) -> torch.Tensor:
        """The tokens so far (B, n), a view of the buffer."""
        return self.buf[:, :self.n]


class Decoder:
    """A model reading a growing token sequence: next-token logits after the prompt and after each new token.

    Cached (default): `prefill` fills a fresh KV / SSM state with the prompt, `step` feeds only the last token.
    Uncached: every call re-runs the whole (visible) sequence; it must give the same tokens.
    `window=True` keeps only the last max_seq_len tokens visible: when the cache is full, `step` calls `slide`,
    which rebuilds it from those tokens (positions restart), exactly as the uncached path sees them.
    Encoder-decoder models take the source `src` (B, S) and its mask; the state holds the encoded memory.
    """

    def __init__(self, model, *, max_new_tokens: int, src: torch.Tensor | None = None,
                 src_mask: torch.Tensor | None = None, use_cache: bool = True, window: bool = False) -> None:
        self.model, self.src, self.src_mask = model, src, src_mask
        self.max_new_tokens, self.use_cache, self.window = max_new_tokens, use_cache, window
        self.ctx = model.cfg.max_seq_len
        self.enc_kw = {"attention_mask": src_mask} if src_mask is not None else {}
        self.seq: _Tokens | None = None
        self.state = None

    @property
    def ids(self) -> torch.Tensor:
        """Every token so far, prompt included (B, T + n)."""
        return self.seq.ids

    def prefill(self, ids: torch.Tensor) -> torch.Tensor:
        """Start from the prompt ids (B, T); logits (B, V) for the first new token."""
        self.seq = _Tokens(ids, self.max_new_tokens)
        return self._fresh_state() if self.use_cache else self._logits(self._visible(), **self.enc_kw)

    def append(self, tok: torch.Tensor) -> None:
        """Record the new column of tokens (B,); `step` feeds it to the model."""
        self.seq.append(tok)

    def step(self) -> torch.Tensor:
        """Logits (B, V) for the token after the last appended one."""
        if not self.use_cache:
            return self._logits(self._visible(), **self.enc_kw)
        if self.window and self.state.pos >= self.ctx:
            return self.slide()
        # a finished row may hold a negative pad id; the model never sees it (the row's output is discarded)
        return self._logits(self.ids[:, -1:].clamp_min(0), self.state)

    def slide(self) -> torch.Tensor:
        """Cache full: rebuild it from the last max_seq_len tokens (positions restart); logits (B, V)."""
        return self._fresh_state()

    def _visible(self) -> torch.Tensor:
        """The tokens the model reads (B, ≤ T): the last max_seq_len with a window, else all."""
        return self.ids[:, -self.ctx:] if self.window else self.ids

    def _fresh_state(self) -> torch.Tensor:
        """A new cache filled with the visible tokens; logits (B, V) after them."""
        w = self._visible()
        # without a window the cache grows past its initial size, so reserve room for every new token
        size = self.ctx if self.window else min(w.shape[1] + self.max_new_tokens, max(self.ctx, w.shape[1] + 1))
        self.state = self.model.init_state(w.shape[0], size, input_ids=self.src, attention_mask=self.src_mask)
        return self._logits(w, self.state, **self.enc_kw)

    def _logits(self, ids: torch.Tensor, state=None, **enc_kw) -> torch.Tensor:
        """Last-position logits (B, V) of the decoder input ids (through `state` when given)."""
        kw = {} if state is None else {"state": state}
        if self.src is None:
            return self.model(ids, **kw)[:, -1]
        return self.model(self.src, decoder_input_ids=ids, **kw, **enc_kw)[:, -1]


class StopTracker:
    """Per-row stop state: a row finishes at its first stop token, and its later tokens become a pad;
    decoding is over when every row has finished or max_new_tokens tokens were produced."""

    def __init__(self, batch: int, max_new_tokens: int, stop_tokens: Sequence[int] = (), pad_id: int | None = None,
                 device: torch.device | str | None = None) -> None:
        self.max_new_tokens, self.pad_id, self.produced = max_new_tokens, pad_id, 0
        self.stops = torch.tensor(sorted(set(stop_tokens)), dtype=torch.long, device=device)
        self.finished = torch.zeros(batch, dtype=torch.bool, device=device)
        self.fill = torch.full((batch,), -1, dtype=torch.long, device=device)  # what a finished row emits

    @property
    def done(self) -> bool:
        """Whether decoding is over (checked before producing a token)."""
        return self.produced >= self.max_new_tokens or (self.stops.numel() > 0 and bool(self.finished.all()))

    def mask(self, tok: torch.Tensor) -> torch.Tensor:
        """The sampled tokens (B,) with each finished row's replaced by its pad."""
        return torch.where(self.finished, self.fill, tok) if self.finished.any() else tok

    def update(self, tok: torch.Tensor) -> bool:
        """Record the emitted tokens (B,); True when decoding is over."""
        self.produced += 1
        if self.stops.numel():
            just = ~self.finished & torch.isin(tok, self.stops)
            self.fill = torch.where(just, tok if self.pad_id is None else torch.full_like(tok, self.pad_id), self.fill)
            self.finished |= just
        return self.done


def sample_loop(dec: Decoder, logits: torch.Tensor, sampling: Sampling, stop: StopTracker,
                generator: torch.Generator | None = None,
                on_token: Callable[[torch.Tensor], None] | None = None) -> torch.Tensor:
    """Tokens after the prefilled `logits` (B, V) until `stop` says done; returns every token (B, T + n)."""
    while not stop.done:
        tok = stop.mask(sampling.sample(logits, generator))  # every row samples, so the generator's draws match
        dec.append(tok)
        if on_token is not None:
            on_token(tok)
        if stop.update(tok):
            break  # the last token is never fed back: T + n - 1 positions are read
        logits = dec.step()
    return dec.ids

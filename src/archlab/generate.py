"""Decoding: greedy / temperature / top-k / top-p sampling and beam search, with KV (and SSM) state caches.

Decoder-only models keep a per-layer cache (`model.init_state`, then `model(ids, state=state)`);
encoder-decoder models run the encoder once and keep the cross-attention keys/values of the memory
in the same state. Uncached decoding (`use_cache=False`) re-runs the whole prefix every step and must
give the same tokens — the tests check that. The pieces (Sampling, Decoder, StopTracker, sample_loop)
live in `archlab.decoding`; `generate` wires them together.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from archlab.decoding import Decoder, Sampling, StopTracker, check_sampling, filter_logits, sample_loop, sample_next
from archlab.errors import UserError

__all__ = ["generate", "beam_search", "sample_next", "filter_logits", "check_sampling", "GenerationInterrupted",
           "position_limit", "Sampling", "Decoder", "StopTracker", "sample_loop"]


class GenerationInterrupted(KeyboardInterrupt):
    """Ctrl-C during `generate(..., interruptible=True)`: `.ids` holds the prompt and every token produced."""

    def __init__(self, ids: torch.Tensor) -> None:
        super().__init__(f"interrupted after {ids.shape[1]} tokens")
        self.ids = ids


def position_limit(model) -> int | None:
    """The model's position limit (None: positions extend without bound, as RoPE in transformers)."""
    return getattr(model, "position_limit", model.cfg.max_seq_len)


def _as_batch(ids, device, what: str) -> torch.Tensor:
    if isinstance(ids, torch.Tensor):
        t = ids
    else:
        t = torch.tensor(list(ids) if ids and isinstance(ids[0], (list, tuple)) else [list(ids)], dtype=torch.long)
    if t.dim() == 1:
        t = t[None]
    if t.dim() != 2 or t.shape[1] == 0:
        raise UserError(f"{what} must be a non-empty (batch, length) sequence of token ids, "
                        f"got shape {tuple(t.shape)}")
    return t.to(device=device, dtype=torch.long)


def _check_vocab(ids: torch.Tensor, vocab: int, what: str) -> None:
    lo, hi = int(ids.min()), int(ids.max())
    if lo < 0 or hi >= vocab:
        raise UserError(f"{what} holds token id {lo if lo < 0 else hi}, outside the vocabulary [0, {vocab})")


def _generation_inputs(model, prompt_ids, src_ids, max_new_tokens: int, window: bool):
    """generate's checked inputs: (prompt ids (B, T), source ids or None, encoder-decoder?) on the model's device;
    a ValueError names what is wrong (a bad length, a token outside the vocabulary, too long for the model)."""
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise UserError(f"max_new_tokens={max_new_tokens!r} must be a non-negative integer")
    cfg = model.cfg
    device = next(model.parameters()).device
    ids = _as_batch(prompt_ids, device, "prompt")
    ctx, limit = cfg.max_seq_len, position_limit(model)
    _check_vocab(ids, cfg.vocab_size, "prompt")
    kind = getattr(getattr(cfg, "pos", None), "kind", "?")
    if limit is not None and ids.shape[1] > limit:
        raise UserError(f"prompt has {ids.shape[1]} tokens, longer than the model's context max_seq_len={limit}")
    # the last new token is never fed back, so T + n - 1 positions are read
    if limit is not None and not window and ids.shape[1] + max_new_tokens - 1 > limit:
        raise UserError(f"a {ids.shape[1]}-token prompt + max_new_tokens={max_new_tokens} needs "
                        f"{ids.shape[1] + max_new_tokens - 1} positions, beyond max_seq_len={limit} of this model "
                        f"(pos.kind={kind!r} has no positions past it): generate at most "
                        f"{limit - ids.shape[1] + 1} tokens, or slide a {limit}-token window "
                        "(window=True; `archlab sample --slide-window`)")
    src = None
    enc_dec = getattr(cfg, "shape", "decoder") == "encoder_decoder"
    if enc_dec:
        if src_ids is None:
            raise UserError("an encoder-decoder model needs src_ids (the source sentence) to generate")
        src = _as_batch(src_ids, device, "source")
        _check_vocab(src, cfg.vocab_size, "source")
        if limit is not None and src.shape[1] > limit:
            raise UserError(f"source has {src.shape[1]} tokens, longer than the model's context max_seq_len={ctx}")
        if src.shape[0] != ids.shape[0]:
            ids = ids.expand(src.shape[0], -1).contiguous()
    elif getattr(cfg, "shape", "decoder") != "decoder":
        raise UserError(f"a shape={cfg.shape!r} model cannot generate text; use a decoder or encoder-decoder")
    return ids, src, enc_dec


@contextmanager
def _eval_mode(model) -> Iterator[None]:
    """The model in eval mode for the block; its training flag restored after."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


@torch.no_grad()
def generate(model, prompt_ids, max_new_tokens: int, *, temperature: float = 1.0, top_k: int | None = None,
             top_p: float | None = None, stop_tokens: Sequence[int] = (), use_cache: bool = True,
             generator: torch.Generator | None = None, src_ids=None, src_mask: torch.Tensor | None = None,
             pad_id: int | None = None, window: bool = False,
             on_token: Callable[[torch.Tensor], None] | None = None, interruptible: bool = False) -> torch.Tensor:
    """Extend prompt_ids (B, T) by up to max_new_tokens; returns (B, T + n) including the prompt.

    Decoder-only: the prompt is the context. Encoder-decoder: `src_ids` is the source sentence and
    `prompt_ids` the decoder start (usually [[bos]]). A row that emits a stop token is finished; later
    positions of that row are filled with `pad_id` (default: the stop token it emitted).

    Length rule (the one `model.forward` follows): a model without a position limit (RoPE or no positions)
    keeps extending positions past max_seq_len exactly as transformers does. A model with a position table
    (learned, sinusoidal) refuses to go past max_seq_len. `window=True` (any model) instead slides a
    max_seq_len-token window (the cache is rebuilt from the last max_seq_len tokens; positions restart) —
    the better choice for a RoPE model trained only on max_seq_len-token windows.
    `on_token(col)` is called with each new column (B,) of tokens as it is produced (streaming). With
    `interruptible=True`, Ctrl-C raises GenerationInterrupted carrying the tokens produced so far.
    """
    sampling = Sampling(temperature, top_k, top_p)
    ids, src, _ = _generation_inputs(model, prompt_ids, src_ids, max_new_tokens, window)
    dec = Decoder(model, max_new_tokens=max_new_tokens, src=src, src_mask=src_mask, use_cache=use_cache,
                  window=window)
    stop = StopTracker(ids.shape[0], max_new_tokens, stop_tokens, pad_id, device=ids.device)
    with _eval_mode(model):
        try:
            return sample_loop(dec, dec.prefill(ids), sampling, stop, generator, on_token).clone()
        except KeyboardInterrupt:
            if interruptible:
                raise GenerationInterrupted((ids if dec.seq is None else dec.ids).clone()) from None
            raise


@torch.no_grad()
def beam_search(model, src_ids, *, bos_id: int, eos_id: int, beam_size: int = 4, max_new_tokens: int = 64,
                length_penalty: float = 1.0, src_mask: torch.Tensor | None = None, use_cache: bool = True,
                prompt_ids=None) -> list[list[int]]:
    """Best hypothesis per source row by beam search; score = log p / length**length_penalty (GNMT/HF style).

    Encoder-decoder: src_ids (B, S) is the source, decoding starts from [bos_id]. Decoder-only: src_ids is
    the prompt and the continuation is searched. Returned token lists exclude the start token and eos.
    """
    src, seqs, steps = _beam_inputs(model, src_ids, beam_size, bos_id, max_new_tokens)
    B, K, device = src.shape[0], beam_size, src.device
    src_k = src.repeat_interleave(K, 0) if model.cfg.shape == "encoder_decoder" else None
    enc_kw = {"attention_mask": src_mask.repeat_interleave(K, 0)} if src_mask is not None else {}
    n_prefix = seqs.shape[1]
    scores = torch.full((B, K), float("-inf"), device=device)
    scores[:, 0] = 0.0
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(B)]
    done = [False] * B
    with _eval_mode(model):
        state, logits = _beam_prefill(model, src, src_mask, seqs, K) if use_cache else (None, None)
        for t in range(steps):
            if not use_cache:
                logits = _beam_logits(model, src_k, seqs, **enc_kw)
            logp = F.log_softmax(logits.float(), -1).view(B, K, -1)
            V = logp.shape[-1]
            cand = (scores[:, :, None] + logp).view(B, K * V)
            top_scores, top_idx = cand.topk(2 * K, dim=-1)
            new_beam, new_tok, new_scores = _select_beams(top_scores, top_idx, V, K, eos_id, seqs, n_prefix, t + 1,
                                                          length_penalty, finished, done)
            if all(done):
                break
            index = (torch.arange(B, device=device)[:, None] * K + new_beam).view(-1)
            seqs = torch.cat([seqs[index], new_tok.view(-1, 1)], dim=1)
            scores = new_scores
            if use_cache:
                state.reorder(index)
                logits = _beam_logits(model, src_k, new_tok.view(-1, 1), state)
    return _best_hypotheses(finished, done, scores, seqs, n_prefix, length_penalty)


def _beam_inputs(model, src_ids, beam_size: int, bos_id: int, max_new_tokens: int):
    """beam_search's checked source (B, S), the start tokens of its B·K beams and the number of steps that fit."""
    cfg = model.cfg
    src = _as_batch(src_ids, next(model.parameters()).device, "source")
    _check_vocab(src, cfg.vocab_size, "source")
    ctx = cfg.max_seq_len
    if src.shape[1] > ctx:
        raise UserError(f"source has {src.shape[1]} tokens, longer than the model's context max_seq_len={ctx}")
    if cfg.shape == "encoder_decoder":
        start = torch.full((src.shape[0] * beam_size, 1), bos_id, dtype=torch.long, device=src.device)
        return src, start, min(max_new_tokens, ctx - 1)
    return src, src.repeat_interleave(beam_size, 0), min(max_new_tokens, ctx - src.shape[1])


def _beam_prefill(model, src: torch.Tensor, src_mask: torch.Tensor | None, seqs: torch.Tensor, K: int):
    """A fresh cache holding the beams' start tokens seqs (B·K, T0), and the logits (B·K, V) after them."""
    ctx = model.cfg.max_seq_len
    if model.cfg.shape != "encoder_decoder":
        state = model.init_state(seqs.shape[0], ctx)
        return state, _beam_logits(model, None, seqs, state)
    # encode each source once, then copy the memory to its beams
    state = model.init_state(src.shape[0], ctx, input_ids=src, attention_mask=src_mask)
    state.reorder(torch.arange(src.shape[0], device=src.device).repeat_interleave(K))
    return state, _beam_logits(model, src.repeat_interleave(K, 0), seqs, state)


def _beam_logits(model, src_k: torch.Tensor | None, ids: torch.Tensor, state=None, **enc_kw) -> torch.Tensor:
    """Last-position logits (B·K, V) of the beams' decoder inputs; src_k: each beam's source (None: decoder-only)."""
    kw = {} if state is None else {"state": state}
    if src_k is None:
        return model(ids, **kw)[:, -1]
    return model(src_k, decoder_input_ids=ids, **kw, **enc_kw)[:, -1]


def _select_beams(top_scores: torch.Tensor, top_idx: torch.Tensor, V: int, K: int, eos_id: int, seqs: torch.Tensor,
                  n_prefix: int, length: int, length_penalty: float, finished: list[list[tuple[float, list[int]]]],
                  done: list[bool]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One beam-search step's choice per source row from its 2K best candidates (beam, token): a candidate ending
    in eos becomes a finished hypothesis (score / length**length_penalty), the K best others live on. Updates
    `finished` and `done` in place; returns (source beam, new token, score) of the K live beams, (B, K) each."""
    B, device = top_scores.shape[0], top_scores.device
    new_beam = torch.zeros(B, K, dtype=torch.long, device=device)
    new_tok = torch.full((B, K), eos_id, dtype=torch.long, device=device)
    new_scores = torch.full((B, K), float("-inf"), device=device)
    ts, ti = top_scores.tolist(), top_idx.tolist()
    for b in range(B):
        if done[b]:
            continue
        j = 0
        for s, idx in zip(ts[b], ti[b]):
            beam, tok = divmod(idx, V)
            if s == float("-inf"):
                break
            if tok == eos_id:
                hyp = seqs[b * K + beam, n_prefix:].tolist()
                finished[b].append((s / (length ** length_penalty), hyp))
                continue
            new_beam[b, j], new_tok[b, j], new_scores[b, j] = beam, tok, s
            j += 1
            if j == K:
                break
        # stop this row once K hypotheses are finished and no live beam can still beat the worst of them
        if len(finished[b]) >= K:
            finished[b] = sorted(finished[b], key=lambda x: -x[0])[:K]
            best_live = float(new_scores[b].max())
            bound = best_live / (length ** length_penalty) if length_penalty >= 0 else best_live
            if bound <= finished[b][-1][0]:
                done[b] = True
    return new_beam, new_tok, new_scores


def _best_hypotheses(finished: list[list[tuple[float, list[int]]]], done: list[bool], scores: torch.Tensor,
                     seqs: torch.Tensor, n_prefix: int, length_penalty: float) -> list[list[int]]:
    """The best hypothesis of each row: its finished ones, plus its live beams where the row ran out of length."""
    B, K = scores.shape
    out = []
    for b in range(B):
        hyps = list(finished[b])
        if not done[b]:  # out of length: live beams compete too
            for k in range(K):
                s = float(scores[b, k])
                if s > float("-inf"):
                    hyps.append((s / (max(seqs.shape[1] - n_prefix, 1) ** length_penalty),
                                 seqs[b * K + k, n_prefix:].tolist()))
        out.append(max(hyps, key=lambda x: x[0])[1] if hyps else [])
    return out

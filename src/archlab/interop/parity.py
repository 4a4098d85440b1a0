"""Greedy decoding over archlab models and side-by-side checks against `transformers`."""
from __future__ import annotations

import torch


@torch.no_grad()
def greedy(model: torch.nn.Module, input_ids: torch.Tensor, n_new: int, *, attention_mask: torch.Tensor | None = None,
           decoder_start_token_id: int | None = None) -> torch.Tensor:
    """The `n_new` greedily chosen tokens (B, n_new), decoded step by step through the model's state cache.

    Decoder-only: continues `input_ids`. Encoder-decoder: `input_ids` is the source; decoding starts from
    `decoder_start_token_id` (default: the imported config's, else the pad id as in Marian).
    """
    from archlab.interop import decoder_start_id

    model.eval()
    b, t = input_ids.shape
    if getattr(model.cfg, "shape", "decoder") == "encoder_decoder":
        start = decoder_start_token_id if decoder_start_token_id is not None else decoder_start_id(model)
        if start is None:
            raise ValueError("an encoder-decoder model needs decoder_start_token_id to start decoding")
        state = model.init_state(b, n_new + 1, input_ids=input_ids, attention_mask=attention_mask)
        cur = torch.full((b, 1), start, dtype=torch.long, device=input_ids.device)
        out = []
        for _ in range(n_new):
            logits = model(input_ids, decoder_input_ids=cur, attention_mask=attention_mask, state=state)[:, -1]
            cur = logits.argmax(-1, keepdim=True)
            out.append(cur)
        return torch.cat(out, dim=1)
    state = model.init_state(b, t + n_new)
    logits = model(input_ids, attention_mask=attention_mask, state=state)[:, -1] if attention_mask is not None \
        else model(input_ids, state=state)[:, -1]
    out = []
    for i in range(n_new):
        nxt = logits.argmax(-1, keepdim=True)
        out.append(nxt)
        if i + 1 < n_new:
            if attention_mask is not None:
                attention_mask = torch.cat([attention_mask, attention_mask.new_ones(b, 1)], dim=1)
                logits = model(nxt, attention_mask=attention_mask, state=state)[:, -1]
            else:
                logits = model(nxt, state=state)[:, -1]
    return torch.cat(out, dim=1)


@torch.no_grad()
def hf_greedy(hf_model, input_ids: torch.Tensor, n_new: int, *, attention_mask: torch.Tensor | None = None,
              decoder_start_token_id: int | None = None) -> torch.Tensor:
    """The `n_new` tokens `transformers` generate() picks greedily (no early stop at EOS)."""
    kw = {"decoder_start_token_id": decoder_start_token_id} if decoder_start_token_id is not None else {}
    out = hf_model.generate(input_ids, attention_mask=attention_mask if attention_mask is not None
                            else torch.ones_like(input_ids), do_sample=False, num_beams=1, max_new_tokens=n_new,
                            min_new_tokens=n_new, eos_token_id=None, pad_token_id=0,
                            forced_eos_token_id=None, forced_bos_token_id=None, **kw)
    return out[:, -n_new:]


@torch.no_grad()
def check_against_transformers(model: torch.nn.Module, hf_dir, *, batch: int = 2, seq_len: int = 12,
                               seed: int = 0) -> float:
    """Load `hf_dir` with transformers and return max |logits_archlab − logits_transformers| on random tokens.

    Encoder-only models without an LM head compare the last hidden states instead.
    """
    import transformers

    from archlab.interop.hf_io import read_config

    arch = (read_config(hf_dir).get("architectures") or ["AutoModel"])[0]
    hf_model = getattr(transformers, arch).from_pretrained(str(hf_dir)).eval()
    cfg = model.cfg
    g = torch.Generator().manual_seed(seed)
    t = min(seq_len, cfg.max_seq_len)
    ids = torch.randint(0, cfg.vocab_size, (batch, t), generator=g)
    model.eval()
    if cfg.shape == "encoder_decoder":
        dec = torch.randint(0, cfg.vocab_size, (batch, t), generator=g)
        return float((model(ids, decoder_input_ids=dec) - hf_model(ids, decoder_input_ids=dec).logits).abs().max())
    out = hf_model(ids)
    if cfg.shape == "encoder" and not cfg.head.lm:
        if cfg.head.n_classes:
            return float((model.classify(ids) - out.logits).abs().max())
        return float((model.encode(ids) - out.last_hidden_state).abs().max())
    return float((model(ids) - out.logits).abs().max())

"""Shared checks: KV-cached decoding equals the full forward pass (a decoder fed a prompt then one token at a time;
an encoder-decoder's decoder one token at a time over a padded source)."""
import torch

FP32 = dict(atol=1e-5, rtol=1.3e-6)


def assert_decoder_cache_matches_full_forward(model, seq_len: int = 11, prompt: int = 4) -> None:
    ids = torch.randint(0, model.cfg.vocab_size, (2, seq_len))
    with torch.no_grad():
        full = model(ids)
        state = model.init_state(2, 16)
        steps = [model(ids[:, :prompt], state=state)]  # a prompt, then one token at a time
        steps += [model(ids[:, t:t + 1], state=state) for t in range(prompt, seq_len)]
    torch.testing.assert_close(torch.cat(steps, 1), full, **FP32)


def assert_encoder_decoder_cache_matches_full_forward(model) -> None:
    src, tgt = torch.randint(0, 256, (2, 9)), torch.randint(0, 256, (2, 8))
    src_mask = torch.ones(2, 9, dtype=torch.long)
    src_mask[1, 6:] = 0  # row 1's source is right-padded
    with torch.no_grad():
        full = model(src, attention_mask=src_mask, decoder_input_ids=tgt)
        state = model.init_state(2, 8, input_ids=src, attention_mask=src_mask)
        steps = [model(src, attention_mask=src_mask, decoder_input_ids=tgt[:, t:t + 1], state=state)
                 for t in range(8)]
    torch.testing.assert_close(torch.cat(steps, 1), full, **FP32)

"""Pinned decoding outputs: the tokens `generate` / `beam_search` gave before the decoding refactor.

Weights are drawn per parameter name (not in construction order), so a refactor inside a mixer that keeps
its parameter names and its function keeps these pins.
"""
from __future__ import annotations

import zlib

import pytest
import torch

from archlab.generate import beam_search, generate
from archlab.models import build_model, preset


def seeded_model(name: str, **over):
    """A tiny model whose weights depend only on each parameter's name and shape."""
    model = build_model(preset(name, **over)).eval()
    with torch.no_grad():
        for pname, p in sorted(model.named_parameters()):
            g = torch.Generator().manual_seed(zlib.crc32(pname.encode()))
            noise = torch.randn(p.shape, generator=g, dtype=torch.float32)
            if p.dim() >= 2:
                p.copy_(noise / p[0].numel() ** 0.5)
            else:
                p.copy_(noise * 0.1 + (1.0 if pname.endswith("weight") else 0.0))
    return model


def _prompt(b: int, t: int, seed: int) -> torch.Tensor:
    return torch.randint(3, 256, (b, t), generator=torch.Generator().manual_seed(seed))


def _gen(model, prompt, n, seed=0, **kw):
    return generate(model, prompt, n, generator=torch.Generator().manual_seed(seed), **kw).tolist()


def case_greedy_gpt():
    return _gen(seeded_model("gpt-tiny", max_seq_len=32), _prompt(2, 5, 1), 12, temperature=0)


def case_greedy_llama_past_context():
    return _gen(seeded_model("llama-tiny", max_seq_len=16), _prompt(2, 5, 2), 24, temperature=0)


def case_temperature_top_k():
    return _gen(seeded_model("gpt-tiny", max_seq_len=32), _prompt(3, 4, 3), 16, seed=5, temperature=0.8, top_k=20)


def case_temperature_top_p():
    return _gen(seeded_model("llama-tiny", max_seq_len=32), _prompt(2, 6, 4), 16, seed=6, temperature=1.3,
                top_p=0.8)


def case_window_greedy():
    return _gen(seeded_model("gpt-tiny", max_seq_len=16), _prompt(2, 5, 5), 30, temperature=0, window=True)


def case_window_sampling_uncached():
    return _gen(seeded_model("llama-tiny", max_seq_len=16), _prompt(1, 7, 6), 30, seed=7, temperature=1.0,
                top_k=10, window=True, use_cache=False)


def case_window_sampling_cached():
    return _gen(seeded_model("gpt-tiny", max_seq_len=16), _prompt(2, 3, 12), 25, seed=9, temperature=1.1,
                top_k=40, top_p=0.95, window=True)


def case_encoder_decoder_sampling():
    return _gen(seeded_model("transformer-tiny", max_seq_len=32), [[1]], 12, seed=10, src_ids=_prompt(2, 5, 13),
                temperature=1.5)


def case_mamba_sampling():
    return _gen(seeded_model("mamba-tiny"), _prompt(2, 5, 7), 14, seed=8, temperature=0.9, top_k=50)


def case_encoder_decoder_greedy():
    return _gen(seeded_model("transformer-tiny", max_seq_len=32), [[1]], 10, src_ids=_prompt(2, 7, 8),
                temperature=0)


def _free_and_stops():
    model = seeded_model("gpt-tiny", max_seq_len=32)
    prompt = _prompt(3, 4, 9)
    free = generate(model, prompt, 10, temperature=0)
    return model, prompt, free


def case_stop_token_pad():
    model, prompt, free = _free_and_stops()
    return _gen(model, prompt, 10, temperature=0, stop_tokens=[int(free[0, 6])], pad_id=0)


def case_batch_different_stop_times():
    model, prompt, free = _free_and_stops()
    stops = [int(free[0, 5]), int(free[1, 9])]  # row 0 stops at its 2nd new token, row 1 at its 6th
    return _gen(model, prompt, 10, temperature=0, stop_tokens=stops)


def case_all_rows_stop_early():
    model, prompt, free = _free_and_stops()
    return _gen(model, prompt, 10, temperature=0, stop_tokens=free[:, 5].tolist(), pad_id=2)


def case_beam_encoder_decoder():
    model = seeded_model("transformer-tiny", max_seq_len=32)
    return beam_search(model, _prompt(2, 6, 10), bos_id=1, eos_id=2, beam_size=3, max_new_tokens=10)


def case_beam_decoder():
    model = seeded_model("llama-tiny", max_seq_len=32)
    return beam_search(model, _prompt(2, 4, 11), bos_id=1, eos_id=2, beam_size=3, max_new_tokens=8)


CASES = {name[5:]: fn for name, fn in globals().items() if name.startswith("case_")}

PINS: dict[str, list] = {
    "all_rows_stop_early": [
        [84, 253, 24, 158, 48, 2],
        [133, 215, 240, 12, 125, 2],
        [249, 136, 3, 128, 178, 98],
    ],
    "batch_different_stop_times": [
        [84, 253, 24, 158, 48, 48, 48, 48],
        [133, 215, 240, 12, 125, 125, 9, 9],
        [249, 136, 3, 128, 178, 98, 98, 9],
    ],
    "beam_decoder": [
        [122, 85, 27, 201, 157, 82, 46, 97],
        [37, 173, 37, 247, 37, 37, 247, 37],
    ],
    "beam_encoder_decoder": [
        [68, 68, 68, 113, 113, 113, 113, 113, 113, 113],
        [99, 177, 177, 177, 177, 177, 177, 177, 177, 177],
    ],
    "encoder_decoder_greedy": [
        [1, 177, 177, 177, 177, 177, 177, 177, 177, 177, 177],
        [1, 83, 83, 83, 83, 83, 83, 83, 83, 83, 83],
    ],
    "encoder_decoder_sampling": [
        [1, 221, 92, 159, 243, 250, 87, 13, 18, 105, 33, 173, 251],
        [1, 81, 22, 14, 149, 173, 203, 38, 119, 106, 246, 63, 133],
    ],
    "greedy_gpt": [
        [58, 50, 107, 157, 193, 42, 253, 178, 178, 178, 178, 42, 48, 42, 42, 206, 206],
        [136, 162, 246, 212, 36, 9, 9, 9, 9, 9, 253, 178, 206, 206, 206, 206, 178],
    ],
    "greedy_llama_past_context": [
        [50, 44, 173, 101, 146, 31, 223, 51, 171, 171, 35, 171, 171, 171, 171, 171, 171, 39, 204, 68, 171, 171, 39,
         153, 49, 87, 237, 39, 153],
        [16, 145, 243, 26, 86, 97, 72, 41, 233, 137, 206, 33, 206, 33, 8, 33, 8, 33, 8, 33, 8, 33, 8, 21, 21, 198,
         65, 112, 37],
    ],
    "mamba_sampling": [
        [105, 116, 158, 23, 27, 94, 18, 56, 56, 145, 53, 53, 232, 232, 67, 229, 0, 214, 164],
        [211, 69, 42, 238, 148, 59, 59, 117, 238, 66, 232, 130, 130, 147, 116, 140, 251, 94, 70],
    ],
    "stop_token_pad": [
        [84, 253, 24, 158, 48, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        [133, 215, 240, 12, 125, 125, 9, 9, 9, 9, 9, 42, 42, 42],
        [249, 136, 3, 128, 178, 98, 98, 9, 178, 178, 178, 9, 178, 178],
    ],
    "temperature_top_k": [
        [199, 143, 109, 105, 198, 130, 68, 48, 97, 47, 68, 42, 125, 125, 42, 33, 68, 198, 228, 68],
        [31, 207, 179, 127, 121, 178, 130, 236, 124, 206, 220, 66, 145, 222, 89, 230, 178, 42, 48, 70],
        [66, 99, 187, 37, 248, 89, 221, 59, 68, 48, 15, 178, 117, 242, 89, 130, 157, 42, 206, 48],
    ],
    "temperature_top_p": [
        [189, 180, 187, 170, 172, 17, 91, 8, 89, 193, 49, 83, 178, 77, 49, 132, 161, 103, 5, 131, 22, 65],
        [91, 233, 229, 246, 237, 198, 232, 174, 204, 95, 173, 183, 157, 40, 176, 60, 6, 198, 201, 254, 26, 82],
    ],
    "window_greedy": [
        [144, 79, 212, 138, 121, 121, 121, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 206, 206, 206,
         206, 206, 206, 206, 206, 206, 206, 206, 130, 130, 130],
        [11, 102, 106, 59, 212, 125, 9, 48, 48, 48, 206, 206, 206, 206, 206, 206, 206, 206, 130, 130, 130, 130, 130,
         130, 130, 130, 130, 130, 130, 130, 130, 130, 130, 130, 121],
    ],
    "window_sampling_cached": [
        [90, 169, 131, 68, 253, 236, 109, 39, 206, 91, 126, 126, 12, 113, 48, 66, 115, 206, 50, 178, 230, 248, 221,
         125, 91, 8, 48, 66],
        [12, 168, 176, 178, 48, 158, 9, 127, 9, 42, 121, 188, 121, 13, 39, 242, 177, 152, 99, 18, 77, 48, 5, 219, 34,
         121, 110, 5],
    ],
    "window_sampling_uncached": [
        [137, 11, 186, 253, 48, 52, 106, 0, 189, 179, 249, 21, 238, 43, 109, 37, 93, 0, 95, 136, 111, 197, 39, 141,
         247, 164, 106, 249, 50, 223, 112, 120, 231, 26, 254, 206, 167],
    ],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_pinned_outputs(name):
    assert CASES[name]() == PINS[name]

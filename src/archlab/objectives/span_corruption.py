"""T5 span corruption (Raffel et al. 2020, §3.1.4): pretraining for the encoder-decoder.

About `noise_density` of a window's tokens, in spans of mean length `mean_span`, are cut out. The encoder
reads the window with each span replaced by one sentinel; the decoder writes the sentinels, each followed by
the span it stands for, then a closing sentinel:

    window   Thank you for inviting me to your party last week
    source   Thank you <X0> me to your party <X1> week
    target   <X0> for inviting <X1> last <X2>

Sentinels are `extra_ids` ids placed after the tokenizer's vocabulary (T5's <extra_id_k>), sentinel k =
first_sentinel + k. Span lengths follow T5's `random_spans_noise_mask`: the noise and non-noise token counts
are each split into `n_spans` random positive parts, interleaved starting with a non-noise part.
"""
from __future__ import annotations

import torch

from archlab.errors import ConfigError
from archlab.objectives.common import IGNORE_INDEX, pad_sequences


def _random_partition(total: int, parts: int, g: torch.Generator) -> list[int]:
    """`total` split into `parts` positive integers, uniformly over such compositions."""
    if parts == 1:
        return [total]
    cuts = (torch.randperm(total - 1, generator=g)[: parts - 1] + 1).sort().values.tolist()
    edges = [0, *cuts, total]
    return [b - a for a, b in zip(edges, edges[1:])]


def noise_spans(length: int, noise_density: float, mean_span: float, g: torch.Generator) -> list[tuple[int, int]]:
    """(start, end) of the corrupted spans of a window of `length` tokens, in order."""
    if not 0.0 < noise_density < 1.0:
        raise ConfigError(f"noise_density={noise_density} must be in (0, 1)")
    if mean_span < 1.0:
        raise ConfigError(f"mean_span={mean_span} must be >= 1")
    if length < 2:
        raise ConfigError(f"span corruption needs windows of at least 2 tokens, got {length}")
    n_noise = min(max(1, round(length * noise_density)), length - 1)
    n_spans = max(1, min(round(n_noise / mean_span), n_noise, length - n_noise))
    noise = _random_partition(n_noise, n_spans, g)
    keep = _random_partition(length - n_noise, n_spans, g)
    spans, pos = [], 0
    for k, n in zip(keep, noise):
        pos += k
        spans.append((pos, pos + n))
        pos += n
    return spans


def corrupt_spans(ids: list[int], spans: list[tuple[int, int]], first_sentinel: int) -> tuple[list[int], list[int]]:
    """(source, target) of one window for the given spans (see the module docstring)."""
    source, target, pos = [], [], 0
    for k, (a, b) in enumerate(spans):
        source += ids[pos:a] + [first_sentinel + k]
        target += [first_sentinel + k] + ids[a:b]
        pos = b
    source += ids[pos:]
    target.append(first_sentinel + len(spans))
    return source, target


def span_corruption_batch(windows: torch.Tensor, generator: torch.Generator, *, first_sentinel: int,
                          extra_ids: int, bos_id: int, eos_id: int, pad_id: int, noise_density: float = 0.15,
                          mean_span: float = 3.0) -> dict[str, torch.Tensor]:
    """A seq2seq batch (as seq2seq_batch makes) of span-corrupted windows (B, L) of token ids."""
    src, dec_in, lab = [], [], []
    for row in windows.tolist():
        spans = noise_spans(len(row), noise_density, mean_span, generator)
        if len(spans) + 1 > extra_ids:
            raise ConfigError(f"a window needs {len(spans) + 1} sentinels but extra_ids={extra_ids}; raise "
                              "task.extra_ids or shorten task.block_size")
        s, t = corrupt_spans(row, spans, first_sentinel)
        src.append(s)
        dec_in.append([bos_id] + t)
        lab.append(t + [eos_id])
    return {"input_ids": pad_sequences(src, pad_id), "attention_mask": pad_sequences([[1] * len(s) for s in src], 0),
            "decoder_input_ids": pad_sequences(dec_in, pad_id),
            "decoder_attention_mask": pad_sequences([[1] * len(d) for d in dec_in], 0),
            "labels": pad_sequences(lab, IGNORE_INDEX)}

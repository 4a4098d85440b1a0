"""Mamba ↔ transformers beyond the default config (issue 18, defects 1 and 2), fp32, ≤ 1e-4 max-abs logits.

1. `hidden_act` gelu / relu: transformers applies it after conv1d only and always gates with SiLU.
2. `attention_mask` with left padding: padded positions are zeroed before in_proj and before the SSM, so the
   real tokens' logits equal the unpadded run — in a full forward, and in the cached prefill + step path.
"""
from __future__ import annotations

import pytest
import torch
from _interop_util import max_diff, scramble

transformers = pytest.importorskip("transformers")

from archlab.interop import from_hf, to_hf  # noqa: E402
from archlab.interop.hf_io import InteropError  # noqa: E402
from archlab.models import build_model, preset  # noqa: E402

T = transformers
V = 101
TOL = 1e-4
PADS = 4


def _mamba(**kw):
    base = dict(vocab_size=V, hidden_size=32, num_hidden_layers=2, state_size=8, expand=2, conv_kernel=4,
                bos_token_id=None, eos_token_id=None, pad_token_id=None)
    torch.manual_seed(0)
    return scramble(T.MambaForCausalLM(T.MambaConfig(**{**base, **kw})))


def _ids(b=2, t=12, seed=1):
    return torch.randint(0, V, (b, t), generator=torch.Generator().manual_seed(seed))


def _left_pad(rows, n=PADS, pad_id=0):
    """Token rows of different lengths, left-padded to the longest + `n` (so every row has ≥ n pads), and the mask."""
    width = max(len(r) for r in rows) + n
    padded = torch.full((len(rows), width), pad_id)
    mask = torch.zeros_like(padded)
    for i, r in enumerate(rows):
        padded[i, width - len(r):], mask[i, width - len(r):] = r, 1
    return padded, mask


def _rows(t=12, seed=1):
    """Two rows: t tokens and t − 2 tokens (4 and 6 left pads)."""
    ids = _ids(2, t, seed)
    return [ids[0], ids[1, 2:]]


def _per_row(fn, rows):
    """fn(row (1, t)) for each row, each (t, V), as a list."""
    return [fn(r[None])[0] for r in rows]


def _real(logits, mask):
    """The logits of the real positions of each row, as a list of (t_r, V)."""
    return [row[m.bool()] for row, m in zip(logits, mask, strict=True)]


def _diff(xs, ys):
    return max(max_diff(x, y) for x, y in zip(xs, ys, strict=True))


@pytest.mark.parametrize("act", ["gelu", "relu", "silu"])
def test_hidden_act_import_and_export_match_transformers(act, tmp_path):
    hf = _mamba(hidden_act=act)
    hf.save_pretrained(tmp_path / "hf")
    model = from_hf(tmp_path / "hf")
    s = model.cfg.mixer.ssm
    assert (s.activation, s.gate_activation) == (act, "silu")
    to_hf(model, tmp_path / "out")
    back = T.MambaForCausalLM.from_pretrained(tmp_path / "out").eval()
    assert back.config.hidden_act == act
    ids = _ids()
    with torch.no_grad():
        ref = hf(ids).logits
        assert max_diff(model(ids), ref) <= TOL
        assert max_diff(back(ids).logits, ref) <= TOL


def test_gate_activation_other_than_silu_is_refused_at_export(tmp_path):
    model = build_model(preset("mamba-tiny", **{"mixer.ssm.gate_activation": "relu"}))
    with pytest.raises(InteropError, match="mixer.ssm.gate_activation"):
        to_hf(model, tmp_path / "out")


@pytest.mark.parametrize("kw", [{}, {"hidden_act": "gelu"}, {"use_bias": True, "use_conv_bias": False}])
def test_left_padding_matches_transformers_and_the_unpadded_run(kw, tmp_path):
    hf = _mamba(**kw)
    hf.save_pretrained(tmp_path / "hf")
    model = from_hf(tmp_path / "hf")
    rows = _rows()
    padded, mask = _left_pad(rows)
    with torch.no_grad():
        ours = _real(model(padded, attention_mask=mask), mask)
        ref = _real(hf(padded, attention_mask=mask).logits, mask)
        unmasked = _real(model(padded), mask)
        alone, hf_alone = _per_row(model, rows), _per_row(lambda r: hf(r).logits, rows)
    assert _diff(ours, ref) <= TOL
    if not kw.get("use_bias"):  # with an in_proj bias, HF's padded positions feed the conv its bias: not a no-op
        assert _diff(ours, alone) <= TOL
        assert _diff(ref, hf_alone) <= TOL
    # without the mask the pads do change the real tokens' logits (the test is not vacuous)
    assert _diff(unmasked, ref) > 0.1


def test_left_padded_cached_prefill_and_steps_match_transformers(tmp_path):
    hf = _mamba()
    hf.save_pretrained(tmp_path / "hf")
    model = from_hf(tmp_path / "hf")
    rows = _rows(t=7)
    padded, mask = _left_pad(rows, pad_id=1)
    n_new, width = 8, padded.shape[1]
    want = hf.generate(padded, attention_mask=mask, max_new_tokens=n_new, do_sample=False, pad_token_id=1)
    want = want[:, width:]
    with torch.no_grad():
        state = model.init_state(padded.shape[0], width + n_new)
        logits = model(padded, attention_mask=mask, state=state)[:, -1]  # prefill
        got = []
        for _ in range(n_new):  # steps, the mask growing by one real column each
            nxt = logits.argmax(-1, keepdim=True)
            got.append(nxt)
            mask = torch.cat([mask, torch.ones_like(nxt)], 1)
            logits = model(nxt, attention_mask=mask, state=state)[:, -1]
        got = torch.cat(got, 1)
        full = torch.cat([padded, got], 1)
        keep = mask[:, :full.shape[1]]
        ref, ours = hf(full, attention_mask=keep).logits, model(full, attention_mask=keep)
    assert torch.equal(got, want), f"greedy tokens differ\n{got}\n{want}"
    assert len(set(want.flatten().tolist())) > 2, "degenerate test: greedy decoding repeats one token"
    assert max_diff(ours, ref, keep) <= TOL
    # and each row alone, unpadded, decodes the same tokens
    for r, row in enumerate(rows):
        alone = hf.generate(row[None], max_new_tokens=n_new, do_sample=False, pad_token_id=1)
        assert torch.equal(alone[0, len(row):], got[r])

"""Print the archlab-vs-transformers parity figures of docs/interop.md: `python tests/interop/parity_report.py`."""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import test_interop_parity as P  # noqa: E402
from _interop_util import batch, max_diff, scramble  # noqa: E402

from archlab.interop import from_hf, to_hf  # noqa: E402
from archlab.interop.parity import greedy, hf_greedy  # noqa: E402

V = P.V


def _roundtrip(hf):
    d = tempfile.mkdtemp()
    hf.save_pretrained(d + "/hf")
    m = from_hf(d + "/hf")
    to_hf(m, d + "/ex")
    return m, type(hf).from_pretrained(d + "/ex").eval()


@torch.no_grad()
def main() -> None:
    rows = []
    for name, make in P.DECODERS.items():
        torch.manual_seed(0)
        hf = scramble(make())
        m, back = _roundtrip(hf)
        ids, mask = batch(V)
        ref = hf(ids, attention_mask=mask).logits
        a = max_diff(m(ids, attention_mask=mask), ref, mask)
        b = max_diff(back(ids, attention_mask=mask).logits, ref, mask)
        g = torch.equal(greedy(m, ids[:2, :5], 32), hf_greedy(hf, ids[:2, :5], 32))
        rows.append((name, a, b, "identical" if g else "DIFFERENT"))
    for name, make in P.ENCDEC.items():
        torch.manual_seed(0)
        hf = scramble(make())
        m, back = _roundtrip(hf)
        src, sm = batch(V - 1)
        tgt, tm = batch(V - 1, t=8, seed=2, pad_from=5)
        kw = dict(attention_mask=sm, decoder_input_ids=tgt, decoder_attention_mask=tm)
        ref = hf(src, **kw).logits
        a, b = max_diff(m(src, **kw), ref, tm), max_diff(back(src, **kw).logits, ref, tm)
        g = torch.equal(greedy(m, src, 32, attention_mask=sm, decoder_start_token_id=V - 1),
                        hf_greedy(hf, src, 32, attention_mask=sm, decoder_start_token_id=V - 1))
        rows.append((name, a, b, "identical" if g else "DIFFERENT"))
    cfg = P.T.BertConfig(vocab_size=V, hidden_size=48, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=64, max_position_embeddings=64)
    for name, make in P.BERTS.items():
        torch.manual_seed(0)
        hf = scramble(make(cfg))
        m, back = _roundtrip(hf)
        ids, mask = batch(V)
        r, bo = hf(ids, attention_mask=mask), back(ids, attention_mask=mask)
        if name == "bert-base":
            a, b = max_diff(m.encode(ids, mask), r.last_hidden_state, mask), max_diff(
                bo.last_hidden_state, r.last_hidden_state, mask)
        elif name == "bert-cls":
            a, b = max_diff(m.classify(ids, mask), r.logits), max_diff(bo.logits, r.logits)
        else:
            a, b = max_diff(m(ids, attention_mask=mask), r.logits, mask), max_diff(bo.logits, r.logits, mask)
        rows.append((name, a, b, "-"))
    print(f"{'case':30s} {'HF->archlab':>12s} {'export->HF':>12s}  greedy 32")
    for name, a, b, g in rows:
        print(f"{name:30s} {a:12.2e} {b:12.2e}  {g}")


if __name__ == "__main__":
    main()

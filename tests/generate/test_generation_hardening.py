"""Generation hardening (issue 18): one length rule shared with forward, sampling-option validation, the
temperature-before-top-p order, streaming and Ctrl-C, and `archlab sample` errors."""
from __future__ import annotations

import io
import math

import pytest
import torch

from archlab.cli import main
from archlab.generate import GenerationInterrupted, check_sampling, generate, sample_next
from archlab.models import build_model, preset


@pytest.fixture(scope="module")
def gpt():
    torch.manual_seed(0)
    return build_model(preset("gpt-tiny", max_seq_len=16)).eval()


@pytest.fixture(scope="module")
def llama():
    torch.manual_seed(0)
    return build_model(preset("llama-tiny", max_seq_len=16)).eval()


def test_learned_positions_refuse_past_the_limit_like_forward(gpt):
    assert gpt.position_limit == 16
    prompt = torch.randint(0, 256, (1, 6), generator=torch.Generator().manual_seed(0))
    # up to the limit is fine: 11 new tokens read positions 0..15 (the last token is never fed back)
    out = generate(gpt, prompt, 11, temperature=0)
    with torch.no_grad():
        assert torch.equal(gpt(out[:, :-1])[:, 5:].argmax(-1), out[:, 6:])
    with pytest.raises(ValueError, match=r"needs 17 positions, beyond max_seq_len=16.*'learned'.*at most 11"):
        generate(gpt, prompt, 12, temperature=0)
    with pytest.raises(ValueError, match=r"reaches position 17, beyond the model's max_seq_len=16"):
        gpt(torch.zeros(1, 17, dtype=torch.long))
    # the explicit sliding window still works (positions restart inside the window), cached == uncached
    a = generate(gpt, prompt, 30, temperature=0, window=True)
    assert torch.equal(a, generate(gpt, prompt, 30, temperature=0, window=True, use_cache=False))


def test_rope_positions_extend_in_forward_and_generate(llama):
    assert llama.position_limit is None
    x = torch.randint(0, 256, (2, 50), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = llama(x)  # forward past max_seq_len: allowed, positions 0..49
        state = llama.init_state(2, 8)  # the KV cache grows past its initial size
        steps = [llama(x[:, :5], state=state)] + [llama(x[:, i:i + 1], state=state) for i in range(5, 50)]
    assert (torch.cat(steps, 1) - full).abs().max() <= 1e-5
    # generate: greedy tokens equal argmax of a plain forward over the whole sequence (no window)
    out = generate(llama, x[:, :5], 40, temperature=0)
    with torch.no_grad():
        logits = llama(out[:, :-1])
    assert torch.equal(logits[:, 4:].argmax(-1), out[:, 5:])
    assert torch.equal(out, generate(llama, x[:, :5], 40, temperature=0, use_cache=False))


@pytest.mark.parametrize("kw,field", [
    ({"temperature": -1.0}, "temperature"), ({"temperature": math.nan}, "temperature"),
    ({"temperature": math.inf}, "temperature"), ({"top_k": 0}, "top_k"), ({"top_k": -3}, "top_k"),
    ({"top_p": 0.0}, "top_p"), ({"top_p": 1.5}, "top_p"), ({"top_p": -0.5}, "top_p"), ({"top_p": math.nan}, "top_p"),
])
def test_sampling_options_are_validated(gpt, kw, field):
    args = {"temperature": 1.0, "top_k": None, "top_p": None, **kw}
    with pytest.raises(ValueError, match=field):
        check_sampling(args["temperature"], args["top_k"], args["top_p"])
    with pytest.raises(ValueError, match=field):
        generate(gpt, [[1, 2]], 3, **kw)


def test_valid_edge_values_are_accepted(gpt):
    check_sampling(0, None, 1.0)  # 0 = greedy, documented; p = 1 keeps every token
    check_sampling(1e-3, 1, 1e-9)
    logits = torch.randn(3, 256, generator=torch.Generator().manual_seed(0))
    assert torch.equal(sample_next(logits, 0.0), logits.argmax(-1))


def test_temperature_is_applied_before_top_p():
    """transformers' order: temperature, then the nucleus of the *tempered* distribution.

    p = [.5, .3, .15, .05], top_p = 0.7: untempered, the nucleus is {0, 1}; at temperature 3 the distribution
    flattens to ∝ p^(1/3) = [.336, .283, .225, .156] and the nucleus is {0, 1, 2}. Applying the temperature
    after the filter (the surviving mutant of the issue) would never sample token 2.
    """
    p = torch.tensor([0.5, 0.3, 0.15, 0.05])
    logits = p.log().expand(20000, 4)
    g = torch.Generator().manual_seed(0)
    draws = sample_next(logits, 3.0, None, 0.7, generator=g)
    freq = torch.bincount(draws, minlength=4).float() / draws.numel()
    tempered = p ** (1 / 3)
    tempered = tempered / tempered.sum()
    want = torch.cat([tempered[:3] / tempered[:3].sum(), torch.zeros(1)])
    assert (freq - want).abs().max() < 0.015, (freq, want)
    # top-k commutes with the temperature, but the kept tokens are still sampled from the tempered distribution
    draws = sample_next(logits, 3.0, 2, None, generator=g)
    freq = torch.bincount(draws, minlength=4).float() / draws.numel()
    assert abs(float(freq[0]) - float(tempered[0] / tempered[:2].sum())) < 0.015


def test_streaming_and_interrupt(llama):
    seen = []
    out = generate(llama, [[1, 2, 3]], 12, temperature=0, on_token=lambda col: seen.append(int(col[0])))
    assert seen == out[0, 3:].tolist()

    def stop_after_five(col):
        seen2.append(int(col[0]))
        if len(seen2) == 5:
            raise KeyboardInterrupt

    seen2: list[int] = []
    with pytest.raises(GenerationInterrupted) as e:
        generate(llama, [[1, 2, 3]], 10**9, temperature=0, on_token=stop_after_five, interruptible=True)
    assert e.value.ids[0].tolist() == [1, 2, 3] + seen2 and seen2 == seen[:5]
    seen2.clear()
    with pytest.raises(KeyboardInterrupt):  # without interruptible, Ctrl-C propagates as usual
        generate(llama, [[1, 2, 3]], 10, temperature=0, on_token=stop_after_five)


def _char_tokenizer():
    from archlab.data.tokenizers import CharTokenizer

    return CharTokenizer.from_text("ab ")


def _bpe_tokenizer():
    from archlab.data.tokenizers import BPETokenizer

    return BPETokenizer.train(["the cat sat on the mat, naïve café " * 20], vocab_size=300)


@pytest.mark.parametrize("make_tok, text", [(_char_tokenizer, "a 東京🙂 b"),
                                             (_bpe_tokenizer, "the cat 東京 🙂 sat, naïve")],
                         ids=["char", "byte-level-bpe"])
def test_streamer_prints_multibyte_characters_whole(make_tok, text):
    from archlab.commands.sample import Streamer

    tok = make_tok()
    buf = io.StringIO()
    s = Streamer(tok, buf)
    for i in tok.encode(text):
        s(torch.tensor([i]))
    s.finish()
    assert buf.getvalue() == text + "\n"


@pytest.fixture(scope="module")
def char_run(tmp_path_factory):
    from archlab.data.tokenizers import CharTokenizer
    from archlab.interop import save_archlab

    tok = CharTokenizer.from_text("ROMEO: JULIET. abcdefghijklmnopqrstuvwxyz\n")
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("run")
    save_archlab(build_model(preset("char-llama", vocab_size=tok.vocab_size)), d / "checkpoints", tok)
    return d


@pytest.mark.parametrize("flags,needle", [
    (["--top-p", "1.5"], "--top-p=1.5 must satisfy 0 < p ≤ 1"), (["--top-p", "0"], "--top-p=0.0"),
    (["--top-p", "-0.5"], "--top-p=-0.5"), (["--top-k", "-3"], "--top-k=-3 must be an integer ≥ 1"),
    (["--temperature", "-1"], "--temperature=-1.0 must be a finite number > 0"),
    (["--temperature", "nan"], "--temperature=nan"), (["--max-new-tokens", "-1"], "--max-new-tokens=-1"),
    (["--device", "bogus"], "--device 'bogus' is not a device name torch knows"),
])
def test_sample_cli_errors(char_run, capsys, flags, needle):
    assert main(["sample", str(char_run), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("archlab sample: error:") and needle in err, err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_sample_cuda_without_cuda(char_run, capsys):
    assert main(["sample", str(char_run), "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "CUDA is not available" in err, err


def test_sample_cli_streams_huge_greedy_runs(char_run, capsys, monkeypatch):
    """--max-new-tokens 1e9 with greedy decoding prints as it goes; Ctrl-C keeps the text (exit 130)."""
    import archlab.commands.sample as sample

    produced = []
    real_call = sample.Streamer.__call__

    def call(self, col):  # a Ctrl-C arriving after 30 tokens
        real_call(self, col)
        produced.append(self.out.getvalue() if isinstance(self.out, io.StringIO) else None)
        if self.n == 30:
            raise KeyboardInterrupt

    monkeypatch.setattr(sample.Streamer, "__call__", call)
    assert main(["sample", str(char_run), "--prompt", "ROMEO:", "--max-new-tokens", "1e9",
                 "--temperature", "0"]) == 130
    cap = capsys.readouterr()
    assert cap.out.startswith("ROMEO:") and len(cap.out) > len("ROMEO:") + 1
    assert "interrupted: kept the 30 tokens" in cap.err and "generating past max_seq_len=64" in cap.err


def test_progress_counter_for_several_samples():
    from archlab.commands.sample import Progress

    err = io.StringIO()
    p = Progress(10**9, err)
    for _ in range(3):
        p(torch.tensor([1, 2]))
    p.finish()
    assert "1 / 1,000,000,000 tokens" in err.getvalue() and err.getvalue().endswith("\r")

"""`archlab convert`: the transformers check runs by default and a failure is an error; bad output paths,
invalid config.json and a run trained with the character tokenizer (issue 18)."""
from __future__ import annotations

import pytest
import torch

from archlab.cli import main
from archlab.data.tokenizers import CharTokenizer
from archlab.interop import save_archlab, to_hf
from archlab.models import build_model, preset

transformers = pytest.importorskip("transformers")


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_check_runs_by_default_both_directions(tmp_path, capsys):
    assert main(["convert", "--from", "llama-tiny", "--to-hf", str(tmp_path / "hf")]) == 0
    out = capsys.readouterr().out
    assert "transformers check" in out and float(out.split("= ")[1].split()[0]) <= 1e-4
    assert main(["convert", "--from-hf", str(tmp_path / "hf"), "--to", str(tmp_path / "al")]) == 0
    out = capsys.readouterr().out
    assert "transformers check" in out and float(out.split("= ")[1].split()[0]) <= 1e-4
    assert main(["convert", "--from", "gpt-tiny", "--to-hf", str(tmp_path / "hf2"), "--no-check"]) == 0
    assert "transformers check" not in capsys.readouterr().out


def test_failed_check_is_an_error(tmp_path, capsys, monkeypatch):
    import archlab.interop.parity as parity

    # a disagreement (e.g. 0.5) or NaN from the comparison must end the command with exit 2 and one line
    for bad in (0.5, float("nan")):
        monkeypatch.setattr(parity, "check_against_transformers", lambda model, d, bad=bad: bad)
        assert main(["convert", "--from", "gpt-tiny", "--to-hf", str(tmp_path / "hf")]) == 2
        assert "parity check failed" in _err(capsys)


def test_output_path_errors(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    for flag in ("--to", "--to-hf"):
        assert main(["convert", "--from", "gpt-tiny", flag, str(tmp_path / "file" / "sub"), "--no-check"]) == 2
        assert "is a file" in _err(capsys)
        assert main(["convert", "--from", "gpt-tiny", flag, str(tmp_path / "file"), "--no-check"]) == 2
        assert "not a directory" in _err(capsys)


def test_invalid_config_json_is_named(tmp_path, capsys):
    d = to_hf(build_model(preset("gpt-tiny")), tmp_path / "hf")
    (d / "config.json").write_text('{"model_type": "gpt2",\n  "n_embd": 64,,\n}')
    assert main(["convert", "--from-hf", str(d), "--to", str(tmp_path / "x")]) == 2
    err = _err(capsys)
    assert "config.json" in err and "not valid JSON" in err and "line 2" in err


def test_char_tokenizer_run_converts_to_hf(tmp_path, capsys):
    """Defect 8: a run trained with the character tokenizer (the demo's) exports a tokenizer HF loads."""
    text = "First Citizen:\nBefore we proceed any further, hear me speak.\n"
    tok = CharTokenizer.from_text(text)
    torch.manual_seed(0)
    model = build_model(preset("char-llama", vocab_size=tok.vocab_size)).eval()
    run = tmp_path / "run"
    save_archlab(model, run / "checkpoints", tok)  # the trainer's layout: RUN/checkpoints/step_N/tokenizer.json
    assert main(["convert", "--from", str(run), "--to-hf", str(tmp_path / "hf")]) == 0
    assert "transformers check" in capsys.readouterr().out
    hf_tok = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "hf"))
    for s in ["hear me speak", "naïve 東京 🙂 unseen\n\n  x"]:
        ids = hf_tok(s, add_special_tokens=False).input_ids
        assert ids == tok.encode(s)
        assert hf_tok.decode(ids) == s
    assert hf_tok.eos_token_id == tok.eos_id and hf_tok.pad_token_id == tok.pad_id
    # and the exported folder generates what the archlab model generates
    hf_model = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path / "hf")).eval()
    ids = torch.tensor([tok.encode("hear")])
    from archlab.interop.parity import greedy, hf_greedy

    assert torch.equal(greedy(model, ids, 12), hf_greedy(hf_model, ids, 12))
    # back to archlab: the character tokenizer is kept as archlab's own
    assert main(["convert", "--from-hf", str(tmp_path / "hf"), "--to", str(tmp_path / "al")]) == 0

"""Issue "newcomer-experience", on the command line: sample's prompt from stdin or a file, --threads on the
inference commands, and hub-style names (ORG/NAME) loaded from the local Hugging Face cache with no download."""
from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from archlab.cli import main

CORPUS = "To be, or not to be, that is the question.\n" * 40


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("newcomer")
    (tmp / "corpus.txt").write_text(CORPUS, encoding="utf-8")
    cfg = tmp / "run.yaml"
    cfg.write_text(f"""
name: tiny
model: {{preset: llama-tiny, d_model: 32, max_seq_len: 32}}
task: {{name: causal_lm, corpus: {tmp / 'corpus.txt'}, tokenizer: char}}
train: {{steps: 2, batch_size: 4, lr: 1e-3, eval_every: 2, eval_batches: 2, threads: 1, plot: false}}
""")
    assert main(["train", str(cfg), "--out", str(tmp / "run"), "--quiet"]) == 0
    return tmp / "run"


def _sample(args, capsys) -> str:
    capsys.readouterr()
    assert main(["sample", *args, "--max-new-tokens", "3", "--temperature", "0", "--threads", "1"]) == 0
    return capsys.readouterr().out


def test_prompt_from_stdin_and_file(run_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("that is"))
    from_stdin = _sample([str(run_dir), "--prompt", "-"], capsys)
    assert from_stdin.startswith("that is")
    (tmp_path / "p.txt").write_text("that is", encoding="utf-8")
    assert _sample([str(run_dir), "--prompt-file", str(tmp_path / "p.txt")], capsys) == from_stdin
    assert _sample([str(run_dir), "--prompt", "that is"], capsys) == from_stdin
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe to")
    assert main(["sample", str(run_dir), "--prompt-file", str(tmp_path / "bad.txt")]) == 2
    assert "is not UTF-8 text" in capsys.readouterr().err


def test_eval_and_threads(run_dir, capsys):
    capsys.readouterr()
    assert main(["eval", str(run_dir), "--batches", "2", "--threads", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["split"] == "val"
    assert main(["eval", str(run_dir), "--threads", "-2"]) == 2
    assert "--threads=-2 must be between 0" in capsys.readouterr().err


def _tiny_hf_model(folder: Path) -> None:
    transformers = pytest.importorskip("transformers")
    tokenizers = pytest.importorskip("tokenizers")
    tok = tokenizers.Tokenizer(tokenizers.models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = tokenizers.decoders.ByteLevel()
    alphabet = tokenizers.pre_tokenizers.ByteLevel.alphabet()
    tok.train_from_iterator([CORPUS], tokenizers.trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<unk>", "</s>"], initial_alphabet=alphabet))
    cfg = transformers.LlamaConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, intermediate_size=64,
                                   num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                                   max_position_embeddings=64, eos_token_id=tok.token_to_id("</s>"))
    import torch

    torch.manual_seed(0)
    transformers.LlamaForCausalLM(cfg).save_pretrained(folder)
    tok.save(str(folder / "tokenizer.json"))


def test_hub_name_from_the_local_cache(tmp_path, monkeypatch, capsys):
    cache = tmp_path / "hub"
    snap = cache / "models--TinyOrg--tiny-llama" / "snapshots" / "0123abcd"
    snap.mkdir(parents=True)
    _tiny_hf_model(snap)
    (cache / "models--TinyOrg--tiny-llama" / "refs").mkdir()
    (cache / "models--TinyOrg--tiny-llama" / "refs" / "main").write_text("0123abcd")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    from archlab.commands._load import load_for_inference

    model, tok, doc = load_for_inference("TinyOrg/tiny-llama")
    assert doc == {} and tok is not None and model.cfg.d_model == 32
    out = _sample(["TinyOrg/tiny-llama", "--prompt", "To be"], capsys)
    assert out.startswith("To be")
    capsys.readouterr()
    assert main(["sample", "TinyOrg/other-model", "--prompt", "To be"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"not in the local Hugging Face cache ({cache})" in err
    assert "huggingface-cli download TinyOrg/other-model" in err and "pass a local folder" in err
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # HF_HOME/hub is the same cache
    assert load_for_inference("TinyOrg/tiny-llama")[0].cfg.d_model == 32
    assert main(["sample", "runs/a/b/c"]) == 2  # a path, not a hub name: the plain message
    assert "checkpoint path 'runs/a/b/c' does not exist" in capsys.readouterr().err


def test_busy_machine_warning_at_the_start_of_eval(run_dir, monkeypatch, capsys):
    import archlab.commands._machine as machine

    monkeypatch.delenv("ARCHLAB_NO_BUSY_WARNING", raising=False)
    monkeypatch.setattr(machine, "runnable_processes", lambda: 5)
    monkeypatch.setattr(machine, "cores", lambda: 2)
    capsys.readouterr()
    assert main(["eval", str(run_dir), "--batches", "1"]) == 0
    assert capsys.readouterr().err.startswith("archlab eval: 5 runnable processes on 2 cores: this run may be slow; "
                                              "--threads 1 keeps it from fighting the others\n")
    assert main(["eval", str(run_dir), "--batches", "1", "--threads", "1"]) == 0
    assert "runnable processes" not in capsys.readouterr().err

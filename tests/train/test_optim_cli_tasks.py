"""Optimiser groups, schedule, run-config overrides, the CLI commands and the text tasks on tiny settings."""
from __future__ import annotations

import json
import math
import re
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import toy_task_helpers as toy  # noqa: E402

from archlab.cli import main  # noqa: E402
from archlab.config import ConfigError  # noqa: E402
from archlab.models import build_model, preset  # noqa: E402
from archlab.train import TrainConfig, apply_run_overrides, run_config_from_dict, train  # noqa: E402
from archlab.train.checkpoint import latest_checkpoint, read_model_tensors  # noqa: E402
from archlab.train.optim import lr_at, param_groups  # noqa: E402


def test_weight_decay_groups_rule():
    model = build_model(preset("llama-tiny", **{"head.tie": True}))
    groups = param_groups(model, 0.1)
    decay, no_decay = groups[0]["names"], groups[1]["names"]
    assert groups[0]["weight_decay"] == 0.1 and groups[1]["weight_decay"] == 0.0
    assert "tok_embed.weight" in no_decay  # embedding (and the tied LM head that shares it)
    assert not any("lm_head" in n for n in decay + no_decay)  # tied tensor appears once
    assert all(".norms." in n or "norm" in n or n.endswith("bias") or "embed" in n for n in no_decay)
    assert any(n.endswith("q_proj.weight") for n in decay)
    n_total = sum(p.numel() for g in groups for p in g["params"])
    assert n_total == model.num_parameters()


def test_schedule_warmup_cosine_and_zero_warmup():
    cfg = TrainConfig(steps=100, lr=1.0, min_lr=0.1, warmup_steps=10)
    assert lr_at(0, cfg) == pytest.approx(0.1)
    assert lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(10, cfg) == pytest.approx(1.0)
    assert lr_at(55, cfg) == pytest.approx(0.55)
    assert lr_at(100, cfg) == pytest.approx(0.1)
    cfg0 = TrainConfig(steps=100, lr=1.0, warmup_steps=0)
    assert lr_at(0, cfg0) == pytest.approx(1.0)
    assert TrainConfig(steps=10, schedule="constant").lr == 1e-3


def test_run_config_overrides_and_errors(tmp_path):
    cfg = toy.toy_config()
    c2 = apply_run_overrides(cfg, ["train.lr=1e-4", "model.pos.kind=none", "task.block_size=8"])
    assert c2.train.lr == 1e-4 and c2.model["pos.kind"] == "none" and c2.task["block_size"] == 8
    assert c2.model_config().pos.kind == "none"
    with pytest.raises(ConfigError, match="train.lrr"):
        apply_run_overrides(cfg, ["train.lrr=1"])
    with pytest.raises(ConfigError, match="must start with model., task. or train."):
        apply_run_overrides(cfg, ["lr=1"])
    with pytest.raises(ConfigError, match="train.batch_size"):
        apply_run_overrides(cfg, ["train.batch_size=0"])
    with pytest.raises(ConfigError, match="unknown run-config section 'trian'"):
        run_config_from_dict({"model": {"preset": "gpt-tiny"}, "task": "toy_lm", "trian": {}})
    with pytest.raises(ConfigError, match="unknown task 'nope'"):
        train(apply_run_overrides(cfg, ["task.name=nope"]), tmp_path, progress=False)


def test_tied_weights_saved_once_and_restored(tmp_path):
    cfg = apply_run_overrides(toy.toy_config(steps=2), ["model.head.tie=true"])
    train(cfg, tmp_path, progress=False)
    ck = latest_checkpoint(tmp_path)
    from safetensors.torch import load_file

    raw = load_file(str(ck / "model.safetensors"))
    assert "tok_embed.weight" in raw and "lm_head.weight" not in raw
    full = read_model_tensors(ck / "model.safetensors")
    assert torch.equal(full["lm_head.weight"], full["tok_embed.weight"])
    assert (tmp_path / "metrics.jsonl").is_file() and (tmp_path / "run.yaml").is_file()


def test_grad_accumulation_and_plot(tmp_path):
    cfg = toy.toy_config(steps=3, grad_accum=2, plot=True, checkpoint_every=0)
    res = train(cfg, tmp_path, progress=False)
    assert res["step"] == 3 and (tmp_path / "loss.png").stat().st_size > 1000
    assert res["tokens_per_s"] > 0


def _write_cfg(tmp_path, text_file) -> Path:
    p = tmp_path / "run.yaml"
    p.write_text(f"""
name: tiny
model: {{preset: llama-tiny, d_model: 32, max_seq_len: 32}}
task: {{name: causal_lm, corpus: {text_file}, tokenizer: char}}
train: {{steps: 4, batch_size: 4, lr: 1e-3, eval_every: 2, eval_batches: 2, threads: 1, plot: false}}
""")
    return p


def test_cli_train_sample_eval_resume(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("To be, or not to be, that is the question.\n" * 40, encoding="utf-8")
    cfg = _write_cfg(tmp_path, corpus)
    out = tmp_path / "run"
    assert main(["train", str(cfg), "--out", str(out), "--quiet", "--set", "train.stop_at=2"]) == 0
    assert latest_checkpoint(out).name == "step_00000002"
    assert main(["train", str(cfg), "--out", str(out), "--quiet", "--resume"]) == 0
    assert latest_checkpoint(out).name == "step_00000004"
    capsys.readouterr()
    assert main(["sample", str(out), "--prompt", "To be", "--max-new-tokens", "10", "--temperature", "0"]) == 0
    assert capsys.readouterr().out.startswith("To be")
    assert main(["eval", str(out), "--batches", "2"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["step"] == 4 and ev["split"] == "val" and Path(ev["checkpoint"]).name == "step_00000004"
    # eval rebuilds the task from the checkpoint and scores the same 2 val batches the trainer scored at step 4
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    val_at_4 = [r for r in logged if r.get("kind") == "eval" and r["step"] == 4 and r["split"] == "val"]
    assert val_at_4 and ev["loss"] == pytest.approx(val_at_4[-1]["loss"], rel=1e-5)
    assert ev["ppl"] == pytest.approx(math.exp(ev["loss"]), rel=1e-5)
    # bad input: one line naming the problem, exit code 2
    assert main(["train", str(cfg), "--out", str(out), "--quiet", "--resume", "--set", "train.lr=0.5"]) == 2
    assert "train.lr: checkpoint has 0.001, config has 0.5" in capsys.readouterr().err
    assert main(["sample", str(out), "--top-p", "1.5"]) == 2  # sampling options are validated
    assert "--top-p" in capsys.readouterr().err
    # a prompt past max_seq_len=32 is not a mistake for RoPE: positions extend as in transformers
    assert main(["sample", str(out), "--prompt", "t" * 40, "--max-new-tokens", "2", "--temperature", "0"]) == 0
    assert capsys.readouterr().out.startswith("t" * 40)
    assert main(["sample", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_cli_bad_corpus(tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("   \n")
    assert main(["train", str(_write_cfg(tmp_path, empty)), "--out", str(tmp_path / "r"), "--quiet"]) == 2
    assert "empty" in capsys.readouterr().err
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9 ".encode("latin-1") * 50)
    assert main(["train", str(_write_cfg(tmp_path, bad)), "--out", str(tmp_path / "r2"), "--quiet"]) == 2
    assert "UTF-8" in capsys.readouterr().err or "utf-8" in capsys.readouterr().err.lower()


HELP_OPTIONS = {
    "train": ["config", "--set", "--out", "--resume", "--overwrite", "--quiet", "--dry-run"],
    "sample": ["checkpoint", "--prompt", "--max-new-tokens", "--temperature", "--top-k", "--top-p", "--seed"],
    "eval": ["checkpoint", "--split", "--text", "--batches", "--device"],
    "translate": ["checkpoint", "--text", "--file", "--beam", "--score", "--device"],
    "demo": ["--out", "--steps", "--threads", "--no-ablation"],
}


@pytest.mark.parametrize("cmd", sorted(HELP_OPTIONS))
def test_help_texts(cmd, capsys):
    """--help exits 0 and prints the command's usage line and every option with a description."""
    with pytest.raises(SystemExit) as exit_:
        main([cmd, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: archlab {cmd}")
    head, _, options = out.partition("\noptions:\n")
    positional = head.partition("\npositional arguments:\n")[2]
    for opt in HELP_OPTIONS[cmd]:
        # listed in its section, with a help text beside it or on the next line (not a bare flag)
        m = re.search(rf"^ {{2}}{re.escape(opt)}\b[^\n]*?(?: {{2,}}|\n {{4,}})(\S[^\n]*)",
                      options if opt.startswith("-") else positional, flags=re.M)
        assert m and len(m.group(1)) > 5, f"archlab {cmd} --help does not describe {opt}:\n{out}"


def _unigram_entropy(text: str) -> float:
    """Cross-entropy (nats/char) of the best context-free guess: the corpus's own character frequencies."""
    counts = Counter(text)
    n = sum(counts.values())
    return -sum(c / n * math.log(c / n) for c in counts.values())


@pytest.mark.parametrize("task", ["mlm", "prefix_lm"])
def test_text_tasks_train_briefly(tmp_path, task):
    """100 steps (~1.5 s) on a repeated line: both objectives learn. The untrained model is near uniform over its
    vocabulary; training cuts the val loss by > 2 nats (MLM) and, for the prefix LM, which sees the left context,
    goes > 1.5 nats below the unigram entropy of the text (only context can do that)."""
    from archlab.train.trainer import build_run

    line = "Friends, Romans, countrymen, lend me your ears.\n"
    corpus = tmp_path / "c.txt"
    corpus.write_text(line * 60, encoding="utf-8")
    model = {"preset": "bert-tiny", "d_model": 32, "max_seq_len": 32} if task == "mlm" else \
        {"preset": "gpt-tiny", "d_model": 32, "max_seq_len": 32}
    cfg = run_config_from_dict({"model": model, "task": {"name": task, "corpus": str(corpus), "tokenizer": "char"},
                                "train": {"steps": 100, "batch_size": 8, "lr": 1e-2, "warmup_steps": 0,
                                          "eval_every": 0, "eval_batches": 2, "threads": 1, "plot": False}})
    task_obj, _, untrained = build_run(cfg)
    with torch.no_grad():
        initial = task_obj.evaluate(untrained.eval(), "val")["loss"]
    assert initial > math.log(task_obj.vocab_size) - 0.5  # the starting point: about uniform
    res = train(cfg, tmp_path / "out", progress=False)
    unigram = _unigram_entropy(line)  # 2.81 nats
    assert res["val_loss"] < initial - 2.0, (initial, res["val_loss"])
    if task == "mlm":
        assert res["val_loss"] < unigram + 0.3  # at least the character frequencies are learned
    else:
        assert res["val_loss"] < unigram - 1.5 and res["val_accuracy"] > 0.8

"""The tour: every command in the README's "A tour on the command line" block and every example in a command's
--help runs on a clean checkout and exits 0, with tiny overrides (few steps, small sizes).

Each documented command is mapped explicitly to its tiny variant (TOUR, EXAMPLES) together with the commands
it needs first (a run to sample from, a Hugging Face folder to convert); a documented command missing from the
mapping fails `test_every_documented_command_is_covered`, so the docs and this test cannot drift apart.
Commands run in-process through `archlab.cli.main` in a fresh directory holding a link to configs/, and use
only what the set-up installs (no network; Fashion-MNIST falls back to the shipped subset when the full set
is not installed). Long commands (the claims suite, the demo) run at their smallest settings.
"""
from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOUR_HEADING = "## A tour on the command line"



def sets(*overrides: str) -> list[str]:
    return [a for kv in overrides for a in ("--set", kv)] + ["--quiet"]


# tiny-run overrides shared by several commands
TINY_TRAIN = ("train.steps=2", "train.eval_every=0", "train.eval_batches=1", "train.checkpoint_every=0",
              "train.log_every=1")
CHAR = sets(*TINY_TRAIN, "model.n_layers=1", "model.d_model=32")
FMNIST = sets("train.steps=2", "train.eval_every=0", "train.log_every=1", "task.val_size=200",
              "task.max_eval_images=200")
MT = sets(*TINY_TRAIN, "train.batch_size=4", "model.d_model=32", "model.n_layers=1", "model.ffn.d_ff=64",
          "task.bpe_vocab=300")
TRAIN_CHAR = ["train", "configs/shakespeare_char_llama.yaml", "--out", "runs/char", *CHAR]
TRAIN_MT = ["train", "configs/translation_en_es.yaml", "--out", "runs/mt", *MT]
HF_LLAMA = ["!hf-llama", "hf-llama"]  # test-side set-up: a tiny random Hugging Face LLaMA folder
HF_GPT2 = ["!hf-gpt2", "hf-gpt2"]
MY_CLAIM = ["!my-claim", "my_claim.yaml"]
# the smallest claims run that still trains (one CNN claim: 2 variants × 3 seeds) and checks (one cost claim)
CLAIMS = ["claims", "--quick", "--only", "cnn_order", "inception_bottleneck_cost", "--steps", "2", "--jobs", "0",
          "--out", "runs/claims"]

# README tour command -> the commands the tiny variant runs, in order (set-up first)
TOUR: dict[str, list[list[str]]] = {
    "archlab presets": [["presets"]],
    "archlab presets llama": [["presets", "llama"]],
    "archlab presets 'mamba-*' --json": [["presets", "mamba-*", "--json"]],
    "archlab presets --show llama-tiny": [["presets", "--show", "llama-tiny"]],
    "archlab configs": [["configs"]],
    "archlab cost runs/char": [TRAIN_CHAR, ["cost", "runs/char"]],
    "archlab completion bash": [["completion", "bash"]],
    "archlab train configs/shakespeare_char_llama.yaml --out runs/char": [TRAIN_CHAR],
    "archlab train configs/shakespeare_char_llama.yaml --set model.pos.kind=none --out runs/nopos":
        [["train", "configs/shakespeare_char_llama.yaml", "--set", "model.pos.kind=none", "--out", "runs/nopos",
          *CHAR]],
    "archlab sample runs/char --prompt ROMEO: --max-new-tokens 300 --temperature 0.8 --top-k 40":
        [TRAIN_CHAR, ["sample", "runs/char", "--prompt", "ROMEO:", "--max-new-tokens", "5", "--temperature", "0.8",
                      "--top-k", "40"]],
    "archlab eval runs/char --split val": [TRAIN_CHAR, ["eval", "runs/char", "--split", "val", "--batches", "1"]],
    "archlab train configs/fashion_mnist.yaml --out runs/fmnist":
        [["train", "configs/fashion_mnist.yaml", "--out", "runs/fmnist", *FMNIST]],
    "archlab train configs/translation_en_es.yaml --out runs/mt": [TRAIN_MT],
    "archlab translate runs/mt --score test --beam 4":
        [TRAIN_MT, ["translate", "runs/mt", "--score", "test", "--beam", "4", "--limit", "2", "--max-new-tokens", "4"]],
    "archlab cost resnet50 --image-size 224": [["cost", "resnet50", "--image-size", "224"]],
    "archlab cost gpt2 --seq-len 1024 --plot gpt2_roofline.png":
        [["cost", "gpt2", "--seq-len", "1024", "--plot", "gpt2_roofline.png"]],
    "archlab cost --seed003": [["cost", "--seed003"]],
    "archlab errata": [["errata"]],
    "archlab convert --from-hf ./hf-llama --to ./archlab-llama":
        [HF_LLAMA, ["convert", "--from-hf", "./hf-llama", "--to", "./archlab-llama"]],
    "archlab claims --quick": [CLAIMS],
    "archlab experiment my_claim.yaml": [MY_CLAIM, ["experiment", "my_claim.yaml", "--jobs", "0"]],
    "archlab demo": [["demo", "--steps", "2", "--out", "runs/demo"]],
}

# --help example -> its tiny variant
EXAMPLES: dict[str, list[list[str]]] = {
    "archlab train configs/shakespeare_char_llama.yaml --set model.pos.kind=none --out runs/nopos":
        TOUR["archlab train configs/shakespeare_char_llama.yaml --set model.pos.kind=none --out runs/nopos"],
    "archlab train configs/shakespeare_char_llama.yaml --out runs/a --resume":
        [["train", "configs/shakespeare_char_llama.yaml", "--out", "runs/a", *CHAR],
         ["train", "configs/shakespeare_char_llama.yaml", "--out", "runs/a", "--resume", *CHAR]],
    "archlab sample runs/demo/llama --prompt ROMEO: --max-new-tokens 300 --temperature 0.8 --top-k 40":
        [["demo", "--steps", "2", "--no-ablation", "--out", "runs/demo"],
         ["sample", "runs/demo/llama", "--prompt", "ROMEO:", "--max-new-tokens", "5", "--temperature", "0.8",
          "--top-k", "40"]],
    "archlab translate runs/mt --text 'In the beginning God created the heaven and the earth.' --beam 4":
        [TRAIN_MT, ["translate", "runs/mt", "--text", "In the beginning God created the heaven and the earth.",
                    "--beam", "4", "--max-new-tokens", "4"]],
    "archlab convert --from-hf ./hf-gpt2 --to ./gpt2-archlab": [HF_GPT2, ["convert", "--from-hf", "./hf-gpt2",
                                                                          "--to", "./gpt2-archlab"]],
    "archlab convert --from ./gpt2-archlab --to-hf ./hf-again":
        [HF_GPT2, ["convert", "--from-hf", "./hf-gpt2", "--to", "./gpt2-archlab"],
         ["convert", "--from", "./gpt2-archlab", "--to-hf", "./hf-again"]],
    "archlab convert --from runs/char --to-hf ./hf-char": [TRAIN_CHAR, ["convert", "--from", "runs/char",
                                                                        "--to-hf", "./hf-char"]],
}

# a tiny experiment spec in the documented format (docs/claims.md), the kind `archlab experiment` takes
MY_CLAIM_YAML = """\
name: my_claim
title: positional encoding helps on MQAR
seed: '000'
quote: As the Transformer processes all tokens simultaneously, without positional encoding, ...
runner: trainer
base:
  model: {preset: gpt-tiny, d_model: 16, n_layers: 1, attn.n_heads: 2, ffn.d_ff: 32}
  task: {name: synthetic, kind: mqar, seq_len: 16, vocab_size: 16, n_pairs: 2, eval_size: 32}
  train: {batch_size: 4, lr: 0.003, warmup_steps: 0, log_every: 1}
variants:
  base: {}
  no_pos: {model.pos.kind: none}
seeds: [0, 1]
budget: {steps: 2}
metric: val_loss
goal: min
compare:
  - {variant: no_pos, baseline: base, expect: worse}
"""


def normalise(cmd: str) -> str:
    """One documented command with its comment dropped and whitespace/quoting made canonical."""
    return shlex.join(shlex.split(cmd, comments=True))


def readme_tour() -> list[str]:
    """The commands of the first ```bash block under the README's tour heading (`a && b` gives two)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert TOUR_HEADING in text, f"README.md lost its {TOUR_HEADING!r} section"
    section = text.split(TOUR_HEADING, 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, f"no ```bash block under {TOUR_HEADING!r}"
    cmds = [normalise(part) for line in block.group(1).splitlines() for part in line.split("#", 1)[0].split("&&")]
    return [c for c in cmds if c]


def help_examples() -> list[str]:
    """Every `archlab ...` command in the 'Example(s):' part of a sub-command's --help description."""
    from archlab.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    found = []
    for parser in sub.choices.values():
        desc = parser.description or ""
        m = re.search(r"Examples?:(.*)", desc, re.S)
        if not m:
            continue
        for part in re.split(r"[;\n]", m.group(1)):
            part = part.strip().rstrip(".")
            if part.startswith("archlab "):
                found.append(normalise(part))
    return found


def test_every_documented_command_is_covered():
    """A new command in the README tour or a --help example must be given its tiny variant here."""
    tour = readme_tour()
    assert len(tour) >= 10, tour
    keys = {normalise(k) for k in TOUR}
    missing = [c for c in tour if c not in keys]
    assert not missing, f"README tour commands with no tiny variant in tests/test_tour.py TOUR: {missing}"
    examples = help_examples()
    assert any(e.startswith("archlab sample") for e in examples), examples  # the parser finds the examples
    known = keys | {normalise(k) for k in EXAMPLES}
    missing = [e for e in examples if e not in known]
    assert not missing, f"--help examples with no tiny variant in tests/test_tour.py EXAMPLES: {missing}"
    # each tiny variant runs the documented sub-command itself (not something easier)
    for doc, steps in [*TOUR.items(), *EXAMPLES.items()]:
        assert shlex.split(doc)[1] == steps[-1][0], (doc, steps[-1])


def make_hf(kind: str, path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    import torch

    torch.manual_seed(0)
    if kind == "hf-llama":
        cfg = transformers.LlamaConfig(vocab_size=101, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                       num_attention_heads=4, max_position_embeddings=64, bos_token_id=None,
                                       eos_token_id=None)
        model = transformers.LlamaForCausalLM(cfg)
    else:
        cfg = transformers.GPT2Config(vocab_size=101, n_embd=32, n_layer=1, n_head=4, n_positions=64,
                                      bos_token_id=None, eos_token_id=None)
        model = transformers.GPT2LMHeadModel(cfg)
    model.save_pretrained(path)


def run_steps(steps: list[list[str]], workdir: Path, monkeypatch, capsys) -> None:
    from archlab.cli import main

    (workdir / "configs").symlink_to(ROOT / "configs")
    monkeypatch.chdir(workdir)
    for argv in steps:
        if argv[0].startswith("!"):  # test-side set-up of the files a documented command takes as input
            if argv[0] == "!my-claim":
                (workdir / argv[1]).write_text(MY_CLAIM_YAML)
            else:
                make_hf(argv[0][1:], workdir / argv[1])
            continue
        try:
            rc = main(list(argv))
        except SystemExit as e:  # argparse rejects the command line
            rc = e.code
        out = capsys.readouterr()
        assert rc == 0, f"archlab {shlex.join(argv)} exited {rc}\n{out.out[-3000:]}\n{out.err[-3000:]}"


SLOW = {"archlab claims --quick", "archlab demo"}


@pytest.mark.parametrize("doc", [pytest.param(k, marks=pytest.mark.slow) if k in SLOW else k for k in TOUR])
def test_tour_command_runs(doc, tmp_path, monkeypatch, capsys):
    run_steps(TOUR[doc], tmp_path, monkeypatch, capsys)


@pytest.mark.parametrize("doc", list(EXAMPLES))
def test_help_example_runs(doc, tmp_path, monkeypatch, capsys):
    run_steps(EXAMPLES[doc], tmp_path, monkeypatch, capsys)


def test_claims_steps_is_a_separate_smoke_run(capsys):
    """`claims --steps N` (what the tour runs) sets every profile's budget to N steps under a new spec hash."""
    from archlab.cli import main
    from archlab.experiments.engine import with_steps
    from archlab.experiments.suite.claims import select_specs

    spec = select_specs(["cnn_order"])[0]
    smoke = with_steps(spec, 2)
    assert smoke.budget_for("quick") == smoke.budget_for("full") == {"steps": 2}
    assert spec.budget_for("quick")["steps"] > 2 and smoke.spec_hash != spec.spec_hash
    assert smoke.seeds_for("quick") == spec.seeds_for("quick")
    assert main(["claims", "--steps", "0", "--list"]) == 2
    assert capsys.readouterr().err.strip() == "archlab claims: error: --steps must be ≥ 1, got 0"

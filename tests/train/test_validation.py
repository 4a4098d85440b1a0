"""Issue 18, deliver 3 (config and data rows): each mistake ends in one `archlab train: error: …` line naming
the field or file, exit 2, before anything is built; and the preflight memory estimate agrees with the
model it describes."""
from __future__ import annotations

import json
import math

import pytest
import yaml

from archlab.cli import main
from archlab.cost.model_cost import meta_model
from archlab.models import build_model
from archlab.tasks import build_task
from archlab.train import build_run, load_run_config, preflight
from archlab.train.run_config import TrainConfig


@pytest.fixture
def corpus(tmp_path, monkeypatch):
    monkeypatch.setenv("ARCHLAB_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "corpus.txt"
    path.write_text("".join("the quick brown fox jumps over the lazy dog.\n"[(7 * i) % 45] for i in range(6000)))
    return path


def write_config(tmp_path, corpus, **sections):
    doc = {"name": "v", "model": {"preset": "char-llama", "d_model": 32, "n_layers": 1, "max_seq_len": 16},
           "task": {"name": "causal_lm", "corpus": str(corpus), "tokenizer": "char"},
           "train": {"steps": 4, "batch_size": 2, "eval_every": 0, "eval_batches": 1, "plot": False}}
    doc.update(sections)
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def refused(capsys, argv) -> str:
    """Run the CLI; assert exit 2 and exactly one `archlab train: error:` line on stderr; return it."""
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("archlab train: error: "), err
    return lines[0]


@pytest.mark.parametrize("section, value, needle", [
    ("model", ["preset", "char-llama"], "model must be a mapping of model fields"),
    ("train", [1, 2], "train must be a mapping of train fields"),
    ("train", "fast", "train must be a mapping"),
    ("task", [1], "task must be a mapping"),
    ("name", {"a": 1}, "name must be a string"),
    ("model", {1: 2}, "model: key 1 must be a string"),
])
def test_wrong_yaml_types_are_named(tmp_path, corpus, capsys, section, value, needle):
    cfg = write_config(tmp_path, corpus, **{section: value})
    line = refused(capsys, ["train", str(cfg), "--out", str(tmp_path / "run"), "--quiet"])
    assert needle in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("override, needle", [
    ("train.lr=.inf", "train.lr=inf is not allowed; expected a finite positive number"),
    ("train.lr=.nan", "train.lr=nan is not allowed"),
    ("train.min_lr=0.5", "train.min_lr=0.5 is larger than train.lr=0.001"),
    ("train.lr=[", "value '[' is not valid YAML"),
    ("train.threads=100000", "train.threads=100000 is more than 4 × the"),
])
def test_bad_train_values_are_refused_before_training(tmp_path, corpus, capsys, override, needle):
    cfg = write_config(tmp_path, corpus)
    line = refused(capsys, ["train", str(cfg), "--out", str(tmp_path / "run"), "--quiet", "--set", override])
    assert needle in line
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_threads_bound_is_a_multiple_of_the_cores():
    import os

    preflight.check_threads(os.cpu_count())
    preflight.check_threads(preflight.max_threads())
    with pytest.raises(preflight.PreflightError, match="use 0 for torch's default"):
        preflight.check_threads(preflight.max_threads() + 1)


def test_diverging_lr_stops_with_step_lr_and_hint(tmp_path, corpus, capsys):
    cfg = write_config(tmp_path, corpus)
    line = refused(capsys, ["train", str(cfg), "--out", str(tmp_path / "run"), "--quiet",
                            "--set", "train.lr=1e4", "--set", "train.steps=30"])
    assert "training loss became nan at step" in line or "training loss became inf at step" in line
    assert "train.lr=10000" in line and "--set train.lr=1e+03" in line and "train.grad_clip=1" in line


def test_non_finite_loss_hint_depends_on_clipping():
    for loss in (math.nan, math.inf, -math.inf):
        with pytest.raises(preflight.TrainingDiverged, match=r"at step 7 \(learning rate 0.5, train.lr=2\)"):
            preflight.check_finite_loss(loss, 7, 0.5, TrainConfig(lr=2.0, grad_clip=0.0))
    with pytest.raises(preflight.TrainingDiverged, match=r"or clip gradients \(--set train.grad_clip=1.0\)"):
        preflight.check_finite_loss(math.nan, 1, 0.5, TrainConfig(lr=2.0, grad_clip=0.0))
    with pytest.raises(preflight.TrainingDiverged, match=r"already clipped at train.grad_clip=2"):
        preflight.check_finite_loss(math.nan, 1, 0.5, TrainConfig(lr=2.0, grad_clip=2.0))
    preflight.check_finite_loss(1e30, 1, 0.5, TrainConfig())  # large but finite: carry on


@pytest.mark.parametrize("override", ["model.d_model=1e9", "train.batch_size=1e9", "model.n_layers=1e9"])
def test_sizes_that_cannot_fit_are_refused_up_front(tmp_path, corpus, capsys, override):
    cfg = write_config(tmp_path, corpus)
    line = refused(capsys, ["train", str(cfg), "--out", str(tmp_path / "run"), "--quiet", "--set", override])
    assert "this run needs about" in line and "TiB" in line and "of CPU memory is available" in line
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_d_model_8192_refused_when_memory_is_short(tmp_path, corpus, capsys, monkeypatch):
    monkeypatch.setattr(preflight, "available_memory", lambda device="cpu": (4 * 2**30, "CPU memory"))
    cfg = write_config(tmp_path, corpus)
    line = refused(capsys, ["train", str(cfg), "--out", str(tmp_path / "run"), "--quiet",
                            "--set", "model.d_model=8192", "--set", "model.n_layers=4"])
    assert "only 4 GiB of CPU memory is available" in line and "model.d_model" in line
    # at least 16 bytes per parameter (weights, gradients, AdamW's two moments), counted on the meta device
    run_cfg = load_run_config(cfg, ["model.d_model=8192", "model.n_layers=4"])
    n = sum(p.numel() for p in meta_model(run_cfg.model_config(build_task(run_cfg).model_overrides())).parameters())
    needed = float(line.split("needs about ")[1].split(" GiB")[0])
    assert f"for {n:,} parameters" in line and needed >= round(16 * n / 2**30, 1)


def test_estimate_counts_the_models_parameters_and_scales_activations():
    cfg = load_run_config_dict({"preset": "char-llama", "d_model": 48, "n_layers": 3, "vocab_size": 65})
    est = preflight.estimate_training_memory(cfg, batch=4, seq_len=32)
    model = build_model(cfg)
    n = sum(p.numel() for p in model.parameters())
    assert est.params == n
    assert est.weights == 4 * n and est.gradients == 4 * n and est.optimizer == 8 * n
    assert est.buffers == sum(b.numel() * b.element_size() for b in model.buffers())
    twice = preflight.estimate_training_memory(cfg, batch=8, seq_len=32)
    assert twice.activations == pytest.approx(2 * est.activations) and twice.params == n
    half = preflight.estimate_training_memory(cfg, batch=4, seq_len=32, act_dtype="bf16")
    assert half.activations == pytest.approx(est.activations / 2)


def test_deep_stack_extrapolation_is_exact_for_a_uniform_stack():
    deep = preflight.DEEP_STACK + 37
    cfg = load_run_config_dict({"preset": "char-llama", "d_model": 16, "n_layers": deep, "vocab_size": 65,
                                "attn.n_heads": 2, "attn.n_kv_heads": 1})
    est = preflight.estimate_training_memory(cfg, batch=2, seq_len=8)
    assert est.params == sum(p.numel() for p in meta_model(cfg).parameters())
    shallow = preflight.estimate_training_memory(
        load_run_config_dict({"preset": "char-llama", "d_model": 16, "n_layers": 1, "vocab_size": 65,
                              "attn.n_heads": 2, "attn.n_kv_heads": 1}), batch=2, seq_len=8)
    assert est.activations > (deep - 1) * shallow.activations / 2


def load_run_config_dict(model: dict):
    from archlab.models import model_config_from_dict

    return model_config_from_dict(model)


def test_corpus_from_an_endless_device_is_refused(tmp_path, corpus, capsys, monkeypatch):
    monkeypatch.setenv("ARCHLAB_MAX_CORPUS_MB", "1")
    cfg = write_config(tmp_path, corpus)
    line = refused(capsys, ["train", str(cfg), "--out", str(tmp_path / "run"), "--quiet",
                            "--set", "task.corpus=/dev/zero"])
    assert "/dev/zero: this stream (not a regular file" in line and "limit of 1 MiB" in line


def test_huge_corpus_file_is_refused_without_reading_it(tmp_path, corpus, capsys, monkeypatch):
    monkeypatch.setenv("ARCHLAB_MAX_CORPUS_MB", "1")
    big = tmp_path / "big.txt"
    with open(big, "wb") as f:  # sparse: 3 GiB on paper, nothing on disk
        f.truncate(3 * 2**30)
    cfg = write_config(tmp_path, corpus)
    line = refused(capsys, ["train", str(cfg), "--out", str(tmp_path / "run"), "--quiet",
                            "--set", f"task.corpus={big}"])
    assert f"{big}: the file is larger than the corpus size limit of 1 MiB" in line
    assert "ARCHLAB_MAX_CORPUS_MB" in line


def test_tiny_corpus_names_the_split_not_the_validation_tokens(tmp_path, corpus, capsys):
    tiny = tmp_path / "tiny.txt"
    tiny.write_text("x" * 79 + "\n")
    cfg = write_config(tmp_path, corpus)
    line = refused(capsys, ["train", str(cfg), "--out", str(tmp_path / "run"), "--quiet",
                            "--set", f"task.corpus={tiny}"])
    assert "task.corpus is too small for the split" in line
    assert "its 80 tokens give 72 for training and 8 for validation" in line
    assert "task.block_size=16 needs at least 17 in each" in line and "task.block_size=7 or less" in line


def test_dry_run_checks_and_writes_nothing(tmp_path, corpus, capsys):
    cfg = write_config(tmp_path, corpus)
    assert main(["train", str(cfg), "--out", str(tmp_path / "run"), "--dry-run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    _, _, model = build_run(load_run_config(cfg))
    assert plan["params"] == sum(p.numel() for p in model.parameters()) > 0
    assert plan["seq_len"] == 16 and plan["batch_size"] == 2 and plan["device"] == "cpu"
    assert not (tmp_path / "run").exists()
    line = refused(capsys, ["train", str(cfg), "--dry-run", "--set", "model.d_model=1e9"])
    assert "this run needs about" in line



def test_allocator_failure_is_one_line_when_the_estimate_misses(tmp_path, corpus, capsys, monkeypatch):
    import archlab.train.trainer as trainer

    monkeypatch.setattr(trainer, "check_before_build", lambda *a, **k: None)  # as if the estimate were too low
    cfg = write_config(tmp_path, corpus)
    line = refused(capsys, ["train", str(cfg), "--out", str(tmp_path / "run"), "--quiet",
                            "--set", "model.d_model=1e11"])  # one table of 1e11 × vocab floats: refused at once
    assert line.startswith("archlab train: error: out of memory (") and "train.batch_size" in line


@pytest.mark.parametrize("overrides, needle", [
    (["train.eval_batches=1e9"], ") but only"),
    (["task.tokenizer=bpe", "task.bpe_vocab=1e9"],
     "task.bpe_vocab=1000000000.0 is not allowed; expected a whole number from 1 to 1,048,576"),
])
def test_sizes_that_would_allocate_before_training_are_refused(tmp_path, corpus, capsys, overrides, needle):
    cfg = write_config(tmp_path, corpus)
    line = refused(capsys, ["train", str(cfg), "--dry-run", *[f"--set={o}" for o in overrides]])
    assert needle in line
    if "eval_batches" in overrides[0]:  # 1e9 batches × 2 windows × (16 input + 16 label int64 + offsets)
        assert f"evaluation windows {preflight.human_bytes(1e9 * 2 * (16 * 16 + 16))}" in line
        assert line.endswith("use fewer train.eval_batches")


def test_a_model_too_large_to_describe_is_refused(tmp_path, corpus, capsys):
    cfg = write_config(tmp_path, corpus)  # gpt-tiny's FFN at width 1e9: a 4e9 × 1e9 weight overflows int64 bytes
    line = refused(capsys, ["train", str(cfg), "--dry-run", "--set", "model.preset=gpt-tiny",
                            "--set", "model.d_model=1e9"])
    assert "the model is too large to build: Storage size calculation overflowed" in line and "model.d_model" in line


def test_text_task_on_an_image_model_is_refused(tmp_path, corpus, capsys):
    cfg = write_config(tmp_path, corpus, model={"preset": "googlenet-small"})
    line = refused(capsys, ["train", str(cfg), "--dry-run"])
    assert "task 'causal_lm' needs a sequence model" in line and "image model" in line
    line = refused(capsys, ["train", str(cfg), "--out", str(tmp_path / "run"), "--quiet"])
    assert "task 'causal_lm' needs a sequence model" in line


def test_distributed_estimate_is_a_lower_bound_per_process():
    est = preflight.MemoryEstimate(params=10, weights=40.0, gradients=40.0, optimizer=80.0, buffers=8.0,
                                   activations=100.0, batch=4, seq_len=8, image_size=None, eval_data=2.0)
    assert est.total == 40 + 40 + 80 + 8 + 100 + 2
    est.shards = 4  # each process builds the whole model; its share of gradients, AdamW state and batch
    assert est.total == 40 + 8 + 2 + (40 + 80 + 100) / 4
    assert preflight._world() == (1, 1)  # no process group in this test

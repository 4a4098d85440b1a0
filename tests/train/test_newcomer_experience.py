"""Issue "newcomer-experience": --threads and the busy-machine warning, eval/translate progress, the metrics
records (time, images/s), the plot, TensorBoard / W&B announcements, prompt from stdin or a file, the warm-up
warning, sub-command usage on argparse errors, and hub-style names read from the local Hugging Face cache."""
from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import toy_task_helpers as toy  # noqa: E402

import archlab.commands._machine as machine  # noqa: E402
from archlab.cli import main  # noqa: E402
from archlab.commands.train import warn_schedule  # noqa: E402
from archlab.train import TrainConfig, read_metrics, train  # noqa: E402
from archlab.train.metrics_log import MetricsLog, plot_losses, sink, throughput  # noqa: E402


def test_busy_machine_warning_names_the_flag(monkeypatch):
    monkeypatch.delenv("ARCHLAB_NO_BUSY_WARNING", raising=False)
    monkeypatch.setattr(machine, "runnable_processes", lambda: 5)
    monkeypatch.setattr(machine, "cores", lambda: 2)
    err = io.StringIO()
    assert machine.warn_if_oversubscribed("eval", "--threads 1", err=err)
    assert err.getvalue() == ("archlab eval: 5 runnable processes on 2 cores: this run may be slow; --threads 1 "
                              "keeps it from fighting the others\n")
    assert not machine.warn_if_oversubscribed("eval", "--threads 1", threads=1, err=err)  # already one thread
    monkeypatch.setattr(machine, "runnable_processes", lambda: 2)
    assert not machine.warn_if_oversubscribed("eval", "--threads 1", err=err)


def test_runnable_processes_reads_this_machine():
    n = machine.runnable_processes()
    assert n is None or n >= 1
    assert machine.cores() >= 1


def test_threads_option_sets_torch_and_is_checked(monkeypatch):
    monkeypatch.setattr(machine, "runnable_processes", lambda: 1)
    before = torch.get_num_threads()
    try:
        machine.apply_threads("sample", 1)
        assert torch.get_num_threads() == 1
        with pytest.raises(ValueError, match="--threads=-1 must be between 0"):
            machine.apply_threads("sample", -1)
    finally:
        torch.set_num_threads(before)


def test_eval_progress_wraps_every_pass(monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    wrapped = machine.with_progress(lambda split: [split] * 3, "eval")
    assert list(wrapped("val")) == ["val"] * 3 and list(wrapped("test")) == ["test"] * 3


def test_warmup_covering_the_run_is_warned():
    err = io.StringIO()
    assert warn_schedule(TrainConfig(steps=50, warmup_steps=100), err=err)
    assert "warm-up 100 ≥ steps 50: the lr never leaves warm-up and no decay happens" in err.getvalue()
    assert not warn_schedule(TrainConfig(steps=50, warmup_steps=10), err=err)


def test_subcommand_errors_show_its_usage(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "x.yaml", "--bogus"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: archlab train ") and "archlab train: error: unrecognized arguments: --bogus" in err


def test_records_carry_time_and_images_per_s(tmp_path):
    assert throughput(0, 64, 2.0) == {"images": 64, "images_per_s": 32.0}
    assert throughput(100, 4, 2.0) == {"tokens": 100, "tokens_per_s": 50.0}
    t0 = time.time()
    res = train(toy.toy_config(steps=3, plot=True, checkpoint_every=0), tmp_path, progress=False)
    recs = read_metrics(tmp_path)
    assert recs and all(t0 - 1 <= r["time"] <= time.time() + 1 for r in recs)
    assert res["step"] == 3 and all("tokens_per_s" in r for r in recs if r["kind"] == "train")


def test_plot_is_larger_with_lr_and_accuracy(tmp_path):
    m = tmp_path / "metrics.jsonl"
    log = MetricsLog(m)
    seen = []
    with sink(seen.append):
        for s in range(1, 6):
            log.write({"kind": "train", "step": s, "loss": 2.0 / s, "lr": 1e-3 * s})
        log.write({"kind": "eval", "step": 5, "split": "val", "loss": 0.5, "accuracy": 0.7})
    log.write({"kind": "train", "step": 6, "loss": 0.3, "lr": 1e-3})
    log.close()
    assert len(seen) == 6 and all("time" in r for r in seen)  # the sink saw its block's records only
    png = plot_losses(m, tmp_path / "loss.png", "t")
    from PIL import Image

    assert Image.open(png).size == (1080, 600)  # 9 × 5 in at 120 dpi


def test_tensorboard_is_announced(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # not installed
    MetricsLog(tmp_path / "m.jsonl", tmp_path / "tb", announce=True).close()
    assert capsys.readouterr().err == "tensorboard not installed: metrics.jsonl only\n"


def test_wandb_logs_offline(tmp_path, monkeypatch, capsys):
    pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    cfg = tmp_path / "toy.yaml"
    cfg.write_text(json.dumps(toy.toy_config(steps=2).to_dict()))
    assert main(["train", str(cfg), "--out", str(tmp_path / "run"), "--quiet", "--wandb"]) == 0
    assert list((tmp_path / "run" / "wandb").glob("offline-run-*"))


def test_wandb_missing_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "wandb", None)
    cfg = tmp_path / "toy.yaml"
    cfg.write_text(json.dumps(toy.toy_config(steps=2).to_dict()))
    assert main(["train", str(cfg), "--out", str(tmp_path / "run"), "--quiet", "--wandb"]) == 2
    assert "pip install 'archlab[wandb]'" in capsys.readouterr().err


def test_train_warns_about_warmup_at_its_start(tmp_path, capsys):
    cfg = tmp_path / "toy.yaml"
    cfg.write_text(json.dumps(toy.toy_config(steps=2, warmup_steps=5, checkpoint_every=0).to_dict()))
    assert main(["train", str(cfg), "--out", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err
    assert "archlab train: warning: warm-up 5 ≥ steps 2: the lr never leaves warm-up and no decay happens" in err
    assert "tensorboard" in err  # `tensorboard: writing …` or `tensorboard not installed: metrics.jsonl only`


class _FakeWandbRun:
    def __init__(self, **kw) -> None:
        self.kw, self.logged, self.finished = kw, [], False

    def log(self, values, step):
        self.logged.append((step, values))

    def finish(self):
        self.finished = True


def test_wandb_sink_offline_by_default_with_a_stand_in(tmp_path, monkeypatch, capsys):
    """What --wandb sends, checked with a stand-in module (wandb itself is not a test dependency)."""
    import types

    import archlab.commands.train as train_cmd

    runs = []
    fake = types.SimpleNamespace(init=lambda **kw: runs.append(_FakeWandbRun(**kw)) or runs[-1])
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    cfg = toy.toy_config(steps=2, eval_every=2)
    with train_cmd._wandb(cfg, tmp_path / "run"):
        train(cfg, tmp_path / "run", progress=False)
    import os

    assert os.environ.pop("WANDB_MODE") == "offline" and len(runs) == 1 and runs[0].finished
    assert runs[0].kw["dir"] == str(tmp_path / "run") and runs[0].kw["config"]["train"]["steps"] == 2
    steps = [s for s, _ in runs[0].logged]
    assert steps == sorted(steps) and "train/loss" in runs[0].logged[0][1] and "eval/loss" in runs[0].logged[-1][1]
    assert not any("time" in k or "step" in k for _, v in runs[0].logged for k in v)
    assert "wandb: logging (offline)" in capsys.readouterr().err


def test_tensorboard_writer_announced_and_fed(tmp_path, monkeypatch, capsys):
    import types

    scalars = []

    class Writer:
        def __init__(self, d):
            pass

        def add_scalar(self, tag, v, step):
            scalars.append(tag)

        def close(self):
            pass

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=Writer))
    log = MetricsLog(tmp_path / "m.jsonl", tmp_path / "tensorboard", announce=True)
    log.write({"kind": "train", "step": 1, "loss": 1.0, "lr": 0.1})
    log.close()
    assert capsys.readouterr().err == f"tensorboard: writing {tmp_path / 'tensorboard'}\n"
    assert scalars == ["train/loss", "train/lr"]


def test_image_task_logs_images_per_s(tmp_path):
    from archlab.train import load_run_config

    root = Path(__file__).resolve().parents[2]
    cfg = load_run_config(root / "configs" / "fashion_mnist.yaml",
                          ["train.steps=2", "train.batch_size=8", "train.eval_every=0", "train.eval_batches=1",
                           "train.checkpoint_every=0", "train.plot=false", "train.log_every=1", "train.threads=1"])
    train(cfg, tmp_path, progress=False)
    recs = [r for r in read_metrics(tmp_path) if r["kind"] == "train"]
    assert [r["images"] for r in recs] == [8, 16] and all(r["images_per_s"] > 0 for r in recs)
    assert not any("tokens_per_s" in r for r in recs)


def test_cli_writes_tensorboard_even_quiet_library_runs_only_with_progress(tmp_path, monkeypatch, capsys):
    import types

    dirs = []

    class Writer:
        def __init__(self, d):
            dirs.append(d)

        def add_scalar(self, *a):
            pass

        def close(self):
            pass

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=Writer))
    train(toy.toy_config(steps=1, checkpoint_every=0), tmp_path / "lib", progress=False)  # e.g. a claims sweep
    assert dirs == []
    cfg = tmp_path / "toy.yaml"
    cfg.write_text(json.dumps(toy.toy_config(steps=1, checkpoint_every=0).to_dict()))
    assert main(["train", str(cfg), "--out", str(tmp_path / "cli"), "--quiet"]) == 0
    assert dirs == [str(tmp_path / "cli" / "tensorboard")] and "tensorboard" not in capsys.readouterr().err

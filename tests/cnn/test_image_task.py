"""image_classification task on the generated fixture: batches, evaluation, confusion matrix, plots, trainer."""
from __future__ import annotations

import json

import pytest
import torch

from archlab.config import ConfigError
from archlab.data.images import make_fixture
from archlab.registry import build

train_mod = pytest.importorskip("archlab.train.run_config")

TINY = ["conv:8:3", "relu", "maxpool:2", "conv:8:3", "relu", "maxpool:2", "flatten", "fc"]


def run_cfg(tmp_path, **task):
    from archlab.train.run_config import run_config_from_dict

    make_fixture(tmp_path / "data", n_train=256, n_test=64)
    return run_config_from_dict({
        "name": "fixture-cnn", "model": {"arch": "cnn", "layers": TINY},
        "task": {"name": "image_classification", "dataset": "idx", "root": str(tmp_path / "data"), "val_size": 32,
                 **task},
        "train": {"steps": 40, "batch_size": 32, "lr": 0.01, "eval_every": 20, "log_every": 10, "threads": 1,
                  "weight_decay": 0.0}})


def test_batches_are_pure_and_cover_an_epoch(tmp_path):
    cfg = run_cfg(tmp_path, augment=["crop", "flip"])
    task = build("task", "image_classification", cfg)
    assert task.vocab_size is None
    assert task.model_overrides() == {"in_channels": 1, "image_size": 28, "n_classes": 10}
    a, b = task.train_batch(3), task.train_batch(3)
    assert torch.equal(a["images"], b["images"]) and torch.equal(a["labels"], b["labels"])
    assert a["images"].shape == (32, 1, 28, 28) and a["images"].dtype == torch.float32
    assert a["labels"].dtype == torch.int64
    plain = build("task", "image_classification", run_cfg(tmp_path))
    labels = torch.cat([plain.train_batch(i)["labels"] for i in range(7)])  # 224 train images / 32 = 7 batches
    assert torch.equal(labels.sort().values, plain.splits["train"][1].sort().values)
    assert sum(len(x["labels"]) for x in plain.eval_batches("val")) == 32
    assert sum(len(x["labels"]) for x in plain.eval_batches("test")) == 64


def test_train_evaluate_report(tmp_path):
    from archlab.train.trainer import build_run, train

    cfg = run_cfg(tmp_path)
    res = train(cfg, tmp_path / "run", progress=False)
    assert res["val_accuracy"] > 0.5  # the fixture's bars are easy; chance is 0.1
    for f in ("confusion_val.json", "confusion_val.png", "predictions_val.png"):  # train() writes the report
        assert (tmp_path / "run" / f).stat().st_size > 0
    task, model_cfg, model = build_run(cfg)
    from archlab.train import checkpoint as ckpt

    ckpt.load_checkpoint(ckpt.latest_checkpoint(tmp_path / "run"), model)
    assert model_cfg.n_classes == 10 and model.cfg.in_channels == 1
    ev = task.evaluate(model, "test")
    assert set(ev) == {"loss", "accuracy"} and all(isinstance(v, float) for v in ev.values())
    cm = task.confusion["test"]
    assert cm.shape == (10, 10) and int(cm.sum()) == 64
    assert abs(float(cm.diag().sum()) / 64 - ev["accuracy"]) < 1e-6
    doc = task.report(model, tmp_path / "report", "test", n_samples=9)
    for f in ("confusion_test.json", "confusion_test.png", "predictions_test.png"):
        assert (tmp_path / "report" / f).stat().st_size > 0
    assert json.loads((tmp_path / "report" / "confusion_test.json").read_text())["confusion"] == doc["confusion"]


def test_train_reports_its_final_evaluation_without_evaluating_again(tmp_path, monkeypatch):
    from archlab.tasks.image_classification import ImageClassification
    from archlab.train.trainer import train

    calls = []
    evaluate = ImageClassification.evaluate
    monkeypatch.setattr(ImageClassification, "evaluate",
                        lambda self, model, split="val": calls.append(split) or evaluate(self, model, split))
    res = train(run_cfg(tmp_path), tmp_path / "run", progress=False)  # 40 steps, eval_every 20
    assert calls == ["val", "val"]  # steps 20 and 40; the report reuses the step-40 evaluation
    doc = json.loads((tmp_path / "run" / "confusion_val.json").read_text())
    assert doc["accuracy"] == res["val_accuracy"] and sum(map(sum, doc["confusion"])) == 32


def test_bad_task_options(tmp_path):
    with pytest.raises(ConfigError, match="unknown task option 'task.augmnt'"):
        build("task", "image_classification", run_cfg(tmp_path, augmnt=["flip"]))
    with pytest.raises(ConfigError, match=r"task.augment\[\]='rotate'"):
        build("task", "image_classification", run_cfg(tmp_path, augment=["rotate"]))
    with pytest.raises(ConfigError, match="task.val_size=1000"):
        build("task", "image_classification", run_cfg(tmp_path, val_size=1000))


def test_wrong_image_batch_is_clear(tmp_path):
    from archlab.data.images import ImageDataError
    from archlab.train.trainer import build_run

    task, _, model = build_run(run_cfg(tmp_path))
    with pytest.raises(ImageDataError, match=r"expected 1 channel"):
        task.loss(model, {"images": torch.zeros(2, 3, 28, 28), "labels": torch.zeros(2, dtype=torch.int64)})

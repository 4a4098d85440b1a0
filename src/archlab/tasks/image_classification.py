"""Image classification (Fashion-MNIST, MNIST, any MNIST-layout IDX directory, or a generated fixture).

Run-config task section (every key but `name` optional):

    task: {name: image_classification, dataset: fashion_mnist, root: null, val_size: 5000,
           augment: [flip], crop_pad: 2, eval_batch_size: 1000, max_eval_images: 0}

dataset: fashion_mnist | mnist (found in `root`, $ARCHLAB_FASHION_MNIST / $ARCHLAB_MNIST, or Debian's
/usr/share/datasets; Fashion-MNIST falls back to the 10,000 + 2,000-image subset shipped in the package, with a
notice) | fashion_mnist_shipped (that subset, even when the full set is installed) | idx (any MNIST-layout
directory given as `root`) | fixture (a tiny generated set).
Splits: "train" minus `val_size` held-out images -> training batches; "val" = the held-out images (the test
set when val_size is 0); "test" = the official test set. evaluate() returns loss and accuracy; the confusion
matrix of the last evaluation is kept in `task.confusion[split]`, and report() writes it as JSON and PNG
together with a PNG of sample predictions.
"""
from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from archlab.config import ConfigError, check_choice
from archlab.data.images import (
    ImageDataset,
    channel_stats,
    check_images,
    load_dataset,
    load_idx_split,
    make_fixture,
    normalize,
    random_crop,
    random_flip,
)
from archlab.fileio import atomic_write_text
from archlab.registry import register
from archlab.tasks import Task, to_device

DATASETS = ("fashion_mnist", "fashion_mnist_shipped", "mnist", "idx", "fixture")
# (dataset, root) -> (train, test) as read from disk; never modified (the task indexes and normalises copies)
_LOADED: dict[tuple[str, str | None], tuple[ImageDataset, ImageDataset]] = {}
AUGMENTS = ("crop", "flip")
OPTIONS = ("dataset", "root", "val_size", "augment", "crop_pad", "eval_batch_size", "max_eval_images",
           "fixture_size")


class ImageClassification(Task):
    """Cross-entropy classification of (N, C, H, W) images; accuracy and confusion matrix in evaluation."""

    vocab_size = None

    def __init__(self, run_cfg) -> None:
        super().__init__(run_cfg)
        for k in self.options:
            if k not in OPTIONS:
                raise ConfigError(f"unknown task option 'task.{k}' for image_classification; expected {list(OPTIONS)}")
        self.dataset = self.option("dataset", "fashion_mnist")
        check_choice("task.dataset", self.dataset, DATASETS)
        augment = self.option("augment", [])
        augment = [augment] if isinstance(augment, str) else list(augment or [])
        for a in augment:
            check_choice("task.augment[]", a, AUGMENTS)
        self.augment = tuple(augment)
        self.crop_pad = int(self.option("crop_pad", 2))
        self.eval_batch_size = int(self.option("eval_batch_size", 1000))
        self.max_eval_images = int(self.option("max_eval_images", 0))
        train, test = self._load()
        self.classes = train.classes or tuple(str(i) for i in range(train.n_classes))
        self.n_classes = train.n_classes
        self.channels, self.height, self.width = train.shape
        if self.height != self.width:
            raise ConfigError(f"task: images are {self.height}×{self.width}; the CNN family expects square images")
        if test.shape != train.shape:
            raise ConfigError(f"task: test images are {test.shape} but training images are {train.shape}")
        # hold out a seeded random subset of the training set for validation
        val_size = int(self.option("val_size", min(5000, len(train) // 10)))
        if not 0 <= val_size < len(train):
            raise ConfigError(f"task.val_size={val_size} must be in [0, {len(train)}) (training images available)")
        perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(self.seed))
        tr_idx, val_idx = perm[val_size:].sort().values, perm[:val_size].sort().values
        self.mean, self.std = channel_stats(train.images[tr_idx])
        self.fill = [-m / s for m, s in zip(self.mean, self.std)]  # a black pixel after normalisation
        self.splits = {"train": self._prep(train, tr_idx), "test": self._prep(test, None)}
        self.splits["val"] = self._prep(train, val_idx) if val_size else self.splits["test"]
        self.confusion: dict[str, torch.Tensor] = {}

    def _load(self) -> tuple[ImageDataset, ImageDataset]:
        root = self.option("root")
        if self.dataset == "fixture":
            size = int(self.option("fixture_size", 28))
            # the fixture is a pure function of (size, seed): regenerate it into a fixed temp dir
            root = root or str(Path(tempfile.gettempdir()) / f"archlab-fixture-{size}-{self.seed}")
            make_fixture(root, size=size, seed=self.seed)
            return load_idx_split(root, "train"), load_idx_split(root, "test")
        if self.dataset == "idx":
            if not root:
                raise ConfigError("task.dataset=idx needs task.root=DIR (a directory of MNIST-layout IDX files)")
            return load_idx_split(root, "train"), load_idx_split(root, "test")
        key = (self.dataset, str(root) if root else None)
        if key not in _LOADED:  # read (and decompress) once per process: a pool worker runs many runs
            _LOADED.clear()  # one image set at a time: a sweep uses one, and each costs tens of MB
            _LOADED[key] = (load_dataset(self.dataset, "train", root), load_dataset(self.dataset, "test", root))
        return _LOADED[key]

    def _prep(self, ds: ImageDataset, idx: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = (ds.images, ds.labels) if idx is None else (ds.images[idx], ds.labels[idx])
        return normalize(images, self.mean, self.std), labels

    def model_overrides(self) -> dict:
        """The model must read these images and predict these classes."""
        return {"in_channels": self.channels, "image_size": self.height, "n_classes": self.n_classes}

    def train_batch(self, step: int) -> dict:
        """Micro-batch `step`: each epoch is a seeded permutation of the training set (pure in seed and step)."""
        images, labels = self.splits["train"]
        n, bs = len(labels), self.batch_size
        per_epoch = max(n // bs, 1)  # the ragged tail of each epoch's permutation is dropped
        epoch, i = divmod(step, per_epoch)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed * 1_000_003 + epoch))
        idx = perm[i * bs:(i + 1) * bs]
        x, y = images[idx], labels[idx]
        if self.augment:
            g = torch.Generator().manual_seed(self.seed * 7_919 + step + 1)
            if "crop" in self.augment:
                x = random_crop(x, self.crop_pad, g, fill=self.fill[0] if len(self.fill) == 1 else 0.0)
            if "flip" in self.augment:
                x = random_flip(x, g)
        return {"images": x, "labels": y}

    def eval_batches(self, split: str) -> Iterable[dict]:
        """Batches of `split` (train | val | test), in order, capped at max_eval_images."""
        check_choice("split", split, tuple(self.splits))
        images, labels = self.splits[split]
        n = min(len(labels), self.max_eval_images) if self.max_eval_images else len(labels)
        for i in range(0, n, self.eval_batch_size):
            j = min(i + self.eval_batch_size, n)
            yield {"images": images[i:j], "labels": labels[i:j]}

    def loss(self, model, batch: dict) -> tuple[torch.Tensor, dict]:
        """Mean cross-entropy of the logits against the labels; accuracy as a metric."""
        images, labels = batch["images"], batch["labels"]
        check_images(images, self.channels, self.height, where="batch['images']")
        logits = model(images)
        loss = F.cross_entropy(logits.float(), labels)
        acc = (logits.argmax(-1) == labels).float().mean()
        return loss, {"accuracy": float(acc), "n_tokens": int(labels.numel())}

    @torch.no_grad()
    def predict(self, model, split: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(predicted labels, true labels, summed loss) over a split."""
        device = next(model.parameters()).device
        preds, trues, total = [], [], 0.0
        for batch in self.eval_batches(split):
            batch = to_device(batch, device)
            logits = model(batch["images"]).float()
            total += float(F.cross_entropy(logits, batch["labels"], reduction="sum"))
            preds.append(logits.argmax(-1).cpu())
            trues.append(batch["labels"].cpu())
        return torch.cat(preds), torch.cat(trues), torch.tensor(total)

    @torch.no_grad()
    def evaluate(self, model, split: str = "val") -> dict:
        """Loss and accuracy over the split; its confusion matrix (rows true, columns predicted) goes in .confusion."""
        was = model.training
        model.eval()
        try:
            pred, true, total = self.predict(model, split)
        finally:
            model.train(was)
        k = self.n_classes
        self.confusion[split] = torch.bincount(true * k + pred, minlength=k * k).view(k, k)
        n = max(len(true), 1)
        return {"loss": float(total) / n, "accuracy": float((pred == true).float().mean()) if len(true) else 0.0}

    def report(self, model, out_dir: str | Path, split: str = "test", n_samples: int = 25,
               metrics: dict | None = None) -> dict[str, Any]:
        """Evaluate on `split` and write confusion_<split>.json/.png and predictions_<split>.png under out_dir.

        `metrics`: what `evaluate(model, split)` just returned for this very model (the trainer's final
        evaluation); its confusion matrix is reused instead of evaluating the split a second time."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        if not metrics or split not in self.confusion:
            metrics = self.evaluate(model, split)
        cm = self.confusion[split]
        per_class = (cm.diag().float() / cm.sum(1).clamp(min=1).float()).tolist()
        doc = {"split": split, **metrics, "classes": list(self.classes), "confusion": cm.tolist(),
               "per_class_accuracy": dict(zip(self.classes, per_class))}
        atomic_write_text(out / f"confusion_{split}.json", json.dumps(doc, indent=1))
        plot_confusion(cm, self.classes, out / f"confusion_{split}.png", f"{split} accuracy {metrics['accuracy']:.4f}")
        self.plot_predictions(model, out / f"predictions_{split}.png", split, n_samples)
        return doc

    @torch.no_grad()
    def plot_predictions(self, model, path: str | Path, split: str = "test", n: int = 25) -> Path:
        """A grid of the first n images of a split, titled predicted (true); wrong ones in red."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        images, labels = self.splits[split]
        images, labels = images[:n], labels[:n]
        was = model.training
        model.eval()
        device = next(model.parameters()).device
        pred = model(images.to(device)).argmax(-1).cpu()
        model.train(was)
        cols = int(len(labels) ** 0.5 + 0.999)
        rows = (len(labels) + cols - 1) // cols
        fig, axes = plt.subplots(rows, cols, figsize=(1.7 * cols, 1.9 * rows), squeeze=False)
        mean = torch.tensor(self.mean).view(-1, 1, 1)
        std = torch.tensor(self.std).view(-1, 1, 1)
        for ax in axes.flat:
            ax.axis("off")
        for ax, img, p, t in zip(axes.flat, images, pred.tolist(), labels.tolist()):
            img = (img * std + mean).clamp(0, 1)
            grey = img.shape[0] == 1
            ax.imshow((img[0] if grey else img.permute(1, 2, 0)).numpy(), cmap="gray" if grey else None)
            ax.set_title(f"{self.classes[p]}\n({self.classes[t]})", fontsize=7, color="green" if p == t else "red")
        fig.suptitle("predicted (true)", fontsize=9)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return Path(path)


def plot_confusion(cm: torch.Tensor, classes: tuple[str, ...], path: str | Path, title: str = "") -> Path:
    """Confusion matrix (rows true, columns predicted) as a PNG heat map with counts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(classes)
    fig, ax = plt.subplots(figsize=(1 + 0.6 * k, 1 + 0.6 * k))
    ax.imshow(cm.numpy(), cmap="Blues")
    ax.set_xticks(range(k), classes, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(k), classes, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    top = int(cm.max()) if cm.numel() else 0
    for i in range(k):
        for j in range(k):
            v = int(cm[i, j])
            if v:
                ax.text(j, i, str(v), ha="center", va="center", fontsize=6, color="white" if v > top / 2 else "black")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


@register("task", "image_classification")
def build_image_classification(run_cfg) -> ImageClassification:
    """Task builder: (run_cfg) -> ImageClassification."""
    return ImageClassification(run_cfg)

"""The run's metrics file (metrics.jsonl, plus TensorBoard scalars when installed), reading it back, and its plot."""
from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path

from archlab.fileio import atomic_write_text
from archlab.train.checkpoint import notice

# Not plotted nor sent to TensorBoard as a curve: bookkeeping and throughput fields of a record.
NOT_A_CURVE = ("step", "time", "kind", "split")
_SINKS: list = []  # extra destinations of every record while a `sink` block is open (e.g. Weights & Biases)


@contextlib.contextmanager
def sink(fn):
    """While open, every record a MetricsLog writes is also passed to fn(record)."""
    _SINKS.append(fn)
    try:
        yield fn
    finally:
        _SINKS.remove(fn)


def throughput(tokens: int, examples: int, seconds: float) -> dict:
    """tokens and tokens/s for token models; images and images/s for image models (which feed no tokens)."""
    if tokens or not examples:
        return {"tokens": tokens, "tokens_per_s": tokens / seconds if seconds else 0.0}
    return {"images": examples, "images_per_s": examples / seconds if seconds else 0.0}


class MetricsLog:
    """Append-only JSONL metrics file (plus TensorBoard scalars when tensorboard is installed)."""

    def __init__(self, path: Path, tensorboard_dir: Path | None = None, announce: bool = False) -> None:
        self.path = path
        self.f = open(path, "a", encoding="utf-8")
        self.tb = None
        if tensorboard_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard not installed: JSONL only, as documented
                if announce:
                    print("tensorboard not installed: metrics.jsonl only", file=sys.stderr)
                return
            try:
                self.tb = SummaryWriter(str(tensorboard_dir))
                if announce:
                    print(f"tensorboard: writing {tensorboard_dir}", file=sys.stderr)
            except OSError as e:  # a folder that cannot be written: said once, the JSONL log goes on
                notice(f"TensorBoard scalars are off for this run: cannot write {str(tensorboard_dir)!r} "
                       f"({e.strerror or e}); metrics.jsonl has every value")

    def write(self, record: dict) -> None:
        """Append one record, with its wall-clock `time` (unix seconds) unless it has one."""
        record = {**record, "time": record.get("time", round(time.time(), 3))}
        self.f.write(json.dumps(record) + "\n")
        self.f.flush()
        if self.tb is not None:
            for k, v in record.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in NOT_A_CURVE:
                    self.tb.add_scalar(f"{record.get('kind', 'train')}/{k}", v, record["step"])
        for fn in _SINKS:
            fn(record)

    def close(self) -> None:
        self.f.close()
        if self.tb is not None:
            self.tb.close()

    @staticmethod
    def truncate(path: Path, step: int) -> None:
        """Drop records after `step` (written by a run that was then interrupted), atomically."""
        if not path.is_file():
            return
        keep = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                if json.loads(line).get("step", 0) <= step:
                    keep.append(line)
            except json.JSONDecodeError:  # a line cut by the crash
                continue
        atomic_write_text(path, "".join(line + "\n" for line in keep))


def read_metrics(path: str | Path) -> list[dict]:
    """All records of a metrics.jsonl file."""
    p = Path(path)
    if p.is_dir():
        p = p / "metrics.jsonl"
    return [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]


def plot_losses(metrics_path: Path, out_png: Path, title: str = "") -> Path | None:
    """Train and validation loss against step, with the lr (and validation accuracy, when the task has one) on a
    second y axis, as a PNG (None if matplotlib is missing)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    recs = read_metrics(metrics_path)
    tr = [(r["step"], r["loss"]) for r in recs if r.get("kind") == "train" and "loss" in r]
    ev = [(r["step"], r["loss"]) for r in recs if r.get("kind") == "eval" and "loss" in r]
    lr = [(r["step"], r["lr"]) for r in recs if r.get("kind") == "train" and "lr" in r]
    acc = [(r["step"], r.get("accuracy", r.get("acc"))) for r in recs
           if r.get("kind") == "eval" and isinstance(r.get("accuracy", r.get("acc")), (int, float))]
    fig, ax = plt.subplots(figsize=(9, 5))
    lines = []
    if tr:
        lines += ax.plot(*zip(*tr), label="train loss", lw=1)
    if ev:
        lines += ax.plot(*zip(*ev), "o-", label="validation loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    lines += _second_axis(ax, lr, acc)
    if lines:
        ax.legend(lines, [ln.get_label() for ln in lines], loc="upper center", bbox_to_anchor=(0.5, -0.12),
                  ncol=len(lines), frameon=False)  # below the axes: never over a curve
    fig.tight_layout()
    tmp = out_png.with_name(f".{out_png.stem}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(out_png)
    return out_png


def _second_axis(ax, lr: list, acc: list) -> list:
    """The lr on a right-hand axis; validation accuracy (0..1) on a third, offset one. The lines drawn."""
    lines = []
    if lr:
        ax_lr = ax.twinx()
        lines += ax_lr.plot(*zip(*lr), color="tab:gray", lw=0.8, ls="--", label="lr")
        ax_lr.set_ylabel("learning rate")
        ax_lr.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    if acc:
        ax_acc = ax.twinx()
        if lr:
            ax_acc.spines["right"].set_position(("axes", 1.12))
        lines += ax_acc.plot(*zip(*acc), "s-", color="tab:green", label="validation accuracy")
        ax_acc.set_ylabel("accuracy")
        ax_acc.set_ylim(0, 1)
    return lines

"""The run's metrics file (metrics.jsonl, plus TensorBoard scalars when installed), reading it back, and its plot."""
from __future__ import annotations

import json
from pathlib import Path

from archlab.fileio import atomic_write_text
from archlab.train.checkpoint import notice


class MetricsLog:
    """Append-only JSONL metrics file (plus TensorBoard scalars when tensorboard is installed)."""

    def __init__(self, path: Path, tensorboard_dir: Path | None = None) -> None:
        self.path = path
        self.f = open(path, "a", encoding="utf-8")
        self.tb = None
        if tensorboard_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard not installed: JSONL only, as documented
                return
            try:
                self.tb = SummaryWriter(str(tensorboard_dir))
            except OSError as e:  # a folder that cannot be written: said once, the JSONL log goes on
                notice(f"TensorBoard scalars are off for this run: cannot write {str(tensorboard_dir)!r} "
                       f"({e.strerror or e}); metrics.jsonl has every value")

    def write(self, record: dict) -> None:
        self.f.write(json.dumps(record) + "\n")
        self.f.flush()
        if self.tb is not None:
            for k, v in record.items():
                if isinstance(v, (int, float)) and k not in ("step",):
                    self.tb.add_scalar(f"{record.get('kind', 'train')}/{k}", v, record["step"])

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
    """Train and validation loss against step, as a PNG (None if matplotlib is missing)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    recs = read_metrics(metrics_path)
    tr = [(r["step"], r["loss"]) for r in recs if r.get("kind") == "train" and "loss" in r]
    ev = [(r["step"], r["loss"]) for r in recs if r.get("kind") == "eval" and "loss" in r]
    fig, ax = plt.subplots(figsize=(6, 4))
    if tr:
        ax.plot(*zip(*tr), label="train", lw=1)
    if ev:
        ax.plot(*zip(*ev), "o-", label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = out_png.with_name(f".{out_png.stem}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(out_png)
    return out_png

"""The commands' share of the machine: `--threads`, a warning when the CPU is oversubscribed, progress bars."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from archlab.errors import ConfigError


def add_inference_options(p) -> None:
    """`--device` and `--threads N` for an inference command (train has train.device and train.threads)."""
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps (default cpu)")
    add_threads_option(p)


def load_model(command: str, args):
    """Check --device and --threads (warning on a busy machine), then load the checkpoint's model: (model,
    tokenizer, checkpoint document)."""
    from archlab.commands._device import check_device
    from archlab.commands._load import load_for_inference

    check_device(args.device)
    apply_threads(command, args.threads)
    return load_for_inference(args.checkpoint, args.device)


def add_threads_option(p) -> None:
    """`--threads N` for an inference command (train has train.threads)."""
    p.add_argument("--threads", type=int, default=0, metavar="N",
                   help="CPU threads torch may use (default 0: torch's default, one per core); on a machine other "
                   "jobs are using, --threads 1 keeps this run from fighting them")


def cores() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def runnable_processes() -> int | None:
    """Processes running or ready to run now (/proc/loadavg's count, this one included; else the 1-min load)."""
    try:
        return int(Path("/proc/loadavg").read_text().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        pass
    try:
        return round(os.getloadavg()[0]) + 1  # the load average leaves out this process, just started
    except (AttributeError, OSError):
        return None


def warn_if_oversubscribed(command: str, hint: str, threads: int = 0, err=None) -> bool:
    """One line on stderr when more processes want the CPU than it has cores, naming the option that helps
    (`hint`); nothing when the run already uses one thread, or when ARCHLAB_NO_BUSY_WARNING is set. True when it
    warned."""
    if os.environ.get("ARCHLAB_NO_BUSY_WARNING"):
        return False
    n, c = runnable_processes(), cores()
    if threads == 1 or n is None or n <= c:
        return False
    print(f"archlab {command}: {n} runnable processes on {c} cores: this run may be slow; {hint} keeps it from "
          "fighting the others", file=err or sys.stderr)
    return True


def apply_threads(command: str, threads: int) -> None:
    """Check --threads, warn on a busy machine, then set torch's thread count (0 leaves torch's default)."""
    from archlab.train.preflight import max_threads

    if threads < 0 or threads > max_threads():
        raise ConfigError(f"--threads={threads} must be between 0 (torch's default) and {max_threads()} "
                          f"(a few per core of the {os.cpu_count()} here)")
    warn_if_oversubscribed(command, "--threads 1", threads)
    if threads:
        import torch

        torch.set_num_threads(threads)


def progress_bar(total: int | None, desc: str, unit: str = "batch"):
    """A tqdm bar on stderr that leaves no line behind (quiet when stderr is not a terminal)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True, mininterval=0.5,
                disable=not sys.stderr.isatty())


def with_progress(batches_of, desc: str):
    """Wrap a task's eval_batches(split) so each evaluation pass shows a bar."""
    def wrapped(split):
        batches = batches_of(split)
        bar = progress_bar(len(batches) if hasattr(batches, "__len__") else None, desc)
        try:
            for b in batches:
                yield b
                bar.update(1)
        finally:
            bar.close()
    return wrapped

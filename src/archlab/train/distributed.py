"""Data-parallel (DDP) and fully-sharded (FSDP2) training through torchrun, with resumable distributed checkpoints.

    torchrun --nproc_per_node=2 -m archlab.train.distributed CONFIG.yaml --strategy ddp|fsdp --out runs/x [--resume]

Semantics: `train.batch_size` is the *global* batch, exactly as in the single-process trainer
(archlab.train.trainer). Every rank builds the same global micro-batch `task.train_batch(i)` (a pure
function of (seed, i)) and keeps rows [r·B/W, (r+1)·B/W). DDP all-reduces the mean of the rank gradients,
FSDP2 reduce-scatters it; when every shard holds the same number of loss tokens (causal LM and the
fixed-length synthetic tasks) that mean is the gradient of the global-batch mean loss, so the loss
curve equals single-process training on the same global batch (tests/perf/test_distributed.py).
The loop itself is the single-process trainer's (archlab.train.trainer.train with this module's DataParallel
strategy): the same evaluation, metrics.jsonl records, checkpoint cadence, resume seeding (the RNG state saved
with each checkpoint) and run folder (rank 0 holds OUT/run.lock) — this module holds only the torch.distributed
specifics and that strategy.

Checkpoints use torch.distributed.checkpoint (DCP): every rank writes its own shard in parallel, and
a resume may use another world size or strategy (DCP reshards on load). `OUT/dcp/step_N/` holds the
DCP files; `OUT/dcp/step_N/state.json` (step, configs, RNG state) is written by rank 0 after all shards are done,
and `OUT/dcp/LATEST` names the newest complete one. Note: DCP's own `.metadata` file is a torch pickle,
so load DCP checkpoints only from sources you trust; `export_safetensors` writes a consolidated
safetensors copy of the weights for sharing.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import shutil
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from archlab.errors import ConfigError, MissingFileError
from archlab.fileio import atomic_write_text
from archlab.train.run_config import RunConfig, load_run_config, run_config_from_dict
from archlab.train.runtime import uses_bf16
from archlab.train.strategy import SingleProcess
from archlab.train.trainer import train

STRATEGIES = ("ddp", "fsdp", "none")


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(backend: str | None = None, device: str = "auto") -> DistInfo:
    """Join the process group described by torchrun's env (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT).

    Without those variables this is a world of one and no process group is created.
    NCCL on CUDA, gloo on CPU unless `backend` says otherwise.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device in ("auto", "cuda")
    dev = torch.device(f"cuda:{local_rank}") if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend or ("nccl" if use_cuda else "gloo"), timeout=datetime.timedelta(minutes=10),
                                device_id=dev if use_cuda else None)
    return DistInfo(rank, world, local_rank, dev)


def blocks_of(model: nn.Module) -> list[nn.Module]:
    """The residual blocks (the FSDP2 sharding units) of an archlab model, encoder first."""
    out = []
    for name in ("encoder", "decoder"):
        stack = getattr(model, name, None)
        if stack is not None and hasattr(stack, "blocks"):
            out.extend(stack.blocks)
    if not out and hasattr(model, "blocks"):
        out = list(model.blocks)
    return out


def wrap_model(model: nn.Module, strategy: str, info: DistInfo, *, bf16_params: bool = False) -> nn.Module:
    """DDP wrapper, or FSDP2 (`fully_shard` on every block, then the root) in place; 'none' returns model."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"strategy {strategy!r} unknown; expected one of {list(STRATEGIES)}")
    if strategy == "none" or info.world_size == 1 and strategy == "ddp":
        return model
    if strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel as DDP

        return DDP(model, device_ids=[info.device.index] if info.device.type == "cuda" else None)
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if bf16_params else None
    kw = {"mp_policy": mp} if mp is not None else {}
    for block in blocks_of(model):
        fully_shard(block, **kw)
    fully_shard(model, **kw)  # root: embeddings, final norm, (tied) head
    return model


def shard_batch(batch: dict, info: DistInfo) -> dict:
    """Rows [r·B/W, (r+1)·B/W) of every batch tensor (dim 0) for rank r."""
    if info.world_size == 1:
        return batch
    out = {}
    for k, v in batch.items():
        if isinstance(v, torch.Tensor) and v.dim() > 0:
            if v.shape[0] % info.world_size:
                raise ConfigError(f"train.batch_size={v.shape[0]} (the global batch) must be divisible by the "
                                  f"world size {info.world_size}")
            n = v.shape[0] // info.world_size
            v = v[info.rank * n:(info.rank + 1) * n]
        out[k] = v
    return out


def all_reduce(values: list[float], info: DistInfo, op: str = "sum") -> list[float]:
    """Sum (or max) of each value over the ranks, in float64; a world of one returns values."""
    if info.world_size == 1:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)  # gloo has no AVG
    return t.tolist()


def no_grad_sync(model: nn.Module, strategy: str):
    """Skip the gradient all-reduce for a micro-batch that is not the last of its step."""
    if strategy == "ddp" and hasattr(model, "no_sync"):
        return model.no_sync()
    if strategy == "fsdp" and hasattr(model, "set_requires_gradient_sync"):
        model.set_requires_gradient_sync(False)

        @contextlib.contextmanager
        def restore():
            try:
                yield
            finally:
                model.set_requires_gradient_sync(True)
        return restore()
    return contextlib.nullcontext()


# ------------------------------------------------------------------------------------------ checkpoints
def save_distributed(root: str | Path, step: int, model: nn.Module, optimizer, info: DistInfo,
                     meta: dict | None = None, keep: int = 0) -> Path:
    """All ranks: write model + optimizer shards with DCP into root/step_N; rank 0 then publishes it as LATEST
    and keeps only the newest `keep` complete checkpoints (0 = all)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    root = Path(root)
    path = root / f"step_{step:08d}"
    msd, osd = get_state_dict(model, optimizer)
    dcp.save({"model": msd, "optim": osd}, checkpoint_id=str(path))
    if info.world_size > 1:
        dist.barrier()
    if info.is_main:
        atomic_write_text(path / "state.json", json.dumps({"step": step, "world_size": info.world_size,
                                                           **(meta or {})}, indent=1))
        atomic_write_text(root / "LATEST", path.name)
        if keep:
            done = sorted(p for p in root.glob("step_*") if (p / "state.json").is_file())
            for old in done[:-keep]:
                shutil.rmtree(old, ignore_errors=True)
    if info.world_size > 1:
        dist.barrier()
    return path


def latest_distributed(root: str | Path) -> Path | None:
    """The newest complete DCP checkpoint under root (named by LATEST, with its state.json), or None."""
    root = Path(root)
    latest = root / "LATEST"
    if not latest.is_file():
        return None
    path = root / latest.read_text().strip()
    return path if (path / "state.json").is_file() else None


def load_distributed(path: str | Path, model: nn.Module, optimizer) -> dict:
    """All ranks: load model + optimizer from a DCP checkpoint (resharded to this job); returns its state.json."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    path = Path(path)
    state_file = path / "state.json"
    if not state_file.is_file():
        raise MissingFileError(f"{str(path)!r} is not a complete distributed checkpoint (no state.json)")
    msd, osd = get_state_dict(model, optimizer)
    sd = {"model": msd, "optim": osd}
    dcp.load(sd, checkpoint_id=str(path))
    set_state_dict(model, optimizer, model_state_dict=sd["model"], optim_state_dict=sd["optim"])
    return json.loads(state_file.read_text())


def export_safetensors(model: nn.Module, path: str | Path, info: DistInfo) -> None:
    """Gather the full weights (all ranks take part) and write them as one safetensors file on rank 0."""
    from safetensors.torch import save_model
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    inner = model.module if hasattr(model, "module") else model
    sd = get_model_state_dict(inner, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if info.is_main:
        dense = type(inner)(inner.cfg) if hasattr(inner, "cfg") else None
        if dense is None:
            raise ValueError("export_safetensors needs an archlab model (with .cfg)")
        dense.load_state_dict(sd)
        save_model(dense, str(path))


# ---------------------------------------------------------------------------------------------- strategy
class DataParallel(SingleProcess):
    """One rank of a DDP or FSDP2 job: the trainer's loop (archlab.train.strategy) on 1/W of every global batch.

    Checkpoints are DCP shards under OUT/dcp/step_N (any world size or strategy can resume them); rank 0 holds
    the run folder's lock and writes the run's files; evaluation runs on every rank (FSDP2 needs every rank in
    each forward) and gives the same numbers everywhere.
    """

    def __init__(self, kind: str, info: DistInfo) -> None:
        super().__init__()
        if kind not in STRATEGIES or kind == "none":
            raise ConfigError(f"strategy {kind!r} unknown; expected 'ddp' or 'fsdp'")
        self.name, self.info = kind, info
        self.is_main, self.world_size = info.is_main, info.world_size
        self.model: nn.Module | None = None  # the wrapped model, after wrap()

    def device(self, tc) -> torch.device:
        return self.info.device

    def wrap(self, model: nn.Module, tc) -> nn.Module:
        dev = self.info.device
        bf16 = uses_bf16(dev, tc.precision) and dev.type == "cuda"
        self.model = wrap_model(model, self.name, self.info, bf16_params=bf16)
        return self.model

    def shard(self, batch: dict) -> dict:
        return shard_batch(batch, self.info)

    def accumulating(self, fwd: nn.Module, last: bool):
        return contextlib.nullcontext() if last else no_grad_sync(self.model, self.name)

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        keys = list(values)  # the same order on every rank
        sums = all_reduce([values[k] for k in keys], self.info, "sum")
        return {k: s / self.world_size for k, s in zip(keys, sums)}

    def any(self, flag: bool) -> bool:
        return bool(all_reduce([float(flag)], self.info, "max")[0])

    def on_main(self, fn: Callable[[], Any]) -> None:
        failed: BaseException | None = None
        if self.is_main:
            try:
                fn()
            except BaseException as e:  # noqa: BLE001 - re-raised below, after the other ranks have heard
                failed = e
        if all_reduce([float(failed is not None)], self.info, "max")[0]:
            if failed is not None:
                raise failed
            raise RuntimeError("the main process (rank 0) could not prepare the run folder; see its error")

    def checkpoint_dir(self, out: Path) -> Path:
        return out / "dcp"

    def has_checkpoint(self, out: Path) -> bool:
        return any(self.checkpoint_dir(out).glob("step_*"))

    def find_checkpoint(self, out: Path) -> tuple[Path, dict, list]:
        found = latest_distributed(self.checkpoint_dir(out))
        if found is None:
            where = str(self.checkpoint_dir(out))
            raise MissingFileError(f"nothing to resume: no complete checkpoint under {where!r}")
        return found, json.loads((found / "state.json").read_text()), []

    def load_checkpoint(self, path: Path, model: nn.Module, optimizer, device, doc: dict) -> dict:
        return load_distributed(path, self.model, optimizer)

    def save_checkpoint(self, out: Path, step: int, model: nn.Module, optimizer, state: dict, tokenizer,
                        keep: int) -> Path:
        return save_distributed(self.checkpoint_dir(out), step, self.model, optimizer, self.info,
                                {**state, "strategy": self.name}, keep=keep)

    def can_report(self) -> bool:
        return self.name == "ddp" or self.world_size == 1  # an FSDP2 forward needs every rank

    def describe(self) -> dict[str, Any]:
        return {"strategy": self.name, "world_size": self.world_size}


# --------------------------------------------------------------------------------------------- training
def train_distributed(run_cfg: RunConfig, strategy: str, out_dir: str | Path, *, resume: bool = False,
                      info: DistInfo | None = None, progress: bool = True, overwrite: bool = False,
                      export: str | Path | None = None) -> list[float]:
    """Train run_cfg on this job (any world size) with DDP / FSDP2 through the one trainer
    (archlab.train.trainer.train with a DataParallel strategy: the same evaluation, metrics.jsonl records,
    checkpoint cadence, resume seeding and run-folder lock as single-process training). Returns the per-step
    global-batch losses of this invocation."""
    info = info or init_distributed(device=run_cfg.train.device)
    plan = DataParallel(strategy, info)
    train(run_cfg, out_dir, resume=resume, progress=progress and info.is_main, overwrite=overwrite, strategy=plan)
    if export:
        export_safetensors(plan.model, export, info)
    return plan.losses


# ------------------------------------------------------------------------------ local multi-process launcher
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, cfg_dict: dict, strategy: str, out: str, resume: bool,
            result_file: str | None) -> None:
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank)})
    torch.set_num_threads(1)
    info = init_distributed(device="cpu")
    try:
        losses = train_distributed(run_config_from_dict(cfg_dict), strategy, out, resume=resume, info=info,
                                   progress=False)
        if rank == 0 and result_file:
            Path(result_file).write_text(json.dumps(losses))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def launch_local(world_size: int, run_cfg: RunConfig, strategy: str, out_dir: str | Path, *,
                 resume: bool = False) -> list[float]:
    """Run train_distributed in `world_size` local CPU processes (gloo), as torchrun would; returns rank 0's losses."""
    import torch.multiprocessing as mp

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = out / f"losses_{strategy}_{world_size}{'_resume' if resume else ''}.json"
    mp.spawn(_worker, args=(world_size, _free_port(), run_cfg.to_dict(), strategy, str(out), resume, str(result)),
             nprocs=world_size, join=True)
    return json.loads(result.read_text())


# ------------------------------------------------------------------------------------------------------ CLI
def main(argv: list[str] | None = None) -> int:
    """torchrun entry point."""
    ap = argparse.ArgumentParser(prog="python -m archlab.train.distributed",
                                 description="DDP / FSDP2 training of a run config under torchrun.")
    ap.add_argument("config", help="run config YAML/JSON (train.batch_size is the global batch)")
    ap.add_argument("--strategy", choices=("ddp", "fsdp"), default="ddp")
    ap.add_argument("--out", default=None, help="run directory (default runs/<name>-<strategy>)")
    ap.add_argument("--resume", action="store_true", help="continue from OUT/dcp/LATEST (any world size)")
    ap.add_argument("--overwrite", action="store_true", help="discard the run already in --out and start afresh")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--export", default=None, metavar="FILE.safetensors", help="write consolidated weights at the end")
    args = ap.parse_args(argv)
    run_cfg = load_run_config(args.config, args.overrides)
    info = init_distributed(device=run_cfg.train.device)
    out = Path(args.out or f"runs/{run_cfg.name}-{args.strategy}")
    try:
        losses = train_distributed(run_cfg, args.strategy, out, resume=args.resume, info=info,
                                   overwrite=args.overwrite, export=args.export)
        if info.is_main and losses:
            print(json.dumps({"final_loss": losses[-1], "steps": len(losses), "world_size": info.world_size,
                              "strategy": args.strategy, "out": str(out)}))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__: list[Any] = ["DistInfo", "DataParallel", "init_distributed", "wrap_model", "shard_batch", "save_distributed",
                      "load_distributed", "latest_distributed", "export_safetensors", "train_distributed",
                      "launch_local", "main"]

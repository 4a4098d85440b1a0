"""Checkpoints: tensors in safetensors, everything else in JSON, written atomically and verified on load.

Layout of a run directory:

    OUT/checkpoints/step_00001000/model.safetensors       weights (tied tensors stored once)
                                  optimizer.safetensors   optimiser state flattened to "<param>::<key>"
                                  tokenizer.json          when the task has a tokenizer
                                  state.json              step, configs, schedule, RNG states, data position,
                                                          and the size + SHA-256 of every file above
    OUT/checkpoints/LATEST                                name of the newest complete checkpoint

A checkpoint is written into a temporary directory next to its final place, every file fsync'ed,
then renamed in one step, so a crash at any moment leaves the previous checkpoint intact; `state.json`
is written last and lists checksums, so a truncated or half-written checkpoint is never loaded as valid.
Nothing is ever unpickled: loading reads only safetensors and JSON.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from archlab.fileio import atomic_write_text, fsync_dir, fsync_file

FORMAT = "archlab-checkpoint/1"
STATE_FILE = "state.json"
MODEL_FILE = "model.safetensors"
OPTIM_FILE = "optimizer.safetensors"
LATEST = "LATEST"

# Test hook: called with a stage name while a checkpoint is being written ("model", "optimizer",
# "state", "publish"); a test makes it raise to simulate a crash at that moment.
_test_hook: Callable[[str], None] | None = None


class CheckpointError(ValueError):
    """A checkpoint is missing, incomplete, corrupt, or does not match what is being loaded."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _hook(stage: str) -> None:
    if _test_hook is not None:
        _test_hook(stage)


# ----------------------------------------------------------------------------- RNG state as JSON
def _b64(t: torch.Tensor) -> str:
    return base64.b64encode(t.cpu().numpy().tobytes()).decode("ascii")


def _unb64(s: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(s)), dtype=torch.uint8).clone()


def rng_state() -> dict:
    """Every RNG the training loop may touch (python, numpy, torch CPU, CUDA), as JSON-ready data."""
    py = random.getstate()
    npst = np.random.get_state()
    out = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [npst[0], npst[1].tolist(), int(npst[2]), int(npst[3]), float(npst[4])],
        "torch": _b64(torch.get_rng_state()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = [_b64(s) for s in torch.cuda.get_rng_state_all()]
    return out


def set_rng_state(state: dict) -> None:
    """Restore what rng_state() captured."""
    v, key, gauss = state["python"]
    random.setstate((v, tuple(key), gauss))
    name, key, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(key, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(_unb64(state["torch"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([_unb64(s) for s in state["cuda"]])


# ----------------------------------------------------------------------------- optimiser flattening
def _param_names(model: torch.nn.Module) -> dict[int, str]:
    names: dict[int, str] = {}
    for name, p in model.named_parameters(remove_duplicate=True):
        names.setdefault(id(p), name)
    return names


def optimizer_to_tensors(optimizer: torch.optim.Optimizer, model: torch.nn.Module) -> tuple[dict, dict]:
    """(named tensors "<param>::<key>", JSON-ready param groups and non-tensor state)."""
    names = _param_names(model)
    order = [names[id(p)] for g in optimizer.param_groups for p in g["params"]]
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for idx, st in sd["state"].items():
        pname = order[idx]
        for key, value in st.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{pname}::{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{pname}::{key}"] = value
    groups = []
    for g in sd["param_groups"]:
        gg = {k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items() if k != "params"}
        gg["params"] = [order[i] for i in g["params"]]
        groups.append(gg)
    return tensors, {"param_groups": groups, "scalars": scalars}


def optimizer_from_tensors(optimizer: torch.optim.Optimizer, model: torch.nn.Module, tensors: dict,
                           meta: dict, where: str) -> None:
    """Load what optimizer_to_tensors produced into an optimiser built over the same parameters."""
    names = _param_names(model)
    order = [names[id(p)] for g in optimizer.param_groups for p in g["params"]]
    index = {n: i for i, n in enumerate(order)}
    saved = [n for g in meta["param_groups"] for n in g["params"]]
    if sorted(saved) != sorted(order):
        missing = sorted(set(order) - set(saved))[:3]
        extra = sorted(set(saved) - set(order))[:3]
        raise CheckpointError(f"optimizer state in {where} does not match the model's parameters "
                              f"(missing {missing}, unexpected {extra})")
    state: dict[int, dict] = {}
    for key, value in list(tensors.items()) + list(meta.get("scalars", {}).items()):
        pname, _, k = key.rpartition("::")
        state.setdefault(index[pname], {})[k] = value
    groups = []
    for g in meta["param_groups"]:
        gg = {k: (tuple(v) if k == "betas" else v) for k, v in g.items() if k != "params"}
        gg["params"] = [index[n] for n in g["params"]]
        groups.append(gg)
    optimizer.load_state_dict({"state": state, "param_groups": groups})


# ----------------------------------------------------------------------------- model tensors
def model_tensors(model: torch.nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(state-dict tensors with tied tensors stored once under their first name, {alias: stored name})."""
    out: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple, str] = {}
    for name, t in model.state_dict().items():
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), tuple(t.stride()), t.dtype)
        if t.numel() and key in seen:
            aliases[name] = seen[key]
            continue
        seen[key] = name
        out[name] = t.detach().cpu().contiguous()
    return out, aliases


def read_model_tensors(path: str | Path, device: str = "cpu") -> dict[str, torch.Tensor]:
    """Every state-dict tensor of a model.safetensors, tied aliases filled back in."""
    tensors = load_file(str(path), device=device)
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    for alias, name in json.loads(meta.get("aliases", "{}")).items():
        tensors[alias] = tensors[name]
    return tensors


# ----------------------------------------------------------------------------- save
def checkpoint_name(step: int) -> str:
    return f"step_{step:08d}"


def save_checkpoint(root: str | Path, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    state: dict | None = None, tokenizer: Any = None, keep: int = 2) -> Path:
    """Write checkpoint `step` under root (a run's checkpoints/ dir) atomically; prune to the newest `keep`."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    model = getattr(model, "_orig_mod", model)  # torch.compile wrapper
    final = root / checkpoint_name(step)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=root))
    try:
        tensors, aliases = model_tensors(model)
        save_file(tensors, str(tmp / MODEL_FILE),
                  metadata={"format": "pt", "archlab": FORMAT, "aliases": json.dumps(aliases)})
        fsync_file(tmp / MODEL_FILE)
        _hook("model")
        meta: dict[str, Any] = {}
        if optimizer is not None:
            tensors, meta = optimizer_to_tensors(optimizer, model)
            save_file(tensors, str(tmp / OPTIM_FILE), metadata={"format": "pt", "archlab": FORMAT})
            fsync_file(tmp / OPTIM_FILE)
            _hook("optimizer")
        if tokenizer is not None and hasattr(tokenizer, "save"):
            tokenizer.save(str(tmp / "tokenizer.json"))
            fsync_file(tmp / "tokenizer.json")
        files = {p.name: {"bytes": p.stat().st_size, "sha256": _sha256(p)} for p in sorted(tmp.iterdir())}
        doc = {"format": FORMAT, "step": step, **(state or {}), "optimizer": meta or None, "files": files}
        (tmp / STATE_FILE).write_text(json.dumps(doc, indent=1, sort_keys=False), encoding="utf-8")
        fsync_file(tmp / STATE_FILE)
        _hook("state")
        fsync_dir(tmp)
        if final.exists():  # re-saving the same step: move the old one aside first
            old = root / f".old-{final.name}"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            shutil.rmtree(old, ignore_errors=True)
        _hook("publish")
        os.replace(tmp, final)
        fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_write_text(root / LATEST, final.name + "\n")
    _prune(root, keep)
    return final


def _steps(root: Path) -> list[Path]:
    out = [p for p in root.iterdir() if p.is_dir() and p.name.startswith("step_") and p.name[5:].isdigit()]
    return sorted(out, key=lambda p: int(p.name[5:]))


def _prune(root: Path, keep: int) -> None:
    for p in _steps(root)[:-keep]:
        shutil.rmtree(p, ignore_errors=True)
    for p in root.glob(".tmp-step_*"):  # leftovers of a crashed save
        shutil.rmtree(p, ignore_errors=True)


# ----------------------------------------------------------------------------- find + verify + load
def _read_state(ckpt: Path) -> dict:
    sp = ckpt / STATE_FILE
    if not sp.is_file():
        raise CheckpointError(f"checkpoint {str(ckpt)!r} is incomplete: {STATE_FILE} is missing")
    try:
        doc = json.loads(sp.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"checkpoint {str(ckpt)!r} is corrupt: {STATE_FILE} is not valid JSON ({e})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {str(ckpt)!r} is not an archlab checkpoint ({STATE_FILE} lacks "
                              f"format={FORMAT!r})")
    return doc


def verify_checkpoint(ckpt: str | Path) -> dict:
    """Check that every file state.json lists exists with the recorded size and SHA-256; return state.json."""
    ckpt = Path(ckpt)
    doc = _read_state(ckpt)
    for name, info in doc.get("files", {}).items():
        p = ckpt / name
        if not p.is_file():
            raise CheckpointError(f"checkpoint {str(ckpt)!r} is incomplete: {name} is missing")
        size = p.stat().st_size
        if size != info["bytes"]:
            raise CheckpointError(f"checkpoint file {str(p)!r} is corrupt: {size} bytes, expected {info['bytes']} "
                                  "(truncated or partly written)")
        if _sha256(p) != info["sha256"]:
            raise CheckpointError(f"checkpoint file {str(p)!r} is corrupt: its SHA-256 does not match state.json")
    if MODEL_FILE not in doc.get("files", {}):
        raise CheckpointError(f"checkpoint {str(ckpt)!r} holds no {MODEL_FILE}")
    return doc


def latest_checkpoint(path: str | Path) -> Path | None:
    """The newest complete checkpoint under a run dir (or its checkpoints/ dir); None if there is none."""
    path = Path(path)
    root = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    if not root.is_dir():
        return None
    pointer = root / LATEST
    if pointer.is_file():
        name = pointer.read_text(encoding="utf-8").strip()
        if name and (root / name / STATE_FILE).is_file():
            return root / name
    # no pointer (or it names a vanished dir): the newest step dir with a state.json
    for p in reversed(_steps(root)):
        if (p / STATE_FILE).is_file():
            return p
    return None


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint dir from a checkpoint dir, a run dir, or a run's checkpoints/ dir; clear error if none."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"checkpoint path {str(p)!r} does not exist")
    if (p / STATE_FILE).is_file():
        return p
    found = latest_checkpoint(p)
    if found is None:
        if p.is_file():
            raise CheckpointError(f"{str(p)!r} is a file; expected a checkpoint directory (with {STATE_FILE}) "
                                  "or a run directory (with checkpoints/)")
        raise CheckpointError(f"no checkpoint in {str(p)!r} (expected {STATE_FILE} or checkpoints/step_*/)")
    return found


def load_checkpoint(path: str | Path, model: torch.nn.Module | None = None,
                    optimizer: torch.optim.Optimizer | None = None, *, restore_rng: bool = False,
                    device: str | torch.device = "cpu") -> dict:
    """Verify a checkpoint, load weights into `model` and state into `optimizer` if given; return state.json.

    The returned dict also carries "path" (the checkpoint directory).
    """
    ckpt = resolve_checkpoint(path)
    doc = verify_checkpoint(ckpt)
    try:
        if model is not None:
            model = getattr(model, "_orig_mod", model)
            try:
                model.load_state_dict(read_model_tensors(ckpt / MODEL_FILE, str(device)), strict=True)
            except RuntimeError as e:
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise CheckpointError(f"weights in {str(ckpt / MODEL_FILE)!r} do not fit this model: {first}") from None
        if optimizer is not None:
            if not doc.get("optimizer"):
                raise CheckpointError(f"checkpoint {str(ckpt)!r} holds no optimizer state; cannot resume from it")
            tensors = load_file(str(ckpt / OPTIM_FILE), device=str(device))
            optimizer_from_tensors(optimizer, model, tensors, doc["optimizer"], str(ckpt / OPTIM_FILE))
    except SafetensorError as e:
        raise CheckpointError(f"checkpoint {str(ckpt)!r} is corrupt: {e}") from None
    if restore_rng and "rng" in doc:
        set_rng_state(doc["rng"])
    doc["path"] = str(ckpt)
    return doc

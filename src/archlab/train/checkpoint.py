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
state.json also carries the SHA-256 of its own content ("state_sha256", over the canonical JSON without
that key), so a damaged or hand-edited state.json (configs, RNG states, checksums) is refused, while a
harmless change (whitespace) is not. Nothing is ever unpickled: loading reads only safetensors and JSON.

One fall-back rule for every command (train --resume, sample, eval, convert, translate, ...): given a run
directory, the newest *complete* checkpoint is used; a newer incomplete one (state.json missing or
unreadable, a file missing or failing its checksum) is skipped with a one-line notice on stderr. Only when
no checkpoint is complete is it an error. A checkpoint directory named explicitly is verified, never
replaced by another. "Complete" depends on the use: loading weights (sample, eval, convert, init_from) needs
every file but optimizer.safetensors, so a damaged optimizer file does not hide intact weights; resuming
needs the optimizer state too.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from archlab.errors import CheckpointError, MissingFileError
from archlab.fileio import atomic_write_text, fsync_dir, fsync_file, honour_umask, make_temp_dir
from archlab.models.migrations import upgrade_saved_model_config
from archlab.train.state_io import optimizer_from_tensors, optimizer_to_tensors, rng_state, set_rng_state  # noqa: F401

FORMAT = "archlab-checkpoint/2"  # /2: state.json carries state_sha256 (required); /1 (older) is still read
FORMATS = ("archlab-checkpoint/1", FORMAT)
SELF_SHA = "state_sha256"
STATE_FILE = "state.json"
MODEL_FILE = "model.safetensors"
OPTIM_FILE = "optimizer.safetensors"
LATEST = "LATEST"

# Test hook: called with a stage name while a checkpoint is being written ("model", "optimizer",
# "state", "publish"); a test makes it raise to simulate a crash at that moment.
_test_hook: Callable[[str], None] | None = None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _canonical_sha256(doc: dict) -> str:
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def notice(msg: str) -> None:
    """One line on stderr for something the user should know but that is not an error."""
    print(f"archlab: {msg}", file=sys.stderr, flush=True)


def _hook(stage: str) -> None:
    if _test_hook is not None:
        _test_hook(stage)


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
    tmp = make_temp_dir(root, f".tmp-{final.name}-")
    try:
        tensors, aliases = model_tensors(model)
        save_file(tensors, str(tmp / MODEL_FILE),
                  metadata={"format": "pt", "archlab": FORMAT, "aliases": json.dumps(aliases)})
        honour_umask(tmp / MODEL_FILE)  # safetensors creates its files 0600
        fsync_file(tmp / MODEL_FILE)
        _hook("model")
        meta: dict[str, Any] = {}
        if optimizer is not None:
            tensors, meta = optimizer_to_tensors(optimizer, model)
            save_file(tensors, str(tmp / OPTIM_FILE), metadata={"format": "pt", "archlab": FORMAT})
            honour_umask(tmp / OPTIM_FILE)
            fsync_file(tmp / OPTIM_FILE)
            _hook("optimizer")
        if tokenizer is not None and hasattr(tokenizer, "save"):
            tokenizer.save(str(tmp / "tokenizer.json"))
            fsync_file(tmp / "tokenizer.json")
        files = {p.name: {"bytes": p.stat().st_size, "sha256": _sha256(p)} for p in sorted(tmp.iterdir())}
        doc = {"format": FORMAT, "step": step, **(state or {}), "optimizer": meta or None, "files": files}
        doc = json.loads(json.dumps(doc))  # exactly what a reader will parse (tuples -> lists, ...)
        doc[SELF_SHA] = _canonical_sha256(doc)
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
        doc = json.loads(sp.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"checkpoint {str(ckpt)!r} is corrupt: {STATE_FILE} is not valid JSON "
                              f"({first})") from None
    except OSError as e:
        raise CheckpointError(f"checkpoint {str(ckpt)!r} is unreadable: {STATE_FILE}: {e.strerror or e}") from None
    if not isinstance(doc, dict) or doc.get("format") not in FORMATS:
        raise CheckpointError(f"checkpoint {str(ckpt)!r} is not an archlab checkpoint ({STATE_FILE} lacks "
                              f"format={FORMAT!r})")
    # /2 requires the self-checksum; /1 checkpoints (older archlab) have none, but one that is present is checked
    # (so a damaged byte can neither turn "/2" into "/1" nor rename the key and go unnoticed).
    if doc["format"] != FORMATS[0] or SELF_SHA in doc:
        recorded = doc.pop(SELF_SHA, None)
        if recorded != _canonical_sha256(doc):
            raise CheckpointError(f"checkpoint {str(ckpt)!r} is corrupt: {STATE_FILE} does not match its recorded "
                                  "checksum (damaged or edited by hand)")
    files = doc.get("files")
    if not isinstance(files, dict) or not all(
            isinstance(v, dict) and isinstance(v.get("bytes"), int) and isinstance(v.get("sha256"), str)
            for v in files.values()) or not isinstance(doc.get("step"), int):
        raise CheckpointError(f"checkpoint {str(ckpt)!r} is corrupt: {STATE_FILE} lacks a valid step or file list")
    if "model_config" in doc:  # older configs keep the meaning they were saved with
        doc["model_config"] = upgrade_saved_model_config(doc["model_config"])
    return doc


def verify_checkpoint(ckpt: str | Path, *, need_optimizer: bool = True) -> dict:
    """Check that every file state.json lists exists with the recorded size and SHA-256; return state.json.
    `need_optimizer=False` (loading weights only) leaves optimizer.safetensors unchecked."""
    ckpt = Path(ckpt)
    doc = _read_state(ckpt)
    for name, info in doc["files"].items():
        if name == OPTIM_FILE and not need_optimizer:
            continue
        p = ckpt / name
        if Path(name).name != name or not p.is_file():
            raise CheckpointError(f"checkpoint {str(ckpt)!r} is incomplete: {name} is missing")
        size = p.stat().st_size
        if size != info["bytes"]:
            raise CheckpointError(f"checkpoint file {str(p)!r} is corrupt: {size} bytes, expected {info['bytes']} "
                                  "(truncated or partly written)")
        if _sha256(p) != info["sha256"]:
            raise CheckpointError(f"checkpoint file {str(p)!r} is corrupt: its SHA-256 does not match state.json")
    if MODEL_FILE not in doc["files"]:
        raise CheckpointError(f"checkpoint {str(ckpt)!r} holds no {MODEL_FILE}")
    return doc


def checkpoint_root(path: str | Path) -> Path:
    """A run dir's checkpoints/ dir (or `path` itself when it is one)."""
    path = Path(path)
    return path / "checkpoints" if (path / "checkpoints").is_dir() else path


def step_dirs(path: str | Path) -> list[Path]:
    """Every step_* directory under a run dir (or its checkpoints/ dir), complete or not, oldest first."""
    root = checkpoint_root(path)
    return _steps(root) if root.is_dir() else []


def find_checkpoint(path: str | Path, *, quiet: bool = False,
                    need_optimizer: bool = True) -> tuple[Path, dict, list[tuple[Path, str]]]:
    """(newest complete checkpoint, its verified state.json, [(skipped newer checkpoint, why)]) under a run dir.

    The fall-back rule: an incomplete or damaged newer checkpoint is skipped with a one-line notice (unless
    `quiet`); CheckpointError when no checkpoint under `path` is complete. `need_optimizer=False`: complete
    means intact weights (the optimizer file is not looked at); True (resuming) needs the optimizer state too.
    """
    path = Path(path)
    skipped: list[tuple[Path, str]] = []
    for p in reversed(step_dirs(path)):
        try:
            doc = verify_checkpoint(p, need_optimizer=need_optimizer)
        except CheckpointError as e:
            skipped.append((p, str(e)))
            continue
        if not quiet:
            for bad, why in skipped:
                needs = " (resuming needs the optimizer state as well as the weights)" if OPTIM_FILE in why else ""
                notice(f"skipping checkpoint {bad.name} ({why}); using {p.name}, the newest complete one{needs}")
        return p, doc, skipped
    if skipped:
        why = "; ".join(f"{b.name}: {w}" for b, w in skipped[:3])
        raise CheckpointError(f"no complete checkpoint in {str(path)!r} ({why})")
    raise CheckpointError(f"no checkpoint in {str(path)!r} (expected {STATE_FILE} or checkpoints/step_*/)")


def latest_checkpoint(path: str | Path, *, quiet: bool = True) -> Path | None:
    """The newest complete (verified) checkpoint under a run dir (or its checkpoints/ dir); None if there is none."""
    try:
        return find_checkpoint(path, quiet=quiet)[0]
    except CheckpointError:
        return None


def _is_checkpoint_dir(p: Path) -> bool:
    return (p / STATE_FILE).exists() or (p / MODEL_FILE).exists() or (
        p.name.startswith("step_") and p.name[5:].isdigit())


def open_checkpoint(path: str | Path, *, need_optimizer: bool = False) -> tuple[Path, dict]:
    """(checkpoint dir, verified state.json) from a checkpoint dir, a run dir, or a run's checkpoints/ dir.

    A checkpoint dir named explicitly must itself be complete; a run dir falls back to its newest complete
    checkpoint (with a notice for each newer one skipped). Clear errors otherwise. By default only the
    weights must be intact (what sample, eval, convert and init_from load); `need_optimizer` for resuming.
    """
    p = Path(path)
    if not p.exists():
        raise MissingFileError(f"checkpoint path {str(p)!r} does not exist")
    if p.is_file():
        raise CheckpointError(f"{str(p)!r} is a file; expected a checkpoint directory (with {STATE_FILE}) "
                              "or a run directory (with checkpoints/)")
    if _is_checkpoint_dir(p):
        return p, verify_checkpoint(p, need_optimizer=need_optimizer)
    found, doc, _ = find_checkpoint(p, need_optimizer=need_optimizer)
    return found, doc


def load_checkpoint(path: str | Path, model: torch.nn.Module | None = None,
                    optimizer: torch.optim.Optimizer | None = None, *, restore_rng: bool = False,
                    device: str | torch.device = "cpu", state: dict | None = None) -> dict:
    """Verify a checkpoint, load weights into `model` and state into `optimizer` if given; return state.json.

    `path` follows open_checkpoint's rules. `state`: the state.json that open_checkpoint/verify_checkpoint
    just returned for this checkpoint dir (skips verifying it a second time).
    The returned dict also carries "path" (the checkpoint directory).
    """
    if state is not None:
        ckpt, doc = Path(path), dict(state)
    else:
        ckpt, doc = open_checkpoint(path, need_optimizer=optimizer is not None)
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
    except (KeyError, TypeError, json.JSONDecodeError) as e:  # well-formed files holding unexpected content
        raise CheckpointError(f"checkpoint {str(ckpt)!r} does not match what is being loaded "
                              f"({type(e).__name__}: {e})") from None
    if restore_rng and "rng" in doc:
        set_rng_state(doc["rng"])
    doc["path"] = str(ckpt)
    return doc

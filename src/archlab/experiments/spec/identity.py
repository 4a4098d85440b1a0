"""A run's identity: `run_key` hashes everything that determines a run's result — its config, seed, budget, run
function and the code that runs it (`code_hash`) — so identical runs are never trained twice (across experiments
too), and runs of other code are never reused."""
from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def content_hash(obj: Any) -> str:
    """SHA-256 of an object's canonical JSON (sorted keys)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


# What a run executes: every module of the package except those that only drive, store, judge or report a sweep
# (they cannot change a number a run produces) — all of archlab.experiments but its run functions (runs/).
# Their source, with the package version, is the code hash.
CODE_EXCLUDE = ("commands/", "cli.py", "__main__.py", "interop/", "experiments/")
CODE_INCLUDE = ("experiments/runs/",)  # excepted from CODE_EXCLUDE: what one run executes


def _listed(rel: str, prefixes: tuple[str, ...]) -> bool:
    return any(rel == x or (x.endswith("/") and rel.startswith(x)) for x in prefixes)


def code_files(root: Path | None = None) -> list[Path]:
    """The source files whose content is part of every run's identity (see CODE_EXCLUDE, CODE_INCLUDE)."""
    root = root or Path(__file__).resolve().parents[2]
    out = []
    for p in sorted(root.rglob("*.py")):
        rel = p.relative_to(root).as_posix()
        if not _listed(rel, CODE_EXCLUDE) or _listed(rel, CODE_INCLUDE):
            out.append(p)
    return out


CODE_HASH_ENV = "ARCHLAB_CODE_HASH"  # pins the hash for child processes (tests: files may change meanwhile)


@functools.lru_cache(maxsize=1)
def code_hash() -> str:
    """Hash of the package version plus the source of every module a run executes (code_files), computed once
    per process; the environment variable ARCHLAB_CODE_HASH, when set, is used instead (the test suite pins it
    so that a sweep split across processes agrees while other files are being edited — not for users)."""
    return os.environ.get(CODE_HASH_ENV) or compute_code_hash()


def compute_code_hash(root: Path | None = None) -> str:
    """The code hash of the package source under `root` (default: this installed package)."""
    try:
        version = importlib.metadata.version("archlab")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    h = hashlib.sha256(f"archlab {version}\n".encode())
    root = root or Path(__file__).resolve().parents[2]
    for p in code_files(root):
        h.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:12]


def run_key(config: Mapping[str, Any], seed: int, budget: Mapping[str, Any], runner: str,
            code: str | None = None) -> str:
    """The identity of a run: same key ⇒ same result (deterministic training, same code), so it is reused.
    `code` defaults to `code_hash()`: after a change to the code a run executes, nothing finished before is reused."""
    return content_hash({"config": config, "seed": seed, "budget": budget, "runner": runner,
                  "code": code_hash() if code is None else code})[:24]

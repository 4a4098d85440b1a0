"""Run configs: which model, which task, how to train — one YAML file, dotted `--set` overrides."""
from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archlab.config import (
    ConfigError,
    apply_overrides,
    check_choice,
    check_positive,
    flatten,
    from_dict,
    parse_value,
    read_mapping,
    to_dict,
)
from archlab.dotted import parse_assignments, unflatten
from archlab.errors import MissingFileError
from archlab.models import model_config_from_dict, preset

# Fields that may change when resuming without breaking bit-exact continuation (they steer logging,
# evaluation and when to stop, never the arithmetic of a training step).
RESUMABLE_FIELDS = ("train.eval_every", "train.eval_batches", "train.log_every", "train.checkpoint_every",
                    "train.keep_checkpoints", "train.stop_at", "train.plot",
                    "train.threads")
# What `--set` may change when a run is resumed from its saved run.yaml: the fields above, and train.steps
# upwards (extending a finished run; see docs/training.md).
RESUME_OVERRIDES = (*RESUMABLE_FIELDS, "train.steps")
SAVED_CONFIG = "run.yaml"  # the run config a run folder keeps (written by the trainer at every start)


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser, schedule and loop settings (nanoGPT / HF Trainer names where they exist)."""

    seed: int = 0
    steps: int = 1000  # optimiser steps in the whole run (the cosine schedule spans these)
    batch_size: int = 12  # sequences per micro-batch
    grad_accum: int = 1  # micro-batches per optimiser step
    lr: float = 1e-3  # peak learning rate
    min_lr: float | None = None  # floor of the cosine; None = lr / 10
    warmup_steps: int = 0  # linear warm-up from 0 (0 = none)
    schedule: str = "cosine"  # "cosine" | "constant" | "linear"
    weight_decay: float = 0.1  # applied to matrices only (see archlab.train.optim.param_groups)
    betas: tuple[float, ...] = (0.9, 0.99)
    eps: float = 1e-8
    grad_clip: float = 1.0  # max global grad norm; 0 = off
    eval_every: int = 250  # steps between evaluations (0 = only at the end)
    eval_batches: int = 20  # batches per evaluation (tasks may cap or ignore)
    log_every: int = 10  # steps between metrics lines
    checkpoint_every: int = 0  # steps between checkpoints (0 = only at the end)
    keep_checkpoints: int = 2  # newest checkpoints kept on disk
    stop_at: int = 0  # stop after this step as if interrupted (0 = run to `steps`); resumable
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "mps"
    precision: str = "auto"  # "auto" (bf16 autocast on CUDA, fp32 elsewhere) | "fp32" | "bf16"
    compile: bool = False  # torch.compile the model (opt-in)
    fused: bool | None = None  # fused AdamW; None = wherever the device supports it (CUDA)
    plot: bool = True  # write loss.png at the end
    init_from: str | None = None  # start from these weights (a checkpoint or run dir); non-matching keys stay new
    threads: int = 0  # torch CPU threads for this process (0 = leave torch's default)

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "grad_accum"):
            check_positive(f"train.{name}", getattr(self, name))
        check_positive("train.lr", self.lr)
        for name in ("warmup_steps", "weight_decay", "grad_clip", "eval_every", "eval_batches", "log_every",
                     "checkpoint_every", "stop_at", "eps", "threads"):
            check_positive(f"train.{name}", getattr(self, name), allow_zero=True)
        if self.min_lr is not None:
            check_positive("train.min_lr", self.min_lr, allow_zero=True)
            if self.min_lr > self.lr:
                raise ConfigError(f"train.min_lr={self.min_lr:g} is larger than train.lr={self.lr:g}; the schedule "
                                  "decays from train.lr down to train.min_lr")
        check_choice("train.schedule", self.schedule, ("cosine", "constant", "linear"))
        check_choice("train.device", self.device, ("auto", "cpu", "cuda", "mps"))
        check_choice("train.precision", self.precision, ("auto", "fp32", "bf16"))
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ConfigError(f"train.betas={list(self.betas)} must be two numbers in [0, 1)")
        if self.keep_checkpoints < 1:
            raise ConfigError(f"train.keep_checkpoints={self.keep_checkpoints} must be at least 1")


@dataclass(frozen=True)
class RunConfig:
    """model: {preset: NAME, dotted.key: value, ...} or full fields; task: {name: NAME, ...options}; train."""

    model: dict = field(default_factory=dict)
    task: dict = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)
    name: str = "run"

    def __post_init__(self) -> None:
        if not isinstance(self.model, Mapping) or not self.model:
            raise ConfigError("model must be a mapping such as {preset: char-llama} or the full model fields")
        for key in ("preset", "arch"):
            nested = {k: v for k, v in self.model.items() if k.startswith(key + ".")}
            if nested or (key in self.model and not isinstance(self.model[key], str)):
                value = self.model.get(key, nested)
                raise ConfigError(f"model.{key}={value!r} must be a name (a string)")
        if not isinstance(self.task, Mapping) or not isinstance(self.task.get("name"), str):
            raise ConfigError("task must be a mapping with a 'name' (e.g. {name: causal_lm, corpus: shakespeare})")
        check_task_option_types(self.task)

    @property
    def task_name(self) -> str:
        return self.task["name"]

    def task_options(self) -> dict:
        """The task's options without its name."""
        return {k: v for k, v in self.task.items() if k != "name"}

    def model_config(self, extra: Mapping[str, Any] | None = None):
        """The resolved model config (archlab.models.model_config_from_dict), plus dotted overrides `extra`."""
        flat = flatten(self.model)
        flat.update(extra or {})
        if "preset" in flat:  # the preset, then every other key as a dotted override (`name` included)
            base = preset(flat.pop("preset"))
            return apply_overrides(base, flat) if flat else base
        return model_config_from_dict(unflatten(flat))

    def to_dict(self) -> dict:
        """Plain nested data (JSON/YAML ready)."""
        return {"name": self.name, "model": copy.deepcopy(dict(self.model)), "task": copy.deepcopy(dict(self.task)),
                "train": to_dict(self.train)}


MAX_BPE_VOCAB = 1 << 20  # the BPE trainer reserves memory in proportion (1e9 aborted the process: 70 GB)
# The text tasks' shared options and the type each must have (a task still decides which it accepts).
# "int" = a whole number ≥ 1 (or 0 where 0 means "none"), "fraction" = a number in [0, 1).
TEXT_OPTION_TYPES = {
    "corpus": "str", "tokenizer": "str", "cache_dir": "str?", "byte_fallback": "bool", "reverse": "bool",
    "bpe_vocab": "vocab", "block_size": "int?", "max_len": "int", "passage_chars": "int", "min_prefix": "int0",
    "max_train_pairs": "int0", "max_eval": "int0", "extra_ids": "int0", "val_fraction": "fraction",
    "mask_prob": "fraction", "noise_density": "fraction", "mean_span": "number",
}
_WHAT = {"str": "a string", "str?": "a string or null", "bool": "true or false", "int": "a whole number ≥ 1",
         "int?": "a whole number ≥ 1 or null", "int0": "a whole number ≥ 0", "fraction": "a number in [0, 1)",
         "number": "a finite number > 0", "vocab": f"a whole number from 1 to {MAX_BPE_VOCAB:,}"}


def _fits(kind: str, v: Any) -> bool:
    import math

    if kind.endswith("?") and v is None:
        return True
    kind = kind.rstrip("?")
    if kind == "str":
        return isinstance(v, str)
    if kind == "bool":
        return isinstance(v, bool)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return False
    if kind in ("int", "int0", "vocab"):
        return float(v).is_integer() and (0 if kind == "int0" else 1) <= v <= (MAX_BPE_VOCAB if kind == "vocab" else v)
    return 0 <= v < 1 if kind == "fraction" else v > 0


def check_task_option_types(task: Mapping[str, Any]) -> None:
    """task.OPTION of the wrong YAML type (a list for block_size, a mapping for corpus ...) -> ConfigError."""
    for key, value in task.items():
        kind = TEXT_OPTION_TYPES.get(key)
        if kind is not None and not _fits(kind, value):
            raise ConfigError(f"task.{key}={value!r} is not allowed; expected {_WHAT[kind]}")


def run_config_from_dict(data: Mapping[str, Any]) -> RunConfig:
    """Validate a plain mapping into a RunConfig (unknown top-level or train keys are errors)."""
    data = dict(data)
    allowed = {"model", "task", "train", "name"}
    for k in data:
        if k not in allowed:
            raise ConfigError(f"unknown run-config section {k!r}; expected {sorted(allowed)}")
    for section in ("model", "train"):
        if data.get(section) is not None and not isinstance(data[section], Mapping):
            raise ConfigError(f"{section} must be a mapping of {section} fields (key: value lines under "
                              f"'{section}:'), got a {_kind(data[section])}")
    task = data.get("task") or {}
    if isinstance(task, str):
        task = {"name": task}
    if not isinstance(task, Mapping):
        raise ConfigError(f"task must be a mapping such as {{name: causal_lm, corpus: shakespeare}}, "
                          f"got a {_kind(task)}")
    name = data.get("name", "run")
    if isinstance(name, (dict, list)) or name is None:
        raise ConfigError(f"name must be a string, got a {_kind(name)}")
    train_data = {_key("train", k): (parse_value(v) if isinstance(v, str) else v)
                  for k, v in (data.get("train") or {}).items()}
    train = from_dict(TrainConfig, train_data, prefix="train.")
    _check_keys("model", data.get("model") or {})
    _check_keys("task", task)
    model = flatten(data.get("model") or {})
    return RunConfig(model=model, task=dict(task), train=train, name=str(name))


def _check_keys(where: str, mapping: Mapping) -> None:
    for k, v in mapping.items():
        _key(where, k)
        if isinstance(v, Mapping):
            _check_keys(f"{where}.{k}", v)


def _kind(value: Any) -> str:
    """'list', 'string', 'number' ... : how a wrong YAML value is described in an error."""
    names = {list: "list", dict: "mapping", str: "string", bool: "boolean", int: "number", float: "number",
             type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _key(section: str, key: Any) -> str:
    """Config keys are strings (YAML reads `1:` or `true:` as other types)."""
    if not isinstance(key, str):
        raise ConfigError(f"{section}: key {key!r} must be a string (a field name), got a {_kind(key)}")
    return key


def apply_run_overrides(cfg: RunConfig, overrides: Mapping[str, Any] | Iterable[str]) -> RunConfig:
    """`train.lr=3e-4`, `model.pos.kind=none`, `task.corpus=FILE`: model/task keys are free-form, train checked."""
    overrides = parse_assignments(overrides, example="train.lr=3e-4")  # `none` stays a word (archlab.dotted)
    model, task, train, name = dict(cfg.model), dict(cfg.task), cfg.train, cfg.name
    train_over: dict[str, Any] = {}
    for key, value in overrides.items():
        section, _, rest = key.partition(".")
        if section == "model" and rest:
            model[rest] = value
        elif section == "task" and rest:
            task[rest] = value
        elif section == "train" and rest:
            train_over[rest] = value
        elif key == "name":
            name = str(value)
        else:
            raise ConfigError(f"override key {key!r} must start with model., task. or train.")
    if train_over:
        data = to_dict(train)
        for k, v in train_over.items():
            if "." in k:
                raise ConfigError(f"unknown config key 'train.{k}'")
            data[k] = v
        train = from_dict(TrainConfig, data, prefix="train.")
    return RunConfig(model=model, task=task, train=train, name=name)


def load_run_config(path, overrides: Mapping[str, Any] | Iterable[str] = ()) -> RunConfig:
    """Read a run config YAML/JSON file and apply dotted overrides."""
    cfg = run_config_from_dict(read_mapping(path))
    return apply_run_overrides(cfg, overrides) if overrides else cfg


def resumed_run_config(out: str | Path, overrides: Mapping[str, Any] | Iterable[str] = ()) -> RunConfig:
    """The config of the run in folder `out` (its saved run.yaml) with `--set` overrides on top; only the fields
    in RESUME_OVERRIDES may change (a model, task or optimiser change is refused before any work)."""
    out = Path(out)
    if not out.is_dir():
        raise MissingFileError(f"nothing to resume: {str(out)!r} does not exist")
    path = out / SAVED_CONFIG
    if not path.is_file():
        raise MissingFileError(f"cannot resume {str(out)!r} from its saved config: {str(path)!r} is missing; "
                               f"pass the run config file: archlab train CONFIG --out {out} --resume")
    over = parse_assignments(overrides, example="train.steps=2000")
    for key, value in over.items():
        if key not in RESUME_OVERRIDES:
            part = "model" if key.startswith("model.") else "task" if key.startswith("task.") else "settings"
            raise ConfigError(f"--set {key}={value!r}: a resumed run keeps its {part}; on --resume only "
                              f"{', '.join(RESUME_OVERRIDES)} may change (start a new run with another --out to "
                              "change it)")
    return load_run_config(path, over)

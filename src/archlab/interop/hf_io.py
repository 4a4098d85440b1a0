"""Reading and writing Hugging Face model directories: config.json + safetensors, written atomically.

Also the strict bookkeeping every converter shares: `TensorSource` hands out checkpoint tensors
by name and complains about any tensor that is missing, has the wrong shape, or is left over,
so a conversion is never a silent partial load.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from archlab.errors import UserError
from archlab.fileio import atomic_write, remove_stale_temps

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
TOKENIZER_FILE = "tokenizer.json"


class InteropError(UserError):
    """A checkpoint or config cannot be converted: it names the file, tensor or field at fault."""


# ----------------------------------------------------------------------------- reading
def read_json(path: str | Path) -> dict[str, Any]:
    """A JSON object from `path`, with a clear error for a missing or malformed file."""
    p = Path(path)
    if not p.is_file():
        raise InteropError(f"{str(p)!r} does not exist")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InteropError(f"{str(p)!r} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise InteropError(f"{str(p)!r} must hold a JSON object")
    return data


def read_config(model_dir: str | Path) -> dict[str, Any]:
    """The `config.json` of a Hugging Face model directory."""
    return read_json(Path(model_dir) / CONFIG_FILE)


def read_tensors(model_dir: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor of a model directory: model.safetensors, or the shards an index file lists."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    d = Path(model_dir)
    files: list[Path]
    if (d / WEIGHTS_FILE).is_file():
        files = [d / WEIGHTS_FILE]
    elif (d / INDEX_FILE).is_file():
        index = read_json(d / INDEX_FILE)
        files = [d / name for name in sorted(set(index.get("weight_map", {}).values()))]
        if not files:
            raise InteropError(f"{str(d / INDEX_FILE)!r} lists no weight files")
    else:
        pickled = [p.name for p in d.glob("*.bin")] + [p.name for p in d.glob("*.pt")]
        hint = (f"; {pickled[0]} is a pickle file, which archlab never loads — re-save it as safetensors "
                "with transformers (`model.save_pretrained(dir, safe_serialization=True)`)" if pickled else "")
        raise InteropError(f"no {WEIGHTS_FILE} in {str(d)!r}{hint}")
    out: dict[str, torch.Tensor] = {}
    for f in files:
        if not f.is_file():
            raise InteropError(f"weight shard {str(f)!r} is missing")
        try:
            out.update(load_file(str(f)))
        except (SafetensorError, OSError) as e:
            raise InteropError(f"{str(f)!r} is not a readable safetensors file: {e}") from None
    return out


def load_tokenizer(model_dir: str | Path):
    """The `tokenizers.Tokenizer` saved as tokenizer.json beside the weights, or None; an archlab character
    tokenizer file (what training with `tokenizer: char` saves) gives archlab's CharTokenizer."""
    p = Path(model_dir) / TOKENIZER_FILE
    if not p.is_file():
        return None
    from tokenizers import Tokenizer

    data = read_json(p)
    if data.get("type") == "archlab-char":
        from archlab.data.tokenizers import CharTokenizer, TokenizerError

        try:
            return CharTokenizer.from_json_dict(data, source=str(p))
        except TokenizerError as e:
            raise InteropError(str(e)) from None

    try:
        return Tokenizer.from_file(str(p))
    except Exception as e:  # noqa: BLE001 - the Rust library raises a plain Exception for a malformed file
        if type(e) is not Exception:  # MemoryError, RecursionError, ...: not a verdict on the file
            raise
        raise InteropError(f"{str(p)!r} is not a valid tokenizers file: {e}") from None


# ----------------------------------------------------------------------------- writing
def write_json(path: str | Path, data: dict[str, Any]) -> None:
    """Write a JSON object atomically."""
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    atomic_write(Path(path), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_model_dir(model_dir: str | Path, config: dict[str, Any], tensors: dict[str, torch.Tensor],
                    tokenizer: Any = None, metadata: dict[str, str] | None = None) -> Path:
    """Write config.json + model.safetensors (+ tokenizer.json); each file lands atomically, config last."""
    from safetensors.torch import save_file

    d = Path(model_dir)
    if d.exists() and not d.is_dir():
        raise InteropError(f"{str(d)!r} exists and is not a directory")
    d.mkdir(parents=True, exist_ok=True)
    # what a killed earlier write into this folder left (e.g. a half-written weights file in
    # `.model.safetensors.tmp-<pid>/`), also for files this write will not rewrite
    for name in (WEIGHTS_FILE, TOKENIZER_FILE, CONFIG_FILE, "tokenizer_config.json"):
        remove_stale_temps(d / name)
    # safetensors refuses tensors that share storage (tied weights); every tensor gets its own copy
    plain = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    atomic_write(d / WEIGHTS_FILE, lambda tmp: save_file(plain, tmp, metadata={"format": "pt", **(metadata or {})}))
    if tokenizer is not None:
        atomic_write(d / TOKENIZER_FILE, lambda tmp: tokenizer.save(tmp))
    write_json(d / CONFIG_FILE, config)
    return d


# ----------------------------------------------------------------------------- strict bookkeeping
def _shape(t: torch.Tensor | tuple) -> tuple[int, ...]:
    return tuple(t.shape) if isinstance(t, torch.Tensor) else tuple(t)


class TensorSource:
    """Named checkpoint tensors handed out once each; `finish()` rejects whatever was not used."""

    def __init__(self, tensors: dict[str, torch.Tensor], where: str, *, prefixes: Iterable[str] = (),
                 ignore: Iterable[str] = ()) -> None:
        self.where = where
        self.tensors = dict(tensors)
        self.prefix = ""
        names = set(self.tensors)
        for p in prefixes:  # e.g. "transformer." in GPT2LMHeadModel, absent from a bare GPT2Model
            if any(n.startswith(p) for n in names):
                self.prefix = p
                break
        self.ignore = tuple(ignore)
        self.used: set[str] = set()

    def full(self, name: str) -> str:
        """The checkpoint name of `name` under the detected prefix ('' for top-level names)."""
        return name[1:] if name.startswith("/") else self.prefix + name

    def has(self, name: str) -> bool:
        return self.full(name) in self.tensors

    def take(self, name: str, shape: Iterable[int] | None = None) -> torch.Tensor:
        """The tensor called `name` (a leading '/' means: no prefix); error if absent or mis-shaped."""
        full = self.full(name)
        if full not in self.tensors:
            raise InteropError(f"tensor {full!r} is missing from {self.where}")
        t = self.tensors[full]
        if shape is not None and tuple(t.shape) != tuple(shape):
            raise InteropError(f"tensor {full!r} in {self.where} has shape {tuple(t.shape)}, "
                               f"expected {tuple(shape)}")
        self.used.add(full)
        return t

    def take_first(self, names: Iterable[str], shape: Iterable[int] | None = None) -> torch.Tensor:
        """The first of several aliases present (tied copies); the others, if present, must be equal."""
        names = list(names)
        present = [n for n in names if self.has(n)]
        if not present:
            raise InteropError(f"tensor {self.full(names[0])!r} is missing from {self.where} "
                               f"(also looked for {[self.full(n) for n in names[1:]]})")
        t = self.take(present[0], shape)
        for other in present[1:]:
            u = self.take(other, shape)
            if not torch.equal(t, u):
                raise InteropError(f"tensors {self.full(present[0])!r} and {self.full(other)!r} in {self.where} "
                                   "should be tied (the config says so) but differ")
        return t

    def finish(self) -> None:
        """Raise if any tensor was left unused (other than known buffers like rotary inv_freq)."""
        left = sorted(n for n in self.tensors if n not in self.used and not any(s in n for s in self.ignore))
        if left:
            more = f" and {len(left) - 5} more" if len(left) > 5 else ""
            raise InteropError(f"unexpected tensors in {self.where}: {left[:5]}{more} "
                               "(archlab has no place for them; refusing a partial load)")


class ConvertedState:
    """An archlab state dict being filled from a TensorSource, with the HF tensor each entry came from."""

    def __init__(self, src: TensorSource) -> None:
        self.src = src
        self.state: dict[str, torch.Tensor] = {}
        self.sources: dict[str, str] = {}

    def set(self, name: str, hf_name: str, tensor: torch.Tensor) -> None:
        """Store an already converted tensor (e.g. transposed or split) under archlab's name."""
        self.state[name], self.sources[name] = tensor, self.src.full(hf_name)

    def put(self, name: str, hf_name: str, shape) -> None:
        """Take HF tensor hf_name (checked against shape) as archlab's name."""
        self.set(name, hf_name, self.src.take(hf_name, shape))

    def linear(self, ours: str, theirs: str, shape) -> None:
        """A weight of `shape` and a bias of shape[:1]."""
        self.put(f"{ours}.weight", f"{theirs}.weight", shape)
        self.put(f"{ours}.bias", f"{theirs}.bias", shape[:1])


def load_state_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], sources: dict[str, str],
                      where: str) -> None:
    """Copy `state` (archlab names) into `model`; every parameter must be covered, with the right shape.

    `sources` maps archlab names to the checkpoint tensor they came from, so errors name that tensor.
    Parameters tied to another (lm_head ← tok_embed) are covered by their source.
    """
    params = dict(model.named_parameters(remove_duplicate=False))
    buffers = {n: b for n, b in model.named_buffers() if n in model.state_dict()}
    expected = {**params, **buffers}
    # tied parameters: the same tensor object under several names
    first_name: dict[int, str] = {}
    for n, p in params.items():
        first_name.setdefault(id(p), n)
    for name, t in state.items():
        if name not in expected:
            raise InteropError(f"tensor {sources.get(name, name)!r} from {where} maps to archlab {name!r}, "
                               "which this model does not have")
        want = tuple(expected[name].shape)
        if tuple(t.shape) != want:
            raise InteropError(f"tensor {sources.get(name, name)!r} in {where} has shape {tuple(t.shape)}, "
                               f"expected {want} (archlab {name!r})")
    for name, p in expected.items():
        covered = name in state or first_name.get(id(p), name) in state or any(
            other in state for other, q in params.items() if q is p)
        if not covered:
            raise InteropError(f"{where} provides nothing for archlab parameter {name!r}")
    with torch.no_grad():
        for name, t in state.items():
            expected[name].copy_(t.to(expected[name].dtype))


# ----------------------------------------------------------------------------- config helpers
def unsupported(family: str, field: str, value: Any, expected: Any) -> InteropError:
    """The error for an HF config value archlab cannot represent."""
    return InteropError(f"{family} config field {field!r}={value!r} is not supported by archlab "
                        f"(supported: {expected!r})")


def require(hf: dict[str, Any], family: str, field: str, allowed: Iterable[Any], default: Any) -> Any:
    """hf[field] (or its default), raising unless it is one of `allowed`."""
    allowed = list(allowed)
    value = hf.get(field, default)
    if value not in allowed:
        raise unsupported(family, field, value, allowed[0] if len(allowed) == 1 else allowed)
    return value


def cannot_export(family: str, field: str, value: Any, expected: Any) -> InteropError:
    """The error for an archlab config value the target HF architecture cannot represent."""
    return InteropError(f"cannot export to {family}: archlab {field}={value!r} has no {family} equivalent "
                        f"(expected {expected!r})")


def pad_id(hf: dict[str, Any], vocab_size: int) -> int | None:
    """HF pad_token_id when it names a real vocabulary entry, else None."""
    p = hf.get("pad_token_id")
    return p if isinstance(p, int) and 0 <= p < vocab_size else None


# archlab activation <-> transformers ACT2FN name
ACT_FROM_HF = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "relu": "relu",
               "silu": "silu", "swish": "silu"}
ACT_TO_HF = {"gelu": "gelu", "gelu_tanh": "gelu_new", "relu": "relu", "silu": "silu"}


def act_from_hf(family: str, field: str, value: Any) -> str:
    """archlab activation name for an HF `hidden_act`-style value."""
    if value not in ACT_FROM_HF:
        raise unsupported(family, field, value, sorted(ACT_FROM_HF))
    return ACT_FROM_HF[value]


def has_lm_head(names: set[str], tie: bool) -> bool:
    """Whether a causal-LM checkpoint gets an LM head: tied (free, so bare base models can generate) or stored."""
    return tie or not names or "lm_head.weight" in names

"""Training state as checkpoint data: RNG states as JSON, optimiser state as named tensors + JSON (no pickle)."""
from __future__ import annotations

import base64
import random
from typing import Any

import numpy as np
import torch

from archlab.errors import CheckpointError


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

"""The layer strings of a plain CNN: parsing them into LayerSpecs and inferring each layer's output shape.

A plain CNN is `layers`, a list of short strings read left to right (seed 000's conv → activation → pool → FC):

    conv:M:K[:U[:P]]   M filters of K×K, stride U (default 1), zero padding P (default K//2, "same")
                       options: stride=U pad=P groups=G bias=0   e.g. "conv:64:3:stride=2", "conv:32:3:groups=32"
    relu gelu silu tanh sigmoid leaky_relu identity          activations
    maxpool:K[:U[:P]]  avgpool:K[:U[:P]]                      pooling (stride U defaults to K); "gap" = global average
    bn                 batch norm (2-d on fmaps, 1-d on flat vectors)
    dropout:p          dropout with probability p
    flatten            (C, H, W) -> C·H·W
    unflatten:C:H:W    C·H·W -> (C, H, W), so an FC layer can come first and convolutions still follow
    fc:D  /  fc        fully connected to D units; a bare "fc" maps to n_classes
"""
from __future__ import annotations

from dataclasses import dataclass

from archlab.config import ConfigError, check_probability

ACTIVATIONS = ("relu", "gelu", "silu", "tanh", "sigmoid", "leaky_relu", "identity")
LAYER_KINDS = ("conv", *ACTIVATIONS, "maxpool", "avgpool", "gap", "bn", "dropout", "flatten", "unflatten", "fc")

@dataclass(frozen=True)
class LayerSpec:
    """One parsed entry of CNNConfig.layers (or of a GoogLeNet module list)."""

    kind: str
    text: str
    out: int = 0  # conv: M filters; fc: units (0 = n_classes)
    kernel: int = 0
    stride: int = 1
    padding: int = 0
    groups: int = 1
    bias: bool = True
    p: float = 0.0
    shape: tuple[int, ...] = ()  # unflatten target (C, H, W); inception channel numbers
    ceil: bool = False


def _int(text: str, index: str, what: str, value: str) -> int:
    try:
        v = int(value)
    except ValueError:
        raise ConfigError(f"{index} {text!r}: {what} must be an integer, got {value!r}") from None
    if v < 0:
        raise ConfigError(f"{index} {text!r}: {what} must be non-negative, got {v}")
    return v


def parse_layer(text: str, index: str = "layers[?]") -> LayerSpec:
    """Parse one layer string such as 'conv:32:3', 'maxpool:2', 'dropout:0.3', 'fc:10' into a LayerSpec."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"{index}={text!r} must be a non-empty layer string like 'conv:32:3' or 'relu'")
    parts = [p.strip() for p in text.strip().split(":")]
    kind = parts[0].lower()
    if kind == "inception":
        nums = [_int(text, index, "channel count", v) for v in parts[1:]]
        if len(nums) != 6 or any(v == 0 for v in nums):
            raise ConfigError(f"{index} {text!r}: expected inception:c1:c3r:c3:c5r:c5:pool_proj (6 positive integers)")
        return LayerSpec("inception", text, shape=tuple(nums))
    if kind not in LAYER_KINDS:
        raise ConfigError(f"{index}={text!r}: unknown layer kind {kind!r}; expected one of {list(LAYER_KINDS)}")
    pos = [p for p in parts[1:] if "=" not in p]
    opts = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
    need = {"conv": (2, 4), "maxpool": (1, 3), "avgpool": (1, 3), "dropout": (1, 1), "fc": (0, 1),
            "unflatten": (3, 3)}.get(kind, (0, 0))
    if not need[0] <= len(pos) <= need[1]:
        raise ConfigError(f"{index} {text!r}: {kind} takes {need[0]}..{need[1]} ':'-separated values, got {len(pos)}")
    allowed_opts = {"conv": {"stride", "pad", "groups", "bias"}, "maxpool": {"stride", "pad", "ceil"},
                    "avgpool": {"stride", "pad"}}.get(kind, set())
    for k in opts:
        if k not in allowed_opts:
            accepts = sorted(allowed_opts) or "no options"
            raise ConfigError(f"{index} {text!r}: unknown option {k!r}; {kind} accepts {accepts}")
    if kind in _PARSERS:
        return _PARSERS[kind](text, index, pos, opts)
    return LayerSpec(kind, text)


def _conv_layer(text: str, index: str, pos: list[str], opts: dict[str, str]) -> LayerSpec:
    out, k = _int(text, index, "filters M", pos[0]), _int(text, index, "kernel size", pos[1])
    if out == 0 or k == 0:
        raise ConfigError(f"{index} {text!r}: filters and kernel size must be positive")
    stride = _int(text, index, "stride", opts.get("stride", pos[2] if len(pos) > 2 else "1"))
    pad = _int(text, index, "padding", opts.get("pad", pos[3] if len(pos) > 3 else str(k // 2)))
    groups = _int(text, index, "groups", opts.get("groups", "1"))
    if stride == 0 or groups == 0:
        raise ConfigError(f"{index} {text!r}: stride and groups must be positive")
    return LayerSpec("conv", text, out=out, kernel=k, stride=stride, padding=pad, groups=groups,
                     bias=opts.get("bias", "1") not in ("0", "false", "False", "no"))


def _pool_layer(text: str, index: str, pos: list[str], opts: dict[str, str]) -> LayerSpec:
    kind = text.strip().split(":")[0].strip().lower()
    k = _int(text, index, "window", pos[0])
    stride = _int(text, index, "stride", opts.get("stride", pos[1] if len(pos) > 1 else str(k)))
    pad = _int(text, index, "padding", opts.get("pad", pos[2] if len(pos) > 2 else "0"))
    if k == 0 or stride == 0:
        raise ConfigError(f"{index} {text!r}: window and stride must be positive")
    if 2 * pad > k:
        raise ConfigError(f"{index} {text!r}: padding {pad} must be at most half the window {k}")
    return LayerSpec(kind, text, kernel=k, stride=stride, padding=pad,
                     ceil=opts.get("ceil", "0") in ("1", "true", "True", "yes"))


def _dropout_layer(text: str, index: str, pos: list[str], opts: dict[str, str]) -> LayerSpec:
    try:
        p = float(pos[0])
    except ValueError:
        raise ConfigError(f"{index} {text!r}: dropout probability must be a number") from None
    check_probability(f"{index} {text!r} dropout", p)
    return LayerSpec("dropout", text, p=p)


def _fc_layer(text: str, index: str, pos: list[str], opts: dict[str, str]) -> LayerSpec:
    out = _int(text, index, "units", pos[0]) if pos else 0
    if pos and out == 0:
        raise ConfigError(f"{index} {text!r}: units must be positive (write bare 'fc' for n_classes)")
    return LayerSpec("fc", text, out=out)


def _unflatten_layer(text: str, index: str, pos: list[str], opts: dict[str, str]) -> LayerSpec:
    shape = tuple(_int(text, index, "size", v) for v in pos)
    if 0 in shape:
        raise ConfigError(f"{index} {text!r}: sizes must be positive")
    return LayerSpec("unflatten", text, shape=shape)


_PARSERS = {"conv": _conv_layer, "maxpool": _pool_layer, "avgpool": _pool_layer, "dropout": _dropout_layer,
            "fc": _fc_layer, "unflatten": _unflatten_layer}


def pool_out(size: int, k: int, stride: int, pad: int, ceil: bool) -> int:
    """Seed 003: E = (H + 2P - R)/U + 1, rounded down (or up with ceil_mode, as torch rounds it)."""
    span = size + 2 * pad - k
    if span < 0:
        return 0
    out = (-(-span // stride) if ceil else span // stride) + 1
    if ceil and (out - 1) * stride >= size + pad:  # torch: the last window must start inside the input
        out -= 1
    return out


Shape = tuple[int, ...]  # (C, H, W) for fmaps, (D,) for flat vectors


def infer_shape(spec: LayerSpec, shape: Shape, index: str, n_classes: int, naive: bool = False) -> Shape:
    """Output shape of one layer given its input shape, or a ConfigError saying why it cannot be built."""
    flat = len(shape) == 1
    desc = f"a flat vector of {shape[0]}" if flat else f"fmaps of C×H×W = {shape[0]}×{shape[1]}×{shape[2]}"
    if spec.kind == "unflatten" and not flat:
        raise ConfigError(f"{index} {spec.text!r}: unflatten needs a flat input but gets {desc}")
    if spec.kind in ("conv", "maxpool", "avgpool", "gap", "inception") and flat:
        raise ConfigError(f"{index} {spec.text!r}: a {spec.kind} layer needs image-shaped input (C, H, W) but "
                          f"gets {desc}; it cannot come after 'flatten' (use 'unflatten:C:H:W' first)")
    if spec.kind == "fc" and not flat:
        raise ConfigError(f"{index} {spec.text!r}: an fc layer needs a flat input but gets {desc}; "
                          f"put 'flatten' before it")
    if spec.kind == "flatten":
        if flat:
            raise ConfigError(f"{index} 'flatten': the input is already flat ({shape[0]})")
        return (shape[0] * shape[1] * shape[2],)
    if spec.kind == "unflatten":
        c, h, w = spec.shape
        if c * h * w != shape[0]:
            raise ConfigError(f"{index} {spec.text!r}: {c}×{h}×{w} = {c * h * w} does not match the flat input "
                              f"of {shape[0]}")
        return spec.shape
    if spec.kind == "fc":
        return (spec.out or n_classes,)
    if spec.kind == "gap":
        return (shape[0], 1, 1)
    if spec.kind == "inception":
        c1, _, c3, _, c5, pp = spec.shape
        return (c1 + c3 + c5 + (shape[0] if naive else pp), shape[1], shape[2])
    if spec.kind in ("conv", "maxpool", "avgpool"):
        c, h, w = shape
        if spec.kind == "conv":
            if c % spec.groups or spec.out % spec.groups:
                raise ConfigError(f"{index} {spec.text!r}: groups={spec.groups} must divide both the input "
                                  f"channels C={c} and the filters M={spec.out}")
            e, f = pool_out(h, spec.kernel, spec.stride, spec.padding, False), pool_out(
                w, spec.kernel, spec.stride, spec.padding, False)
            c = spec.out
        else:
            e, f = (pool_out(h, spec.kernel, spec.stride, spec.padding, spec.ceil),
                    pool_out(w, spec.kernel, spec.stride, spec.padding, spec.ceil))
        if e < 1 or f < 1:
            raise ConfigError(f"{index} {spec.text!r}: a {spec.kernel}×{spec.kernel} window with padding "
                              f"{spec.padding} does not fit the {h}×{w} input (output would be {e}×{f})")
        return (c, e, f)
    return shape  # activations, bn, dropout keep the shape

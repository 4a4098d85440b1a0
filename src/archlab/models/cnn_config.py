"""CNNConfig: plain CNNs as an ordered list of layer specs, and ResNet / GoogLeNet / MobileNet v1 as fields.

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

Seed 000's order claims are config diffs of `layers` (see ORDER_VARIANTS). A list that cannot be built —
a conv after flatten, an FC layer on an image, a pool that shrinks the fmap to nothing, an output that is not
n_classes logits — raises ConfigError at config time naming the layer index and the reason.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from archlab.config import ConfigError, check_choice, check_positive, check_probability

KINDS = ("plain", "resnet", "googlenet", "mobilenet")
ACTIVATIONS = ("relu", "gelu", "silu", "tanh", "sigmoid", "leaky_relu", "identity")
LAYER_KINDS = ("conv", *ACTIVATIONS, "maxpool", "avgpool", "gap", "bn", "dropout", "flatten", "unflatten", "fc")
IMPLS = ("torch", "unfold", "loops")


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
    if kind == "conv":
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
    if kind in ("maxpool", "avgpool"):
        k = _int(text, index, "window", pos[0])
        stride = _int(text, index, "stride", opts.get("stride", pos[1] if len(pos) > 1 else str(k)))
        pad = _int(text, index, "padding", opts.get("pad", pos[2] if len(pos) > 2 else "0"))
        if k == 0 or stride == 0:
            raise ConfigError(f"{index} {text!r}: window and stride must be positive")
        if 2 * pad > k:
            raise ConfigError(f"{index} {text!r}: padding {pad} must be at most half the window {k}")
        return LayerSpec(kind, text, kernel=k, stride=stride, padding=pad,
                         ceil=opts.get("ceil", "0") in ("1", "true", "True", "yes"))
    if kind == "dropout":
        try:
            p = float(pos[0])
        except ValueError:
            raise ConfigError(f"{index} {text!r}: dropout probability must be a number") from None
        check_probability(f"{index} {text!r} dropout", p)
        return LayerSpec("dropout", text, p=p)
    if kind == "fc":
        out = _int(text, index, "units", pos[0]) if pos else 0
        if pos and out == 0:
            raise ConfigError(f"{index} {text!r}: units must be positive (write bare 'fc' for n_classes)")
        return LayerSpec("fc", text, out=out)
    if kind == "unflatten":
        shape = tuple(_int(text, index, "size", v) for v in pos)
        if 0 in shape:
            raise ConfigError(f"{index} {text!r}: sizes must be positive")
        return LayerSpec("unflatten", text, shape=shape)
    return LayerSpec(kind, text)


def _pool_out(size: int, k: int, stride: int, pad: int, ceil: bool) -> int:
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
            e, f = _pool_out(h, spec.kernel, spec.stride, spec.padding, False), _pool_out(
                w, spec.kernel, spec.stride, spec.padding, False)
            c = spec.out
        else:
            e, f = (_pool_out(h, spec.kernel, spec.stride, spec.padding, spec.ceil),
                    _pool_out(w, spec.kernel, spec.stride, spec.padding, spec.ceil))
        if e < 1 or f < 1:
            raise ConfigError(f"{index} {spec.text!r}: a {spec.kernel}×{spec.kernel} window with padding "
                              f"{spec.padding} does not fit the {h}×{w} input (output would be {e}×{f})")
        return (c, e, f)
    return shape  # activations, bn, dropout keep the shape


@dataclass(frozen=True)
class ResNetConfig:
    """ResNet (He et al. 2015): stem, stages of basic or bottleneck blocks, global average pool, FC."""

    block: str = "basic"  # basic (ResNet-18/34) | bottleneck (ResNet-50+)
    blocks: tuple[int, ...] = (2, 2, 2, 2)  # blocks per stage
    widths: tuple[int, ...] = (64, 128, 256, 512)  # block width per stage (bottleneck outputs 4× this)
    residual: bool = True  # False: the same layers with no shortcut, H(x) = F(x)
    stem: str = "imagenet"  # imagenet: 7×7/2 conv + 3×3/2 max-pool; small: 3×3/1 conv (28×28 inputs)
    stem_width: int = 64

    def __post_init__(self) -> None:
        check_choice("resnet.block", self.block, ("basic", "bottleneck"))
        check_choice("resnet.stem", self.stem, ("imagenet", "small"))
        check_positive("resnet.stem_width", self.stem_width)
        if len(self.blocks) != len(self.widths) or not self.blocks:
            raise ConfigError(f"resnet.blocks {list(self.blocks)} and resnet.widths {list(self.widths)} must be "
                              f"non-empty lists of the same length (one entry per stage)")
        for i, (b, w) in enumerate(zip(self.blocks, self.widths)):
            check_positive(f"resnet.blocks[{i}]", b)
            check_positive(f"resnet.widths[{i}]", w)


# torchvision GoogLeNet (Szegedy et al. 2014, table 1): inception:c1:c3r:c3:c5r:c5:pool_proj and the max-pools
GOOGLENET_MODULES = (
    "inception:64:96:128:16:32:32", "inception:128:128:192:32:96:64", "maxpool:3:2:ceil=1",
    "inception:192:96:208:16:48:64", "inception:160:112:224:24:64:64", "inception:128:128:256:24:64:64",
    "inception:112:144:288:32:64:64", "inception:256:160:320:32:128:128", "maxpool:2:2:ceil=1",
    "inception:256:160:320:32:128:128", "inception:384:192:384:48:128:128",
)


@dataclass(frozen=True)
class GoogLeNetConfig:
    """GoogLeNet: stem, inception modules (naive or with 1×1 bottlenecks) and max-pools, average pool, FC."""

    inception: str = "bottleneck"  # bottleneck (1×1 reductions) | naive (seed 003's naive module)
    stem: str = "imagenet"  # imagenet: 7×7/2, pool, 1×1, 3×3/192, pool; small: 3×3/64 conv; none
    modules: tuple[str, ...] = GOOGLENET_MODULES
    k5: int = 5  # kernel of the "5×5" branch: 5 per the paper; torchvision's implementation uses 3
    dropout: float = 0.2  # before the classifier

    def __post_init__(self) -> None:
        check_choice("googlenet.inception", self.inception, ("bottleneck", "naive"))
        check_choice("googlenet.stem", self.stem, ("imagenet", "small", "none"))
        check_choice("googlenet.k5", self.k5, (3, 5, 7))
        check_probability("googlenet.dropout", self.dropout)
        for i, text in enumerate(self.modules):
            spec = parse_layer(text, f"googlenet.modules[{i}]")
            check_choice(f"googlenet.modules[{i}] kind", spec.kind, ("inception", "maxpool", "avgpool"))


# MobileNet v1 (Howard et al. 2017, table 1): depthwise-separable blocks as "out_channels:stride"
MOBILENET_BLOCKS = ("64:1", "128:2", "128:1", "256:2", "256:1", "512:2", "512:1", "512:1", "512:1", "512:1",
                    "512:1", "1024:2", "1024:1")


@dataclass(frozen=True)
class MobileNetConfig:
    """MobileNet v1: a 3×3 conv stem then depthwise-separable blocks; width multiplier α thins every layer."""

    width: float = 1.0  # α: channels = round(α · c)
    stem: str = "imagenet"  # imagenet: 3×3/2 conv to 32α; small: 3×3/1 (28×28 inputs)
    stem_channels: int = 32
    blocks: tuple[str, ...] = MOBILENET_BLOCKS
    dropout: float = 0.0

    def __post_init__(self) -> None:
        check_positive("mobilenet.width", self.width)
        check_choice("mobilenet.stem", self.stem, ("imagenet", "small"))
        check_positive("mobilenet.stem_channels", self.stem_channels)
        check_probability("mobilenet.dropout", self.dropout)
        for i, b in enumerate(self.blocks):
            parts = str(b).split(":")
            if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
                raise ConfigError(f"mobilenet.blocks[{i}]={b!r} must look like 'out_channels:stride', e.g. '128:2'")

    def channels(self, c: int) -> int:
        """Width-multiplied channel count (at least 1)."""
        return max(1, int(round(c * self.width)))


# cnn-small: two conv blocks and a two-layer classifier for 28×28 grey images
SMALL_LAYERS = ("conv:32:3", "bn", "relu", "maxpool:2", "conv:64:3", "bn", "relu", "maxpool:2",
                "flatten", "dropout:0.3", "fc:128", "relu", "dropout:0.3", "fc")


@dataclass(frozen=True)
class CNNConfig:
    """Every architectural choice of the CNN family; `kind` picks the assembly, the sections hold its knobs."""

    arch: str = "cnn"
    name: str = "cnn"
    kind: str = "plain"  # plain | resnet | googlenet | mobilenet
    in_channels: int = 1
    image_size: int = 28  # square inputs, H = W
    n_classes: int = 10
    layers: tuple[str, ...] = SMALL_LAYERS  # plain CNN only
    resnet: ResNetConfig = field(default_factory=ResNetConfig)
    googlenet: GoogLeNetConfig = field(default_factory=GoogLeNetConfig)
    mobilenet: MobileNetConfig = field(default_factory=MobileNetConfig)
    impl: str = "torch"  # conv/pool path: torch | unfold (im2col matmul) | loops (seed 003's loop nests; tiny only)

    def __post_init__(self) -> None:
        check_choice("model.arch", self.arch, ("cnn",))
        check_choice("model.kind", self.kind, KINDS)
        check_choice("model.impl", self.impl, IMPLS)
        check_positive("model.in_channels", self.in_channels)
        check_positive("model.image_size", self.image_size)
        check_positive("model.n_classes", self.n_classes)
        if self.kind == "plain":
            self.layer_shapes()
        elif self.kind == "googlenet":
            self.googlenet_shapes()

    def layer_specs(self) -> list[LayerSpec]:
        """The parsed `layers` list."""
        return [parse_layer(t, f"layers[{i}]") for i, t in enumerate(self.layers)]

    def layer_shapes(self) -> list[tuple[LayerSpec, Shape, Shape]]:
        """(spec, input shape, output shape) per plain layer; ConfigError naming the index if one cannot be built."""
        if not self.layers:
            raise ConfigError("layers is empty; a plain CNN needs at least 'flatten' and 'fc'")
        shape: Shape = (self.in_channels, self.image_size, self.image_size)
        out = []
        for i, spec in enumerate(self.layer_specs()):
            new = infer_shape(spec, shape, f"layers[{i}]", self.n_classes)
            out.append((spec, shape, new))
            shape = new
        if shape != (self.n_classes,):
            desc = f"a flat vector of {shape[0]}" if len(shape) == 1 else "fmaps of shape " + "×".join(map(str, shape))
            raise ConfigError(f"layers must end in n_classes={self.n_classes} logits but the last layer "
                              f"(layers[{len(self.layers) - 1}] {self.layers[-1]!r}) gives {desc}; "
                              f"end with 'flatten' and a bare 'fc'")
        return out

    def googlenet_shapes(self) -> list[tuple[LayerSpec, Shape, Shape]]:
        """Shapes through googlenet.modules after the stem (checks every pool fits)."""
        g = self.googlenet
        s = self.image_size
        if g.stem == "imagenet":  # 7×7/2 conv, 3×3/2 ceil pool, 1×1, 3×3, 3×3/2 ceil pool
            s = _pool_out(_pool_out(_pool_out(s, 7, 2, 3, False), 3, 2, 0, True), 3, 2, 0, True)
            c = 192
        elif g.stem == "small":
            c = 64
        else:
            c = self.in_channels
        if s < 1:
            raise ConfigError(f"googlenet.stem={g.stem!r} shrinks a {self.image_size}×{self.image_size} input to "
                              f"nothing; use googlenet.stem='small' for small images")
        shape: Shape = (c, s, s)
        out = []
        for i, text in enumerate(g.modules):
            spec = parse_layer(text, f"googlenet.modules[{i}]")
            new = infer_shape(spec, shape, f"googlenet.modules[{i}]", self.n_classes, naive=g.inception == "naive")
            out.append((spec, shape, new))
            shape = new
        return out


def _drop(layers: tuple[str, ...], kinds: set[str]) -> list[str]:
    return [t for t in layers if parse_layer(t).kind not in kinds]


def _swap_conv_act(layers: tuple[str, ...]) -> list[str]:
    """Move each activation that follows a conv(+bn) to just before that conv."""
    out: list[str] = []
    for t in layers:
        if parse_layer(t).kind in ACTIVATIONS:
            j = len(out)
            while j > 0 and parse_layer(out[j - 1]).kind == "bn":
                j -= 1
            if j > 0 and parse_layer(out[j - 1]).kind == "conv":
                out.insert(j - 1, t)
                continue
        out.append(t)
    return out


def _pool_before_act(layers: tuple[str, ...]) -> list[str]:
    """Swap each activation with the pool that follows it."""
    out = list(layers)
    for i in range(len(out) - 1):
        if parse_layer(out[i]).kind in ACTIVATIONS and parse_layer(out[i + 1]).kind in ("maxpool", "avgpool"):
            out[i], out[i + 1] = out[i + 1], out[i]
    return out


def order_variants(base: tuple[str, ...] = SMALL_LAYERS, in_channels: int = 1,
                   image_size: int = 28) -> dict[str, dict[str, Any]]:
    """Seed 000's CNN order claims as config diffs {'layers': [...]} of a plain CNN's layer list."""
    n_in = in_channels * image_size * image_size
    return {
        "baseline": {"layers": list(base)},
        "relu_before_conv": {"layers": _swap_conv_act(base)},
        "pool_before_activation": {"layers": _pool_before_act(base)},
        # FC first: the raw image is flattened into an FC layer, then reshaped so the convs still run
        "fc_first": {"layers": ["flatten", f"fc:{n_in}", "relu", f"unflatten:{in_channels}:{image_size}:{image_size}",
                                *base]},
        "no_pooling": {"layers": _drop(base, {"maxpool", "avgpool"})},
        "no_activation": {"layers": _drop(base, set(ACTIVATIONS))},
    }


ORDER_VARIANTS = order_variants()

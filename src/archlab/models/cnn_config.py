"""CNNConfig: plain CNNs as an ordered list of layer specs, and ResNet / GoogLeNet / MobileNet v1 as fields.

A plain CNN is `layers`, a list of short layer strings read left to right (seed 000's conv → activation → pool →
FC), e.g. `conv:32:3`, `relu`, `maxpool:2`, `flatten`, `fc` — the vocabulary is archlab.models.cnn_layers.

Seed 000's order claims are config diffs of `layers` (see ORDER_VARIANTS). A list that cannot be built —
a conv after flatten, an FC layer on an image, a pool that shrinks the fmap to nothing, an output that is not
n_classes logits — raises ConfigError at config time naming the layer index and the reason.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from archlab.config import ConfigError, check_choice, check_positive, check_probability
from archlab.models.cnn_layers import (  # noqa: F401  (re-exported: the layer vocabulary of CNNConfig)
    ACTIVATIONS,
    LAYER_KINDS,
    LayerSpec,
    Shape,
    infer_shape,
    parse_layer,
    pool_out,
)

KINDS = ("plain", "resnet", "googlenet", "mobilenet")
IMPLS = ("torch", "unfold", "loops")


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
            s = pool_out(pool_out(pool_out(s, 7, 2, 3, False), 3, 2, 0, True), 3, 2, 0, True)
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

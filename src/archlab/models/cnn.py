"""The CNN family: plain layer-list CNNs, ResNet, GoogLeNet and MobileNet v1, built from a CNNConfig.

Every layer is a standard torch module (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, nn.Linear, ...) unless
`impl` asks for archlab's loop-nest or unfold paths, so cost walks and FlopCounterMode see ordinary layers.
Parameter counts of the presets (1000 classes, 224² RGB), derived in tests/cnn/test_cnn_models.py:
resnet18 11,689,512 · resnet34 21,797,672 · resnet50 25,557,032 · googlenet (5×5 branch, as the paper)
7,005,832 · googlenet-tv (3×3 branch, as torchvision) 6,624,904 · mobilenet-v1 4,231,976.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from archlab.config import from_dict
from archlab.errors import UserError
from archlab.models.cnn_config import (
    ACTIVATIONS,
    CNNConfig,
    GoogLeNetConfig,
    LayerSpec,
    MobileNetConfig,
    ResNetConfig,
)
from archlab.nn.conv import BasicBlock, Bottleneck, ConvBNAct, DepthwiseSeparable, Inception, avg_pool, conv, max_pool
from archlab.registry import register

_ACT = {"relu": lambda: nn.ReLU(), "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid,
        "leaky_relu": lambda: nn.LeakyReLU(0.01), "identity": nn.Identity}
assert set(_ACT) == set(ACTIVATIONS)


def build_layer(spec: LayerSpec, in_shape: tuple[int, ...], n_classes: int, impl: str = "torch",
                naive: bool = False, k5: int = 5) -> nn.Module:
    """The torch module for one parsed layer spec, given its input shape."""
    k = spec.kind
    if k == "conv":
        return conv(in_shape[0], spec.out, spec.kernel, spec.stride, spec.padding, spec.groups, spec.bias, impl)
    if k in _ACT:
        return _ACT[k]()
    if k == "maxpool":
        return max_pool(spec.kernel, spec.stride, spec.padding, ceil_mode=spec.ceil, impl=impl)
    if k == "avgpool":
        return avg_pool(spec.kernel, spec.stride, spec.padding, impl=impl)
    if k == "gap":
        return nn.AdaptiveAvgPool2d(1)
    if k == "bn":
        return nn.BatchNorm2d(in_shape[0]) if len(in_shape) == 3 else nn.BatchNorm1d(in_shape[0])
    if k == "dropout":
        return nn.Dropout(spec.p)
    if k == "flatten":
        return nn.Flatten()
    if k == "unflatten":
        return nn.Unflatten(1, spec.shape)
    if k == "fc":
        return nn.Linear(in_shape[0], spec.out or n_classes)
    if k == "inception":
        return Inception(in_shape[0], *spec.shape, naive=naive, k5=k5, impl=impl)
    raise AssertionError(f"unhandled layer kind {k!r}")


class CNN(nn.Module):
    """An image classifier: `features` (N, C, H, W) -> `head` -> (N, n_classes) logits."""

    def __init__(self, cfg: CNNConfig, features: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.cfg = cfg
        self.features = features
        self.head = head

    def forward(self, images: Tensor) -> Tensor:
        """Logits (N, n_classes) for images (N, C, H, W)."""
        c, s = self.cfg.in_channels, self.cfg.image_size
        if images.dim() != 4 or images.shape[1] != c:
            raise UserError(f"{self.cfg.name}: expected images of shape (N, {c}, H, W) (N, channels, height, width) "
                            f"but got {tuple(images.shape)}")
        if self.cfg.kind == "plain" and tuple(images.shape[2:]) != (s, s):
            raise UserError(f"{self.cfg.name}: this plain CNN is built for {s}×{s} images but got "
                            f"{images.shape[2]}×{images.shape[3]} (its fc layers fix the input size)")
        return self.head(self.features(images))

    def num_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters())


def _plain(cfg: CNNConfig) -> CNN:
    layers = [build_layer(spec, i, cfg.n_classes, cfg.impl) for spec, i, _ in cfg.layer_shapes()]
    return CNN(cfg, nn.Sequential(*layers), nn.Identity())


def _classifier(channels: int, n_classes: int, dropout: float = 0.0) -> nn.Sequential:
    """Global average pool -> flatten -> (dropout) -> FC."""
    layers: list[nn.Module] = [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(channels, n_classes))
    return nn.Sequential(*layers)


def _resnet(cfg: CNNConfig) -> CNN:
    r: ResNetConfig = cfg.resnet
    if r.stem == "imagenet":  # 7×7/2 conv, BN, ReLU, 3×3/2 max-pool: 224 -> 56
        stem = nn.Sequential(ConvBNAct(cfg.in_channels, r.stem_width, 7, 2, 3, impl=cfg.impl),
                             max_pool(3, 2, 1, impl=cfg.impl))
    else:  # 28×28 inputs: keep the resolution
        stem = ConvBNAct(cfg.in_channels, r.stem_width, 3, 1, 1, impl=cfg.impl)
    block = BasicBlock if r.block == "basic" else Bottleneck
    stages, ch = [], r.stem_width
    for s, (n, width) in enumerate(zip(r.blocks, r.widths)):
        blocks = []
        for b in range(n):
            stride = 2 if s > 0 and b == 0 else 1  # each stage after the first halves E, F
            blocks.append(block(ch, width, stride, residual=r.residual, impl=cfg.impl))
            ch = width * block.expansion
        stages.append(nn.Sequential(*blocks))
    return CNN(cfg, nn.Sequential(stem, *stages), _classifier(ch, cfg.n_classes))


def _googlenet(cfg: CNNConfig) -> CNN:
    g: GoogLeNetConfig = cfg.googlenet
    eps = 1e-3  # torchvision's BasicConv2d
    if g.stem == "imagenet":
        stem = nn.Sequential(ConvBNAct(cfg.in_channels, 64, 7, 2, 3, bn_eps=eps, impl=cfg.impl),
                             max_pool(3, 2, ceil_mode=True, impl=cfg.impl),
                             ConvBNAct(64, 64, 1, padding=0, bn_eps=eps, impl=cfg.impl),
                             ConvBNAct(64, 192, 3, bn_eps=eps, impl=cfg.impl),
                             max_pool(3, 2, ceil_mode=True, impl=cfg.impl))
    elif g.stem == "small":
        stem = ConvBNAct(cfg.in_channels, 64, 3, bn_eps=eps, impl=cfg.impl)
    else:
        stem = nn.Identity()
    shapes = cfg.googlenet_shapes()
    body = [build_layer(spec, i, cfg.n_classes, cfg.impl, naive=g.inception == "naive", k5=g.k5)
            for spec, i, _ in shapes]
    ch = shapes[-1][2][0] if shapes else (192 if g.stem == "imagenet" else 64 if g.stem == "small" else cfg.in_channels)
    return CNN(cfg, nn.Sequential(stem, *body), _classifier(ch, cfg.n_classes, g.dropout))


def _mobilenet(cfg: CNNConfig) -> CNN:
    m: MobileNetConfig = cfg.mobilenet
    ch = m.channels(m.stem_channels)
    layers: list[nn.Module] = [ConvBNAct(cfg.in_channels, ch, 3, 2 if m.stem == "imagenet" else 1, impl=cfg.impl)]
    for b in m.blocks:
        out, stride = (int(v) for v in b.split(":"))
        layers.append(DepthwiseSeparable(ch, m.channels(out), stride, impl=cfg.impl))
        ch = m.channels(out)
    return CNN(cfg, nn.Sequential(*layers), _classifier(ch, cfg.n_classes, m.dropout))


@register("model", "cnn")
def build_cnn(cfg: CNNConfig) -> CNN:
    """nn.Module for a CNNConfig (dispatch on cfg.kind)."""
    return {"plain": _plain, "resnet": _resnet, "googlenet": _googlenet, "mobilenet": _mobilenet}[cfg.kind](cfg)


# ---------------------------------------------------------------------------------------------- single blocks
SEED003_INCEPTION = {"in_channels": 256, "size": 28, "c1": 128, "c3r": 64, "c3": 192, "c5r": 64, "c5": 96,
                     "pool_proj": 64}
"""Seed 003's inception example: 28×28×256 input; 1×1/128, 3×3/192, 5×5/96; reductions 64, 64; pool proj 64."""


def inception_module(in_channels: int, c1: int, c3r: int, c3: int, c5r: int, c5: int, pool_proj: int, *,
                     naive: bool = False, k5: int = 5, norm: bool = True, impl: str = "torch", **_: Any) -> Inception:
    """One inception module (naive or bottleneck) with the given channel numbers, e.g. **SEED003_INCEPTION."""
    return Inception(in_channels, c1, c3r, c3, c5r, c5, pool_proj, naive=naive, k5=k5, norm=norm, impl=impl)


def inception_config(in_channels: int = 256, size: int = 28, c1: int = 128, c3r: int = 64, c3: int = 192,
                     c5r: int = 64, c5: int = 96, pool_proj: int = 64, naive: bool = False,
                     n_classes: int = 10) -> CNNConfig:
    """A CNNConfig whose network is a single inception module (then avg-pool + FC), input size×size×in_channels."""
    return from_dict(CNNConfig, {
        "name": f"inception-{'naive' if naive else 'bottleneck'}", "kind": "googlenet", "in_channels": in_channels,
        "image_size": size, "n_classes": n_classes,
        "googlenet": {"stem": "none", "inception": "naive" if naive else "bottleneck", "dropout": 0.0,
                      "modules": [f"inception:{c1}:{c3r}:{c3}:{c5r}:{c5}:{pool_proj}"]}})


def separable_block(in_channels: int, out_channels: int, stride: int = 1, kernel: int = 3,
                    impl: str = "torch") -> DepthwiseSeparable:
    """One MobileNet depthwise-separable block: depthwise k×k (groups = C) then pointwise 1×1."""
    return DepthwiseSeparable(in_channels, out_channels, stride, kernel, impl)


def separable_config(in_channels: int = 50, out_channels: int = 10, size: int = 416, n_classes: int = 10) -> CNNConfig:
    """A CNNConfig holding one depthwise-separable block (seed 003's example: 416×416×50 -> 10 filters)."""
    return from_dict(CNNConfig, {
        "name": "separable-block", "kind": "plain", "in_channels": in_channels, "image_size": size,
        "n_classes": n_classes,
        "layers": [f"conv:{in_channels}:3:groups={in_channels}:bias=0", "bn", "relu", f"conv:{out_channels}:1:bias=0",
                   "bn", "relu", "gap", "flatten", "fc"]})


# ---------------------------------------------------------------------------------------------- presets
def _c(**data: Any) -> CNNConfig:
    return from_dict(CNNConfig, data)


_IMAGENET = {"in_channels": 3, "image_size": 224, "n_classes": 1000}

# AlexNet (Krizhevsky et al. 2012) as torchvision builds it: 5 convs, 3 max-pools, a 6×6×256 map, 3 FC layers.
# torchvision's adaptive 6×6 average pool is the identity at 224² and is omitted.
ALEXNET_LAYERS = ["conv:64:11:4:2", "relu", "maxpool:3:2", "conv:192:5", "relu", "maxpool:3:2",
                  "conv:384:3", "relu", "conv:256:3", "relu", "conv:256:3", "relu", "maxpool:3:2", "flatten",
                  "dropout:0.5", "fc:4096", "relu", "dropout:0.5", "fc:4096", "relu", "fc"]


def _vgg(stages: list[list[int]]) -> list[str]:
    """VGG (Simonyan & Zisserman 2014): stages of 3×3 same convs + ReLU, each closed by a 2×2/2 max-pool."""
    convs = [layer for stage in stages for m in stage + [0]
             for layer in (["maxpool:2"] if m == 0 else [f"conv:{m}:3", "relu"])]
    return convs + ["flatten", "fc:4096", "relu", "dropout:0.5", "fc:4096", "relu", "dropout:0.5", "fc"]


VGG16_LAYERS = _vgg([[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]])

PRESETS = {
    "resnet18": lambda: _c(name="resnet18", kind="resnet", **_IMAGENET, resnet={"blocks": [2, 2, 2, 2]}),
    "resnet34": lambda: _c(name="resnet34", kind="resnet", **_IMAGENET, resnet={"blocks": [3, 4, 6, 3]}),
    "resnet50": lambda: _c(name="resnet50", kind="resnet", **_IMAGENET,
                           resnet={"block": "bottleneck", "blocks": [3, 4, 6, 3]}),
    "googlenet": lambda: _c(name="googlenet", kind="googlenet", **_IMAGENET),
    "googlenet-tv": lambda: _c(name="googlenet-tv", kind="googlenet", **_IMAGENET, googlenet={"k5": 3}),
    "mobilenet-v1": lambda: _c(name="mobilenet-v1", kind="mobilenet", **_IMAGENET),
    # the seed 003 comparison points for GoogLeNet (torchvision's layer lists; counts tested equal)
    "alexnet": lambda: _c(name="alexnet", kind="plain", **_IMAGENET, layers=ALEXNET_LAYERS),
    "vgg16": lambda: _c(name="vgg16", kind="plain", **_IMAGENET, layers=VGG16_LAYERS),
    # 28×28 grey images (MNIST / Fashion-MNIST)
    "cnn-small": lambda: _c(name="cnn-small", kind="plain"),
    "resnet-small": lambda: _c(name="resnet-small", kind="resnet", resnet={
        "stem": "small", "stem_width": 16, "blocks": [2, 2, 2], "widths": [16, 32, 64]}),
    "mobilenet-small": lambda: _c(name="mobilenet-small", kind="mobilenet", mobilenet={
        "stem": "small", "stem_channels": 32, "width": 1.0,
        "blocks": ["64:1", "128:2", "128:1", "256:2", "256:1"]}),
    "googlenet-small": lambda: _c(name="googlenet-small", kind="googlenet", googlenet={
        "stem": "small", "dropout": 0.2,
        "modules": ["maxpool:2", "inception:32:32:48:8:16:16", "inception:48:48:64:12:24:24", "maxpool:2",
                    "inception:64:48:96:12:32:32", "inception:96:64:128:16:48:48"]}),
}
for _name, _fn in PRESETS.items():
    register("preset", _name)(_fn)


def count_parameters(cfg: CNNConfig) -> int:
    """Parameter count of a config, built on the meta device (nothing allocated)."""
    with torch.device("meta"):
        return build_cnn(cfg).num_parameters()

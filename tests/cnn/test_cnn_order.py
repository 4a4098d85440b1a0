"""Seed 000's order claims are config diffs of a plain CNN; orders that cannot be built fail at config time."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from archlab.config import ConfigError, apply_overrides, config_diff
from archlab.models import build_model, model_config_from_dict, preset
from archlab.models.cnn_config import ORDER_VARIANTS, CNNConfig, order_variants, parse_layer

KIND_OF_MODULE = {nn.Conv2d: "conv", nn.BatchNorm2d: "bn", nn.ReLU: "relu", nn.MaxPool2d: "maxpool",
                  nn.AvgPool2d: "avgpool", nn.Flatten: "flatten", nn.Unflatten: "unflatten", nn.Linear: "fc",
                  nn.Dropout: "dropout"}


def _executed_kinds(model: nn.Module, x: torch.Tensor) -> tuple[list[str], torch.Tensor]:
    """The layer kinds in the order the forward pass actually ran them (forward hooks), and the logits."""
    ran: list[str] = []
    handles = [m.register_forward_hook(lambda mod, _a, _o, k=kind: ran.append(k))
               for m in model.modules() for cls, kind in KIND_OF_MODULE.items() if type(m) is cls]
    try:
        out = model(x)
    finally:
        for h in handles:
            h.remove()
    return ran, out


BASE_KINDS = [parse_layer(t).kind for t in preset("cnn-small").layers]


@pytest.mark.parametrize("variant", sorted(ORDER_VARIANTS))
def test_each_order_variant_builds_trains_one_step(variant):
    base = preset("cnn-small")
    cfg = apply_overrides(base, ORDER_VARIANTS[variant])
    assert set(config_diff(base, cfg)) <= {"layers"}  # the variant is a diff of `layers` only
    torch.manual_seed(0)
    model = build_model(cfg)
    kinds = [parse_layer(t).kind for t in cfg.layers]
    ran, logits = _executed_kinds(model, torch.randn(4, 1, 28, 28))
    assert logits.shape == (4, 10) and torch.isfinite(logits).all()
    assert ran == kinds  # the model runs exactly the configured layers, in the configured order
    assert (ran == BASE_KINDS) == (variant == "baseline")  # and every variant really is a different order
    torch.nn.functional.cross_entropy(logits, torch.arange(4)).backward()
    for n, p in model.named_parameters():  # every layer learns (a bias right before BN is cancelled by it)
        assert p.grad is not None and torch.isfinite(p.grad).all(), n
        before_bn = n.endswith(".bias") and kinds[int(n.split(".")[-2]) + 1:][:1] == ["bn"]
        assert (p.grad.abs().max() < 1e-4) if before_bn else (p.grad.abs().max() > 0), n
    if variant == "relu_before_conv":
        assert kinds[:2] == ["relu", "conv"]
    if variant == "pool_before_activation":
        assert kinds[2:4] == ["maxpool", "relu"]
    if variant == "fc_first":
        assert kinds[:2] == ["flatten", "fc"]
    if variant == "no_pooling":
        assert "maxpool" not in kinds
    if variant == "no_activation":
        assert "relu" not in kinds


def test_pool_before_relu_is_the_same_function():
    """max-pool and ReLU commute (both monotone), so 'pool before activation' changes nothing for this pair."""
    base = preset("cnn-small")
    swapped = apply_overrides(base, ORDER_VARIANTS["pool_before_activation"])
    torch.manual_seed(0)
    a = build_model(base).eval()
    b = build_model(swapped).eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(3, 1, 28, 28)
    torch.testing.assert_close(a(x), b(x))


def test_variants_follow_other_bases():
    v = order_variants(("conv:8:3", "relu", "avgpool:2", "flatten", "fc"), in_channels=3, image_size=16)
    cfg = CNNConfig(in_channels=3, image_size=16, layers=tuple(v["fc_first"]["layers"]))
    assert build_model(cfg)(torch.randn(2, 3, 16, 16)).shape == (2, 10)


@pytest.mark.parametrize("layers, match", [
    (["flatten", "conv:8:3", "fc"], r"layers\[1\] 'conv:8:3'.*cannot come after 'flatten'"),
    (["conv:8:3", "fc"], r"layers\[1\] 'fc'.*needs a flat input.*put 'flatten' before it"),
    (["conv:8:3", "maxpool:2", "maxpool:2", "maxpool:2", "maxpool:2", "maxpool:2", "flatten", "fc"],
     r"layers\[5\] 'maxpool:2'.*does not fit the 1×1 input"),
    (["conv:8:3", "flatten"], r"must end in n_classes=10 logits.*layers\[1\] 'flatten'"),
    (["conv:8:3:groups=3", "flatten", "fc"], r"layers\[0\].*groups=3 must divide"),
    (["conv:8", "flatten", "fc"], r"layers\[0\] 'conv:8'.*takes 2..4"),
    (["conv:8:3", "swish", "flatten", "fc"], r"layers\[1\]='swish': unknown layer kind"),
    (["dropout:1.5", "flatten", "fc"], r"layers\[0\].*dropout"),
    (["flatten", "unflatten:2:28:28", "flatten", "fc"], r"layers\[1\].*does not match the flat input of 784"),
    (["flatten", "flatten", "fc"], r"layers\[1\] 'flatten': the input is already flat"),
    (["conv:8:3:stride=2:dilation=2", "flatten", "fc"], r"unknown option 'dilation'"),
    ([], r"layers is empty"),
])
def test_invalid_orders_fail_at_config_time(layers, match):
    with pytest.raises(ConfigError, match=match):
        model_config_from_dict({"arch": "cnn", "layers": layers})


def test_override_from_command_line_strings():
    cfg = apply_overrides(preset("cnn-small"), ["layers=[conv:16:3, relu, maxpool:2, flatten, fc]"])
    assert cfg.layers == ("conv:16:3", "relu", "maxpool:2", "flatten", "fc")
    with pytest.raises(ConfigError, match="model.kind"):
        apply_overrides(cfg, {"kind": "vgg"})
    with pytest.raises(ConfigError, match="resnet.block"):
        apply_overrides(preset("resnet-small"), {"resnet.block": "wide"})
    with pytest.raises(ConfigError, match=r"googlenet.modules\[0\]"):
        apply_overrides(preset("googlenet-small"), {"googlenet.modules": ["inception:1:2:3"]})
    with pytest.raises(ConfigError, match="stem='small'"):
        apply_overrides(preset("googlenet"), {"image_size": 4})


def test_layer_grammar():
    s = parse_layer("conv:64:3:2:0")
    assert (s.out, s.kernel, s.stride, s.padding) == (64, 3, 2, 0)
    s = parse_layer("conv:64:5:stride=2:groups=4:bias=0")
    assert (s.kernel, s.stride, s.padding, s.groups, s.bias) == (5, 2, 2, 4, False)
    assert parse_layer("maxpool:3:2:1").stride == 2 and parse_layer("maxpool:2").stride == 2
    assert parse_layer("fc").out == 0 and parse_layer("fc:128").out == 128

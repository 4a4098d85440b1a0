"""CNN family: preset parameter counts (torchvision's figures, and derived by hand), shapes, blocks, residual switch."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from archlab.config import apply_overrides
from archlab.models import build_model, model_config_from_dict, preset
from archlab.models.cnn import (
    SEED003_INCEPTION,
    count_parameters,
    inception_config,
    inception_module,
    separable_block,
    separable_config,
)

# torchvision's published counts (1000 classes); torchvision itself is not installable beside this torch
TORCHVISION = {"resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032, "googlenet-tv": 6_624_904}


def conv_bn(cin: int, cout: int, k: int) -> int:
    """k×k conv without bias + BatchNorm (γ, β)."""
    return k * k * cin * cout + 2 * cout


def resnet_params(blocks: list[int], bottleneck: bool, classes: int = 1000) -> int:
    """ResNet parameter count from the paper's table, written out independently of the builder."""
    n = conv_bn(3, 64, 7)
    cin = 64
    for stage, (nb, width) in enumerate(zip(blocks, (64, 128, 256, 512))):
        for b in range(nb):
            out = width * (4 if bottleneck else 1)
            if bottleneck:
                n += conv_bn(cin, width, 1) + conv_bn(width, width, 3) + conv_bn(width, out, 1)
            else:
                n += conv_bn(cin, width, 3) + conv_bn(width, width, 3)
            if b == 0 and (stage > 0 or cin != out):
                n += conv_bn(cin, out, 1)  # projection shortcut
            cin = out
    return n + cin * classes + classes


def mobilenet_params(alpha: float = 1.0, classes: int = 1000) -> int:
    """MobileNet v1 (Howard et al. table 1): stem + 13 × (depthwise 3×3 + pointwise 1×1), each with BN."""
    c = lambda x: int(round(x * alpha))  # noqa: E731
    n, cin = conv_bn(3, c(32), 3), c(32)
    for out in (64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024):
        n += 9 * cin + 2 * cin + conv_bn(cin, c(out), 1)
        cin = c(out)
    return n + cin * classes + classes


def test_resnet_counts_match_torchvision_and_derivation():
    assert count_parameters(preset("resnet18")) == TORCHVISION["resnet18"] == resnet_params([2, 2, 2, 2], False)
    assert count_parameters(preset("resnet34")) == TORCHVISION["resnet34"] == resnet_params([3, 4, 6, 3], False)
    assert count_parameters(preset("resnet50")) == TORCHVISION["resnet50"] == resnet_params([3, 4, 6, 3], True)


def test_googlenet_counts():
    # torchvision's GoogLeNet (aux heads off) puts a 3×3 conv in the "5×5" branch: 6,624,904
    assert count_parameters(preset("googlenet-tv")) == TORCHVISION["googlenet-tv"]
    # with true 5×5 kernels (the paper) each of the 9 modules gains 16·c5r·c5 weights
    c5 = [(16, 32), (32, 96), (16, 48), (24, 64), (24, 64), (32, 64), (32, 128), (32, 128), (48, 128)]
    assert count_parameters(preset("googlenet")) == TORCHVISION["googlenet-tv"] + sum(16 * r * o for r, o in c5)
    assert count_parameters(preset("googlenet")) == 7_005_832


def test_mobilenet_v1_count_and_macs():
    n = count_parameters(preset("mobilenet-v1"))
    assert n == mobilenet_params() == 4_231_976  # the paper's "4.2M"
    assert count_parameters(preset("mobilenet-v1", **{"mobilenet.width": 0.5})) == mobilenet_params(0.5)
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):  # FlopCounterMode counts from shapes: nothing needs allocating
        model = build_model(preset("mobilenet-v1")).eval()
        with FlopCounterMode(display=False) as fc, torch.no_grad():
            model(torch.empty(1, 3, 224, 224))
    assert abs(fc.get_total_flops() / 2 / 569e6 - 1) < 0.01  # the paper's 569M multiply-adds


def _biases_cancelled_by_batchnorm(model: nn.Module) -> set[str]:
    """Names of conv/linear biases directly followed by a BatchNorm in training mode: BN subtracts the batch mean,
    so their gradient is exactly zero in exact arithmetic."""
    names = {m: n for n, m in model.named_modules()}
    out = set()
    for seq in model.modules():
        if isinstance(seq, nn.Sequential):
            kids = list(seq)
            for a, b in zip(kids, kids[1:]):
                if isinstance(a, (nn.Conv2d, nn.Linear)) and a.bias is not None and isinstance(b, nn.BatchNorm2d):
                    out.add(f"{names[a]}.bias")
    return out


def assert_gradients_reach_every_parameter(model: nn.Module) -> None:
    """Every parameter has a finite gradient; every one that can move the loss has a non-zero one."""
    cancelled = _biases_cancelled_by_batchnorm(model)
    for n, p in model.named_parameters():
        assert p.grad is not None, f"{n} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{n} has a non-finite gradient"
        if n in cancelled:
            assert p.grad.abs().max() < 1e-4, f"{n} sits before a BatchNorm, yet its gradient is not ~0"
        else:
            assert p.grad.abs().max() > 0, f"{n} has an all-zero gradient"


@pytest.mark.parametrize("name", ["cnn-small", "resnet-small", "mobilenet-small", "googlenet-small"])
def test_small_presets_run_on_28x28(name):
    torch.manual_seed(0)
    model = build_model(preset(name))
    assert model.cfg.name == name and model.num_parameters() > 0
    x = torch.randn(8, 1, 28, 28)
    logits = model(x)
    assert logits.shape == (8, 10) and torch.isfinite(logits).all()
    assert logits[0].sub(logits[1]).abs().max() > 0  # different images, different logits
    torch.nn.functional.cross_entropy(logits, torch.arange(8)).backward()
    assert_gradients_reach_every_parameter(model)


def test_224_presets_forward_on_meta():
    for name in ("resnet18", "resnet50", "googlenet", "mobilenet-v1"):
        with torch.device("meta"):
            out = build_model(preset(name))(torch.empty(2, 3, 224, 224))
        assert out.shape == (2, 1000)


def test_residual_switch_and_naive_inception():
    cfg = preset("resnet-small")
    plain = apply_overrides(cfg, {"resnet.residual": False})
    m_res, m_plain = build_model(cfg), build_model(plain)
    # no shortcut: the projection convs disappear, every other layer stays
    assert m_plain.num_parameters() < m_res.num_parameters()
    assert not any("shortcut" in n for n, _ in m_plain.named_parameters())
    assert m_plain(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    naive = apply_overrides(preset("googlenet-small"), {"googlenet.inception": "naive"})
    assert build_model(naive)(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_seed003_inception_module_shapes_and_macs():
    """The seed's 28×28×256 module: naive 854M conv MACs (as seed 003), bottleneck 271.35M (seed: 358M)."""
    from torch.utils.flop_counter import FlopCounterMode

    s = SEED003_INCEPTION
    x = torch.randn(1, s["in_channels"], s["size"], s["size"])
    cases = ((True, 128 + 192 + 96 + 256, 854_196_224), (False, 128 + 192 + 96 + 64, 271_351_808))
    for naive, channels, macs in cases:
        mod = inception_module(**s, naive=naive).eval()
        leaves = [m for m in mod.modules() if not list(m.children())]
        assert {type(m) for m in leaves} <= {nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d}  # plain torch layers
        with FlopCounterMode(display=False) as fc, torch.no_grad():
            y = mod(x)
        assert y.shape == (1, channels, 28, 28)
        assert fc.get_total_flops() // 2 == macs
    cfg = inception_config(**s)
    assert build_model(cfg)(x).shape == (1, 10)


def test_separable_block_ratio():
    """Seed 003: depthwise-separable / standard conv MACs = 1/N_k + 1/k² (416×416×50, 10 filters: 0.2111)."""
    from torch.utils.flop_counter import FlopCounterMode

    blk = separable_block(50, 10).eval()
    std = nn.Conv2d(50, 10, 3, padding=1, bias=False)
    x = torch.randn(1, 50, 416, 416)
    with FlopCounterMode(display=False) as a, torch.no_grad():
        blk(x)
    with FlopCounterMode(display=False) as b, torch.no_grad():
        std(x)
    assert abs(a.get_total_flops() / b.get_total_flops() - (1 / 10 + 1 / 9)) < 1e-12
    cfg = separable_config()
    assert cfg.layer_shapes()[1][2] == (50, 416, 416)


def test_model_config_from_mapping():
    cfg = model_config_from_dict({"arch": "cnn", "kind": "plain", "layers": ["flatten", "fc:64", "relu", "fc"]})
    assert build_model(cfg)(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    cfg = model_config_from_dict({"preset": "resnet-small", "resnet": {"residual": False}, "n_classes": 7})
    assert cfg.resnet.residual is False and cfg.n_classes == 7


def test_wrong_input_shape_is_a_clear_error():
    model = build_model(preset("cnn-small"))
    with pytest.raises(ValueError, match=r"expected images of shape \(N, 1, H, W\)"):
        model(torch.randn(2, 3, 28, 28))
    with pytest.raises(ValueError, match="built for 28×28"):
        model(torch.randn(2, 1, 32, 32))


@pytest.mark.parametrize("impl", ["unfold", "loops"])
def test_model_impls_agree(impl):
    """A whole (tiny) CNN gives the same logits through the loop nests, the unfold path and torch."""
    layers = ["conv:2:3:stride=2", "relu", "maxpool:2", "conv:2:3:groups=2", "avgpool:2", "flatten", "fc"]
    base = model_config_from_dict({"arch": "cnn", "image_size": 8, "n_classes": 3, "layers": layers})
    torch.manual_seed(0)
    ref = build_model(base).eval()
    other = build_model(apply_overrides(base, {"impl": impl})).eval()
    other.load_state_dict(ref.state_dict())
    x = torch.randn(2, 1, 8, 8)
    torch.testing.assert_close(other(x), ref(x), atol=1e-5, rtol=1.3e-6)

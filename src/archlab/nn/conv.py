"""Convolution and pooling as seed 003's loop nests, an unfold/matmul path, and the CNN blocks built from them.

Names follow seed 003: input fmaps X[N][C][H][W], filters W[M][C/groups][R][S], bias B[M], stride U,
output fmaps Y[N][M][E][F] with E = (H + 2P - R)/U + 1 and F = (W + 2P - S)/U + 1 (P = zero padding).
Three paths compute the same thing and are tested equal:

* ``*_loops``  — the seed's nested ``for`` loops over python floats (float64 sums): slow, readable, the reference;
* ``*_unfold`` — im2col: every R×S×C window becomes a column, and the convolution is one matmul per group;
* torch       — ``F.conv2d`` / ``F.max_pool2d`` / ``F.avg_pool2d``.

Blocks (residual, inception, depthwise-separable) are built from standard ``nn.Conv2d``/``nn.BatchNorm2d``/
``nn.ReLU`` modules so a per-layer cost walk sees ordinary torch layers.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from archlab.config import ConfigError, check_choice

IMPLS = ("torch", "unfold", "loops")


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def out_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Seed 003: E = (H + 2P - R)/U + 1 (floor division, as torch does)."""
    return (size + 2 * padding - kernel) // stride + 1


def _padded(X: Tensor, ph: int, pw: int, value: float) -> list:
    """X[N][C][H][W] as nested python lists with `value` written around the border."""
    if ph or pw:
        X = F.pad(X, (pw, pw, ph, ph), value=value)
    return X.tolist()


# ---------------------------------------------------------------------------------------------- loop nests
def conv2d_loops(X: Tensor, Wt: Tensor, B: Tensor | None = None, stride: int | tuple[int, int] = 1,
                 padding: int | tuple[int, int] = 0, groups: int = 1) -> Tensor:
    """Seed 003's CONV loop nest, with zero padding and groups (groups = C gives depthwise convolution)."""
    N, C, H, W_ = X.shape
    M, Cg, R, S = Wt.shape
    (Uh, Uw), (Ph, Pw) = _pair(stride), _pair(padding)
    if C != Cg * groups or M % groups:
        raise ValueError(f"conv2d_loops: input has C={C} channels but weights expect {Cg}×groups={Cg * groups}")
    E, F_ = out_size(H, R, Uh, Ph), out_size(W_, S, Uw, Pw)
    Mg = M // groups  # output fmaps per group; group g reads input channels g*Cg ... g*Cg+Cg-1
    x, w = _padded(X.double(), Ph, Pw, 0.0), Wt.double().tolist()
    b = B.double().tolist() if B is not None else [0.0] * M
    Y = [[[[0.0] * F_ for _ in range(E)] for _ in range(M)] for _ in range(N)]
    for n in range(N):
        for m in range(M):
            g = m // Mg
            for e in range(E):
                for f in range(F_):
                    acc = b[m]
                    for i in range(R):
                        for j in range(S):
                            for k in range(Cg):
                                acc += x[n][g * Cg + k][Uh * e + i][Uw * f + j] * w[m][k][i][j]
                    Y[n][m][e][f] = acc
    return torch.tensor(Y, dtype=torch.float64).reshape(N, M, E, F_).to(X.dtype)


def max_pool2d_loops(X: Tensor, kernel: int | tuple[int, int], stride: int | tuple[int, int] | None = None,
                     padding: int | tuple[int, int] = 0) -> Tensor:
    """Seed 003's POOL loop nest: the max over each R×S window (padding counts as -inf, as in torch)."""
    N, C, H, W_ = X.shape
    (R, S) = _pair(kernel)
    (Uh, Uw), (Ph, Pw) = _pair(stride if stride is not None else kernel), _pair(padding)
    E, F_ = out_size(H, R, Uh, Ph), out_size(W_, S, Uw, Pw)
    x = _padded(X.double(), Ph, Pw, -math.inf)
    Y = [[[[0.0] * F_ for _ in range(E)] for _ in range(C)] for _ in range(N)]
    for n in range(N):
        for m in range(C):  # pooling keeps channels: M = C
            for e in range(E):
                for f in range(F_):
                    best = -math.inf
                    for i in range(R):
                        for j in range(S):
                            if x[n][m][Uh * e + i][Uw * f + j] > best:
                                best = x[n][m][Uh * e + i][Uw * f + j]
                    Y[n][m][e][f] = best
    return torch.tensor(Y, dtype=torch.float64).reshape(N, C, E, F_).to(X.dtype)


def avg_pool2d_loops(X: Tensor, kernel: int | tuple[int, int], stride: int | tuple[int, int] | None = None,
                     padding: int | tuple[int, int] = 0) -> Tensor:
    """Average over each R×S window; padded zeros count in the divisor (torch's count_include_pad=True)."""
    N, C, H, W_ = X.shape
    (R, S) = _pair(kernel)
    (Uh, Uw), (Ph, Pw) = _pair(stride if stride is not None else kernel), _pair(padding)
    E, F_ = out_size(H, R, Uh, Ph), out_size(W_, S, Uw, Pw)
    x = _padded(X.double(), Ph, Pw, 0.0)
    Y = [[[[0.0] * F_ for _ in range(E)] for _ in range(C)] for _ in range(N)]
    for n in range(N):
        for m in range(C):
            for e in range(E):
                for f in range(F_):
                    acc = 0.0
                    for i in range(R):
                        for j in range(S):
                            acc += x[n][m][Uh * e + i][Uw * f + j]
                    Y[n][m][e][f] = acc / (R * S)
    return torch.tensor(Y, dtype=torch.float64).reshape(N, C, E, F_).to(X.dtype)


# ---------------------------------------------------------------------------------------------- unfold (im2col)
def conv2d_unfold(X: Tensor, Wt: Tensor, B: Tensor | None = None, stride: int | tuple[int, int] = 1,
                  padding: int | tuple[int, int] = 0, groups: int = 1) -> Tensor:
    """Convolution as im2col + matmul: Y[n, m, :] = W[m] · cols[n] per group, cols = unfold(X)."""
    N, C, H, W_ = X.shape
    M, Cg, R, S = Wt.shape
    (Uh, Uw), (Ph, Pw) = _pair(stride), _pair(padding)
    E, F_ = out_size(H, R, Uh, Ph), out_size(W_, S, Uw, Pw)
    cols = F.unfold(X, (R, S), padding=(Ph, Pw), stride=(Uh, Uw))  # (N, C·R·S, E·F), channel-major
    cols = cols.view(N, groups, Cg * R * S, E * F_)
    w = Wt.view(groups, M // groups, Cg * R * S)
    Y = torch.einsum("gmk,ngkl->ngml", w, cols).reshape(N, M, E, F_)
    return Y + B.view(1, M, 1, 1) if B is not None else Y


def _pool_windows(X: Tensor, kernel, stride, padding, value: float) -> tuple[Tensor, int, int]:
    N, C, H, W_ = X.shape
    (R, S) = _pair(kernel)
    (Uh, Uw), (Ph, Pw) = _pair(stride if stride is not None else kernel), _pair(padding)
    E, F_ = out_size(H, R, Uh, Ph), out_size(W_, S, Uw, Pw)
    if Ph or Pw:
        X = F.pad(X, (Pw, Pw, Ph, Ph), value=value)
    cols = F.unfold(X, (R, S), stride=(Uh, Uw)).view(N, C, R * S, E * F_)
    return cols, E, F_


def max_pool2d_unfold(X: Tensor, kernel, stride=None, padding=0) -> Tensor:
    """Max pooling as the max over unfolded windows."""
    cols, E, F_ = _pool_windows(X, kernel, stride, padding, -math.inf)
    return cols.amax(dim=2).view(X.shape[0], X.shape[1], E, F_)


def avg_pool2d_unfold(X: Tensor, kernel, stride=None, padding=0) -> Tensor:
    """Average pooling as the mean over unfolded windows (padding counted, like torch's default)."""
    cols, E, F_ = _pool_windows(X, kernel, stride, padding, 0.0)
    return cols.mean(dim=2).view(X.shape[0], X.shape[1], E, F_)


# ---------------------------------------------------------------------------------------------- modules
class Conv2d(nn.Conv2d):
    """nn.Conv2d whose forward can run the loop nest or the unfold path (impl = torch | unfold | loops)."""

    def __init__(self, *args, impl: str = "torch", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        check_choice("impl", impl, IMPLS)
        if self.padding_mode != "zeros" or self.dilation != (1, 1) or isinstance(self.padding, str):
            raise ConfigError("archlab Conv2d supports numeric zero padding without dilation only")
        self.impl = impl

    def forward(self, x: Tensor) -> Tensor:
        if self.impl == "loops":
            return conv2d_loops(x, self.weight, self.bias, self.stride, self.padding, self.groups)
        if self.impl == "unfold":
            return conv2d_unfold(x, self.weight, self.bias, self.stride, self.padding, self.groups)
        return super().forward(x)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", impl={self.impl}"


class MaxPool2d(nn.MaxPool2d):
    """nn.MaxPool2d with the loop-nest and unfold paths selectable (no ceil_mode outside torch)."""

    def __init__(self, *args, impl: str = "torch", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        check_choice("impl", impl, IMPLS)
        self.impl = impl

    def forward(self, x: Tensor) -> Tensor:
        if self.impl != "torch" and not self.ceil_mode:
            fn = max_pool2d_loops if self.impl == "loops" else max_pool2d_unfold
            return fn(x, self.kernel_size, self.stride, self.padding)
        return super().forward(x)


class AvgPool2d(nn.AvgPool2d):
    """nn.AvgPool2d with the loop-nest and unfold paths selectable."""

    def __init__(self, *args, impl: str = "torch", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        check_choice("impl", impl, IMPLS)
        self.impl = impl

    def forward(self, x: Tensor) -> Tensor:
        if self.impl != "torch" and not self.ceil_mode and self.count_include_pad:
            fn = avg_pool2d_loops if self.impl == "loops" else avg_pool2d_unfold
            return fn(x, self.kernel_size, self.stride, self.padding)
        return super().forward(x)


def conv(in_ch: int, out_ch: int, kernel: int, stride: int = 1, padding: int | None = None, groups: int = 1,
         bias: bool = True, impl: str = "torch") -> nn.Conv2d:
    """A plain nn.Conv2d for impl='torch' (what cost walks expect), else archlab's switchable Conv2d."""
    padding = kernel // 2 if padding is None else padding
    if impl == "torch":
        return nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=padding, groups=groups, bias=bias)
    return Conv2d(in_ch, out_ch, kernel, stride=stride, padding=padding, groups=groups, bias=bias, impl=impl)


def max_pool(kernel: int, stride: int | None = None, padding: int = 0, ceil_mode: bool = False,
             impl: str = "torch") -> nn.MaxPool2d:
    """nn.MaxPool2d, or the switchable one when impl is not 'torch'."""
    if impl == "torch":
        return nn.MaxPool2d(kernel, stride, padding, ceil_mode=ceil_mode)
    return MaxPool2d(kernel, stride, padding, ceil_mode=ceil_mode, impl=impl)


def avg_pool(kernel: int, stride: int | None = None, padding: int = 0, impl: str = "torch") -> nn.AvgPool2d:
    """nn.AvgPool2d, or the switchable one when impl is not 'torch'."""
    if impl == "torch":
        return nn.AvgPool2d(kernel, stride, padding)
    return AvgPool2d(kernel, stride, padding, impl=impl)


class ConvBNAct(nn.Sequential):
    """conv → BatchNorm → ReLU, the unit of ResNet/GoogLeNet/MobileNet (conv has no bias when BN follows)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, padding: int | None = None,
                 groups: int = 1, *, act: bool = True, norm: bool = True, bn_eps: float = 1e-5,
                 impl: str = "torch") -> None:
        layers: list[nn.Module] = [conv(in_ch, out_ch, kernel, stride, padding, groups, bias=not norm, impl=impl)]
        if norm:
            layers.append(nn.BatchNorm2d(out_ch, eps=bn_eps))
        if act:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class BasicBlock(nn.Module):
    """ResNet basic block: y = ReLU(F(x) + x), F = conv3×3 → BN → ReLU → conv3×3 → BN (He et al. 2015)."""

    expansion = 1

    def __init__(self, in_ch: int, width: int, stride: int = 1, residual: bool = True, impl: str = "torch") -> None:
        super().__init__()
        out = width * self.expansion
        self.body = nn.Sequential(ConvBNAct(in_ch, width, 3, stride, impl=impl),
                                  ConvBNAct(width, out, 3, act=False, impl=impl))
        self.residual = residual
        # projection shortcut (1×1 conv + BN) when the shape changes; only built if the shortcut is used
        self.shortcut = (ConvBNAct(in_ch, out, 1, stride, padding=0, act=False, impl=impl)
                         if residual and (stride != 1 or in_ch != out) else None)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        y = self.body(x)
        if self.residual:  # H(x) = F(x) + x: the layers fit the residual F(x) = H(x) - x
            y = y + (self.shortcut(x) if self.shortcut is not None else x)
        return self.act(y)


class Bottleneck(BasicBlock):
    """ResNet-50+ bottleneck: 1×1 reduce → 3×3 (carries the stride, torchvision v1.5) → 1×1 expand ×4."""

    expansion = 4

    def __init__(self, in_ch: int, width: int, stride: int = 1, residual: bool = True, impl: str = "torch") -> None:
        nn.Module.__init__(self)
        out = width * self.expansion
        self.body = nn.Sequential(ConvBNAct(in_ch, width, 1, padding=0, impl=impl),
                                  ConvBNAct(width, width, 3, stride, impl=impl),
                                  ConvBNAct(width, out, 1, padding=0, act=False, impl=impl))
        self.residual = residual
        self.shortcut = (ConvBNAct(in_ch, out, 1, stride, padding=0, act=False, impl=impl)
                         if residual and (stride != 1 or in_ch != out) else None)
        self.act = nn.ReLU(inplace=True)


class Inception(nn.Module):
    """GoogLeNet inception module: 1×1, 3×3, 5×5 convs and a 3×3 max-pool side by side, concatenated on channels.

    naive=True is seed 003's naive module (no 1×1 reductions, the pool branch passes its C channels through);
    otherwise 1×1 "bottleneck" convs reduce the depth before the 3×3 and 5×5 convs and project the pool branch.
    `k5` is the large branch's kernel: 5 as in the paper; torchvision's GoogLeNet uses 3 there.
    """

    def __init__(self, in_ch: int, c1: int, c3r: int, c3: int, c5r: int, c5: int, pool_proj: int, *,
                 naive: bool = False, k5: int = 5, norm: bool = True, bn_eps: float = 1e-3,
                 pool_ceil: bool = True, impl: str = "torch") -> None:
        super().__init__()
        unit = lambda i, o, k: ConvBNAct(i, o, k, norm=norm, bn_eps=bn_eps, impl=impl)  # noqa: E731
        self.naive = naive
        self.branch1 = unit(in_ch, c1, 1)
        if naive:
            self.branch3 = unit(in_ch, c3, 3)
            self.branch5 = unit(in_ch, c5, k5)
            self.branch_pool = max_pool(3, 1, 1, ceil_mode=pool_ceil, impl=impl)
            self.out_channels = c1 + c3 + c5 + in_ch
        else:
            self.branch3 = nn.Sequential(unit(in_ch, c3r, 1), unit(c3r, c3, 3))
            self.branch5 = nn.Sequential(unit(in_ch, c5r, 1), unit(c5r, c5, k5))
            self.branch_pool = nn.Sequential(max_pool(3, 1, 1, ceil_mode=pool_ceil, impl=impl),
                                             unit(in_ch, pool_proj, 1))
            self.out_channels = c1 + c3 + c5 + pool_proj

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch1(x), self.branch3(x), self.branch5(x), self.branch_pool(x)], dim=1)


class DepthwiseSeparable(nn.Sequential):
    """MobileNet v1 block: depthwise k×k conv (groups = C) → BN → ReLU → pointwise 1×1 conv → BN → ReLU.

    Seed 003: cost ratio to a standard k×k conv = 1/N_k + 1/k².
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, kernel: int = 3, impl: str = "torch") -> None:
        super().__init__(ConvBNAct(in_ch, in_ch, kernel, stride, groups=in_ch, impl=impl),
                         ConvBNAct(in_ch, out_ch, 1, padding=0, impl=impl))

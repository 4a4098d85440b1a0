"""Image data: the IDX format (MNIST, Fashion-MNIST; gzip or not), a test fixture, normalisation, augmentation.

Fashion-MNIST comes from a directory the user names (task.root, $ARCHLAB_FASHION_MNIST), else Debian's
`dataset-fashion-mnist` package (/usr/share/datasets/fashion-mnist: the full 60,000 + 10,000 images, used for the
published figures), else the class-balanced subset shipped in the package (10,000 training + 2,000 test images,
archlab/data/shipped/fashion_mnist-*.xz, built by scripts/build_shipped_data.py, sha256-checked on load), with
a one-line notice on stderr. Nothing is downloaded. IDX (LeCun's format): 2 zero bytes, a dtype code, the number
of dimensions, then each dimension as a big-endian int32, then the data in C order; files may be gzip- or
xz-compressed.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import lzma
import os
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from archlab.errors import UserError
from archlab.fileio import atomic_write_bytes

IDX_DTYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                         "Ankle boot")
MNIST_CLASSES = tuple(str(i) for i in range(10))
SEARCH_DIRS = {"fashion_mnist": ("/usr/share/datasets/fashion-mnist",), "mnist": ("/usr/share/datasets/mnist",)}
ENV_VARS = {"fashion_mnist": "ARCHLAB_FASHION_MNIST", "mnist": "ARCHLAB_MNIST"}
SPLIT_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
               "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
SHIPPED_DIR = Path(__file__).resolve().parent / "shipped"
SHIPPED_PREFIX = {"fashion_mnist": "fashion_mnist-"}  # shipped/<prefix><IDX name>.xz
_noticed: set[str] = set()


class ImageDataError(UserError):
    """An image file or array is missing, truncated, or has the wrong shape, channels or labels."""


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzip-compressed or plain) into a numpy array of its declared dtype and shape."""
    p = Path(path)
    if not p.is_file():
        raise ImageDataError(f"IDX file {str(p)!r} does not exist")
    raw = p.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError) as e:
            raise ImageDataError(f"IDX file {str(p)!r} is a truncated or corrupt gzip stream ({e})") from None
    elif raw[:6] == b"\xfd7zXZ\x00":
        try:
            raw = lzma.decompress(raw)
        except (EOFError, lzma.LZMAError) as e:
            raise ImageDataError(f"IDX file {str(p)!r} is a truncated or corrupt xz stream ({e})") from None
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in IDX_DTYPES:
        raise ImageDataError(f"{str(p)!r} is not an IDX file: expected the magic bytes 00 00 <dtype> <ndim> "
                             f"with dtype in {[hex(k) for k in IDX_DTYPES]}, got {raw[:4].hex(' ') or 'nothing'}")
    dtype, ndim = IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ImageDataError(f"IDX file {str(p)!r} is truncated: its {ndim}-dimension header needs {header} bytes, "
                             f"the file holds {len(raw)}")
    dims = struct.unpack(f">{ndim}i", raw[4:header])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header < expected:
        raise ImageDataError(f"IDX file {str(p)!r} is truncated: the header declares shape {'×'.join(map(str, dims))} "
                             f"of {dtype.name} = {expected} data bytes ({header + expected} bytes with the header, "
                             f"uncompressed) but only {len(raw) - header} data bytes are there")
    return np.frombuffer(raw, dtype=dtype, count=expected // dtype.itemsize, offset=header).reshape(dims).copy()


def idx_bytes(array: np.ndarray) -> bytes:
    """An array in the IDX format (uncompressed)."""
    codes = {v: k for k, v in IDX_DTYPES.items()}
    arr = np.ascontiguousarray(array)
    dt = arr.dtype.newbyteorder(">") if arr.dtype.itemsize > 1 else arr.dtype
    if dt not in codes:
        raise ImageDataError(f"cannot write dtype {arr.dtype} as IDX; expected one of {list(codes)}")
    return bytes([0, 0, codes[dt], arr.ndim]) + struct.pack(f">{arr.ndim}i", *arr.shape) + arr.astype(dt).tobytes()


def write_idx(path: str | os.PathLike, array: np.ndarray, compress: bool | None = None) -> Path:
    """Write an array as IDX (gzip when compress, or when the name ends in .gz and compress is None)."""
    p = Path(path)
    data = idx_bytes(array)
    if compress or (compress is None and p.suffix == ".gz"):
        data = gzip.compress(data, compresslevel=6, mtime=0)
    atomic_write_bytes(p, data)  # concurrent writers of the same fixture never leave a torn file
    return p


@dataclass
class ImageDataset:
    """uint8 images (N, C, H, W) with int64 labels (N,) in [0, n_classes)."""

    images: Tensor
    labels: Tensor
    n_classes: int
    classes: tuple[str, ...] = ()
    source: str = ""

    def __post_init__(self) -> None:
        check_images(self.images, where=self.source or "images")
        check_labels(self.labels, self.n_classes, where=self.source or "labels")
        if len(self.images) != len(self.labels):
            raise ImageDataError(f"{self.source or 'dataset'}: {len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return tuple(self.images.shape[1:])  # type: ignore[return-value]


def check_images(images: Tensor, channels: int | None = None, size: int | tuple[int, int] | None = None,
                 where: str = "images") -> None:
    """Raise ImageDataError unless images is (N, C, H, W) with the expected channels and size."""
    want = f"(N, {channels if channels is not None else 'C'}, " + (
        f"{size}, {size})" if isinstance(size, int) else f"{size[0]}, {size[1]})" if size else "H, W)")
    if not isinstance(images, Tensor) or images.dim() != 4:
        got = tuple(images.shape) if hasattr(images, "shape") else type(images).__name__
        raise ImageDataError(f"{where}: expected a batch of images of shape {want}, got {got}")
    if channels is not None and images.shape[1] != channels:
        raise ImageDataError(f"{where}: expected {channels} channel(s), shape {want}, got {tuple(images.shape)}")
    if size is not None:
        hw = (size, size) if isinstance(size, int) else tuple(size)
        if tuple(images.shape[2:]) != hw:
            raise ImageDataError(f"{where}: expected {hw[0]}×{hw[1]} images, shape {want}, got {tuple(images.shape)}")


def check_labels(labels: Tensor, n_classes: int, where: str = "labels") -> None:
    """Raise ImageDataError unless labels is a 1-d integer tensor with values in [0, n_classes)."""
    if labels.dim() != 1 or labels.dtype.is_floating_point:
        raise ImageDataError(f"{where}: labels must be a 1-d integer tensor, got {labels.dtype} {tuple(labels.shape)}")
    if len(labels):
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or hi >= n_classes:
            bad = int(((labels < 0) | (labels >= n_classes)).nonzero()[0, 0])
            raise ImageDataError(f"{where}: label {int(labels[bad])} at index {bad} is out of range; expected "
                                 f"0..{n_classes - 1} for {n_classes} classes")


def _find(directory: Path, stem: str, prefix: str = "") -> Path:
    for name in (stem + ".gz", stem + ".xz", stem, stem.replace("-idx", ".idx")):
        if (directory / (prefix + name)).is_file():
            return directory / (prefix + name)
    raise ImageDataError(f"no {prefix}{stem}[.gz|.xz] in {str(directory)!r}")


def find_dataset_dir(dataset: str = "fashion_mnist", root: str | os.PathLike | None = None) -> Path:
    """The directory holding the IDX files: `root`, else $ARCHLAB_FASHION_MNIST / $ARCHLAB_MNIST, else Debian's."""
    candidates = [Path(root)] if root else []
    if not root:
        env = os.environ.get(ENV_VARS.get(dataset, ""), "")
        candidates += [Path(env)] if env else []
        candidates += [Path(d) for d in SEARCH_DIRS.get(dataset, ())]
    for d in candidates:
        if d.is_dir() and any((d / (SPLIT_FILES["train"][0] + s)).is_file() for s in (".gz", "")):
            return d
    hint = " (apt-get install dataset-fashion-mnist)" if dataset == "fashion_mnist" else ""
    raise ImageDataError(f"{dataset} IDX files (train-images-idx3-ubyte[.gz] ...) not found in "
                         f"{[str(c) for c in candidates]}{hint}; pass task.root=DIR")


def load_idx_split(directory: str | os.PathLike, split: str, n_classes: int = 10,
                   classes: tuple[str, ...] = (), prefix: str = "") -> ImageDataset:
    """The train or test split of an MNIST-layout directory of IDX files, as uint8 (N, 1, 28, 28) + labels."""
    if split not in SPLIT_FILES:
        raise ImageDataError(f"split {split!r} is not one of {list(SPLIT_FILES)}")
    d = Path(directory)
    img_path, lbl_path = (_find(d, s, prefix) for s in SPLIT_FILES[split])
    images, labels = read_idx(img_path), read_idx(lbl_path)
    if images.ndim == 3:  # MNIST: (N, H, W) grey
        images = images[:, None]
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ImageDataError(f"{str(img_path)!r}: expected uint8 images of shape (N, H, W) or (N, C, H, W), "
                             f"got {images.dtype} {images.shape}")
    if labels.ndim != 1:
        raise ImageDataError(f"{str(lbl_path)!r}: expected labels of shape (N,), got {labels.shape}")
    if len(images) != len(labels):
        raise ImageDataError(f"{str(img_path)!r} holds {len(images)} images but {str(lbl_path)!r} holds "
                             f"{len(labels)} labels")
    try:
        return ImageDataset(torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64)), n_classes, classes,
                            source=str(lbl_path))
    except ImageDataError as e:
        raise ImageDataError(str(e)) from None


def shipped_info(dataset: str = "fashion_mnist") -> dict:
    """The MANIFEST.json entry of a shipped image subset (source, licence, split counts)."""
    manifest = json.loads((SHIPPED_DIR / "MANIFEST.json").read_text(encoding="utf-8"))
    if dataset not in manifest:
        raise ImageDataError(f"no shipped subset of {dataset!r} in {SHIPPED_DIR / 'MANIFEST.json'}")
    return manifest[dataset]


def load_shipped(dataset: str = "fashion_mnist", split: str = "train") -> ImageDataset:
    """The class-balanced subset shipped in the package, its files checked against MANIFEST.json's sha256."""
    if dataset not in SHIPPED_PREFIX:
        raise ImageDataError(f"no shipped subset of {dataset!r}; shipped: {list(SHIPPED_PREFIX)}")
    if split not in SPLIT_FILES:
        raise ImageDataError(f"split {split!r} is not one of {list(SPLIT_FILES)}")
    manifest = json.loads((SHIPPED_DIR / "MANIFEST.json").read_text(encoding="utf-8"))
    for stem in SPLIT_FILES[split]:
        path = _find(SHIPPED_DIR, stem, SHIPPED_PREFIX[dataset])
        want = manifest.get(path.name, {}).get("sha256")
        if hashlib.sha256(path.read_bytes()).hexdigest() != want:
            raise ImageDataError(f"{path}: shipped data file does not match its sha256 in MANIFEST.json "
                                 "(reinstall archlab or run scripts/build_shipped_data.py)")
    classes = FASHION_MNIST_CLASSES if dataset == "fashion_mnist" else MNIST_CLASSES
    return load_idx_split(SHIPPED_DIR, split, 10, classes, prefix=SHIPPED_PREFIX[dataset])


NOTICE_ENV = "ARCHLAB_SHIPPED_NOTICE"  # datasets whose notice this process tree has shown (children inherit it)


def _notice_shipped(dataset: str) -> None:
    """One line on stderr, once per process tree (a sweep's spawned runs stay quiet): which set, how to get
    the full one."""
    shown = set(filter(None, os.environ.get(NOTICE_ENV, "").split(",")))
    if dataset in _noticed or dataset in shown:
        return
    _noticed.add(dataset)
    os.environ[NOTICE_ENV] = ",".join(sorted(shown | {dataset}))
    n = shipped_info(dataset)["split_counts"]
    print(f"archlab: {dataset}: full set not installed; using the subset shipped with archlab ({n['train']:,} "
          f"training / {n['test']:,} test images); for the full set: apt-get install dataset-fashion-mnist, or "
          f"task.root=DIR / ${ENV_VARS[dataset]}", file=sys.stderr)


def load_dataset(dataset: str = "fashion_mnist", split: str = "train",
                 root: str | os.PathLike | None = None) -> ImageDataset:
    """Fashion-MNIST / MNIST (or any MNIST-layout directory at `root`) as an ImageDataset.

    `root` or the environment variable, when given, must hold the files. Otherwise the full set (Debian's
    package) is used when installed, else the shipped subset with a notice; dataset="fashion_mnist_shipped"
    asks for the shipped subset even when the full set is installed."""
    if dataset.endswith("_shipped"):
        if root:
            raise ImageDataError(f"task.root={str(root)!r} is not used with dataset {dataset!r} (the subset shipped "
                                 f"with archlab); drop it, or use dataset {dataset[: -len('_shipped')]!r}")
        return load_shipped(dataset[: -len("_shipped")], split)
    classes = FASHION_MNIST_CLASSES if dataset == "fashion_mnist" else MNIST_CLASSES
    try:
        directory = find_dataset_dir(dataset, root)
    except ImageDataError:
        if root or os.environ.get(ENV_VARS.get(dataset, "")) or dataset not in SHIPPED_PREFIX:
            raise
        _notice_shipped(dataset)
        return load_shipped(dataset, split)
    return load_idx_split(directory, split, 10, classes)


def make_fixture(directory: str | os.PathLike, n_train: int = 200, n_test: int = 100, size: int = 28,
                 n_classes: int = 10, seed: int = 0, compress: bool = True) -> Path:
    """Write a tiny MNIST-layout IDX dataset whose classes a small CNN learns in a few steps (for tests).

    Class k is a bright horizontal bar at a class-specific height, jittered by ±1 pixel, on uniform noise.
    """
    rng = np.random.default_rng(seed)
    d = Path(directory)
    band = max(1, (size - 4) // n_classes)
    for split, n in (("train", n_train), ("test", n_test)):
        labels = rng.integers(0, n_classes, n).astype(np.uint8)
        images = rng.integers(0, 60, (n, size, size)).astype(np.uint8)
        for i, k in enumerate(labels):
            top = 2 + int(k) * band + int(rng.integers(-1, 2))
            top = min(max(top, 0), size - band)
            images[i, top:top + band, 2:size - 2] = 200 + rng.integers(0, 50)
        img_name, lbl_name = SPLIT_FILES[split]
        ext = ".gz" if compress else ""
        write_idx(d / (img_name + ext), images, compress)
        write_idx(d / (lbl_name + ext), labels, compress)
    return d


def channel_stats(images: Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 images, on the 0..1 scale."""
    x = images.float().div_(255).transpose(0, 1).reshape(images.shape[1], -1)
    return x.mean(1).tolist(), x.std(1).tolist()


def normalize(images: Tensor, mean: list[float], std: list[float]) -> Tensor:
    """uint8 (N, C, H, W) -> float32 (x/255 - mean) / std per channel."""
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return (images.float() / 255 - m) / s


def random_crop(images: Tensor, pad: int, generator: torch.Generator, fill: float = 0.0) -> Tensor:
    """Pad each side by `pad` pixels of value `fill` and crop back to H×W at a random offset per image."""
    if pad <= 0:
        return images
    n, _, h, w = images.shape
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad), value=fill)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    rows = (dy.view(n, 1) + torch.arange(h).view(1, h))  # (N, H)
    cols = (dx.view(n, 1) + torch.arange(w).view(1, w))  # (N, W)
    idx_r = rows.view(n, 1, h, 1).expand(n, images.shape[1], h, padded.shape[3])
    out = padded.gather(2, idx_r)
    idx_c = cols.view(n, 1, 1, w).expand(n, images.shape[1], h, w)
    return out.gather(3, idx_c)


def random_flip(images: Tensor, generator: torch.Generator) -> Tensor:
    """Mirror each image left-right with probability 1/2."""
    flip = torch.rand(images.shape[0], generator=generator) < 0.5
    out = images.clone()
    out[flip] = images[flip].flip(-1)
    return out

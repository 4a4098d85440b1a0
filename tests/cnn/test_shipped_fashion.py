"""The Fashion-MNIST subset shipped in the package: files vs MANIFEST, class balance, the fallback and its notice,
and a small CNN that learns real clothing images from it (never skipped: the data ships with the code)."""
from __future__ import annotations

import hashlib
import json
import shutil

import pytest
import torch

from archlab.data import images as im
from archlab.data.images import ImageDataError, load_dataset, load_shipped, read_idx


def manifest() -> dict:
    return json.loads((im.SHIPPED_DIR / "MANIFEST.json").read_text())


def test_shipped_files_match_manifest_and_are_balanced():
    m = manifest()
    info = m["fashion_mnist"]
    assert "MIT" in info["licence"] and "Zalando" in info["licence"] and "arXiv:1708.07747" in info["attribution"]
    assert "Zalando SE" in (im.SHIPPED_DIR / "fashion_mnist_LICENSE.txt").read_text()
    total = 0
    for f in sorted(im.SHIPPED_DIR.glob("fashion_mnist*")):
        data = f.read_bytes()
        assert hashlib.sha256(data).hexdigest() == m[f.name]["sha256"], f.name
        assert len(data) == m[f.name]["bytes"]
        total += len(data)
    assert total < 5_000_000  # small enough for git
    for split, n in info["split_counts"].items():
        ds = load_shipped("fashion_mnist", split)
        assert ds.images.shape == (n, 1, 28, 28) and ds.images.dtype == torch.uint8
        assert torch.bincount(ds.labels, minlength=10).tolist() == [info["per_class"][split]] * 10
        assert ds.classes == im.FASHION_MNIST_CLASSES
        assert 60 < ds.images.float().mean() < 90  # real clothing images (Fashion-MNIST's mean pixel is ~73)
    assert info["split_counts"] == {"train": 10_000, "test": 2_000}


def test_subset_is_the_full_sets_first_images_of_each_class_if_installed():
    full = im.Path("/usr/share/datasets/fashion-mnist")
    if not (full / "t10k-labels-idx1-ubyte.gz").is_file():
        pytest.skip("Debian's dataset-fashion-mnist is not installed; the sha256 test covers the shipped files")
    images, labels = read_idx(full / "t10k-images-idx3-ubyte.gz"), read_idx(full / "t10k-labels-idx1-ubyte.gz")
    keep = sorted(i for c in range(10) for i in (labels == c).nonzero()[0][:200].tolist())
    ds = load_shipped("fashion_mnist", "test")
    assert torch.equal(ds.images[:, 0], torch.from_numpy(images[keep]))
    assert torch.equal(ds.labels, torch.from_numpy(labels[keep]).long())


def test_fallback_to_shipped_with_one_notice(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(im.SEARCH_DIRS, "fashion_mnist", (str(tmp_path / "absent"),))
    monkeypatch.delenv("ARCHLAB_FASHION_MNIST", raising=False)
    monkeypatch.setattr(im, "_noticed", set())
    monkeypatch.setenv(im.NOTICE_ENV, "")  # recorded, so the value the notice sets is undone after the test
    train = load_dataset("fashion_mnist", "train")
    test = load_dataset("fashion_mnist", "test")
    assert (len(train), len(test)) == (10_000, 2_000) and "shipped" in train.source
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err  # one line, once per process tree: spawned children inherit the variable
    assert im.os.environ[im.NOTICE_ENV] == "fashion_mnist"
    assert "subset shipped with archlab (10,000 training / 2,000 test images)" in err[0]
    assert "apt-get install dataset-fashion-mnist" in err[0] and "task.root=DIR" in err[0]
    # a root or environment variable the user names must hold the files: no silent fallback
    with pytest.raises(ImageDataError, match="not found.*task.root"):
        load_dataset("fashion_mnist", "train", root=tmp_path)
    monkeypatch.setenv("ARCHLAB_FASHION_MNIST", str(tmp_path))
    with pytest.raises(ImageDataError, match="not found"):
        load_dataset("fashion_mnist", "train")
    assert len(load_dataset("fashion_mnist_shipped", "test")) == 2_000  # asked for by name: no notice
    with pytest.raises(ImageDataError, match="task.root=.* is not used with dataset 'fashion_mnist_shipped'"):
        load_dataset("fashion_mnist_shipped", "test", root=tmp_path)
    assert capsys.readouterr().err == ""


def test_corrupt_shipped_file_is_refused(monkeypatch, tmp_path):
    for f in im.SHIPPED_DIR.glob("fashion_mnist*"):
        shutil.copy(f, tmp_path / f.name)
    shutil.copy(im.SHIPPED_DIR / "MANIFEST.json", tmp_path / "MANIFEST.json")
    monkeypatch.setattr(im, "SHIPPED_DIR", tmp_path)
    assert len(load_shipped("fashion_mnist", "test")) == 2_000
    p = tmp_path / "fashion_mnist-t10k-labels-idx1-ubyte.xz"
    p.write_bytes(p.read_bytes()[:-10])
    with pytest.raises(ImageDataError, match="does not match its sha256 in MANIFEST.json"):
        load_shipped("fashion_mnist", "test")


def test_xz_idx_round_trip(tmp_path):
    arr = torch.randint(0, 256, (5, 3, 4), dtype=torch.uint8).numpy()
    p = tmp_path / "x-idx3-ubyte.xz"
    p.write_bytes(im.lzma.compress(im.idx_bytes(arr)))
    assert (read_idx(p) == arr).all()
    p.write_bytes(p.read_bytes()[:-20])
    with pytest.raises(ImageDataError, match="truncated or corrupt xz"):
        read_idx(p)


def test_small_cnn_learns_the_shipped_images(tmp_path):
    """A small CNN, 60 steps of 64 shipped training images: validation accuracy far above chance (0.1)."""
    from archlab.train.run_config import run_config_from_dict
    from archlab.train.trainer import train

    cfg = run_config_from_dict({
        "name": "shipped-cnn",
        "model": {"arch": "cnn", "layers": ["conv:8:3", "bn", "relu", "maxpool:2", "conv:16:3", "bn", "relu",
                                            "maxpool:2", "flatten", "fc"]},
        "task": {"name": "image_classification", "dataset": "fashion_mnist_shipped", "val_size": 1000},
        "train": {"steps": 60, "batch_size": 64, "lr": 0.01, "eval_every": 0, "log_every": 20, "threads": 1,
                  "weight_decay": 0.0, "warmup_steps": 0}})
    res = train(cfg, tmp_path / "run", progress=False)
    assert res["val_accuracy"] > 0.7, res  # chance is 0.1; this net reaches 0.831 in these 60 steps (torch 2.13)
    doc = json.loads((tmp_path / "run" / "confusion_val.json").read_text())
    assert sum(map(sum, doc["confusion"])) == 1000 and doc["classes"][9] == "Ankle boot"

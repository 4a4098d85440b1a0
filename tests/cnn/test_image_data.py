"""IDX reading (gzip or not), the fixture generator, validation errors, normalisation and augmentation."""
from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch

from archlab.data.images import (
    ImageDataError,
    ImageDataset,
    check_images,
    find_dataset_dir,
    load_dataset,
    load_idx_split,
    make_fixture,
    normalize,
    random_crop,
    random_flip,
    read_idx,
    write_idx,
)


@pytest.mark.parametrize("compress", [True, False])
def test_idx_round_trip(tmp_path, compress):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    p = write_idx(tmp_path / ("a.idx" + (".gz" if compress else "")), arr)
    assert (p.read_bytes()[:2] == b"\x1f\x8b") == compress
    np.testing.assert_array_equal(read_idx(p), arr)
    f32 = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "f.idx", f32)), f32)


def test_fixture_loads(tmp_path):
    make_fixture(tmp_path, n_train=30, n_test=20, compress=False)
    ds = load_idx_split(tmp_path, "train")
    assert ds.images.shape == (30, 1, 28, 28) and ds.images.dtype == torch.uint8
    assert len(ds) == 30 and int(ds.labels.max()) < 10
    assert len(load_idx_split(tmp_path, "test")) == 20


def test_truncated_idx_names_file_and_size(tmp_path):
    p = write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((5, 28, 28), np.uint8))
    p.write_bytes(p.read_bytes()[:-100])
    with pytest.raises(ImageDataError, match=r"train-images-idx3-ubyte.*truncated.*5×28×28 of uint8 = 3920 data bytes"):
        read_idx(p)
    g = tmp_path / "x.gz"
    g.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + b"\x00\x00\x00\x05" + b"ab")[:-6])
    with pytest.raises(ImageDataError, match=r"x.gz.*(truncated|corrupt)"):
        read_idx(g)
    bad = tmp_path / "bad"
    bad.write_bytes(b"PK\x03\x04hello")
    with pytest.raises(ImageDataError, match="is not an IDX file"):
        read_idx(bad)
    with pytest.raises(ImageDataError, match="does not exist"):
        read_idx(tmp_path / "missing")


def test_label_out_of_range_and_count_mismatch(tmp_path):
    make_fixture(tmp_path, n_train=10, n_test=10)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 12], np.uint8))
    with pytest.raises(ImageDataError, match=r"label 12 at index 9 is out of range; expected 0..9"):
        load_idx_split(tmp_path, "train")
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(7, np.uint8))
    with pytest.raises(ImageDataError, match="holds 10 images but .* holds 7 labels"):
        load_idx_split(tmp_path, "train")


def test_wrong_shape_and_channels():
    with pytest.raises(ImageDataError, match=r"expected a batch of images of shape \(N, 1, 28, 28\), got \(28, 28\)"):
        check_images(torch.zeros(28, 28), 1, 28)
    with pytest.raises(ImageDataError, match="expected 1 channel"):
        check_images(torch.zeros(2, 3, 28, 28), 1, 28)
    with pytest.raises(ImageDataError, match="expected 28×28 images"):
        check_images(torch.zeros(2, 1, 32, 32), 1, 28)
    with pytest.raises(ImageDataError, match="labels must be a 1-d integer"):
        ImageDataset(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.zeros(2), 10)


def test_missing_dataset_dir_is_clear(tmp_path):
    with pytest.raises(ImageDataError, match="not found.*task.root"):
        find_dataset_dir("fashion_mnist", tmp_path)


def test_normalize_and_augment():
    imgs = torch.randint(0, 256, (8, 1, 6, 6), dtype=torch.uint8)
    x = normalize(imgs, [0.5], [0.25])
    torch.testing.assert_close(x, (imgs.float() / 255 - 0.5) / 0.25)
    g = torch.Generator().manual_seed(0)
    assert random_crop(x, 0, g) is x
    c = random_crop(x, 2, torch.Generator().manual_seed(1), fill=-9.0)
    assert c.shape == x.shape
    # every crop is the image shifted by (dy, dx) in [-2, 2]: its non-fill pixels are a window of the original
    for i in range(len(x)):
        found = any(torch.equal(c[i][:, max(-dy, 0):6 - max(dy, 0), max(-dx, 0):6 - max(dx, 0)],
                                x[i][:, max(dy, 0):6 - max(-dy, 0), max(dx, 0):6 - max(-dx, 0)])
                    for dy in range(-2, 3) for dx in range(-2, 3))
        assert found
    f = random_flip(x, torch.Generator().manual_seed(2))
    assert all(torch.equal(f[i], x[i]) or torch.equal(f[i], x[i].flip(-1)) for i in range(len(x)))
    assert torch.equal(random_flip(x, torch.Generator().manual_seed(2)), f)  # deterministic given the generator


def test_real_fashion_mnist_if_installed():
    try:
        find_dataset_dir("fashion_mnist")
    except ImageDataError:
        pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
    ds = load_dataset("fashion_mnist", "test")
    assert ds.images.shape == (10000, 1, 28, 28) and ds.classes[0] == "T-shirt/top"
    assert torch.bincount(ds.labels).tolist() == [1000] * 10

"""Data: the IDX reader on generated and corrupt files, the data sets, the DataLoader, X/O."""
import gzip
import struct

import numpy as np
import pytest

from cucnn import data


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_idx_round_trip(tmp_path, compress, dtype):
    a = (np.arange(3 * 4 * 5) - 20).reshape(3, 4, 5).astype(dtype)
    if dtype == np.uint8:
        a = np.arange(60, dtype=np.uint8).reshape(3, 4, 5)
    path = tmp_path / ("a.idx.gz" if compress else "a.idx")
    data.write_idx(path, a)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == compress
    b = data.read_idx(path)
    assert b.dtype == np.dtype(dtype) and np.array_equal(a, b)


def test_idx_header_is_the_documented_format(tmp_path):
    # Written by hand: magic 0x00000801 (ubyte, 1 dimension), size 3 big-endian, then 3 bytes.
    p = tmp_path / "labels"
    p.write_bytes(b"\x00\x00\x08\x01" + struct.pack(">i", 3) + bytes([7, 0, 9]))
    assert data.read_idx(p).tolist() == [7, 0, 9]
    p.write_bytes(gzip.compress(p.read_bytes()))  # gzip recognised by content, not by name
    assert data.read_idx(p).tolist() == [7, 0, 9]


@pytest.mark.parametrize("raw,message", [
    (b"\x00\x00", "too short for the 4-byte magic"),
    (b"\x12\x34\x08\x01" + struct.pack(">i", 1) + b"\x00", "bad magic number 0x12340801"),
    (b"\x00\x00\x07\x01" + struct.pack(">i", 1) + b"\x00", "bad magic number 0x00000701"),
    (b"\x00\x00\x08\x00", "0 dimensions"),
    (b"\x00\x00\x08\x03" + struct.pack(">i", 2), "truncated header: 3 dimensions need 16 bytes"),
    (b"\x00\x00\x08\x02" + struct.pack(">ii", 2, 3) + b"\x00" * 5, "need 6 data bytes, the file "
     "has 5 \\(truncated\\)"),
    (b"\x00\x00\x08\x01" + struct.pack(">i", 2) + b"\x00" * 3, "\\(trailing data\\)"),
    (b"\x00\x00\x08\x01" + struct.pack(">i", -2), "negative dimension"),
], ids=["short", "magic", "type", "ndim0", "header", "truncated", "trailing", "negative"])
def test_idx_corrupt_files_raise_clear_errors(tmp_path, raw, message):
    p = tmp_path / "bad-idx"
    p.write_bytes(raw)
    with pytest.raises(ValueError, match=message) as e:
        data.read_idx(p)
    assert str(p) in str(e.value)


def test_idx_truncated_gzip(tmp_path):
    p = tmp_path / "x.gz"
    blob = gzip.compress(b"\x00\x00\x08\x01" + struct.pack(">i", 100) + bytes(100))
    p.write_bytes(blob[:len(blob) // 2])
    with pytest.raises(ValueError, match="corrupt or truncated gzip"):
        data.read_idx(p)


def _fake_mnist(root, n_train=30, n_test=10, seed=0):
    rng = np.random.default_rng(seed)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        data.write_idx(root / f"{prefix}-images-idx3-ubyte.gz",
                       rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8))
        data.write_idx(root / f"{prefix}-labels-idx1-ubyte.gz",
                       (np.arange(n) % 10).astype(np.uint8))


def test_fashion_mnist_from_root_and_env(tmp_path, monkeypatch):
    _fake_mnist(tmp_path)
    ds = data.FashionMNIST(tmp_path, train=True)
    assert len(ds) == 30 and ds.classes[9] == "Ankle boot"
    x, y = ds[3]
    assert x.shape == (1, 28, 28) and x.dtype == np.float32 and y == 3
    assert 0 <= x.min() and x.max() <= 1
    norm = data.FashionMNIST(tmp_path, train=False, normalize=True)
    xb, _ = norm.batch(np.arange(10))
    raw = norm.images[:10].astype(np.float32) / 255
    np.testing.assert_allclose(xb, (raw - 0.2860) / 0.3530, rtol=1e-5, atol=1e-6)
    monkeypatch.setenv("CUCNN_DATA", str(tmp_path))
    assert len(data.MNIST(train=False)) == 10


def test_missing_data_says_where_it_looked_and_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("CUCNN_DATA", str(tmp_path / "nowhere"))
    monkeypatch.setattr(data, "SYSTEM_DATA", str(tmp_path / "system"))  # Debian's may be here
    with pytest.raises(FileNotFoundError) as e:
        data.FashionMNIST()
    msg = str(e.value)
    assert "train-images-idx3-ubyte[.gz]" in msg and str(tmp_path / "nowhere") in msg
    assert str(tmp_path / "system" / "fashion-mnist") in msg and "apt-get install dataset-fashion-mnist" \
        in msg and "CUCNN_DATA" in msg


def test_mismatched_images_and_labels(tmp_path):
    _fake_mnist(tmp_path)
    data.write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(9, dtype=np.uint8))
    with pytest.raises(ValueError, match="do not pair up"):
        data.FashionMNIST(tmp_path, train=False)


def test_dataloader_batches_shuffle_and_drop_last():
    images = np.arange(10, dtype=np.uint8).reshape(10, 1, 1) * 25
    ds = data.ArrayDataset(images, np.arange(10))
    batches = list(data.DataLoader(ds, 4))
    assert [len(y) for _, y in batches] == [4, 4, 2]
    x, y = batches[0]
    assert x.shape == (4, 1, 1, 1) and x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_allclose(x.ravel(), np.arange(4) * 25 / 255, rtol=1e-6)
    assert len(data.DataLoader(ds, 4, drop_last=True)) == 2
    loader = data.DataLoader(ds, 3, shuffle=True, seed=1)
    e1 = np.concatenate([y for _, y in loader])
    e2 = np.concatenate([y for _, y in loader])
    assert sorted(e1) == list(range(10)) and sorted(e2) == list(range(10))
    assert not np.array_equal(e1, e2)  # a new order each epoch
    again = np.concatenate([y for _, y in data.DataLoader(ds, 3, shuffle=True, seed=1)])
    assert np.array_equal(e1, again)  # ... fixed by the seed
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        data.DataLoader(ds, 0)


def test_dataloader_does_not_copy_the_data_set():
    images = np.zeros((1000, 28, 28), dtype=np.uint8)
    ds = data.ArrayDataset(images, np.zeros(1000))
    assert np.shares_memory(ds.images, images)  # uint8 kept as given; batches are gathered
    sub = ds.subset(slice(0, 500))
    assert np.shares_memory(sub.images, images)


def test_xo_images():
    images, labels = data.xo_images(40, seed=0, variants=False)
    assert images.shape == (40, 9, 9) and set(np.unique(images)) == {-1.0, 1.0}
    x = images[labels == 0][0]
    assert np.all(np.diag(x) == 1) and np.all(np.diag(x[::-1]) == 1)  # both diagonals inked
    o = images[labels == 1][0]
    assert o[4, 4] == -1 and o[1, 4] == 1  # a hole in the middle, a ring around it
    varied, _ = data.xo_images(40, seed=0)
    assert not np.array_equal(varied, images)
    ds = data.XO(10)
    assert ds.classes == ["X", "O"] and ds.batch(np.arange(2))[0].shape == (2, 1, 9, 9)


def test_array_dataset_shape_errors():
    with pytest.raises(ValueError, match=r"images must be \(N, H, W\) or \(N, C, H, W\), got "
                       r"shape \(4, 5\)"):
        data.ArrayDataset(np.zeros((4, 5)), np.zeros(4))
    with pytest.raises(ValueError, match=r"labels must have shape \(4,\) to match the images, "
                       r"got \(3,\)"):
        data.ArrayDataset(np.zeros((4, 5, 5)), np.zeros(3))
    with pytest.raises(ValueError, match="write_idx: dtype complex128 has no IDX type code"):
        data.write_idx("/nonexistent/x.idx", np.zeros(2, dtype=complex))

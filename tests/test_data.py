"""Data: the real MNIST splits, idx parsing, the torchvision layout, cache robustness."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from bench.inputs import data as data_mod
from bench.inputs.data import load_dataset, read_idx
from bench.errors import BenchError


def write_idx(path, array: np.ndarray, compress: bool = False) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(str(path) + ".gz", "wb") as handle:
            handle.write(payload)
    else:
        path.write_bytes(payload)


def test_mnist_38_has_the_gce_splits(mnist38):
    # GCE App. E.1: first 50,000 training images / remaining 10,000 validation / standard test,
    # restricted to 3s and 8s (counts of the classic split)
    assert (len(mnist38.train), len(mnist38.val), len(mnist38.test)) == (9943, 2039, 1984)
    assert mnist38.train.images.shape[1:] == (1, 28, 28)
    assert 0.0 <= float(mnist38.train.images.min()) and float(mnist38.train.images.max()) <= 1.0
    assert set(mnist38.test.labels.tolist()) == {0, 1}
    assert mnist38.checksum == data_mod.MNIST_PKL_SHA256


def test_read_idx_roundtrip(tmp_path):
    array = np.arange(2 * 3 * 4).reshape(2, 3, 4).astype(np.uint8)
    write_idx(tmp_path / "a-idx3-ubyte", array)
    write_idx(tmp_path / "b-idx3-ubyte", array, compress=True)
    np.testing.assert_array_equal(read_idx(tmp_path / "a-idx3-ubyte"), array)
    np.testing.assert_array_equal(read_idx(tmp_path / "b-idx3-ubyte.gz"), array)
    (tmp_path / "bad").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x09abc")
    with pytest.raises(BenchError, match="truncated"):
        read_idx(tmp_path / "bad")


def test_torchvision_layout_is_used_when_pointed_at(tmp_path, monkeypatch):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    train_labels = rng.integers(0, 10, 60000)
    train_images = np.broadcast_to((train_labels * 20)[:, None, None], (60000, 28, 28)).astype(np.uint8)
    write_idx(raw / "train-images-idx3-ubyte", train_images)
    write_idx(raw / "train-labels-idx1-ubyte", train_labels, compress=True)
    write_idx(raw / "t10k-images-idx3-ubyte", train_images[:100])
    write_idx(raw / "t10k-labels-idx1-ubyte", train_labels[:100])
    monkeypatch.setenv("GENEXBENCH_CACHE", str(tmp_path / "cache"))
    ds = load_dataset("mnist", (3, 8), data_root=tmp_path)
    assert ds.source.startswith("torchvision:")
    assert len(ds.train) == int(np.isin(train_labels[:50000], (3, 8)).sum())
    assert len(ds.val) == int(np.isin(train_labels[50000:], (3, 8)).sum())
    # label 0 is the digit 3 (pixel 60/255), label 1 the digit 8 (160/255)
    first = ds.train.images[:, 0, 0, 0]
    assert np.allclose(first[ds.train.labels == 0].numpy(), 60 / 255)
    assert np.allclose(first[ds.train.labels == 1].numpy(), 160 / 255)


def test_missing_torchvision_root_is_a_clear_error(tmp_path):
    with pytest.raises(BenchError, match="no torchvision MNIST"):
        load_dataset("mnist", (3, 8), data_root=tmp_path)


def test_corrupt_data_cache_is_rebuilt(mnist38, isolated_cache):
    cached = list((isolated_cache / "data" / "mnist").glob("mnist-*.pt"))
    assert cached
    cached[0].write_bytes(b"not a torch file")
    again = load_dataset("mnist", (3, 8))
    assert len(again.train) == len(mnist38.train)
    assert (again.train.images[:10] == mnist38.train.images[:10]).all()


@pytest.mark.skipif(not data_mod.FMNIST_DEFAULT_ROOT.exists(), reason="Debian's dataset-fashion-mnist not installed")
def test_fashion_mnist_gce_e3_splits():
    # GCE App. E.3: all 60,000 training images; test set split 6,000 validation / 4,000 test
    ds = load_dataset("fmnist", (0, 3, 4))
    assert len(ds.train) == 18000 and ds.train.labels.bincount().tolist() == [6000, 6000, 6000]
    assert len(ds.val) + len(ds.test) == 3000 and ds.n_classes == 3

"""dlkit.data.mnist: tiny IDX files written here, read back exactly; missing, truncated and
corrupt files give errors that name the file and the problem."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from dlkit.data import MNIST_FILES, load_mnist, read_idx, read_mnist


def _idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    """The IDX encoding written out independently: 0, 0, type, ndim, big-endian dims, data."""
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def _write_mnist(
    root: Path, *, n_train: int = 40, n_test: int = 12, size: int = 5, gz: bool = False
):
    rng = np.random.default_rng(0)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, size, size), dtype=np.uint8),
        "train_labels": (np.arange(n_train) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, (n_test, size, size), dtype=np.uint8),
        "test_labels": (np.arange(n_test) % 10).astype(np.uint8),
    }
    for key, array in arrays.items():
        data = _idx_bytes(array)
        name = MNIST_FILES[key] + (".gz" if gz else "")
        (root / name).write_bytes(gzip.compress(data) if gz else data)
    return arrays


@pytest.mark.parametrize("gz", [False, True])
def test_round_trip_of_known_pixels_and_labels(tmp_path: Path, gz: bool) -> None:
    written = _write_mnist(tmp_path, gz=gz)
    x_train, y_train, x_test, y_test = read_mnist(tmp_path)
    for got, key in [
        (x_train, "train_images"),
        (y_train, "train_labels"),
        (x_test, "test_images"),
        (y_test, "test_labels"),
    ]:
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, written[key])


def test_header_bytes_are_the_documented_magic_numbers(tmp_path: Path) -> None:
    _write_mnist(tmp_path)
    head = (tmp_path / MNIST_FILES["train_images"]).read_bytes()[:16]
    assert struct.unpack(">IIII", head) == (2051, 40, 5, 5)
    assert struct.unpack(">II", (tmp_path / MNIST_FILES["train_labels"]).read_bytes()[:8]) == (
        2049,
        40,
    )


@pytest.mark.parametrize(
    ("type_code", "dtype"),
    [(0x09, np.int8), (0x0B, np.int16), (0x0C, np.int32), (0x0D, np.float32), (0x0E, np.float64)],
)
def test_read_idx_other_value_types(tmp_path: Path, type_code: int, dtype: type) -> None:
    array = (np.arange(24).reshape(2, 3, 4) - 7).astype(dtype)
    path = tmp_path / "x.idx"
    path.write_bytes(_idx_bytes(array, type_code))
    np.testing.assert_array_equal(read_idx(path), array)


def test_load_mnist_splits_scaling_and_datasets(tmp_path: Path) -> None:
    written = _write_mnist(tmp_path, n_train=40, n_test=12)
    raw = load_mnist(tmp_path, val_fraction=0.25, standardize=False)
    assert raw.x_train.shape == (30, 1, 5, 5) and raw.x_val.shape == (10, 1, 5, 5)
    np.testing.assert_array_equal(raw.x_test[:, 0] * 255, written["test_images"].astype(np.float32))
    np.testing.assert_array_equal(raw.y_test, written["test_labels"])
    assert np.bincount(raw.y_val, minlength=10).tolist() == [1] * 10  # stratified
    # The training and validation splits together are exactly the official training set.
    together = np.concatenate([raw.x_train, raw.x_val]).reshape(40, -1)
    official = written["train_images"].reshape(40, -1) / np.float32(255)
    assert sorted(map(bytes, together.astype(np.float32))) == sorted(
        map(bytes, official.astype(np.float32))
    )
    splits = load_mnist(tmp_path, val_fraction=0.25)
    mean, std = raw.x_train.mean(), raw.x_train.std()  # statistics of the training split only
    np.testing.assert_allclose(splits.x_test, (raw.x_test - mean) / std, rtol=1e-5, atol=1e-6)
    train, _, test = splits.datasets()
    image, label = test[3]
    assert isinstance(image, torch.Tensor) and image.shape == (1, 5, 5) and int(label) == 3
    assert splits.num_classes == 10 and len(train) == 30


def test_missing_files_are_named_with_where_to_get_them(tmp_path: Path) -> None:
    _write_mnist(tmp_path)
    (tmp_path / MNIST_FILES["test_labels"]).unlink()
    with pytest.raises(FileNotFoundError) as info:
        read_mnist(tmp_path)
    message = str(info.value)
    assert "t10k-labels-idx1-ubyte" in message and "train-images" not in message
    assert "yann.lecun.com/exdb/mnist" in message and str(tmp_path) in message
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte, train-labels-idx1-ubyte"):
        read_mnist(tmp_path / "nowhere")


def test_truncated_file(tmp_path: Path) -> None:
    _write_mnist(tmp_path)
    path = tmp_path / MNIST_FILES["train_images"]
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(
        ValueError, match=r"train-images-idx3-ubyte: truncated: the header says shape \(40, 5, 5\)"
    ):
        read_mnist(tmp_path)
    path.write_bytes(b"\x00\x00\x08\x03\x00\x00")
    with pytest.raises(ValueError, match="truncated header"):
        read_idx(path)


def test_extra_bytes(tmp_path: Path) -> None:
    _write_mnist(tmp_path)
    path = tmp_path / MNIST_FILES["test_labels"]
    path.write_bytes(path.read_bytes() + b"\x01")
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte: has extra bytes"):
        read_mnist(tmp_path)


def test_bad_magic_number(tmp_path: Path) -> None:
    _write_mnist(tmp_path)
    path = tmp_path / MNIST_FILES["train_labels"]
    path.write_bytes(b"<!DOCTYPE html>" + b"\x00" * 40)  # an error page saved instead of the file
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte: bad magic number"):
        read_mnist(tmp_path)


def test_corrupt_gzip(tmp_path: Path) -> None:
    _write_mnist(tmp_path, gz=True)
    path = tmp_path / (MNIST_FILES["test_images"] + ".gz")
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte.gz: not a readable gzip file"):
        read_mnist(tmp_path)


def test_inconsistent_files(tmp_path: Path) -> None:
    _write_mnist(tmp_path)
    (tmp_path / MNIST_FILES["test_labels"]).write_bytes(_idx_bytes(np.zeros(11, dtype=np.uint8)))
    with pytest.raises(ValueError, match="expected 12 labels"):
        read_mnist(tmp_path)
    (tmp_path / MNIST_FILES["test_labels"]).write_bytes(_idx_bytes(np.full(12, 10, dtype=np.uint8)))
    with pytest.raises(ValueError, match="digits 0-9"):
        read_mnist(tmp_path)
    (tmp_path / MNIST_FILES["test_images"]).write_bytes(
        _idx_bytes(np.zeros((12, 25), dtype=np.uint8))
    )
    with pytest.raises(ValueError, match=r"shape \(N, H, W\)"):
        read_mnist(tmp_path)

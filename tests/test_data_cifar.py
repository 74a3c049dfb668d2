"""dlkit.data.cifar: tiny CIFAR-10 python batches written here, read back exactly; missing,
truncated and corrupt files, and pickles carrying other objects, give clear errors."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from dlkit.data import CIFAR10_CLASSES, load_cifar10, read_cifar10, read_cifar10_batch

PER_BATCH = 10


def _write_cifar(root: Path, *, protocol: int = 2) -> dict[str, tuple[np.ndarray, list[int]]]:
    """Five training batches and a test batch of 10 images each, plus batches.meta, as Python 2 wrote them."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    written = {}
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        data = rng.integers(0, 256, (PER_BATCH, 3072), dtype=np.uint8)
        labels = [(j + i) % 10 for j in range(PER_BATCH)]
        batch = {b"batch_label": name.encode(), b"labels": labels, b"data": data,
                 b"filenames": [f"img{j}.png".encode() for j in range(PER_BATCH)]}  # fmt: skip
        (root / name).write_bytes(pickle.dumps(batch, protocol=protocol))
        written[name] = (data, labels)
    meta = {
        b"label_names": [n.encode() for n in CIFAR10_CLASSES],
        b"num_cases_per_batch": PER_BATCH,
        b"num_vis": 3072,
    }
    (root / "batches.meta").write_bytes(pickle.dumps(meta, protocol=protocol))
    return written


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_round_trip_of_known_pixels_and_labels(tmp_path: Path, protocol: int) -> None:
    written = _write_cifar(tmp_path, protocol=protocol)
    x_train, y_train, x_test, y_test, classes = read_cifar10(tmp_path)
    assert classes == CIFAR10_CLASSES
    assert (
        x_train.shape == (50, 3, 32, 32) and x_train.dtype == np.uint8 and y_train.dtype == np.int64
    )
    data, labels = written["data_batch_2"]
    image = x_train[PER_BATCH + 4]  # 5th image of the 2nd batch
    # Row layout: 1024 red values, then green, then blue, each a 32 × 32 row-major plane.
    assert (
        image[0, 0, 0] == data[4, 0]
        and image[0, 0, 31] == data[4, 31]
        and image[0, 1, 0] == data[4, 32]
    )
    assert image[1, 0, 0] == data[4, 1024] and image[2, 31, 31] == data[4, 3071]
    np.testing.assert_array_equal(y_train[PER_BATCH : 2 * PER_BATCH], labels)
    np.testing.assert_array_equal(x_test.reshape(PER_BATCH, -1), written["test_batch"][0])
    np.testing.assert_array_equal(y_test, written["test_batch"][1])


def test_accepts_the_parent_folder(tmp_path: Path) -> None:
    _write_cifar(tmp_path / "cifar-10-batches-py")
    assert read_cifar10(tmp_path)[0].shape == (50, 3, 32, 32)


def test_load_splits_and_per_channel_standardization(tmp_path: Path) -> None:
    _write_cifar(tmp_path)
    raw = load_cifar10(tmp_path, val_fraction=0.2, standardize=False)
    assert (
        raw.x_train.shape == (40, 3, 32, 32)
        and raw.x_val.shape == (10, 3, 32, 32)
        and raw.x_test.shape == (10, 3, 32, 32)
    )
    assert 0.0 <= raw.x_train.min() and raw.x_train.max() <= 1.0
    assert np.bincount(raw.y_val, minlength=10).tolist() == [1] * 10  # stratified
    splits = load_cifar10(tmp_path, val_fraction=0.2)
    for c in range(
        3
    ):  # every channel: training mean 0, std 1; test shifted by the training statistics
        channel = splits.x_train[:, c]
        assert abs(float(channel.mean())) < 1e-5 and float(channel.std()) == pytest.approx(
            1.0, rel=1e-4
        )
        mean, std = raw.x_train[:, c].mean(), raw.x_train[:, c].std()
        np.testing.assert_allclose(
            splits.x_test[:, c], (raw.x_test[:, c] - mean) / std, rtol=1e-5, atol=1e-5
        )
    train, val, test = splits.datasets()
    image, label = test[0]
    assert (
        isinstance(image, torch.Tensor)
        and image.shape == (3, 32, 32)
        and label.dtype == torch.int64
    )
    assert (len(train), len(val), len(test)) == (40, 10, 10)


def test_missing_files_are_named_with_where_to_get_them(tmp_path: Path) -> None:
    _write_cifar(tmp_path)
    (tmp_path / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError) as info:
        read_cifar10(tmp_path)
    message = str(info.value)
    assert "data_batch_3" in message and "data_batch_2" not in message
    assert "cs.toronto.edu/~kriz/cifar.html" in message and "cifar-10-python.tar.gz" in message


def test_truncated_batch(tmp_path: Path) -> None:
    _write_cifar(tmp_path)
    path = tmp_path / "test_batch"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(ValueError, match="test_batch: cannot be read as a CIFAR-10 python batch"):
        read_cifar10(tmp_path)


def test_not_a_pickle(tmp_path: Path) -> None:
    path = tmp_path / "data_batch_1"
    path.write_bytes(b"PK\x03\x04 this is a zip, not a pickle")
    with pytest.raises(ValueError, match="data_batch_1: cannot be read"):
        read_cifar10_batch(path)


@pytest.mark.parametrize(
    ("batch", "match"),
    [
        ({b"labels": [0]}, "no 'data' entry"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "expected 2 integer labels"),
        ({b"data": np.zeros((2, 1024), np.uint8), b"labels": [0, 1]}, r"shape \(N, 3072\)"),
        ({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}, "uint8"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, "0-9"),
        ([1, 2, 3], "expected a pickled dict"),
    ],
)
def test_wrong_contents(tmp_path: Path, batch: object, match: str) -> None:
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(ValueError, match=match):
        read_cifar10_batch(path)


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_pickles_with_other_globals_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": _Payload(), b"labels": []}))
    with pytest.raises(ValueError, match=r"refusing to load (posix|nt|os)\.system"):
        read_cifar10_batch(path)

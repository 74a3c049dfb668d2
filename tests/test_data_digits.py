"""The digits splits: sizes, stratification, no leakage, determinism, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from dlkit.data import load_digits, split_arrays


def test_splits_partition_the_1797_digits_with_every_class_in_each() -> None:
    s = load_digits(seed=0, standardize=False)
    sizes = [len(s.y_train), len(s.y_val), len(s.y_test)]
    assert sum(sizes) == 1797 and sizes == [1257, 270, 270]
    for y in (s.y_train, s.y_val, s.y_test):
        shares = np.bincount(y, minlength=10) / len(y)
        np.testing.assert_allclose(shares, 0.1, atol=0.015)  # stratified
    rows = {tuple(r) for r in np.concatenate([s.x_train, s.x_val, s.x_test])}
    assert len(rows) >= 1790  # the splits are disjoint (a few digits repeat in the data)
    assert s.x_train.min() >= 0.0 and s.x_train.max() <= 1.0


def test_standardized_with_training_statistics_only() -> None:
    raw = load_digits(seed=3, standardize=False)
    std = load_digits(seed=3)
    mean, sd = raw.x_train.mean(), raw.x_train.std()
    np.testing.assert_allclose(std.x_test, (raw.x_test - mean) / sd, rtol=1e-5, atol=1e-5)
    assert abs(std.x_train.mean()) < 1e-5 and abs(std.x_train.std() - 1.0) < 1e-5


def test_images_shape_dtype_and_determinism() -> None:
    a = load_digits(seed=1, images=True)
    b = load_digits(seed=1, images=True)
    assert a.x_train.shape[1:] == (1, 8, 8) and a.x_train.dtype == np.float32
    assert a.y_train.dtype == np.int64 and a.num_classes == 10
    np.testing.assert_array_equal(a.x_val, b.x_val)
    assert not np.array_equal(a.y_train, load_digits(seed=2, images=True).y_train)
    train, _, _ = a.datasets()
    x0, y0 = train[0]
    assert tuple(x0.shape) == (1, 8, 8) and int(y0) == int(a.y_train[0])


def test_bad_fractions_and_shapes_are_named() -> None:
    with pytest.raises(ValueError, match="val_fraction"):
        load_digits(val_fraction=0.0)
    with pytest.raises(ValueError, match="< 1"):
        load_digits(val_fraction=0.6, test_fraction=0.5)
    with pytest.raises(ValueError, match=r"\(N,\)"):
        split_arrays(np.zeros((4, 2)), np.zeros(5))

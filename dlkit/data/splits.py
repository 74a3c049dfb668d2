"""Train / validation / test splits of arrays, and their torch ``Dataset`` views.

Splits are stratified (each class keeps its share in every split) and deterministic
from a seed. Normalization statistics come from the training split alone, so no
information from validation or test data leaks into training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from sklearn.model_selection import train_test_split

if TYPE_CHECKING:
    from torch.utils.data import TensorDataset


@dataclass(frozen=True)
class ArraySplits:
    """Features and integer labels for the three splits.

    Shapes: ``x_*`` ``(N, ...)`` float32, ``y_*`` ``(N,)`` int64.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int

    def datasets(self) -> tuple[TensorDataset, TensorDataset, TensorDataset]:
        """The splits as ``(train, val, test)`` ``TensorDataset``s of ``(x, y)`` pairs."""
        import torch
        from torch.utils.data import TensorDataset

        def wrap(x: np.ndarray, y: np.ndarray) -> TensorDataset:
            return TensorDataset(torch.from_numpy(x), torch.from_numpy(y))

        return (
            wrap(self.x_train, self.y_train),
            wrap(self.x_val, self.y_val),
            wrap(self.x_test, self.y_test),
        )


def _as_splits(
    x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
    x_test: np.ndarray, y_test: np.ndarray, num_classes: int,
) -> ArraySplits:  # fmt: skip
    """Features as contiguous float32, labels as contiguous int64."""

    def f32(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a, dtype=np.float32)

    def i64(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a, dtype=np.int64)

    return ArraySplits(
        f32(x_train), i64(y_train), f32(x_val), i64(y_val), f32(x_test), i64(y_test),
        num_classes=num_classes,
    )  # fmt: skip


def split_arrays(
    x: np.ndarray,
    y: np.ndarray,
    *,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 0,
) -> ArraySplits:
    """Stratified train / validation / test split of ``x`` ``(N, ...)`` and ``y`` ``(N,)``.

    Features become float32, labels int64; nothing is normalized here (see
    :func:`standardize_splits`).
    """
    x = np.asarray(x)
    y = np.asarray(y)
    if x.shape[0] != y.shape[0] or y.ndim != 1:
        raise ValueError(
            f"expected x of shape (N, ...) and y of shape (N,), got {x.shape} and {y.shape}"
        )
    for name, fraction in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"{name} must lie in (0, 1), got {fraction}")
    if val_fraction + test_fraction >= 1.0:
        raise ValueError(
            f"val_fraction + test_fraction must be < 1, got {val_fraction + test_fraction}"
        )
    x_rest, x_test, y_rest, y_test = train_test_split(
        x, y, test_size=test_fraction, random_state=seed, stratify=y
    )
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest,
        y_rest,
        test_size=val_fraction / (1.0 - test_fraction),
        random_state=seed,
        stratify=y_rest,
    )

    return _as_splits(x_train, y_train, x_val, y_val, x_test, y_test, int(y.max()) + 1)


def with_validation_split(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    num_classes: int,
    val_fraction: float,
    seed: int,
) -> ArraySplits:
    """Hold out a stratified ``val_fraction`` of the official training set; keep the official test set.

    Features become float32, labels int64, nothing is normalized.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction}")
    x_fit, x_val, y_fit, y_val = train_test_split(
        x_train, y_train, test_size=val_fraction, random_state=seed, stratify=y_train
    )

    return _as_splits(x_fit, y_fit, x_val, y_val, x_test, y_test, num_classes)


def standardize_splits(splits: ArraySplits) -> ArraySplits:
    r"""Shift and scale every split by the training split's mean and standard deviation.

    One scalar :math:`\mu, \sigma` over all training values (pixels share a scale, and
    per-pixel statistics would divide by zero on always-blank border pixels):
    :math:`x' = (x - \mu) / \sigma`.
    """
    mean = float(splits.x_train.mean())
    std = float(splits.x_train.std())
    if std == 0.0:
        raise ValueError("the training features are constant; cannot standardize them")

    def scale(a: np.ndarray) -> np.ndarray:
        return ((a - mean) / std).astype(np.float32)

    return ArraySplits(
        scale(splits.x_train), splits.y_train, scale(splits.x_val), splits.y_val,
        scale(splits.x_test), splits.y_test, num_classes=splits.num_classes,
    )  # fmt: skip

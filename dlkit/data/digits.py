"""scikit-learn's handwritten digits: 1,797 greyscale 8×8 images of the digits 0–9.

The data ships inside scikit-learn, so nothing is downloaded. Pixel values are
integers 0–16; :func:`load_digits` divides by 16 and then standardizes with the
training split's statistics.
"""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits as _sklearn_digits

from dlkit.data.splits import ArraySplits, split_arrays, standardize_splits

IMAGE_SHAPE = (1, 8, 8)  # (channels, height, width)


def load_digits(
    *,
    seed: int = 0,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    images: bool = False,
    standardize: bool = True,
) -> ArraySplits:
    """The digits as stratified train / validation / test splits (10 classes).

    Shapes: ``x_*`` ``(N, 64)`` float32, or ``(N, 1, 8, 8)`` with ``images=True``;
    ``y_*`` ``(N,)`` int64. With ``standardize=False`` pixels lie in ``[0, 1]``.
    Deterministic for a given ``seed``.
    """
    bunch = _sklearn_digits()
    x = bunch.data.astype(np.float32) / 16.0  # (1797, 64) in [0, 1]
    if images:
        x = x.reshape(-1, *IMAGE_SHAPE)  # (1797, 1, 8, 8)
    splits = split_arrays(
        x, bunch.target, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed
    )
    return standardize_splits(splits) if standardize else splits

"""Synthetic sequence tasks: targets computed independently, determinism, disjoint splits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dlkit.data.sequences import (
    ADDING_BASELINE_MSE,
    BLANK,
    GO,
    adding_problem,
    copy_task,
    noisy_sine,
    reverse_task,
    sequence_splits,
)


def test_adding_target_is_the_sum_of_the_two_marked_values() -> None:
    x, y = adding_problem(200, 15, seed=3)
    assert x.shape == (200, 15, 2) and y.shape == (200, 1) and x.dtype == np.float32
    for values, markers, target in zip(x[..., 0], x[..., 1], y[:, 0], strict=True):
        marked = np.flatnonzero(markers)
        assert len(marked) == 2 and marked[0] < 15 // 2 <= marked[1]  # one mark per half
        assert target == pytest.approx(values[marked[0]] + values[marked[1]], abs=1e-6)
    assert np.all((x[..., 0] >= 0) & (x[..., 0] < 1))
    # Always answering the mean 1 scores the variance of u1 + u2, 1/6.
    _, y_big = adding_problem(20000, 10, seed=0)
    assert np.mean((y_big - 1.0) ** 2) == pytest.approx(ADDING_BASELINE_MSE, rel=0.03)


@pytest.mark.parametrize(("task", "reverse"), [(copy_task, False), (reverse_task, True)])
def test_copy_and_reverse_targets(task, reverse: bool) -> None:
    x, y = task(50, 6, lag=4, num_symbols=5, seed=1)
    assert x.shape == y.shape == (50, 16) and x.dtype == np.int64
    for row_x, row_y in zip(x, y, strict=True):
        symbols = row_x[:6]
        assert np.all((symbols >= GO + 1) & (symbols <= GO + 5))
        assert np.all(row_x[6:10] == BLANK) and row_x[10] == GO and np.all(row_x[11:] == BLANK)
        assert np.all(row_y[:10] == BLANK)
        np.testing.assert_array_equal(row_y[10:], symbols[::-1] if reverse else symbols)


def test_noisy_sine_forecasts_the_clean_continuation() -> None:
    x, y = noisy_sine(30, 40, horizon=3, noise=0.0, seed=2)
    assert x.shape == (30, 40, 1) and y.shape == (30, 3)
    # A noiseless sine obeys s_{t+1} = 2 cos(w) s_t - s_{t-1}; recover w from the input.
    s = np.concatenate([x[..., 0], y], axis=1).astype(np.float64)  # (30, 43)
    two_cos = (s[:, 2] + s[:, 0]) / s[:, 1]
    predicted = two_cos[:, None] * s[:, 41:42] - s[:, 40:41]
    np.testing.assert_allclose(predicted[:, 0], s[:, 42], atol=1e-4)
    noisy, clean = noisy_sine(30, 40, noise=0.2, seed=2)[0], x
    assert 0.15 < np.std(noisy - clean) < 0.25


@pytest.mark.parametrize("task", ["adding", "copy", "reverse", "sine"])
def test_splits_are_deterministic_disjoint_datasets(task: str) -> None:
    a = sequence_splits(task, length=5, n_train=300, n_val=50, n_test=60, seed=4)
    b = sequence_splits(task, length=5, n_train=300, n_val=50, n_test=60, seed=4)
    c = sequence_splits(task, length=5, n_train=300, n_val=50, n_test=60, seed=5)
    assert [len(d) for d in a] == [300, 50, 60]
    for da, db in zip(a, b, strict=True):
        torch.testing.assert_close(da.tensors[0], db.tensors[0], rtol=0, atol=0)
        torch.testing.assert_close(da.tensors[1], db.tensors[1], rtol=0, atol=0)
    assert not torch.equal(a.train.tensors[0], c.train.tensors[0])
    rows = [tuple(r.flatten().tolist()) for d in a for r in d.tensors[0]]
    assert len(set(rows)) == len(rows)  # no input in two splits (or twice in one)
    x0, y0 = a.train[0]
    assert isinstance(x0, torch.Tensor) and isinstance(y0, torch.Tensor)


def test_bad_arguments_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="unknown task"):
        sequence_splits("sort", length=5)
    with pytest.raises(ValueError, match="length must be a positive integer"):
        adding_problem(10, 0)
    with pytest.raises(ValueError, match="lag"):
        copy_task(10, 3, lag=-1)
    with pytest.raises(ValueError, match="distinct inputs"):
        sequence_splits("copy", length=1, num_symbols=2, lag=0, n_train=10, n_val=2, n_test=2)

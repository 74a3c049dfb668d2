r"""Synthetic sequence tasks for recurrent networks, generated from a seed.

Each task is a classic probe of memory over time:

- **adding problem** (Hochreiter & Schmidhuber, 1997): a sequence of ``(value, marker)``
  pairs with exactly two markers, one in each half; the target is the sum of the two
  marked values. Predicting the mean, :math:`\mathbb{E}[y] = 1`, scores an MSE of
  :math:`\operatorname{Var}(u_1 + u_2) = 2/12 \approx 0.167`: a model must beat that to
  have remembered anything.
- **copy / reverse**: a string of symbols, a lag of blanks, a *go* token, then the model
  must write the string back (in order, or reversed).
- **noisy sine forecasting**: a noisy sine wave with random frequency, phase and
  amplitude; the target is the next ``horizon`` values of the clean wave.

Every generator returns NumPy arrays; :func:`sequence_splits` wraps a task into
``torch.utils.data.TensorDataset`` train / validation / test splits drawn from one
generator and cut by index, so the splits are disjoint (duplicate discrete sequences
are removed before cutting). Inputs are already on a standard scale (values in
:math:`[0, 1]` or :math:`[-1.5, 1.5]`, tokens as integers), so no normalization is fitted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

if TYPE_CHECKING:
    from torch.utils.data import TensorDataset

BLANK, GO = 0, 1  # token ids shared by the copy and reverse tasks; symbols start at 2
ADDING_BASELINE_MSE = 2.0 / 12.0  # MSE of always predicting E[y] = 1


class DatasetSplits(NamedTuple):
    """Train, validation and test ``Dataset``s of one task."""

    train: TensorDataset
    val: TensorDataset
    test: TensorDataset


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def adding_problem(n: int, length: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    r"""``n`` adding-problem sequences of ``length`` steps.

    Returns ``x`` ``(n, length, 2)`` float32, channel 0 the values :math:`u_t \sim
    U[0, 1]`, channel 1 the markers (exactly one 1 in each half), and ``y`` ``(n, 1)``
    float32, :math:`y = \sum_t u_t m_t`.
    """
    _check_positive(n=n, length=length)
    if length < 2:
        raise ValueError(
            f"the adding problem needs length >= 2 (one marker per half), got {length}"
        )
    rng = np.random.default_rng(seed)
    values = rng.random((n, length))  # (n, T)
    half = length // 2
    first = rng.integers(0, half, size=n)  # a marker in [0, T/2)
    second = rng.integers(half, length, size=n)  # and one in [T/2, T)
    markers = np.zeros((n, length))
    rows = np.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    x = np.stack([values, markers], axis=-1).astype(np.float32)  # (n, T, 2)
    y = (values * markers).sum(axis=1, keepdims=True).astype(np.float32)  # (n, 1)
    return x, y


def _symbol_task(
    n: int, length: int, lag: int, num_symbols: int, seed: int, reverse: bool
) -> tuple[np.ndarray, np.ndarray]:
    _check_positive(n=n, length=length, num_symbols=num_symbols)
    if not isinstance(lag, int | np.integer) or lag < 0:
        raise ValueError(f"lag must be a non-negative integer, got {lag!r}")
    rng = np.random.default_rng(seed)
    symbols = rng.integers(GO + 1, GO + 1 + num_symbols, size=(n, length))  # (n, L)
    total = 2 * length + lag
    x = np.full((n, total), BLANK, dtype=np.int64)  # (n, 2L + lag)
    x[:, :length] = symbols
    x[:, length + lag] = GO
    y = np.full((n, total), BLANK, dtype=np.int64)
    y[:, length + lag :] = symbols[:, ::-1] if reverse else symbols
    return x, y


def copy_task(
    n: int, length: int, *, lag: int = 10, num_symbols: int = 8, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Copy a string of ``length`` symbols after ``lag`` blanks and a *go* token.

    Tokens: ``0`` blank, ``1`` go, ``2 .. num_symbols + 1`` symbols. Input ``x`` is
    ``symbols, blank × lag, go, blank × (length - 1)``; target ``y`` is
    ``blank × (length + lag), symbols``. Both ``(n, 2 * length + lag)`` int64; the model
    predicts ``y[:, t]`` at every step ``t`` (the vocabulary has ``num_symbols + 2`` tokens).
    """
    return _symbol_task(n, length, lag, num_symbols, seed, reverse=False)


def reverse_task(
    n: int, length: int, *, lag: int = 10, num_symbols: int = 8, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Like :func:`copy_task`, but the target writes the symbols back in reverse order."""
    return _symbol_task(n, length, lag, num_symbols, seed, reverse=True)


def noisy_sine(
    n: int, length: int, *, horizon: int = 1, noise: float = 0.1, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    r"""Forecast a sine wave from ``length`` noisy observations.

    :math:`s_t = a \sin(\omega t + \varphi)` with :math:`a \sim U[0.5, 1.5]`,
    :math:`\omega \sim U[0.1, 0.5]` radians per step, :math:`\varphi \sim U[0, 2\pi)`;
    the input is :math:`x_t = s_t + \sigma \varepsilon_t` for :math:`t < T`, the target
    the clean :math:`s_T, \dots, s_{T + h - 1}`. Returns ``x`` ``(n, length, 1)`` and ``y``
    ``(n, horizon)``, float32.
    """
    _check_positive(n=n, length=length, horizon=horizon)
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    rng = np.random.default_rng(seed)
    amplitude = rng.uniform(0.5, 1.5, size=(n, 1))
    omega = rng.uniform(0.1, 0.5, size=(n, 1))
    phase = rng.uniform(0.0, 2 * np.pi, size=(n, 1))
    t = np.arange(length + horizon)  # (T + h,)
    clean = amplitude * np.sin(omega * t + phase)  # (n, T + h)
    x = clean[:, :length] + noise * rng.standard_normal((n, length))
    return x[..., None].astype(np.float32), clean[:, length:].astype(np.float32)


TASKS: dict[str, Callable[..., tuple[np.ndarray, np.ndarray]]] = {
    "adding": adding_problem,
    "copy": copy_task,
    "reverse": reverse_task,
    "sine": noisy_sine,
}


def _unique_rows_in_order(x: np.ndarray) -> np.ndarray:
    """Indices of the first occurrence of every distinct row of ``x`` ``(n, ...)``, in order."""
    flat = x.reshape(len(x), -1)  # (n, features)
    _, first = np.unique(flat, axis=0, return_index=True)
    return np.sort(first)


def sequence_splits(
    task: str,
    *,
    length: int,
    n_train: int = 2000,
    n_val: int = 500,
    n_test: int = 500,
    seed: int = 0,
    **task_options: object,
) -> DatasetSplits:
    """Train / validation / test ``TensorDataset``s of ``(x, y)`` pairs for one task.

    Args:
        task: ``"adding"``, ``"copy"``, ``"reverse"`` or ``"sine"``.
        length: the task's ``length`` argument (sequence length, or string length for
            copy / reverse).
        n_train, n_val, n_test: examples per split.
        seed: the generator's seed; the same seed gives the same splits.
        task_options: passed on to the task (``lag``, ``num_symbols``, ``horizon``, ``noise``).

    All examples come from one call of the generator and are cut by index, after
    dropping repeated inputs, so no input appears in two splits.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {sorted(TASKS)}")
    _check_positive(n_train=n_train, n_val=n_val, n_test=n_test)
    import torch
    from torch.utils.data import TensorDataset

    needed = n_train + n_val + n_test
    for extra in (0.05, 0.5, 2.0):  # discrete tasks may repeat a sequence; draw a little more
        x, y = TASKS[task](needed + int(extra * needed) + 8, length, seed=seed, **task_options)
        keep = _unique_rows_in_order(x)
        if len(keep) >= needed:
            break
    else:
        raise ValueError(
            f"the {task!r} task with these options has fewer than {needed} distinct inputs; "
            "use longer sequences or more symbols"
        )
    x, y = x[keep[:needed]], y[keep[:needed]]
    cuts = [0, n_train, n_train + n_val, needed]

    def part(i: int) -> TensorDataset:
        sl = slice(cuts[i], cuts[i + 1])
        return TensorDataset(torch.from_numpy(x[sl].copy()), torch.from_numpy(y[sl].copy()))

    return DatasetSplits(part(0), part(1), part(2))

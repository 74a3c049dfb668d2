r"""Measuring generalization: k-fold cross-validation and permutation feature importance.

**k-fold cross-validation** splits the :math:`N` examples into :math:`k` disjoint folds
of nearly equal size (:math:`\lfloor N/k \rfloor` or :math:`\lceil N/k \rceil`); each fold
is the validation set once while the model trains on the other :math:`k-1`. The
:math:`k` validation scores estimate how the model does on unseen data, and their
spread how much that estimate depends on the particular split. *Stratified* folds keep
each class's share in every fold, which matters when a class is rare.

**Permutation importance** of feature :math:`j` is the drop in a score when column
:math:`j` of the evaluation data is shuffled, which breaks its link to the labels while
keeping its distribution:

.. math:: I_j = s(X, y) - \frac1R \sum_{r=1}^{R} s(X^{(j, \pi_r)}, y),

where :math:`X^{(j, \pi)}` is :math:`X` with column :math:`j` permuted by :math:`\pi`. A
feature the model ignores has :math:`I_j = 0` exactly; correlated features share their
importance (shuffling one leaves the other to carry the signal).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = [
    "PermutationImportance",
    "cross_val_scores",
    "kfold_indices",
    "permutation_importance",
    "stratified_kfold_indices",
]

Split = tuple[np.ndarray, np.ndarray]  # (train indices, validation indices)


def _check_splits(n_samples: int, n_splits: int) -> None:
    if int(n_splits) != n_splits or n_splits < 2:
        raise ValueError(f"n_splits must be an integer >= 2, got {n_splits!r}")
    if n_splits > n_samples:
        raise ValueError(f"n_splits={n_splits} is more than the number of examples {n_samples}")


def _folds_to_splits(fold_of: np.ndarray, n_splits: int) -> list[Split]:
    """``fold_of[i]`` is example i's validation fold; returns sorted index pairs per fold."""
    everyone = np.arange(fold_of.size)
    return [(everyone[fold_of != f], everyone[fold_of == f]) for f in range(n_splits)]


def kfold_indices(
    n_samples: int, n_splits: int = 5, *, shuffle: bool = False, seed: int | None = None
) -> list[Split]:
    """Train/validation index pairs for k-fold cross-validation.

    Without shuffling, fold :math:`f` is a contiguous block and the first
    :math:`N \\bmod k` folds hold one extra example: the same folds as scikit-learn's
    ``KFold(n_splits)``. With ``shuffle=True`` the examples are permuted first
    (``numpy.random.default_rng(seed)``), so the folds differ from scikit-learn's.

    Returns:
        ``n_splits`` pairs ``(train_idx, val_idx)`` of sorted int64 arrays; the
        ``val_idx`` partition ``range(n_samples)``.
    """
    if int(n_samples) != n_samples or n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
    _check_splits(n_samples, n_splits)
    sizes = np.full(n_splits, n_samples // n_splits)
    sizes[: n_samples % n_splits] += 1  # the first N mod k folds take one more
    fold_in_order = np.repeat(np.arange(n_splits), sizes)  # (N,) fold of position p
    order = np.arange(n_samples)
    if shuffle:
        order = np.random.default_rng(seed).permutation(n_samples)
    fold_of = np.empty(n_samples, dtype=np.int64)
    fold_of[order] = fold_in_order  # example order[p] goes to the fold of position p
    return _folds_to_splits(fold_of, n_splits)


def stratified_kfold_indices(
    y: np.ndarray, n_splits: int = 5, *, shuffle: bool = False, seed: int | None = None
) -> list[Split]:
    """k-fold splits in which every class keeps its share.

    The examples are listed class by class (in order of appearance within a class, or
    shuffled) and dealt to the folds in turn, like cards: position :math:`p` of that
    list goes to fold :math:`p \\bmod k`. So each class's count in a fold is
    :math:`\\lfloor n_c/k \\rfloor` or :math:`\\lceil n_c/k \\rceil`, and fold sizes
    differ by at most one. (scikit-learn's ``StratifiedKFold`` has the same guarantees
    with a different assignment, so the folds themselves differ.)

    Raises:
        ValueError: if a class has fewer than ``n_splits`` examples (some validation
            fold would not contain it).
    """
    labels = np.asarray(y)
    if labels.ndim != 1:
        raise ValueError(f"y must be 1-D with shape (N,), got shape {labels.shape}")
    _check_splits(labels.size, n_splits)
    classes, counts = np.unique(labels, return_counts=True)
    if counts.min() < n_splits:
        rare = classes[np.argmin(counts)]
        raise ValueError(
            f"class {rare!r} has only {counts.min()} examples, fewer than n_splits={n_splits}, "
            "so some validation folds would not contain it; use fewer splits"
        )
    rng = np.random.default_rng(seed)
    dealt = []
    for c in classes:
        members = np.flatnonzero(labels == c)
        dealt.append(rng.permutation(members) if shuffle else members)
    order = np.concatenate(dealt)  # (N,) class by class
    fold_of = np.empty(labels.size, dtype=np.int64)
    fold_of[order] = np.arange(labels.size) % n_splits  # deal like cards
    return _folds_to_splits(fold_of, n_splits)


def cross_val_scores(
    fit_and_score: Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], float],
    x: np.ndarray,
    y: np.ndarray,
    splits: list[Split],
) -> np.ndarray:
    """``fit_and_score(x_train, y_train, x_val, y_val)`` on each split; shape ``(k,)``.

    ``fit_and_score`` trains a fresh model on the training part and returns its score
    on the validation part; ``splits`` comes from :func:`kfold_indices` or
    :func:`stratified_kfold_indices`.
    """
    x, y = np.asarray(x), np.asarray(y)
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"x and y must have the same number of rows, got {x.shape[0]}, {y.shape[0]}"
        )
    return np.array([float(fit_and_score(x[tr], y[tr], x[va], y[va])) for tr, va in splits])


@dataclass(frozen=True)
class PermutationImportance:
    """Result of :func:`permutation_importance`.

    Shapes: ``importances`` ``(D, R)`` (feature, repeat), ``mean`` and ``std`` ``(D,)``.
    """

    baseline: float
    importances: np.ndarray
    mean: np.ndarray
    std: np.ndarray


def permutation_importance(
    score: Callable[[np.ndarray, np.ndarray], float],
    x: np.ndarray,
    y: np.ndarray,
    *,
    n_repeats: int = 5,
    seed: int | None = 0,
) -> PermutationImportance:
    """Drop in ``score(x, y)`` (higher is better) when each column of ``x`` is shuffled.

    ``score`` evaluates an already trained model, e.g. its accuracy on validation data
    ``x`` of shape ``(N, D)``. Each of the ``n_repeats`` shuffles per feature draws a new
    permutation from ``numpy.random.default_rng(seed)``; ``x`` itself is not modified.
    """
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 2:
        raise ValueError(f"x must be 2-D with shape (N, D), got shape {x.shape}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"x and y must have the same number of rows, got {x.shape[0]}, {y.shape[0]}"
        )
    if n_repeats < 1:
        raise ValueError(f"n_repeats must be >= 1, got {n_repeats}")
    rng = np.random.default_rng(seed)
    baseline = float(score(x, y))
    drops = np.empty((x.shape[1], n_repeats))  # (D, R)
    shuffled = x.copy()
    for j in range(x.shape[1]):
        for r in range(n_repeats):
            shuffled[:, j] = x[rng.permutation(x.shape[0]), j]
            drops[j, r] = baseline - float(score(shuffled, y))
        shuffled[:, j] = x[:, j]  # put column j back before the next feature
    return PermutationImportance(baseline, drops, drops.mean(axis=1), drops.std(axis=1))

r"""Classification metrics from the confusion matrix, in NumPy alone.

For one class :math:`c` treated as "positive", count over the :math:`N` examples

.. math::

    \mathrm{TP}_c = \#\{i : y_i = c,\ \hat y_i = c\},\quad
    \mathrm{FP}_c = \#\{i : y_i \ne c,\ \hat y_i = c\},\quad
    \mathrm{FN}_c = \#\{i : y_i = c,\ \hat y_i \ne c\}

and define

.. math::

    \mathrm{precision}_c = \frac{\mathrm{TP}_c}{\mathrm{TP}_c + \mathrm{FP}_c},\qquad
    \mathrm{recall}_c = \frac{\mathrm{TP}_c}{\mathrm{TP}_c + \mathrm{FN}_c},\qquad
    F_{1,c} = \frac{2\,\mathrm{precision}_c\,\mathrm{recall}_c}
                   {\mathrm{precision}_c + \mathrm{recall}_c}
            = \frac{2\,\mathrm{TP}_c}{2\,\mathrm{TP}_c + \mathrm{FP}_c + \mathrm{FN}_c}.

Precision asks "of what I called :math:`c`, how much was :math:`c`?", recall "of all
the :math:`c`, how much did I find?".

**Zero division.** A class that is never predicted has :math:`\mathrm{TP}+\mathrm{FP}=0`,
so its precision is :math:`0/0`; a class absent from ``y_true`` has an undefined recall;
:math:`F_1` is undefined only when the class is neither present nor predicted. Each
function takes ``zero_division`` (``0.0``, ``1.0`` or ``nan``) as the value of such a
ratio. The default ``0.0`` is what scikit-learn's default ``zero_division="warn"``
returns (without the warning). With ``nan`` the undefined classes are left out of
macro and weighted averages, as scikit-learn does.

**Averages over classes** (multi-class): ``"macro"`` is the plain mean of the per-class
scores (every class counts the same); ``"weighted"`` weights class :math:`c` by its
support :math:`n_c = \mathrm{TP}_c + \mathrm{FN}_c`; ``"micro"`` sums the counts first,
:math:`P_\mu = \sum_c \mathrm{TP}_c / \sum_c (\mathrm{TP}_c + \mathrm{FP}_c)`, which
equals accuracy when every class is included. ``"binary"`` reports ``pos_label`` only.

Scores rather than hard labels are judged by :func:`roc_curve` and
:func:`roc_auc_score`: how well the score ranks positives above negatives, over all
decision thresholds at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

__all__ = [
    "accuracy_score",
    "confusion_matrix",
    "f1_score",
    "precision_recall_f1",
    "precision_score",
    "recall_score",
    "roc_auc_score",
    "roc_curve",
]

Average = Literal["binary", "micro", "macro", "weighted"] | None
_AVERAGES = ("binary", "micro", "macro", "weighted", None)


# ---------------------------------------------------------------- input checks
def _labels_1d(y: object, name: str) -> np.ndarray:
    array = np.asarray(y)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D with shape (N,), got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty; metrics need at least one example")
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or inf; expected class labels")
    return array


def _pair(y_true: object, y_pred: object) -> tuple[np.ndarray, np.ndarray]:
    t, p = _labels_1d(y_true, "y_true"), _labels_1d(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(
            f"y_true and y_pred must have the same length, got {t.shape[0]} and {p.shape[0]}"
        )
    return t, p


def _check_zero_division(zero_division: float) -> float:
    value = float(zero_division)
    if not (np.isnan(value) or value in (0.0, 1.0)):
        raise ValueError(f"zero_division must be 0.0, 1.0 or nan, got {zero_division!r}")
    return value


# ---------------------------------------------------------------- confusion matrix
def confusion_matrix(
    y_true: Sequence[object] | np.ndarray,
    y_pred: Sequence[object] | np.ndarray,
    *,
    labels: Sequence[object] | np.ndarray | None = None,
) -> np.ndarray:
    r"""Counts :math:`C_{jk} = \#\{i : y_i = \ell_j,\ \hat y_i = \ell_k\}`; shape ``(K, K)``.

    Rows are the true class, columns the predicted class (scikit-learn's convention),
    so the diagonal holds the correct predictions, row sums the class supports and
    column sums how often each class was predicted. ``labels`` fixes the classes
    :math:`\ell_1, \dots, \ell_K` and their order; by default the sorted union of the
    values in ``y_true`` and ``y_pred``. Examples whose labels are not listed are ignored.
    """
    t, p = _pair(y_true, y_pred)
    classes = np.unique(np.concatenate([t, p])) if labels is None else np.asarray(labels)
    if classes.ndim != 1 or classes.size == 0:
        raise ValueError(f"labels must be a non-empty 1-D list, got {labels!r}")
    if np.unique(classes).size != classes.size:
        raise ValueError(f"labels must not repeat a class, got {list(classes)}")
    k = classes.size
    order = np.argsort(classes, kind="stable")
    sorted_classes = classes[order]

    def index_of(y: np.ndarray) -> np.ndarray:
        # position of each label in `classes`, or -1 when it is not listed
        pos = np.clip(np.searchsorted(sorted_classes, y), 0, k - 1)
        found = sorted_classes[pos] == y
        return np.where(found, order[pos], -1)

    i, j = index_of(t), index_of(p)
    keep = (i >= 0) & (j >= 0)
    counts = np.zeros((k, k), dtype=np.int64)
    np.add.at(counts, (i[keep], j[keep]), 1)  # (K, K); add.at counts repeated pairs
    return counts


def accuracy_score(
    y_true: Sequence[object] | np.ndarray, y_pred: Sequence[object] | np.ndarray
) -> float:
    r"""Fraction of correct predictions, :math:`\frac1N \sum_i [y_i = \hat y_i]`."""
    t, p = _pair(y_true, y_pred)
    return float(np.mean(t == p))


# ---------------------------------------------------------------- precision, recall, F1
def _divide(numerator: np.ndarray, denominator: np.ndarray, zero_division: float) -> np.ndarray:
    """``numerator / denominator`` elementwise, ``zero_division`` where the denominator is 0."""
    safe = np.where(denominator == 0, 1, denominator)
    return np.where(denominator == 0, zero_division, numerator / safe)


def _average(scores: np.ndarray, weights: np.ndarray | None) -> float:
    """(Weighted) mean of the classes' scores, leaving out NaN ones.

    When every weight is 0 (no listed class occurs in ``y_true``) the weights are
    ignored and the plain mean is returned, as scikit-learn does.
    """
    keep = ~np.isnan(scores)
    if not keep.any():
        return float("nan")
    if weights is None or weights[keep].sum() == 0:
        return float(np.mean(scores[keep]))
    w = weights[keep].astype(np.float64)
    return float(np.sum(scores[keep] * w) / w.sum())


def precision_recall_f1(
    y_true: Sequence[object] | np.ndarray,
    y_pred: Sequence[object] | np.ndarray,
    *,
    average: Average = "binary",
    pos_label: object = 1,
    labels: Sequence[object] | np.ndarray | None = None,
    zero_division: float = 0.0,
) -> tuple[float | np.ndarray, float | np.ndarray, float | np.ndarray]:
    """Precision, recall and :math:`F_1` (see the module docstring for the definitions).

    Args:
        y_true, y_pred: class labels, shape ``(N,)``.
        average: ``"binary"`` (only ``pos_label``; the labels must take at most two
            values), ``"micro"``, ``"macro"``, ``"weighted"``, or ``None`` for one score
            per class, each of shape ``(K,)`` in the order of ``labels``.
        pos_label: the positive class for ``average="binary"``.
        labels: the classes to score; by default the sorted union of both arrays.
        zero_division: the value of an undefined ratio (``0.0``, ``1.0`` or ``nan``).

    Returns:
        ``(precision, recall, f1)``: floats, or ``(K,)`` arrays when ``average=None``.
    """
    if average not in _AVERAGES:
        raise ValueError(f"average must be one of {_AVERAGES}, got {average!r}")
    zd = _check_zero_division(zero_division)
    t, p = _pair(y_true, y_pred)
    present = np.unique(np.concatenate([t, p]))
    if average == "binary":
        if present.size > 2:
            raise ValueError(
                f"average='binary' needs two classes, but the labels take {present.size} "
                f"values {list(present)}; use average='macro', 'micro', 'weighted' or None"
            )
        if present.size == 2 and pos_label not in present:
            raise ValueError(f"pos_label={pos_label!r} is not one of the labels {list(present)}")
        labels = [pos_label]
    classes = present if labels is None else np.asarray(labels)
    counts = confusion_matrix(t, p, labels=classes)  # (K, K) over the chosen classes
    # Counts against *all* examples, not only those whose labels are listed:
    tp = np.diag(counts).astype(np.float64)  # (K,)
    predicted = np.array([np.sum(p == c) for c in classes], dtype=np.float64)  # TP + FP
    actual = np.array([np.sum(t == c) for c in classes], dtype=np.float64)  # TP + FN
    if average == "micro":
        tp, predicted, actual = (
            tp.sum(keepdims=True),
            predicted.sum(keepdims=True),
            actual.sum(keepdims=True),
        )
    precision = _divide(tp, predicted, zd)
    recall = _divide(tp, actual, zd)
    f1 = _divide(2 * tp, predicted + actual, zd)  # 2TP / (2TP + FP + FN)
    if average is None:
        return precision, recall, f1
    weights = actual if average == "weighted" else None
    return (
        _average(precision, weights),
        _average(recall, weights),
        _average(f1, weights),
    )


def precision_score(
    y_true: Sequence[object] | np.ndarray,
    y_pred: Sequence[object] | np.ndarray,
    *,
    average: Average = "binary",
    pos_label: object = 1,
    labels: Sequence[object] | np.ndarray | None = None,
    zero_division: float = 0.0,
) -> float | np.ndarray:
    r"""Precision :math:`\mathrm{TP} / (\mathrm{TP} + \mathrm{FP})`; arguments as :func:`precision_recall_f1`."""
    return precision_recall_f1(
        y_true, y_pred, average=average, pos_label=pos_label, labels=labels,
        zero_division=zero_division,
    )[0]  # fmt: skip


def recall_score(
    y_true: Sequence[object] | np.ndarray,
    y_pred: Sequence[object] | np.ndarray,
    *,
    average: Average = "binary",
    pos_label: object = 1,
    labels: Sequence[object] | np.ndarray | None = None,
    zero_division: float = 0.0,
) -> float | np.ndarray:
    r"""Recall :math:`\mathrm{TP} / (\mathrm{TP} + \mathrm{FN})`; arguments as :func:`precision_recall_f1`."""
    return precision_recall_f1(
        y_true, y_pred, average=average, pos_label=pos_label, labels=labels,
        zero_division=zero_division,
    )[1]  # fmt: skip


def f1_score(
    y_true: Sequence[object] | np.ndarray,
    y_pred: Sequence[object] | np.ndarray,
    *,
    average: Average = "binary",
    pos_label: object = 1,
    labels: Sequence[object] | np.ndarray | None = None,
    zero_division: float = 0.0,
) -> float | np.ndarray:
    r""":math:`F_1 = 2\mathrm{TP} / (2\mathrm{TP} + \mathrm{FP} + \mathrm{FN})`; arguments as :func:`precision_recall_f1`."""
    return precision_recall_f1(
        y_true, y_pred, average=average, pos_label=pos_label, labels=labels,
        zero_division=zero_division,
    )[2]  # fmt: skip


# ---------------------------------------------------------------- ROC
def _binary_scores(
    y_true: object, y_score: object, pos_label: object
) -> tuple[np.ndarray, np.ndarray]:
    """``(is_positive, score)`` as float arrays of shape ``(N,)``, both classes present."""
    t = _labels_1d(y_true, "y_true")
    s = np.asarray(y_score, dtype=np.float64)
    if s.shape != t.shape:
        raise ValueError(f"y_score must have the shape of y_true {t.shape}, got {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError("y_score contains NaN or inf; expected finite scores")
    classes = np.unique(t)
    if classes.size > 2:
        raise ValueError(f"ROC needs binary labels, got {classes.size} classes {list(classes)}")
    positive = (t == pos_label).astype(np.float64)
    if positive.sum() in (0, t.size):
        raise ValueError(
            f"ROC needs both classes in y_true, but every label is {'' if positive[0] else 'not '}"
            f"pos_label={pos_label!r}: one of the rates TP/P, FP/N would divide by zero"
        )
    return positive, s


def roc_curve(
    y_true: Sequence[object] | np.ndarray,
    y_score: Sequence[float] | np.ndarray,
    *,
    pos_label: object = 1,
    drop_intermediate: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""The ROC curve: false and true positive rate of the rule "positive if score ≥ t".

    For each threshold :math:`t`, :math:`\mathrm{TPR}(t) = \mathrm{TP}(t)/P` and
    :math:`\mathrm{FPR}(t) = \mathrm{FP}(t)/N`, with :math:`P, N` the numbers of
    positive and negative examples. The thresholds are the distinct scores in
    decreasing order, preceded by :math:`+\infty` (nothing predicted positive, the
    point (0, 0)); tied scores move together, so a tie between a positive and a
    negative gives a diagonal segment. ``drop_intermediate`` drops points that lie on
    a straight line between their neighbours (they do not change the curve or its
    area), as scikit-learn does by default.

    Returns:
        ``(fpr, tpr, thresholds)``, each of shape ``(M,)``, both rates non-decreasing
        from 0 to 1.
    """
    positive, score = _binary_scores(y_true, y_score, pos_label)
    order = np.argsort(-score, kind="stable")  # highest score first
    score, positive = score[order], positive[order]
    # the last index of each run of tied scores: a threshold there counts the whole run
    last_of_tie = np.r_[np.flatnonzero(np.diff(score)), score.size - 1]
    tps = np.cumsum(positive)[last_of_tie]  # (M,) true positives at each threshold
    fps = (last_of_tie + 1) - tps  # (M,) the rest of the examples above it are negatives
    thresholds = score[last_of_tie]
    if drop_intermediate and tps.size > 2:
        # keep a point where the slope changes (non-zero second difference) and the ends
        bend = np.r_[True, (np.diff(fps, 2) != 0) | (np.diff(tps, 2) != 0), True]
        tps, fps, thresholds = tps[bend], fps[bend], thresholds[bend]
    tps, fps = np.r_[0.0, tps], np.r_[0.0, fps]
    thresholds = np.r_[np.inf, thresholds]
    return fps / fps[-1], tps / tps[-1], thresholds


def roc_auc_score(
    y_true: Sequence[object] | np.ndarray,
    y_score: Sequence[float] | np.ndarray,
    *,
    pos_label: object = 1,
) -> float:
    r"""Area under the ROC curve, computed by ranking (the Mann–Whitney statistic).

    The area equals the probability that a random positive scores higher than a random
    negative, ties counting one half:

    .. math::

        \mathrm{AUC} = \frac{1}{PN} \sum_{i:\,y_i=1} \sum_{j:\,y_j=0}
            \Big([s_i > s_j] + \tfrac12 [s_i = s_j]\Big)
        = \frac{R_+ - P(P+1)/2}{PN},

    where :math:`R_+` is the sum of the positives' ranks (1 = lowest score; tied scores
    share the average of their ranks). This equals the trapezoidal area under
    :func:`roc_curve`, and scikit-learn's ``roc_auc_score`` for binary labels.
    """
    positive, score = _binary_scores(y_true, y_score, pos_label)
    n_pos = positive.sum()
    n_neg = positive.size - n_pos
    order = np.argsort(score, kind="stable")  # lowest first
    sorted_scores = score[order]
    # average rank of each run of tied scores: runs [start, end) get (start + 1 + end) / 2
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_scores)) + 1]
    ends = np.r_[starts[1:], score.size]
    run_rank = (starts + 1 + ends) / 2.0  # mean of the ranks start+1, ..., end
    ranks = np.empty_like(score)
    ranks[order] = np.repeat(run_rank, ends - starts)  # (N,)
    rank_sum = np.sum(ranks * positive)
    return float((rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))

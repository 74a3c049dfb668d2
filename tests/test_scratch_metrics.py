"""dlkit.scratch.metrics against scikit-learn's metrics: random data, ties and edge cases."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import sklearn.metrics as skm
from hypothesis import given, settings
from hypothesis import strategies as st

from dlkit.scratch import metrics as dm

AVERAGES = ["micro", "macro", "weighted", None]
ZERO_DIVISION = [0.0, 1.0, np.nan]


def _sk(name: str, *args, **kwargs):
    """Call sklearn.metrics.<name>, silencing its ill-defined-metric warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(skm, name)(*args, **kwargs)


def _same(ours, theirs) -> None:
    np.testing.assert_allclose(np.asarray(ours, float), np.asarray(theirs, float), rtol=1e-12,
                               atol=1e-15, equal_nan=True)  # fmt: skip


# ---------------------------------------------------------------- definitions on a worked example
def test_definitions_on_a_worked_example() -> None:
    # TP = 3 (indices 0, 1, 2), FP = 1 (index 3), FN = 2 (indices 4, 5), TN = 2.
    y_true = np.array([1, 1, 1, 0, 1, 1, 0, 0])
    y_pred = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    assert dm.precision_score(y_true, y_pred) == pytest.approx(3 / 4)  # TP / (TP + FP)
    assert dm.recall_score(y_true, y_pred) == pytest.approx(3 / 5)  # TP / (TP + FN)
    assert dm.f1_score(y_true, y_pred) == pytest.approx(2 * 3 / (2 * 3 + 1 + 2))
    np.testing.assert_array_equal(dm.confusion_matrix(y_true, y_pred), [[2, 1], [2, 3]])
    assert dm.accuracy_score(y_true, y_pred) == pytest.approx(5 / 8)


# ---------------------------------------------------------------- random inputs
@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("n_classes", [2, 3, 6])
def test_confusion_and_accuracy_match_sklearn(seed: int, n_classes: int) -> None:
    rng = np.random.default_rng(seed)
    y_true, y_pred = rng.integers(0, n_classes, 60), rng.integers(0, n_classes, 60)
    np.testing.assert_array_equal(
        dm.confusion_matrix(y_true, y_pred), skm.confusion_matrix(y_true, y_pred)
    )
    assert dm.accuracy_score(y_true, y_pred) == pytest.approx(skm.accuracy_score(y_true, y_pred))


@pytest.mark.parametrize("zero_division", ZERO_DIVISION)
@pytest.mark.parametrize("average", AVERAGES)
@pytest.mark.parametrize("seed", range(4))
def test_multiclass_prf_matches_sklearn(seed: int, average, zero_division: float) -> None:
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 4, 40)
    y_pred = rng.choice([0, 1, 2], 40)  # class 3 is never predicted: its precision is 0/0
    kwargs = dict(average=average, zero_division=zero_division)
    for name in ("precision_score", "recall_score", "f1_score"):
        _same(getattr(dm, name)(y_true, y_pred, **kwargs), _sk(name, y_true, y_pred, **kwargs))


@pytest.mark.parametrize("zero_division", ZERO_DIVISION)
@pytest.mark.parametrize("seed", range(6))
def test_binary_prf_matches_sklearn(seed: int, zero_division: float) -> None:
    rng = np.random.default_rng(seed)
    y_true = (rng.random(30) < 0.3).astype(int)
    y_pred = (rng.random(30) < 0.3).astype(int)
    for name in ("precision_score", "recall_score", "f1_score"):
        _same(
            getattr(dm, name)(y_true, y_pred, zero_division=zero_division),
            _sk(name, y_true, y_pred, zero_division=zero_division),
        )


def test_string_labels_and_pos_label() -> None:
    y_true = np.array(["spam", "ham", "spam", "spam", "ham"])
    y_pred = np.array(["spam", "spam", "ham", "spam", "ham"])
    for name in ("precision_score", "recall_score", "f1_score"):
        for pos in ("spam", "ham"):
            _same(getattr(dm, name)(y_true, y_pred, pos_label=pos),
                  _sk(name, y_true, y_pred, pos_label=pos))  # fmt: skip
    np.testing.assert_array_equal(dm.confusion_matrix(y_true, y_pred),
                                  skm.confusion_matrix(y_true, y_pred))  # fmt: skip


labels_strategy = st.integers(2, 60).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 4), min_size=n, max_size=n),
        st.lists(st.integers(0, 4), min_size=n, max_size=n),
    )
)


@settings(max_examples=60, deadline=None)
@given(pair=labels_strategy, average=st.sampled_from(AVERAGES),
       zero_division=st.sampled_from(ZERO_DIVISION))  # fmt: skip
def test_prf_property_matches_sklearn(pair, average, zero_division) -> None:
    y_true, y_pred = map(np.array, pair)
    ours = dm.precision_recall_f1(y_true, y_pred, average=average, zero_division=zero_division)
    theirs = _sk("precision_recall_fscore_support", y_true, y_pred, average=average,
                 zero_division=zero_division)[:3]  # fmt: skip
    for a, b in zip(ours, theirs, strict=True):
        _same(a, b)
    np.testing.assert_array_equal(dm.confusion_matrix(y_true, y_pred),
                                  _sk("confusion_matrix", y_true, y_pred))  # fmt: skip


# ---------------------------------------------------------------- edge cases
@pytest.mark.parametrize("zero_division", ZERO_DIVISION)
def test_class_never_predicted_and_never_present(zero_division: float) -> None:
    y_true = np.array([0, 0, 0, 0])
    y_pred = np.array([0, 0, 0, 0])
    for name in ("precision_score", "recall_score", "f1_score"):
        # positive class 1 appears nowhere: every ratio is 0/0
        _same(getattr(dm, name)(y_true, y_pred, zero_division=zero_division),
              _sk(name, y_true, y_pred, zero_division=zero_division))  # fmt: skip
        # labels= lists a class that appears nowhere
        _same(getattr(dm, name)(y_true, y_pred, average=None, labels=[0, 1], zero_division=zero_division),
              _sk(name, y_true, y_pred, average=None, labels=[0, 1], zero_division=zero_division))  # fmt: skip
        _same(getattr(dm, name)(y_true, y_pred, average="macro", labels=[0, 1], zero_division=zero_division),
              _sk(name, y_true, y_pred, average="macro", labels=[0, 1], zero_division=zero_division))  # fmt: skip


@pytest.mark.parametrize("zero_division", ZERO_DIVISION)
@pytest.mark.parametrize(
    ("y_true", "y_pred", "labels"),
    [
        ([0, 0], [0, 1], [1]),
        ([0, 0], [0, 0], [1]),
        ([0, 1, 2], [0, 0, 0], [1, 2]),
        ([0, 0], [1, 1], [1, 2]),
    ],
)
def test_weighted_average_when_listed_classes_have_no_support(
    y_true, y_pred, labels, zero_division
) -> None:
    # every weight is 0: scikit-learn falls back to the plain mean
    ours = dm.precision_recall_f1(
        y_true, y_pred, average="weighted", labels=labels, zero_division=zero_division
    )
    theirs = _sk("precision_recall_fscore_support", y_true, y_pred, average="weighted", labels=labels,
                 zero_division=zero_division)[:3]  # fmt: skip
    for a, b in zip(ours, theirs, strict=True):
        _same(a, b)


def test_all_wrong_predictions() -> None:
    y_true, y_pred = np.array([1, 1, 0, 0]), np.array([0, 0, 1, 1])
    assert dm.precision_score(y_true, y_pred) == 0.0
    assert dm.recall_score(y_true, y_pred) == 0.0
    assert dm.f1_score(y_true, y_pred) == 0.0  # 2·0 / (0 + 2 + 2): defined, and zero


def test_labels_subset_matches_sklearn() -> None:
    rng = np.random.default_rng(3)
    y_true, y_pred = rng.integers(0, 5, 50), rng.integers(0, 5, 50)
    for average in ("micro", "macro", "weighted", None):
        ours = dm.precision_recall_f1(y_true, y_pred, average=average, labels=[3, 1])
        theirs = skm.precision_recall_fscore_support(y_true, y_pred, average=average,
                                                     labels=[3, 1])[:3]  # fmt: skip
        for a, b in zip(ours, theirs, strict=True):
            _same(a, b)
    np.testing.assert_array_equal(dm.confusion_matrix(y_true, y_pred, labels=[4, 0, 2]),
                                  skm.confusion_matrix(y_true, y_pred, labels=[4, 0, 2]))  # fmt: skip


def test_micro_average_equals_accuracy() -> None:
    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 4, 100), rng.integers(0, 4, 100)
    acc = dm.accuracy_score(y_true, y_pred)
    for name in ("precision_score", "recall_score", "f1_score"):
        assert getattr(dm, name)(y_true, y_pred, average="micro") == pytest.approx(acc)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: dm.precision_score([0, 1, 2], [0, 1, 2]), "binary"),
        (lambda: dm.recall_score([0, 2], [2, 0]), "pos_label"),
        (lambda: dm.f1_score([0, 1], [0, 1], average="mean"), "average"),
        (lambda: dm.f1_score([0, 1], [0, 1], zero_division=0.5), "zero_division"),
        (lambda: dm.accuracy_score([0, 1, 1], [0, 1]), "same length"),
        (lambda: dm.accuracy_score([], []), "empty"),
        (lambda: dm.confusion_matrix(np.zeros((2, 2)), np.zeros((2, 2))), r"1-D"),
        (lambda: dm.confusion_matrix([0, 1], [0, 1], labels=[0, 0]), "repeat"),
        (lambda: dm.roc_auc_score([1, 1, 1], [0.1, 0.2, 0.3]), "both classes"),
        (lambda: dm.roc_curve([0, 1, 2], [0.1, 0.2, 0.3]), "binary"),
        (lambda: dm.roc_auc_score([0, 1], [0.1, np.nan]), "NaN"),
        (lambda: dm.roc_auc_score([0, 1], [0.1, 0.2, 0.3]), "shape"),
    ],
)
def test_bad_input_is_named(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


# ---------------------------------------------------------------- ROC
def _roc_case(seed: int, n: int, levels: int | None) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]  # both classes present
    score = rng.normal(size=n) + y
    if levels is not None:  # few distinct values: many ties, some across classes
        score = np.round(score * levels / 4) / levels
    return y, score


@pytest.mark.parametrize("drop_intermediate", [True, False])
@pytest.mark.parametrize("levels", [None, 1, 3])
@pytest.mark.parametrize("seed", range(5))
def test_roc_curve_matches_sklearn(seed: int, levels, drop_intermediate: bool) -> None:
    y, score = _roc_case(seed, 50, levels)
    ours = dm.roc_curve(y, score, drop_intermediate=drop_intermediate)
    theirs = skm.roc_curve(y, score, drop_intermediate=drop_intermediate)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)


@pytest.mark.parametrize("levels", [None, 1, 3])
@pytest.mark.parametrize("seed", range(8))
def test_roc_auc_matches_sklearn_and_trapezoid(seed: int, levels) -> None:
    y, score = _roc_case(seed, 40, levels)
    auc = dm.roc_auc_score(y, score)
    assert auc == pytest.approx(skm.roc_auc_score(y, score), rel=1e-12)
    fpr, tpr, _ = dm.roc_curve(y, score)
    assert auc == pytest.approx(np.trapezoid(tpr, fpr), rel=1e-12)


def test_roc_auc_ties_count_one_half() -> None:
    # every score equal: each positive-negative pair is a tie, AUC = 1/2
    assert dm.roc_auc_score([0, 1, 0, 1, 1], [0.3] * 5) == pytest.approx(0.5)
    # one positive above one negative, and one tie: (1 + 1/2) / 2
    assert dm.roc_auc_score([1, 0, 1, 0], [0.9, 0.2, 0.5, 0.5]) == pytest.approx(
        skm.roc_auc_score([1, 0, 1, 0], [0.9, 0.2, 0.5, 0.5])
    )
    assert dm.roc_auc_score([0, 1], [0.2, 0.7]) == 1.0
    assert dm.roc_auc_score([0, 1], [0.7, 0.2]) == 0.0


@settings(max_examples=60, deadline=None)
@given(
    data=st.integers(2, 40).flatmap(
        lambda n: st.tuples(
            st.lists(st.integers(0, 1), min_size=n, max_size=n).filter(lambda y: 0 < sum(y) < n),
            st.lists(st.integers(-3, 3), min_size=n, max_size=n),  # integers: many ties
        )
    )
)
def test_roc_property_matches_sklearn(data) -> None:
    y, score = np.array(data[0]), np.array(data[1], dtype=float)
    assert dm.roc_auc_score(y, score) == pytest.approx(skm.roc_auc_score(y, score), rel=1e-12)
    for a, b in zip(dm.roc_curve(y, score), skm.roc_curve(y, score), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_roc_pos_label_strings() -> None:
    y = np.array(["a", "b", "b", "a", "b"])
    score = np.array([0.1, 0.8, 0.3, 0.4, 0.9])
    for a, b in zip(dm.roc_curve(y, score, pos_label="b"),
                    skm.roc_curve(y, score, pos_label="b"), strict=True):  # fmt: skip
        np.testing.assert_allclose(a, b)
    assert dm.roc_auc_score(y, score, pos_label="b") == pytest.approx(
        skm.roc_auc_score(y == "b", score)
    )

"""dlkit.scratch.model_selection: k-fold partitions, stratification, permutation importance."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold

from dlkit.scratch import (
    accuracy_score,
    cross_val_scores,
    kfold_indices,
    permutation_importance,
    stratified_kfold_indices,
)


def _assert_partition(splits, n: int, k: int) -> None:
    assert len(splits) == k
    val = np.concatenate([v for _, v in splits])
    np.testing.assert_array_equal(np.sort(val), np.arange(n))  # each example validates once
    for train, v in splits:
        np.testing.assert_array_equal(np.sort(np.concatenate([train, v])), np.arange(n))
        assert np.intersect1d(train, v).size == 0
    sizes = [v.size for _, v in splits]
    assert max(sizes) - min(sizes) <= 1


@settings(max_examples=50, deadline=None)
@given(n=st.integers(2, 80), data=st.data())
def test_kfold_partitions_and_matches_sklearn(n: int, data) -> None:
    k = data.draw(st.integers(2, n))
    ours = kfold_indices(n, k)
    _assert_partition(ours, n, k)
    for (tr, va), (sk_tr, sk_va) in zip(ours, KFold(k).split(np.zeros(n)), strict=True):
        np.testing.assert_array_equal(tr, sk_tr)
        np.testing.assert_array_equal(va, sk_va)
    shuffled = kfold_indices(n, k, shuffle=True, seed=1)
    _assert_partition(shuffled, n, k)
    again = kfold_indices(n, k, shuffle=True, seed=1)
    for (a, b), (c, d) in zip(shuffled, again, strict=True):  # same seed, same folds
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)


@settings(max_examples=50, deadline=None)
@given(counts=st.lists(st.integers(3, 30), min_size=2, max_size=5), k=st.integers(2, 3),
       shuffle=st.booleans())  # fmt: skip
def test_stratified_folds_keep_class_shares(counts, k: int, shuffle: bool) -> None:
    y = np.random.default_rng(0).permutation(np.repeat(np.arange(len(counts)), counts))
    splits = stratified_kfold_indices(y, k, shuffle=shuffle, seed=0)
    _assert_partition(splits, y.size, k)
    for c, n_c in enumerate(counts):
        per_fold = [np.sum(y[v] == c) for _, v in splits]
        assert min(per_fold) >= n_c // k and max(per_fold) <= -(-n_c // k)  # floor / ceil


def test_stratified_beats_plain_kfold_on_sorted_labels() -> None:
    y = np.repeat([0, 1], [90, 10])  # sorted and imbalanced: plain k-fold folds miss class 1
    plain = [np.mean(y[v]) for _, v in kfold_indices(y.size, 5)]
    strat = [np.mean(y[v]) for _, v in stratified_kfold_indices(y, 5)]
    assert min(plain) == 0.0
    np.testing.assert_allclose(strat, 0.1)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: kfold_indices(5, 1), "n_splits"),
        (lambda: kfold_indices(3, 4), "more than"),
        (lambda: kfold_indices(0, 2), "n_samples"),
        (lambda: stratified_kfold_indices(np.array([0, 0, 0, 1]), 2), "only 1"),
        (lambda: stratified_kfold_indices(np.zeros((4, 2)), 2), "1-D"),
        (lambda: permutation_importance(lambda x, y: 0.0, np.zeros(4), np.zeros(4)), "2-D"),
        (lambda: permutation_importance(lambda x, y: 0.0, np.zeros((4, 2)), np.zeros(3)), "rows"),
    ],
)
def test_bad_input_is_named(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


def _informative_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(400, 4))
    y = (x[:, 2] + 0.2 * x[:, 0] > 0).astype(int)  # feature 2 decides, feature 0 a little
    return x, y


def test_permutation_importance_finds_the_informative_feature() -> None:
    x, y = _informative_data()
    model = LogisticRegression().fit(x[:300], y[:300])

    def score(xs: np.ndarray, ys: np.ndarray) -> float:
        return accuracy_score(ys, model.predict(xs))

    x_val, y_val = x[300:], y[300:]
    before = x_val.copy()
    result = permutation_importance(score, x_val, y_val, n_repeats=10, seed=0)
    np.testing.assert_array_equal(x_val, before)  # input untouched
    assert result.importances.shape == (4, 10)
    assert int(np.argmax(result.mean)) == 2
    assert result.mean[2] > 0.3 and result.mean[2] > result.mean[0] > result.mean[[1, 3]].max()
    assert result.baseline == pytest.approx(score(x_val, y_val))
    np.testing.assert_allclose(result.mean, result.importances.mean(axis=1))
    np.testing.assert_allclose(result.std, result.importances.std(axis=1))


def test_ignored_feature_has_zero_importance_exactly() -> None:
    x, y = _informative_data()

    def score_using_only_feature_2(xs: np.ndarray, ys: np.ndarray) -> float:
        return accuracy_score(ys, (xs[:, 2] > 0).astype(int))

    result = permutation_importance(score_using_only_feature_2, x, y, n_repeats=3, seed=1)
    np.testing.assert_array_equal(result.importances[[0, 1, 3]], 0.0)
    assert result.mean[2] > 0.3


def test_cross_val_scores_runs_each_fold() -> None:
    x, y = _informative_data()
    seen: list[int] = []

    def fit_and_score(x_tr, y_tr, x_va, y_va) -> float:
        seen.append(len(y_va))
        assert len(y_tr) + len(y_va) == len(y)
        return accuracy_score(y_va, LogisticRegression().fit(x_tr, y_tr).predict(x_va))

    scores = cross_val_scores(fit_and_score, x, y, stratified_kfold_indices(y, 4))
    assert scores.shape == (4,) and seen == [100] * 4
    assert np.all(scores > 0.85)

"""Chapter 05's widgets and plots, headless: the math they show and their callbacks."""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import sklearn.metrics as skm
import torch

matplotlib.use("Agg")

from dlkit.nn import Dropout
from dlkit.viz.regularization import (
    build_dropout_mlp,
    fit_moons_mlp,
    moons_splits,
    regularization_explorer,
    threshold_explorer,
    threshold_metrics,
    weight_penalty,
)


def test_moons_splits_are_deterministic() -> None:
    a, b = moons_splits(n_train=30, n_val=50, seed=3), moons_splits(n_train=30, n_val=50, seed=3)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    assert a[0].shape == (30, 2) and a[2].shape == (50, 2) and set(np.unique(a[1])) == {0, 1}


def test_weight_penalty_matches_its_formula() -> None:
    model = build_dropout_mlp((5, 4), dropout=0.2)
    weights = [m.weight for m in model if isinstance(m, torch.nn.Linear)]
    assert len(weights) == 3 and sum(isinstance(m, Dropout) for m in model) == 2
    l2 = sum((w**2).sum() for w in weights)
    l1 = sum(w.abs().sum() for w in weights)
    torch.testing.assert_close(weight_penalty(model, "l2", 0.3), 0.3 * l2)
    torch.testing.assert_close(weight_penalty(model, "l1", 0.3), 0.3 * l1)
    with pytest.raises(ValueError, match="'l1' or 'l2'"):
        weight_penalty(model, "l3", 0.1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=">= 0"):
        weight_penalty(model, "l2", -1.0)


def test_fit_is_reproducible_and_leaves_global_state_alone() -> None:
    data = moons_splits(n_train=40, n_val=60)
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    first = fit_moons_mlp(*data, dropout=0.3, steps=40, seed=1)
    assert torch.equal(torch.rand(1), before)  # the global RNG did not move
    assert torch.get_num_threads() == threads
    second = fit_moons_mlp(*data, dropout=0.3, steps=40, seed=1)
    np.testing.assert_array_equal(first.train_loss, second.train_loss)
    np.testing.assert_array_equal(first.steps, np.arange(10, 41, 10))
    assert not first.model.training  # returned in eval mode


def test_penalty_shrinks_weights_and_closes_the_generalization_gap() -> None:
    data = moons_splits()
    free = fit_moons_mlp(*data, steps=300)
    l2 = fit_moons_mlp(*data, strength=1e-2, steps=300)

    def norm(fit) -> float:
        return float(
            sum((m.weight.detach() ** 2).sum() for m in fit.model if isinstance(m, torch.nn.Linear))
        )

    assert norm(l2) < 0.5 * norm(free)
    gap_free = free.val_loss[-1] - free.train_loss[-1]
    gap_l2 = l2.val_loss[-1] - l2.train_loss[-1]
    assert gap_free > 0.5 and gap_l2 < 0.2  # unregularized overfits 60 noisy points


def test_threshold_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    scores = np.clip(0.3 * y + rng.random(200) * 0.7, 0, 1)
    for t in (0.0, 0.25, 0.5, 0.9, 1.01):
        got = threshold_metrics(y, scores, t)
        pred = (scores >= t).astype(int)
        assert got["precision"] == pytest.approx(skm.precision_score(y, pred, zero_division=0))
        assert got["recall"] == pytest.approx(skm.recall_score(y, pred))
        assert got["f1"] == pytest.approx(skm.f1_score(y, pred, zero_division=0))
        assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
        np.testing.assert_array_equal(
            got["confusion"], skm.confusion_matrix(y, pred, labels=[0, 1])
        )


def test_regularization_explorer_redraws_and_caches() -> None:
    box = regularization_explorer(n_train=30, steps=20)
    kind, strength, rate, _ = box.children
    assert len(box.fits) == 1
    strength.value = 1e-3
    rate.value = 0.5
    kind.value = "l1"
    assert len(box.fits) == 4
    fit = box.fits[("l1", 1e-3, 0.5)]  # the redraw shows this fit's numbers and curves
    left, right = plt.gcf().axes[:2]
    assert plt.gcf()._suptitle.get_text() == "L1 penalty λ = 0.001, dropout p = 0.5"
    assert left.get_title() == f"train acc {fit.train_acc:.2f}, validation acc {fit.val_acc:.2f}"
    np.testing.assert_allclose(right.lines[0].get_ydata(), fit.train_loss)
    plt.close("all")
    kind.value = "l2"  # seen before: served from the cache
    assert len(box.fits) == 4
    strength.value = 0.0
    assert len(box.fits) == 5
    kind.value = "l1"  # with λ = 0 the kind does not matter: still cached
    assert len(box.fits) == 5
    assert ("none", 0.0, 0.5) in box.fits


def test_threshold_explorer_redraws_and_checks_input() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 50)
    box_scores = rng.random(50)
    box = threshold_explorer(y, box_scores)
    slider, _ = box.children
    for t in (0.9, 0.0, 0.37):
        slider.value = t
        hist, lines, matrix = plt.gcf().axes[:3]  # the figure this redraw made
        now = threshold_metrics(y, box_scores, t)
        assert matrix.get_title() == (
            f"P {now['precision']:.2f}  R {now['recall']:.2f}  "
            f"F1 {now['f1']:.2f}  acc {now['accuracy']:.2f}"
        )
        for ax in (hist, lines):  # the threshold marker moved to t
            assert ax.lines[-1].get_xdata()[0] == pytest.approx(t)
        plt.close("all")
    with pytest.raises(ValueError, match=r"\(N,\)"):
        threshold_explorer(y, rng.random(49))

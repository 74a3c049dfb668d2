"""gradcheck passes on correct gradients, fails on wrong ones, and says where."""

from __future__ import annotations

import numpy as np
import pytest

from dlkit.grading.gradients import find_mismatch, numerical_gradient
from dlkit.scratch import GradcheckError, Tensor, assert_gradcheck, gradcheck


def _square_with_wrong_backward(x: Tensor, factor: float = 3.0) -> Tensor:
    """x² whose backward returns factor·x instead of 2x: a deliberately wrong op."""
    return Tensor._result(x.data**2, (x,), "bad_square", lambda g: (g * factor * x.data,))


def test_passes_on_correct_gradients() -> None:
    rng = np.random.default_rng(0)
    result = gradcheck(
        lambda a, b: (a @ b).tanh(), [rng.standard_normal((3, 4)), rng.standard_normal((4, 2))]
    )
    assert result.passed and bool(result) and result.worst is None
    assert result.message == "gradcheck passed"
    assert set(result.analytic) == {"input 0", "input 1"}
    np.testing.assert_allclose(result.analytic["input 0"], result.numerical["input 0"], rtol=1e-6)


def test_catches_a_wrong_gradient_and_reports_where() -> None:
    x = np.array([[0.5, -1.0], [2.0, 0.1]])
    y = np.ones((2, 2))
    result = gradcheck(lambda x, y: _square_with_wrong_backward(x) + y, {"x": x, "y": y})
    assert not result.passed and not bool(result)
    worst = result.worst
    assert worst is not None and worst.name == "x" and len(result.mismatches) == 1
    # Output weights w are random, so analytic 3·x·w vs numerical 2·x·w: relative error 1/3.
    assert worst.relative_error == pytest.approx(1 / 3, rel=1e-5)
    assert worst.analytic == pytest.approx(1.5 * worst.numerical, rel=1e-5)
    assert worst.n_bad == 4 and worst.size == 4
    assert "gradient of `x` is wrong at 4 of 4 elements" in result.message
    with pytest.raises(GradcheckError, match=r"`x`.*analytic .* numerical .* relative error"):
        assert_gradcheck(lambda x, y: _square_with_wrong_backward(x) + y, {"x": x, "y": y})


def test_reports_the_worst_element() -> None:
    # Only element (1, 2) is wrong: its backward adds an extra 0.5.
    def f(x: Tensor) -> Tensor:
        extra = np.zeros((2, 3))
        extra[1, 2] = 0.5
        return Tensor._result(x.data.sum(), (x,), "bad_sum", lambda g: (g * (1 + extra),))

    result = gradcheck(f, [np.zeros((2, 3))])
    assert result.worst.index == (1, 2) and result.worst.n_bad == 1
    assert result.worst.analytic == pytest.approx(1.5 * result.worst.numerical)


def test_small_errors_pass_within_tolerance() -> None:
    def nearly(x: Tensor) -> Tensor:
        return _square_with_wrong_backward(x, factor=2.0 * (1 + 1e-9))

    assert gradcheck(nearly, [np.array([1.0, 2.0])]).passed
    assert not gradcheck(nearly, [np.array([1.0, 2.0])], rtol=1e-12, atol=0).passed


def test_unused_input_has_zero_gradient() -> None:
    result = gradcheck(lambda a, b: a * 2, [np.ones(2), np.ones(3)])
    assert result.passed
    np.testing.assert_array_equal(result.analytic["input 1"], np.zeros(3))


def test_non_finite_numerical_gradient_is_reported() -> None:
    def f(x: Tensor) -> Tensor:
        return Tensor._result(x.data * np.inf, (x,), "inf", lambda g: (g,))

    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf in the differences
        result = gradcheck(f, [np.ones(2)])
    assert not result.passed and "not finite" in result.message


def test_fn_must_return_a_tensor() -> None:
    with pytest.raises(TypeError, match="must return a Tensor"):
        gradcheck(lambda a: a.data, [np.ones(2)])
    with pytest.raises(ValueError, match="at least one input"):
        gradcheck(lambda: Tensor(1.0), [])


def test_inputs_are_not_modified() -> None:
    x = np.array([1.0, 2.0])
    gradcheck(lambda a: a**2, [x])
    np.testing.assert_array_equal(x, [1.0, 2.0])


def test_shares_the_grading_numerics() -> None:
    # gradcheck's numerical gradient is dlkit.grading's numerical_gradient of the weighted loss.
    x = np.array([0.3, -0.7, 1.1])
    result = gradcheck(lambda a: a.tanh(), [x])
    weights = np.random.default_rng(1234).standard_normal(3)
    expected = numerical_gradient(lambda v: (np.tanh(v) * weights).sum(), x)
    np.testing.assert_allclose(result.numerical["input 0"], expected, rtol=1e-12)
    np.testing.assert_allclose(
        result.analytic["input 0"], (1 - np.tanh(x) ** 2) * weights, rtol=1e-12
    )
    assert find_mismatch("x", expected, expected, 1e-5, 0) is None

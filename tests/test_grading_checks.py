"""Tests for dlkit.grading: right answers pass, wrong ones fail with the facts a learner needs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dlkit.grading
from dlkit.grading import (
    CheckFailed,
    assert_close,
    assert_dtype,
    assert_raises,
    assert_shape,
    check_gradient,
    forbid_calls,
    numerical_gradient,
)

# nbgrader scores a test cell zero when it writes to stderr, so a check must never warn.
pytestmark = pytest.mark.filterwarnings("error")

REPO = Path(__file__).resolve().parents[1]


def failure(check, *args, **kwargs) -> str:
    """Run a check that must fail; return its message."""
    with pytest.raises(CheckFailed) as info:
        check(*args, **kwargs)
    return str(info.value)


class AlwaysEqual:
    """A cheat: compares equal to everything."""

    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = None  # type: ignore[assignment]


# --- package surface -------------------------------------------------------------------


def test_public_api_is_curated():
    checks = {
        "CheckFailed",
        "assert_close",
        "assert_dtype",
        "assert_raises",
        "assert_shape",
        "check_gradient",
        "forbid_calls",
        "numerical_gradient",
    }
    assert checks <= set(dlkit.grading.__all__)
    assert all(hasattr(dlkit.grading, name) for name in dlkit.grading.__all__)
    assert issubclass(CheckFailed, AssertionError)


def test_importing_grading_does_not_import_torch():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    code = "import dlkit.grading, sys; assert 'torch' not in sys.modules, 'torch was imported'"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


# --- assert_close: passing cases -------------------------------------------------------


@pytest.mark.parametrize(
    ("actual", "expected"),
    [
        (0.5, 0.5),
        (3, 3.0),
        ([[1, 2], [3, 4]], np.array([[1.0, 2.0], [3.0, 4.0]])),
        (np.float32(0.1), 0.1),
        (np.array([1.0, 2.0]) + 1e-9, [1.0, 2.0]),
        (np.zeros((0, 3)), np.zeros((0, 3))),
        (np.array([True, False]), [1, 0]),
    ],
)
def test_assert_close_passes(actual, expected):
    assert assert_close(actual, expected) is None


@settings(max_examples=200, deadline=None)
@given(
    data=st.data(),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, max_side=4),
    rtol=st.sampled_from([0.0, 1e-5, 1e-2]),
    atol=st.sampled_from([0.0, 1e-8, 1e-3]),
)
def test_assert_close_agrees_with_numpy_isclose(data, shape, rtol, atol):
    """Pass exactly when np.isclose(..., equal_nan=True) holds everywhere."""
    expected = data.draw(hnp.arrays(np.float64, shape), label="expected")
    noise = data.draw(hnp.arrays(np.float64, shape, elements=st.floats(-1e-2, 1e-2)), label="noise")
    with np.errstate(invalid="ignore", over="ignore"):
        actual = expected * (1 + noise) + noise * 1e-3
    agrees = bool(np.isclose(actual, expected, rtol=rtol, atol=atol, equal_nan=True).all())
    if agrees:
        assert_close(actual, expected, rtol=rtol, atol=atol)
    else:
        with pytest.raises(CheckFailed):
            assert_close(actual, expected, rtol=rtol, atol=atol)


# --- assert_close: wrong values --------------------------------------------------------


def test_assert_close_message_names_count_first_and_largest_mismatch():
    expected = np.arange(12.0).reshape(3, 4) / 4  # expected[1, 2] == 1.5
    expected[1, 2] = 0.5
    actual = expected.copy()
    actual[1, 2] = 0.25
    actual[2, 0] = 7.0  # expected 2.0: the largest difference
    actual[2, 3] = 2.76  # expected 2.75
    message = failure(assert_close, actual, expected)
    assert message.startswith("result has wrong values at 3 of 12 positions. ")
    assert (
        "First mismatch at index (1, 2): expected 0.5, got 0.25 (|difference| 0.25 > "
        "tolerance 5.0e-06 = atol 1e-08 + rtol 1e-05 × |expected|)." in message
    )
    assert "Largest mismatch at index (2, 0): expected 2.0, got 7.0" in message


def test_assert_close_does_not_repeat_when_first_is_largest():
    message = failure(assert_close, [1.0, 9.0, 3.0], [1.0, 2.0, 3.1], name="scores")
    assert message.startswith("scores has wrong values at 2 of 3 positions.")
    assert "First mismatch at index 1: expected 2.0, got 9.0" in message
    assert "Largest" not in message


def test_assert_close_scalar_message_and_float32_printing():
    message = failure(assert_close, np.float32(0.1), 0.2, name="loss")
    assert message.startswith("loss has the wrong value: expected 0.2, got 0.1 (")


def test_assert_close_tolerance_is_relative_to_expected():
    assert_close(100.0 + 5e-4, 100.0, rtol=1e-5, atol=0.0)  # 5e-4 <= 1e-3
    message = failure(assert_close, 100.0 + 2e-3, 100.0, rtol=1e-5, atol=0.0)
    assert "tolerance 1.0e-03" in message


def test_assert_close_rejects_bad_tolerances_and_bad_expected():
    with pytest.raises(ValueError, match="rtol"):
        assert_close(1.0, 1.0, rtol=-1.0)
    with pytest.raises(TypeError, match="expected value"):
        assert_close(1.0, None)


# --- assert_close: shapes --------------------------------------------------------------


@pytest.mark.parametrize(
    ("actual_shape", "expected_shape", "facts"),
    [
        ((3, 4), (4,), ["has shape (3, 4) but expected (4,)"]),
        ((1, 3), (3,), ["has shape (1, 3) but expected (3,)", "axis of length 1"]),
        ((4, 3), (3, 4), ["(4, 3) but expected (3, 4)", "transposed"]),
        ((2, 6), (3, 4), ["(2, 6) but expected (3, 4)", "number of elements matches (12)"]),
        ((), (1,), ["is a scalar (shape ()) but expected an array of shape (1,)"]),
        ((1,), (), ["has shape (1,) but expected a scalar (shape ())"]),
    ],
)
def test_assert_close_never_broadcasts(actual_shape, expected_shape, facts):
    message = failure(assert_close, np.ones(actual_shape), np.ones(expected_shape))
    for fact in facts:
        assert fact in message


# --- assert_close: things that are not numbers -----------------------------------------


def test_always_equal_object_fails():
    cheat = AlwaysEqual()
    assert cheat == np.ones(3)  # the cheat works on a naive `==` check...
    message = failure(assert_close, cheat, np.ones(3))  # ...but not here
    assert "not numeric" in message
    assert "AlwaysEqual" in message
    assert "not numeric" in failure(assert_close, [cheat, cheat, cheat], np.ones(3))


def test_none_says_forgot_return():
    message = failure(assert_close, None, [1.0], name="standardize(x)")
    assert message == "standardize(x) is None: did you forget `return`?"


class BrokenArray:
    def __array__(self, dtype=None, copy=None):
        raise RuntimeError("boom")


@pytest.mark.parametrize(
    ("actual", "fact"),
    [
        ("0.5", "not numeric: got '0.5' of type str"),
        (np.array([1.0, 2.0], dtype=object), "dtype object"),
        ([[1.0, 2.0], [3.0]], "could not be read as numbers (ValueError"),
        (BrokenArray(), "could not be read as numbers (RuntimeError: boom)"),
        ({"a": 1.0}, "not numeric"),
    ],
)
def test_non_numeric_answers_fail(actual, fact):
    assert fact in failure(assert_close, actual, [1.0, 2.0])


# --- assert_close: NaN and inf ---------------------------------------------------------


def test_nan_in_both_at_same_place_is_equal():
    assert_close([np.nan, 1.0], [np.nan, 1.0])
    assert_close([np.inf, -np.inf], [np.inf, -np.inf])


def test_nan_in_actual_is_named():
    message = failure(assert_close, [1.0, np.nan, np.nan], [1.0, 2.0, 3.0])
    assert "First mismatch at index 1: expected 2.0, got NaN" in message
    assert "has NaN at 2 positions where a finite number was expected" in message


def test_inf_in_actual_is_named():
    message = failure(assert_close, [np.inf, 1.0], [3.0, 1.0])
    assert "First mismatch at index 0: expected 3.0, got inf." in message
    assert "has inf at 1 position where a finite number was expected" in message


def test_nan_expected_but_finite_given():
    message = failure(assert_close, [1.0, 1.0], [1.0, np.nan])
    assert "First mismatch at index 1: expected nan, got 1.0." in message
    assert "finite number was expected" not in message


def test_infinities_of_opposite_sign_differ():
    assert "expected inf, got -inf" in failure(assert_close, -np.inf, np.inf)


# --- assert_close: torch tensors -------------------------------------------------------


def test_assert_close_accepts_torch_tensors():
    torch = pytest.importorskip("torch")
    x = np.linspace(-1, 1, 6).reshape(2, 3)
    assert_close(torch.tensor(x, requires_grad=True) * 1, x)
    assert_close(torch.tensor(x, dtype=torch.float32), torch.tensor(x), rtol=1e-6, atol=1e-7)
    assert_close(torch.tensor(x, dtype=torch.bfloat16), x, rtol=1e-2, atol=1e-2)
    assert_close(torch.nn.Parameter(torch.tensor(x)), x)
    wrong = torch.tensor(x)
    wrong[1, 2] = 5.0
    message = failure(assert_close, wrong, x, name="layer(x)")
    assert "layer(x) has wrong values at 1 of 6 positions" in message
    assert "index (1, 2): expected 1.0, got 5.0" in message


# --- assert_shape ----------------------------------------------------------------------


def test_assert_shape_passes_with_wildcards():
    assert_shape(np.zeros((3, 4)), (3, 4))
    assert_shape(np.zeros((3, 4)), (3, None))
    assert_shape(np.zeros((3, 4)), (None, None))
    assert_shape(np.float64(1.0), ())


def test_assert_shape_messages():
    x = np.zeros((3, 4))
    message = failure(assert_shape, x, (3, 5))
    assert (
        message == "result has shape (3, 4) but expected (3, 5): axis 1 has length 4, expected 5."
    )
    message = failure(assert_shape, x, (None, 4, None), name="logits")
    assert (
        message == "logits has shape (3, 4) but expected (any, 4, any): it has 2 axes instead of 3."
    )
    message = failure(assert_shape, x, (4, None))
    assert "expected (4, any): axis 0 has length 3, expected 4" in message


def test_assert_shape_non_arrays():
    assert "list, which has no shape" in failure(assert_shape, [1, 2], (2,))
    assert "np.asarray" in failure(assert_shape, [1, 2], (2,))
    assert "did you forget `return`" in failure(assert_shape, None, (2,))
    assert "int, which has no shape" in failure(assert_shape, 3, ())
    with pytest.raises(TypeError):
        assert_shape(np.zeros(2), (2.0,))


def test_assert_shape_on_tensor():
    torch = pytest.importorskip("torch")
    assert_shape(torch.zeros(2, 5), (2, None))
    assert "has shape (2, 5) but expected (5, 2)" in failure(
        assert_shape, torch.zeros(2, 5), (5, 2)
    )


@given(shape=hnp.array_shapes(min_dims=1, max_dims=4, max_side=5), data=st.data())
def test_assert_shape_property(shape, data):
    axis = data.draw(st.integers(0, len(shape) - 1), label="axis")
    wildcard = tuple(None if i == axis else n for i, n in enumerate(shape))
    assert_shape(np.zeros(shape), shape)
    assert_shape(np.zeros(shape), wildcard)
    wrong = tuple(n + 1 if i == axis else n for i, n in enumerate(shape))
    message = failure(assert_shape, np.zeros(shape), wrong)
    assert f"axis {axis} has length {shape[axis]}, expected {shape[axis] + 1}" in message


# --- assert_dtype ----------------------------------------------------------------------


def test_assert_dtype_numpy():
    assert_dtype(np.zeros(2), "float64")
    assert_dtype(np.zeros(2, dtype=np.int32), np.int32)
    assert_dtype(np.float32(1.0), np.dtype("float32"))
    message = failure(assert_dtype, np.zeros(2, dtype=np.int64), "float32", name="mask")
    assert message.startswith("mask has dtype int64 but expected float32")
    assert "no dtype" in failure(assert_dtype, 1.0, "float64")
    assert "did you forget `return`" in failure(assert_dtype, None, "float64")
    with pytest.raises(TypeError):
        assert_dtype(np.zeros(2), None)


def test_assert_dtype_torch():
    torch = pytest.importorskip("torch")
    assert_dtype(torch.zeros(2), torch.float32)
    assert_dtype(torch.zeros(2), "torch.float32")
    assert_dtype(torch.zeros(2), "float32")  # a NumPy-style name matches a tensor too
    message = failure(assert_dtype, torch.zeros(2), torch.float64)
    assert "has dtype torch.float32 but expected torch.float64" in message
    message = failure(assert_dtype, np.zeros(2, dtype=np.float32), torch.float32)
    assert "dtype float32 (a NumPy dtype; a torch tensor was expected)" in message


# --- numerical_gradient ----------------------------------------------------------------


@settings(deadline=None)
@given(
    x=hnp.arrays(
        np.float64, hnp.array_shapes(min_dims=0, max_dims=2, max_side=4), elements=st.floats(-3, 3)
    ),
)
def test_numerical_gradient_of_quadratic(x):
    """f(x) = Σ c·x² + sin(x) has ∂f/∂x = 2c·x + cos(x)."""
    c = np.arange(x.size, dtype=np.float64).reshape(x.shape) + 1
    before = x.copy()
    grad = numerical_gradient(lambda v: np.sum(c * v**2 + np.sin(v)), x)
    assert grad.dtype == np.float64
    assert grad.shape == x.shape
    np.testing.assert_allclose(grad, 2 * c * x + np.cos(x), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(x, before)  # the caller's array is untouched


def test_numerical_gradient_matches_torch_autograd():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).normal(size=(3, 4))
    t = torch.tensor(x, requires_grad=True)
    torch.logsumexp(t, dim=1).pow(2).sum().backward()
    numeric = numerical_gradient(
        lambda v: torch.logsumexp(torch.from_numpy(v), dim=1).pow(2).sum(), x
    )
    np.testing.assert_allclose(numeric, t.grad.numpy(), rtol=1e-6, atol=1e-8)


def test_numerical_gradient_needs_a_scalar():
    message = failure(numerical_gradient, lambda v: v * 2, np.ones(3))
    assert "returned shape (3,)" in message
    with pytest.raises(ValueError):
        numerical_gradient(np.sum, np.ones(2), eps=0.0)


# --- check_gradient --------------------------------------------------------------------


def squared_sum(W: np.ndarray, x: np.ndarray) -> float:
    """f(W, x) = (Σ_i (W x)_i)², so ∂f/∂W = 2s·1xᵀ and ∂f/∂x = 2s·Wᵀ1 with s = Σ (W x)."""
    return float(np.sum(W @ x) ** 2)


@pytest.fixture
def problem():
    rng = np.random.default_rng(1)
    W, x = rng.normal(size=(2, 3)), rng.normal(size=3)
    s = np.sum(W @ x)
    grads = {"W": 2 * s * np.outer(np.ones(2), x), "x": 2 * s * W.sum(axis=0)}
    return {"W": W, "x": x}, grads


def test_check_gradient_passes_for_correct_gradients(problem):
    params, grads = problem
    assert check_gradient(squared_sum, params, grads) is None


def test_check_gradient_accepts_torch_gradients(problem):
    torch = pytest.importorskip("torch")
    params, grads = problem
    check_gradient(squared_sum, params, {k: torch.tensor(v) for k, v in grads.items()})


def test_check_gradient_names_parameter_and_index(problem):
    params, grads = problem
    wrong = {**grads, "W": grads["W"].copy()}
    wrong["W"][1, 2] += 0.5
    message = failure(check_gradient, squared_sum, params, wrong)
    assert message.startswith("gradient of `W` is wrong at 1 of 6 elements. Worst at index (1, 2)")
    analytic, numeric = wrong["W"][1, 2], grads["W"][1, 2]
    assert f"analytic {analytic:.6g}, numerical {numeric:.6g}" in message
    relative = abs(analytic - numeric) / max(abs(analytic), abs(numeric))
    assert f"relative error {relative:.2e}" in message
    assert "`x`" not in message


def test_check_gradient_reports_worst_relative_error(problem):
    params, grads = problem
    wrong = {**grads, "x": grads["x"] * np.array([1.01, 1.5, 1.0])}
    message = failure(check_gradient, squared_sum, params, wrong)
    assert "gradient of `x` is wrong at 2 of 3 elements. Worst at index 1:" in message


def test_check_gradient_missing_and_misshapen(problem):
    params, grads = problem
    message = failure(check_gradient, squared_sum, params, {"w": grads["W"], "x": grads["x"][:2]})
    assert "the gradient of `W` is missing (gradients given: `w`, `x`)" in message
    assert "the gradient of `x` has shape (2,) but `x` has shape (3,)" in message
    assert "did you forget `return`" in failure(check_gradient, squared_sum, params, None)
    nan_grads = {**grads, "x": np.full(3, np.nan)}
    assert "gradient of `x` is wrong at 3 of 3" in failure(
        check_gradient, squared_sum, params, nan_grads
    )
    none_grads = {**grads, "W": None}
    assert "gradient of `W` is None" in failure(check_gradient, squared_sum, params, none_grads)


def test_check_gradient_scalar_parameter():
    check_gradient(lambda b: 3.0 * b**2, {"b": 2.0}, {"b": 12.0})
    message = failure(check_gradient, lambda b: 3.0 * b**2, {"b": 2.0}, {"b": 6.0})
    assert "gradient of `b` is wrong at 1 of 1 elements. Worst (a scalar): analytic 6" in message


# --- forbid_calls ----------------------------------------------------------------------

INV_MESSAGE = "your answer called numpy.linalg.inv; write it from primitive operations instead"


def test_forbid_calls_raises_inside_and_restores_after():
    original = np.linalg.inv
    reached = []
    with pytest.raises(CheckFailed) as info:
        with forbid_calls("numpy.linalg.inv"):
            assert np.linalg.inv is not original
            np.linalg.solve(np.eye(2), np.ones(2))  # other functions still work
            np.linalg.inv(np.eye(2))
            reached.append("after the call")
    assert str(info.value) == INV_MESSAGE
    assert reached == []  # raised at the call, not when the block ended
    assert np.linalg.inv is original
    np.testing.assert_array_equal(np.linalg.inv(np.eye(2)), np.eye(2))


def test_forbid_calls_passes_when_nothing_forbidden_is_called():
    with forbid_calls("numpy.linalg.inv"):
        assert_close(np.linalg.solve(2 * np.eye(2), np.ones(2)), [0.5, 0.5])


def test_forbid_calls_restores_after_an_exception():
    original = np.linalg.inv
    with pytest.raises(CheckFailed, match=re.escape(INV_MESSAGE)):
        with forbid_calls("numpy.linalg.inv"):
            np.linalg.inv(np.eye(2))
    assert np.linalg.inv is original
    with pytest.raises(KeyError):
        with forbid_calls("numpy.linalg.inv"):
            raise KeyError("unrelated")
    assert np.linalg.inv is original


def test_forbid_calls_fails_even_if_the_answer_swallows_the_error():
    def sneaky(a):
        try:
            return np.linalg.inv(a)
        except Exception:
            return np.eye(2)

    with pytest.raises(CheckFailed, match="the error it raised was caught"):
        with forbid_calls("numpy.linalg.inv"):
            sneaky(np.eye(2))
    assert np.linalg.inv(np.eye(2)).shape == (2, 2)


def test_forbid_calls_torch_function_and_tensor_method():
    torch = pytest.importorskip("torch")
    relu, had_own_relu = torch.nn.functional.relu, "relu" in vars(torch.Tensor)
    x = torch.tensor([-1.0, 2.0])
    targets = ("torch.nn.functional.relu", "torch.Tensor.relu")
    with forbid_calls(*targets):
        assert_close(torch.clamp(x, min=0), [0.0, 2.0])  # primitives are fine
    with pytest.raises(CheckFailed) as info, forbid_calls(*targets):
        torch.nn.functional.relu(x)
    assert str(info.value) == (
        "your answer called torch.nn.functional.relu; write it from primitive operations instead"
    )
    with pytest.raises(CheckFailed, match=r"called torch\.Tensor\.relu;"), forbid_calls(*targets):
        x.relu()
    assert torch.nn.functional.relu is relu
    assert ("relu" in vars(torch.Tensor)) == had_own_relu
    assert_close(x.relu(), [0.0, 2.0])


def test_forbid_calls_bad_target_restores_earlier_ones():
    original = np.linalg.inv
    with pytest.raises(ValueError, match="does not exist"):
        with forbid_calls("numpy.linalg.inv", "numpy.linalg.no_such_function"):
            pass
    assert np.linalg.inv is original
    with pytest.raises(ValueError, match="dotted path"):
        with forbid_calls("inv"):
            pass
    with pytest.raises(ValueError, match="no module"):
        with forbid_calls("no_such_module_xyz.f"):
            pass


# --- assert_raises ---------------------------------------------------------------------


def check_positive(x: float) -> float:
    if x <= 0:
        raise ValueError(f"x must be positive, got {x}")
    return x


def test_assert_raises_passes_and_returns_the_exception():
    exc = assert_raises(ValueError, check_positive, -1.0, match=r"positive, got -1")
    assert isinstance(exc, ValueError)
    assert_raises((TypeError, ValueError), check_positive, x=0.0)


def test_assert_raises_says_what_happened_instead():
    message = failure(assert_raises, ValueError, check_positive, 2.0)
    assert message == "check_positive() should raise ValueError but returned 2.0 instead"
    with pytest.raises(CheckFailed) as info:
        assert_raises(KeyError, check_positive, -3.0)
    assert str(info.value) == (
        "check_positive() should raise KeyError but raised ValueError: x must be positive, got -3.0"
    )
    assert isinstance(info.value.__cause__, ValueError)
    message = failure(assert_raises, ValueError, check_positive, -1.0, match="negative")
    assert "raised ValueError as it should, but its message" in message
    assert "does not match 'negative'" in message
    message = failure(assert_raises, ValueError, lambda: np.zeros(1000))
    assert len(message) < 200  # a long return value is shortened

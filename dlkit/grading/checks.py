"""Checks for nbgrader's graded test cells, with messages written for learners.

A graded cell calls a check on the learner's answer. A right answer passes quietly; a
wrong one raises :class:`CheckFailed` (an ``AssertionError``, so nbgrader marks the
cell failed and the traceback ends in ``CheckFailed: <message>``). The message says
what to fix in the learner's terms: which position, the expected and the actual value,
which shapes, which dtype::

    from dlkit.grading import assert_close

    assert_close(standardize(x), expected, name="standardize(x)")

Answers may be Python numbers, nested lists, NumPy arrays or torch tensors. torch is
never imported here: tensors are recognised by duck typing, so ``dlkit.grading``
imports without torch. Anything that is not numbers (``None``, strings, an object
whose ``__eq__`` always says True) fails; values are compared as NumPy arrays, never
with the answer's own ``==``. Gradient checks live in :mod:`dlkit.grading.gradients`,
:func:`~dlkit.grading.forbid.forbid_calls` in :mod:`dlkit.grading.forbid`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np

_NUMERIC_KINDS = frozenset("biufc")  # bool, int, uint, float, complex
_MAX_REPR = 80


class CheckFailed(AssertionError):
    """The learner's answer is wrong; the message says what to fix."""


def _is_torch_tensor(value: object) -> bool:
    return type(value).__module__.startswith("torch") and hasattr(value, "detach")


def _short_repr(value: object) -> str:
    try:
        text = " ".join(repr(value).split())
    except Exception:  # a hostile or broken __repr__ must not hide the real message
        text = f"<{type(value).__name__} object>"
    return text if len(text) <= _MAX_REPR else text[: _MAX_REPR - 3] + "..."


def _to_array(value: object, name: str, error: type[Exception] = CheckFailed) -> np.ndarray:
    """Return ``value`` as a numeric NumPy array, or raise ``error`` saying why it is not one."""
    if value is None:
        raise error(f"{name} is None: did you forget `return`?")
    try:
        if _is_torch_tensor(value):
            tensor = value.detach().cpu().resolve_conj()  # type: ignore[attr-defined]
            if str(tensor.dtype) == "torch.bfloat16":  # NumPy has no bfloat16
                tensor = tensor.float()
            array = np.asarray(tensor.numpy())
        else:
            array = np.asarray(value)
    except Exception as exc:
        raise error(
            f"{name} could not be read as numbers ({type(exc).__name__}: {exc}); "
            "return a number, a NumPy array or a torch tensor"
        ) from exc
    if array.dtype.kind not in _NUMERIC_KINDS:
        raise error(
            f"{name} is not numeric: got {_short_repr(value)} of type {type(value).__name__} "
            f"(NumPy reads it as dtype {array.dtype}); return a number, a NumPy array or a "
            "torch tensor"
        )
    return array


def _format_shape(shape: tuple[int | None, ...]) -> str:
    axes = ["any" if n is None else str(n) for n in shape]
    return "(" + ", ".join(axes) + ("," if len(axes) == 1 else "") + ")"


def _format_index(index: tuple[int, ...]) -> str:
    return f"index {index[0]}" if len(index) == 1 else f"index {index}"


def _shape_mismatch(name: str, got: tuple[int, ...], want: tuple[int, ...]) -> str:
    if got == ():
        text = f"{name} is a scalar (shape ()) but expected an array of shape {want}"
    elif want == ():
        text = f"{name} has shape {got} but expected a scalar (shape ())"
    else:
        text = f"{name} has shape {got} but expected {want}"
    if [n for n in got if n != 1] == [n for n in want if n != 1]:
        hint = "an axis of length 1 is extra or missing (check keepdims, squeeze or reshape)"
    elif len(got) == 2 and got == want[::-1]:
        hint = "the axes are swapped; is it transposed?"
    elif np.prod(got) == np.prod(want):
        hint = f"the number of elements matches ({int(np.prod(got))}) but not their layout"
    else:
        return text + "."
    return f"{text}: {hint}."


def _describe_mismatch(
    got: np.ndarray, want: np.ndarray, index: tuple[int, ...], rtol: float, atol: float
) -> str:
    g, w = got[index], want[index]  # original dtypes, so float32 prints as 0.1, not 0.100000001
    a, e = complex(g), complex(w)
    if np.isnan(a) and not np.isnan(e):
        return f"expected {w!s}, got NaN"
    if not (np.isfinite(a) and np.isfinite(e)):
        return f"expected {w!s}, got {g!s}"
    diff, tol = abs(a - e), atol + rtol * abs(e)
    return (
        f"expected {w!s}, got {g!s} (|difference| {diff:.3g} > tolerance {tol:.1e} = "
        f"atol {atol:g} + rtol {rtol:g} × |expected|)"
    )


def assert_close(
    actual: object,
    expected: object,
    *,
    rtol: float = 1e-5,
    atol: float = 1e-8,
    name: str = "result",
) -> None:
    r"""Check that ``actual`` equals ``expected`` elementwise within a tolerance.

    An element passes when :math:`|a - e| \le \mathrm{atol} + \mathrm{rtol} \cdot |e|`,
    the criterion of :func:`numpy.isclose` (asymmetric: the tolerance scales with the
    expected value). Shapes must be equal: nothing is broadcast, and a scalar never
    matches an array of shape ``(1,)``. NaN in both at the same position counts as
    equal (``equal_nan=True``), as do infinities of the same sign; NaN or inf where a
    finite number is expected is a mismatch, reported as such.

    Args:
        actual: the learner's answer: a number, nested list, NumPy array or torch tensor.
        expected: the reference answer, in any of the same forms.
        rtol: relative tolerance.
        atol: absolute tolerance.
        name: how the message refers to ``actual``, e.g. ``"standardize(x)"``.

    Raises:
        CheckFailed: naming the shapes, or the number of wrong positions with the first
            and the largest mismatch.
    """
    if rtol < 0 or atol < 0:
        raise ValueError(f"rtol and atol must be >= 0, got rtol={rtol}, atol={atol}")
    got = _to_array(actual, name)
    want = _to_array(expected, "the expected value", error=TypeError)
    if got.shape != want.shape:
        raise CheckFailed(_shape_mismatch(name, got.shape, want.shape))
    common = np.result_type(got.dtype, want.dtype, np.float64)  # float64 or complex128
    a, e = got.astype(common), want.astype(common)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(a - e)
        finite = np.isfinite(a) & np.isfinite(e)
        same_special = (a == e) | (np.isnan(a) & np.isnan(e))
        bad = ~np.where(finite, diff <= atol + rtol * np.abs(e), same_special)
    n_bad = int(bad.sum())
    if n_bad == 0:
        return
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    score = np.where(bad, np.where(finite, diff, np.inf), -1.0)
    worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(score)), bad.shape))
    if bad.ndim == 0:
        parts = [f"{name} has the wrong value: {_describe_mismatch(got, want, (), rtol, atol)}."]
    else:
        parts = [
            f"{name} has wrong values at {n_bad} of {bad.size} positions.",
            f"First mismatch at {_format_index(first)}: "
            f"{_describe_mismatch(got, want, first, rtol, atol)}.",
        ]
        if worst != first:
            parts.append(
                f"Largest mismatch at {_format_index(worst)}: "
                f"{_describe_mismatch(got, want, worst, rtol, atol)}."
            )
    n_nan = int((bad & np.isnan(a) & np.isfinite(e)).sum())
    n_inf = int((bad & np.isinf(a) & np.isfinite(e)).sum())
    if n_nan or n_inf:
        found = " and ".join(
            f"{kind} at {n} position{'s' if n > 1 else ''}"
            for kind, n in (("NaN", n_nan), ("inf", n_inf))
            if n
        )
        parts.append(
            f"{name} has {found} where a finite number was expected "
            "(look for log(0), division by zero or overflow)."
        )
    raise CheckFailed(" ".join(parts))


def _shape_of(actual: object, name: str) -> tuple[int, ...]:
    if actual is None:
        raise CheckFailed(f"{name} is None: did you forget `return`?")
    shape = getattr(actual, "shape", None)
    try:
        return tuple(int(n) for n in shape)  # type: ignore[union-attr]
    except Exception:
        hint = " (convert it with np.asarray or torch.tensor)" if isinstance(actual, list) else ""
        raise CheckFailed(
            f"{name} is a {type(actual).__name__}, which has no shape{hint}; "
            "expected a NumPy array or a torch tensor"
        ) from None


def assert_shape(
    actual: object, expected_shape: tuple[int | None, ...], *, name: str = "result"
) -> None:
    """Check that ``actual.shape`` matches ``expected_shape``, where ``None`` matches any length.

    Args:
        actual: a NumPy array or torch tensor (anything with a ``.shape``).
        expected_shape: one entry per axis: an ``int`` length, or ``None`` for any length.
        name: how the message refers to ``actual``.

    Raises:
        CheckFailed: e.g. "result has shape (3, 4) but expected (3, 5): axis 1 has
            length 4, expected 5."
    """
    want = tuple(expected_shape)
    if not all(n is None or (isinstance(n, int | np.integer) and n >= 0) for n in want):
        raise TypeError(f"expected_shape must hold lengths >= 0 or None, got {want!r}")
    got = _shape_of(actual, name)
    text = f"{name} has shape {_format_shape(got)} but expected {_format_shape(want)}"
    if len(got) != len(want):
        raise CheckFailed(f"{text}: it has {len(got)} axes instead of {len(want)}.")
    for axis, (g, w) in enumerate(zip(got, want, strict=True)):
        if w is not None and g != w:
            raise CheckFailed(f"{text}: axis {axis} has length {g}, expected {w}.")


def assert_dtype(actual: object, expected: Any, *, name: str = "result") -> None:
    """Check the dtype of an array or tensor.

    ``expected`` is a torch dtype (``torch.float32``, or the string ``"torch.float32"``),
    matched by ``str`` and only by a torch tensor; or anything ``numpy.dtype`` accepts
    (``"float64"``, ``np.int32``), matched by name by a NumPy array and by a torch tensor
    alike (``"float32"`` accepts ``torch.float32``).

    Raises:
        CheckFailed: naming the actual and the expected dtype.
    """
    if expected is None:  # np.dtype(None) would silently mean float64
        raise TypeError("assert_dtype needs an expected dtype, got None")
    torch_expected = type(expected).__module__.startswith("torch") or (
        isinstance(expected, str) and expected.startswith("torch.")
    )
    want = str(expected) if torch_expected else np.dtype(expected).name
    if actual is None:
        raise CheckFailed(f"{name} is None: did you forget `return`?")
    dtype = getattr(actual, "dtype", None)
    if dtype is None:
        raise CheckFailed(
            f"{name} is a {type(actual).__name__}, which has no dtype; "
            f"expected a NumPy array or a torch tensor of dtype {want}"
        )
    got = str(dtype)
    if got == want or (not torch_expected and got.removeprefix("torch.") == want):
        return
    numpy_for_torch = torch_expected and not got.startswith("torch.")
    where = " (a NumPy dtype; a torch tensor was expected)" if numpy_for_torch else ""
    raise CheckFailed(
        f"{name} has dtype {got}{where} but expected {want}; "
        "convert with .astype(...) for NumPy or .to(...) for torch"
    )


def _type_names(exc_type: type[BaseException] | tuple[type[BaseException], ...]) -> str:
    types = exc_type if isinstance(exc_type, tuple) else (exc_type,)
    return " or ".join(t.__name__ for t in types)


def assert_raises(
    exc_type: type[BaseException] | tuple[type[BaseException], ...],
    fn: Callable[..., object],
    /,
    *args: object,
    match: str | None = None,
    **kwargs: object,
) -> BaseException:
    """Check that ``fn(*args, **kwargs)`` raises ``exc_type``; return the exception.

    Args:
        exc_type: the exception class (or a tuple of classes) that must be raised.
        fn: the learner's function; ``args`` and ``kwargs`` are passed to it.
        match: a regular expression that must be found (``re.search``) in the message.

    Raises:
        CheckFailed: saying what happened instead: the value returned, or the other
            exception raised with its message (chained, so its traceback is shown too).
    """
    fn_name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
    expected = _type_names(exc_type)
    try:
        result = fn(*args, **kwargs)
    except exc_type as exc:
        if match is not None and not re.search(match, str(exc)):
            raise CheckFailed(
                f"{fn_name}() raised {type(exc).__name__} as it should, but its message "
                f"{str(exc)!r} does not match {match!r}"
            ) from exc
        return exc
    except Exception as exc:
        raise CheckFailed(
            f"{fn_name}() should raise {expected} but raised {type(exc).__name__}: {exc}"
        ) from exc
    raise CheckFailed(
        f"{fn_name}() should raise {expected} but returned {_short_repr(result)} instead"
    )

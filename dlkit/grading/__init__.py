"""Checks used inside nbgrader's graded test cells, with messages written for learners.

Each check returns quietly on a right answer and raises :class:`CheckFailed` (an
``AssertionError``) whose message says what to fix. Importing this package does not
import torch; tensors are recognised by duck typing.
"""

from dlkit.grading.checks import (
    CheckFailed,
    assert_close,
    assert_dtype,
    assert_raises,
    assert_shape,
)
from dlkit.grading.forbid import forbid_calls
from dlkit.grading.gradients import check_gradient, numerical_gradient
from dlkit.grading.kernel import prepare_kernel
from dlkit.grading.shortcuts import assert_no_shortcuts

__all__ = [
    "CheckFailed",
    "assert_close",
    "assert_dtype",
    "assert_no_shortcuts",
    "assert_raises",
    "assert_shape",
    "check_gradient",
    "forbid_calls",
    "numerical_gradient",
    "prepare_kernel",
]

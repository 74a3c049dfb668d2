r"""Shape rules behind the :class:`~dlkit.scratch.tensor.Tensor` ops: broadcasting and matmul.

**Broadcasting and its gradient.** NumPy aligns shapes from the right and stretches
axes of size 1 (or missing axes) to match, e.g. ``(4, 3) + (3,) -> (4, 3)``. A stretched
input was *used once per copy*, so by the chain rule its gradient is the upstream
gradient **summed over every broadcast axis**:

.. math::

    z_{ij} = a_{ij} + b_j \quad\Longrightarrow\quad
    \frac{\partial L}{\partial b_j} = \sum_i \frac{\partial L}{\partial z_{ij}} .

:func:`unbroadcast` does that sum, and it is what every elementwise op's backward
calls before handing a gradient to an input.
"""

from __future__ import annotations

import numpy as np


def broadcast_shape(a: tuple[int, ...], b: tuple[int, ...], op: str) -> tuple[int, ...]:
    """The shape of ``a (op) b`` under NumPy broadcasting, or a ``ValueError`` naming both."""
    try:
        return np.broadcast_shapes(a, b)
    except ValueError:
        raise ValueError(
            f"cannot broadcast shapes {a} and {b} for '{op}': aligned from the right, each "
            "pair of axes must be equal or one of them 1"
        ) from None


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` over the axes that broadcasting stretched, giving an array of ``shape``.

    ``grad`` has the broadcast output's shape; ``shape`` is the input's. Leading axes
    that the input lacked and axes where the input had size 1 are summed. Returns
    ``grad`` itself (no copy) when nothing was broadcast.
    """
    if grad.shape == shape:
        return grad
    lead = grad.ndim - len(shape)  # axes the input did not have at all
    if lead < 0:
        raise ValueError(f"a gradient of shape {grad.shape} cannot belong to shape {shape}")
    stretched = tuple(i + lead for i, n in enumerate(shape) if n == 1 and grad.shape[i + lead] != 1)
    summed = grad.sum(axis=tuple(range(lead)) + stretched, keepdims=True)
    return summed.reshape(shape)  # drop the (now size-1) leading axes


def matmul_shapes(a: tuple[int, ...], b: tuple[int, ...]) -> None:
    """Raise a ``ValueError`` naming both shapes unless ``a @ b`` is defined."""
    if not a or not b:
        raise ValueError(f"matmul needs at least 1-D operands, got shapes {a} and {b}")
    inner_a = a[-1]
    inner_b = b[0] if len(b) == 1 else b[-2]
    if inner_a != inner_b:
        raise ValueError(
            f"matmul shape mismatch: {a} @ {b}; the last axis of the left operand "
            f"({inner_a}) must equal the {'only' if len(b) == 1 else 'second-to-last'} axis "
            f"of the right operand ({inner_b})"
        )
    if len(a) > 2 and len(b) > 2:
        broadcast_shape(a[:-2], b[:-2], "@ (batch axes)")


def matmul_backward(
    a: np.ndarray, b: np.ndarray, grad: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    r"""Gradients of :math:`L` w.r.t. ``a`` and ``b`` for :math:`Z = A B`, given ``grad`` = ∂L/∂Z.

    .. math::

        \frac{\partial L}{\partial A} = \frac{\partial L}{\partial Z} B^\top, \qquad
        \frac{\partial L}{\partial B} = A^\top \frac{\partial L}{\partial Z}

    1-D operands are treated as a row (left) or column (right) vector, as ``np.matmul``
    does, and batch axes are unbroadcast.
    """
    a2 = a[None, :] if a.ndim == 1 else a  # (1, n) for a vector on the left
    b2 = b[:, None] if b.ndim == 1 else b  # (n, 1) for a vector on the right
    # The output with those axes put back: (..., m, p) where m or p may be 1.
    out_shape = (*np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2]), a2.shape[-2], b2.shape[-1])
    g2 = grad.reshape(out_shape)
    grad_a = np.matmul(g2, np.swapaxes(b2, -1, -2))  # (..., m, n)
    grad_b = np.matmul(np.swapaxes(a2, -1, -2), g2)  # (..., n, p)
    grad_a = unbroadcast(grad_a, a2.shape).reshape(a.shape)
    grad_b = unbroadcast(grad_b, b2.shape).reshape(b.shape)
    return grad_a, grad_b

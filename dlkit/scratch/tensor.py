r"""An array autograd engine: :class:`Tensor`, a NumPy array that records how it was made.

Each op computes its result with NumPy and stores a *backward function*: given
:math:`G = \partial L / \partial \text{out}` (same shape as the output) it returns
:math:`\partial L / \partial \text{input}` for every input, each with that input's
shape. Elementwise ops sum :math:`G` over broadcast axes
(:func:`~dlkit.scratch.ops.unbroadcast`). :meth:`Tensor.backward` walks the graph in
reverse topological order and adds up the gradient contributions reaching each node.

Gradient accumulation (as in PyTorch): ``backward()`` **adds** into the ``grad`` of
each leaf tensor with ``requires_grad=True`` (parameters), so gradients from several
backward passes sum up (useful for gradient accumulation over micro-batches, a bug
otherwise). Call :meth:`Tensor.zero_grad` on every parameter before each training
step. Intermediate tensors keep no ``grad`` unless :meth:`Tensor.retain_grad` was
called on them; theirs is overwritten by each pass.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from dlkit.scratch.ops import broadcast_shape, matmul_backward, matmul_shapes, unbroadcast

Backward = Callable[[np.ndarray], tuple[np.ndarray | None, ...]]


class Tensor:
    """An n-dimensional float array with reverse-mode automatic differentiation.

    Args:
        data: anything ``np.asarray`` accepts. Floating dtypes are kept (float32 stays
            float32); integers and booleans become float64.
        requires_grad: whether ``backward()`` should compute ``grad`` for this tensor.
    """

    __array_ufunc__ = None  # `ndarray + Tensor` calls Tensor.__radd__ instead of NumPy
    __slots__ = ("_backward", "_parents", "_retain", "data", "grad", "op", "requires_grad")

    def __init__(self, data: Any, requires_grad: bool = False) -> None:
        if isinstance(data, Tensor):
            data = data.data
        array = np.asarray(data)
        if array.dtype.kind in "biu":
            array = array.astype(np.float64)
        elif array.dtype.kind != "f":
            raise TypeError(f"Tensor needs real numbers, got dtype {array.dtype}")
        self.data: np.ndarray = array
        self.grad: np.ndarray | None = None
        self.requires_grad = bool(requires_grad)
        self.op = ""
        self._parents: tuple[Tensor, ...] = ()
        self._backward: Backward | None = None
        self._retain = False

    @staticmethod
    def _result(
        data: np.ndarray, parents: tuple[Tensor, ...], op: str, backward: Backward
    ) -> Tensor:
        """A new tensor from an op; the graph is recorded only if an input needs a gradient."""
        out = Tensor.__new__(Tensor)
        out.data = np.asarray(data)
        out.grad = None
        out.op = op
        out._retain = False
        out.requires_grad = any(p.requires_grad for p in parents)
        out._parents = parents if out.requires_grad else ()
        out._backward = backward if out.requires_grad else None
        return out

    # ---- array-like conveniences ----------------------------------------------------------

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def is_leaf(self) -> bool:
        """True when no recorded op produced this tensor (inputs, parameters)."""
        return self._backward is None

    def __repr__(self) -> str:
        extra = f", op={self.op!r}" if self.op else ""
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({np.array2string(self.data, precision=4)}{grad}{extra})"

    def numpy(self) -> np.ndarray:
        """The data as a NumPy array (not a copy)."""
        return self.data

    def item(self) -> float:
        """The value of a one-element tensor as a Python float."""
        if self.data.size != 1:
            raise ValueError(f"item() needs a one-element tensor, got shape {self.shape}")
        return float(self.data.reshape(()))

    def detach(self) -> Tensor:
        """The same data, cut off from the graph (no gradient flows through it)."""
        return Tensor(self.data)

    def _as_operand(self, other: Any) -> Tensor:
        if isinstance(other, Tensor):
            return other
        if isinstance(other, int | float):  # a Python number keeps this tensor's dtype
            return Tensor(np.asarray(other, dtype=self.data.dtype))
        return Tensor(other)

    # ---- elementwise arithmetic (broadcasting) ------------------------------------------

    def _binary(self, other: Any, op: str, forward: Callable, backward: Callable) -> Tensor:
        a, b = self, self._as_operand(other)
        try:
            data = forward(a.data, b.data)
        except ValueError:
            broadcast_shape(a.shape, b.shape, op)  # raises, naming both shapes
            raise
        return Tensor._result(data, (a, b), op, backward(a, b))

    def __add__(self, other: Any) -> Tensor:
        def backward(a: Tensor, b: Tensor) -> Backward:
            return lambda g: (unbroadcast(g, a.shape), unbroadcast(g, b.shape))

        return self._binary(other, "+", np.add, backward)

    def __sub__(self, other: Any) -> Tensor:
        def backward(a: Tensor, b: Tensor) -> Backward:
            return lambda g: (unbroadcast(g, a.shape), unbroadcast(-g, b.shape))

        return self._binary(other, "-", np.subtract, backward)

    def __mul__(self, other: Any) -> Tensor:
        def backward(a: Tensor, b: Tensor) -> Backward:
            # ∂(ab)/∂a = b, ∂(ab)/∂b = a
            return lambda g: (
                unbroadcast(g * b.data, a.shape) if a.requires_grad else None,
                unbroadcast(g * a.data, b.shape) if b.requires_grad else None,
            )

        return self._binary(other, "*", np.multiply, backward)

    def __truediv__(self, other: Any) -> Tensor:
        def backward(a: Tensor, b: Tensor) -> Backward:
            # ∂(a/b)/∂a = 1/b, ∂(a/b)/∂b = -a/b²
            return lambda g: (
                unbroadcast(g / b.data, a.shape) if a.requires_grad else None,
                unbroadcast(-g * a.data / b.data**2, b.shape) if b.requires_grad else None,
            )

        return self._binary(other, "/", np.divide, backward)

    def __radd__(self, other: Any) -> Tensor:
        return self._as_operand(other) + self

    def __rsub__(self, other: Any) -> Tensor:
        return self._as_operand(other) - self

    def __rmul__(self, other: Any) -> Tensor:
        return self._as_operand(other) * self

    def __rtruediv__(self, other: Any) -> Tensor:
        return self._as_operand(other) / self

    def __neg__(self) -> Tensor:
        return Tensor._result(-self.data, (self,), "neg", lambda g: (-g,))

    def __pow__(self, exponent: float) -> Tensor:
        if isinstance(exponent, bool) or not isinstance(exponent, int | float):
            raise TypeError(
                f"Tensor ** exponent supports a number exponent, got {type(exponent).__name__}"
            )
        a = self
        if not float(exponent).is_integer() and np.any(a.data < 0):
            raise ValueError(
                f"a negative base with the non-integer exponent {exponent} has no real power; "
                f"the tensor of shape {a.shape} holds {a.data.min():.6g}"
            )
        # ∂(a^n)/∂a = n a^(n-1)
        return Tensor._result(
            a.data**exponent,
            (a,),
            f"**{exponent:g}",
            lambda g: (g * exponent * a.data ** (exponent - 1),),
        )

    # ---- matrix product -----------------------------------------------------------------

    def __matmul__(self, other: Any) -> Tensor:
        a, b = self, self._as_operand(other)
        matmul_shapes(a.shape, b.shape)

        def backward(g: np.ndarray) -> tuple[np.ndarray | None, ...]:
            grad_a, grad_b = matmul_backward(a.data, b.data, g)
            return (grad_a if a.requires_grad else None, grad_b if b.requires_grad else None)

        return Tensor._result(np.matmul(a.data, b.data), (a, b), "@", backward)

    def __rmatmul__(self, other: Any) -> Tensor:
        return self._as_operand(other) @ self

    # ---- reductions -----------------------------------------------------------------------

    def sum(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        """Sum over ``axis`` (all axes by default); the gradient is copied back along it."""
        a = self
        axes = _normalize_axes(axis, a.ndim)

        def backward(g: np.ndarray) -> tuple[np.ndarray]:
            if not keepdims:
                g = np.expand_dims(g, axes)  # put the summed axes back as size 1
            return (np.broadcast_to(g, a.shape),)  # ∂(Σ a)/∂a_i = 1 for every i summed

        return Tensor._result(a.data.sum(axis=axes, keepdims=keepdims), (a,), "sum", backward)

    def mean(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        """Mean over ``axis``: the sum divided by the number of elements averaged."""
        axes = _normalize_axes(axis, self.ndim)
        count = int(np.prod([self.shape[i] for i in axes])) if axes else 1
        return self.sum(axis=axes, keepdims=keepdims) / count

    # ---- elementwise functions ------------------------------------------------------------

    def exp(self) -> Tensor:
        out = np.exp(self.data)
        return Tensor._result(out, (self,), "exp", lambda g: (g * out,))  # (e^a)' = e^a

    def log(self) -> Tensor:
        a = self
        if not np.all(a.data > 0):
            where = np.unravel_index(int(np.argmin(a.data)), a.shape)
            raise ValueError(
                f"log needs positive entries; got {a.data[where]:.6g} at index {where} of shape {a.shape}"
            )
        return Tensor._result(np.log(a.data), (a,), "log", lambda g: (g / a.data,))  # (ln a)' = 1/a

    def tanh(self) -> Tensor:
        t = np.tanh(self.data)
        return Tensor._result(t, (self,), "tanh", lambda g: (g * (1 - t * t),))  # 1 - tanh²

    def sigmoid(self) -> Tensor:
        # σ(a) = 1 / (1 + e^{-a}), computed from e^{-|a|} ≤ 1 so it never overflows.
        e = np.exp(-np.abs(self.data))
        s = np.where(self.data >= 0, 1 / (1 + e), e / (1 + e))
        return Tensor._result(s, (self,), "sigmoid", lambda g: (g * s * (1 - s),))  # σ(1 - σ)

    def relu(self) -> Tensor:
        mask = self.data > 0  # relu'(a) = 1 for a > 0, else 0 (0 at a = 0, as PyTorch)
        return Tensor._result(self.data * mask, (self,), "relu", lambda g: (g * mask,))

    # ---- shape ops --------------------------------------------------------------------------

    def reshape(self, *shape: int | Sequence[int]) -> Tensor:
        """Same data in a new shape (``-1`` infers one axis); the gradient is reshaped back."""
        if len(shape) == 1 and not isinstance(shape[0], int):
            shape = tuple(shape[0])
        a = self
        try:
            data = a.data.reshape(shape)
        except ValueError:
            raise ValueError(f"cannot reshape a tensor of shape {a.shape} into {shape}") from None
        return Tensor._result(data, (a,), "reshape", lambda g: (g.reshape(a.shape),))

    def transpose(self, *axes: int) -> Tensor:
        """Permute axes (reverse them by default); the gradient is permuted back."""
        perm = tuple(axes[0]) if len(axes) == 1 and not isinstance(axes[0], int) else axes
        perm = perm or tuple(reversed(range(self.ndim)))
        if sorted(perm) != list(range(self.ndim)):
            raise ValueError(f"transpose axes {perm} are not a permutation of {self.ndim} axes")
        inverse = tuple(np.argsort(perm))
        return Tensor._result(
            self.data.transpose(perm), (self,), "transpose", lambda g: (g.transpose(inverse),)
        )

    @property
    def T(self) -> Tensor:
        return self.transpose()

    def __getitem__(self, index: Any) -> Tensor:
        """NumPy indexing. Integer-array indices may repeat: their gradients add up."""
        a = self
        index = _plain_index(index)
        advanced = any(
            isinstance(i, np.ndarray | list)
            for i in (index if isinstance(index, tuple) else (index,))
        )

        def backward(g: np.ndarray) -> tuple[np.ndarray]:
            grad = np.zeros_like(a.data)
            if advanced:
                np.add.at(grad, index, g)  # unbuffered: repeated indices accumulate
            else:
                grad[index] = g  # basic indexing picks each element at most once
            return (grad,)

        return Tensor._result(a.data[index], (a,), "index", backward)

    # ---- backpropagation --------------------------------------------------------------------

    def topological_order(self) -> list[Tensor]:
        """The tensors this one was computed from, each after its parents (self last)."""
        order: list[Tensor] = []
        seen: set[int] = set()
        stack: list[tuple[Tensor, bool]] = [(self, False)]
        while stack:
            node, parents_done = stack.pop()
            if parents_done:
                order.append(node)
            elif id(node) not in seen:
                seen.add(id(node))
                stack.append((node, True))
                stack.extend((p, False) for p in node._parents if id(p) not in seen)
        return order

    def backward(self, grad: Any = None) -> None:
        """Compute ∂self/∂leaf and **add** it to ``leaf.grad`` for every leaf needing one.

        Args:
            grad: ∂L/∂self when ``self`` is not a scalar (same shape as ``self``); for a
                one-element tensor it defaults to 1.
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward() on a tensor that does not require grad: none of the tensors it "
                "was computed from has requires_grad=True"
            )
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward() on a non-scalar tensor of shape {self.shape} needs a gradient "
                    f"argument of that shape (∂L/∂this tensor); only a one-element tensor "
                    "gets the default gradient 1"
                )
            seed = np.ones_like(self.data)
        else:
            seed = np.asarray(grad.data if isinstance(grad, Tensor) else grad, dtype=self.dtype)
            if seed.shape != self.shape:
                raise ValueError(
                    f"backward(grad): grad has shape {seed.shape} but the tensor has shape "
                    f"{self.shape}; they must match"
                )
        pending: dict[int, np.ndarray] = {id(self): seed}  # ∂self/∂node, summed over paths
        for node in reversed(self.topological_order()):
            g = pending.pop(id(node), None)
            if g is None:
                continue
            if node._backward is None:  # a leaf: accumulate across backward() calls
                node.grad = np.array(g, dtype=node.dtype) if node.grad is None else node.grad + g
                continue
            if node._retain:
                node.grad = np.array(g)
            for parent, parent_grad in zip(node._parents, node._backward(g), strict=True):
                if parent_grad is None or not parent.requires_grad:
                    continue
                key = id(parent)
                pending[key] = parent_grad if key not in pending else pending[key] + parent_grad

    def retain_grad(self) -> Tensor:
        """Keep this intermediate tensor's gradient after ``backward()`` (for inspection)."""
        self._retain = True
        return self

    def zero_grad(self) -> None:
        """Forget the accumulated gradient (``grad = None``, like PyTorch's ``set_to_none``)."""
        self.grad = None


def _normalize_axes(axis: int | Sequence[int] | None, ndim: int) -> tuple[int, ...]:
    """``axis`` as a sorted tuple of non-negative axes (all axes for ``None``)."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    for ax in axes:
        if not -ndim <= ax < max(ndim, 1):
            raise ValueError(f"axis {ax} is out of range for a tensor with {ndim} axes")
    return tuple(sorted(ax % max(ndim, 1) for ax in axes))


def _plain_index(index: Any) -> Any:
    """Replace Tensors inside an index by their integer arrays."""

    def plain(i: Any) -> Any:
        if isinstance(i, Tensor):
            return i.data.astype(np.intp)
        if isinstance(i, list):
            return np.asarray(i)
        return i

    return tuple(plain(i) for i in index) if isinstance(index, tuple) else plain(index)

r"""A scalar autograd engine: each :class:`Value` is one node of a computational graph.

Every operation on ``Value`` objects returns a new ``Value`` that remembers its inputs
(``parents``), the name of the operation (``op``) and how to send a gradient back to
the inputs (the *local derivatives* of the chain rule). For :math:`L` a function of
:math:`z = f(x, y)`,

.. math::

    \frac{\partial L}{\partial x} \mathrel{+}= \frac{\partial L}{\partial z}
    \frac{\partial z}{\partial x}, \qquad
    \frac{\partial L}{\partial y} \mathrel{+}= \frac{\partial L}{\partial z}
    \frac{\partial z}{\partial y},

with ``+=`` because a value used twice receives a gradient from each use.
:meth:`Value.backward` visits the graph in reverse topological order, so a node's
gradient is complete before it is passed on.

Gradient accumulation (as in PyTorch): each ``backward()`` *adds* to the ``grad`` of
every leaf (a ``Value`` that no operation produced, such as a weight). Call
:meth:`Value.zero_grad` (or :func:`zero_grad` on a list) before the next backward pass,
or the gradients of several passes pile up. The gradients of intermediate nodes are
recomputed from zero by every ``backward()`` and kept for inspection.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

Number = int | float


class Value:
    """A scalar that records the operations applied to it and can backpropagate.

    Attributes:
        data: the number this node holds (a Python float).
        grad: :math:`\\partial L / \\partial \\text{this node}` after ``L.backward()``.
        parents: the ``Value`` inputs of the operation that produced this node (empty
            for a leaf).
        op: the operation's name, e.g. ``"*"`` or ``"tanh"`` (``""`` for a leaf).
        label: an optional name used when the graph is drawn.
    """

    __slots__ = ("_local_grads", "data", "grad", "label", "op", "parents")

    def __init__(
        self,
        data: Number,
        parents: tuple[Value, ...] = (),
        op: str = "",
        local_grads: tuple[float, ...] = (),
        *,
        label: str = "",
    ) -> None:
        if isinstance(data, Value):
            raise TypeError("Value(data) needs a number, got a Value; use it directly")
        self.data = float(data)
        self.grad = 0.0
        self.parents = parents
        self.op = op
        self.label = label
        # ∂(this node)/∂(parent) for each parent, evaluated at the forward values.
        self._local_grads = local_grads

    def __repr__(self) -> str:
        name = f"{self.label}=" if self.label else ""
        return f"Value({name}{self.data:.6g}, grad={self.grad:.6g})"

    @property
    def is_leaf(self) -> bool:
        """True for a node no operation produced (an input or a parameter)."""
        return not self.parents

    # ---- operations: forward value and local derivatives ------------------------------

    def __add__(self, other: Value | Number) -> Value:
        other = _as_value(other)
        return Value(self.data + other.data, (self, other), "+", (1.0, 1.0))  # ∂(a+b)/∂a = 1

    def __mul__(self, other: Value | Number) -> Value:
        other = _as_value(other)
        # ∂(ab)/∂a = b, ∂(ab)/∂b = a
        return Value(self.data * other.data, (self, other), "*", (other.data, self.data))

    def __pow__(self, exponent: Number) -> Value:
        if not isinstance(exponent, int | float):
            raise TypeError(f"Value ** exponent needs a number exponent, got {type(exponent)}")
        if self.data < 0 and not float(exponent).is_integer():
            raise ValueError(f"{self.data} ** {exponent} has no real value")
        # ∂(a^n)/∂a = n a^(n-1)
        return Value(
            self.data**exponent,
            (self,),
            f"**{exponent:g}",
            (exponent * self.data ** (exponent - 1),),
        )

    def __neg__(self) -> Value:
        return Value(-self.data, (self,), "neg", (-1.0,))  # ∂(-a)/∂a = -1

    def __sub__(self, other: Value | Number) -> Value:
        other = _as_value(other)
        return Value(self.data - other.data, (self, other), "-", (1.0, -1.0))

    def __truediv__(self, other: Value | Number) -> Value:
        other = _as_value(other)
        if other.data == 0:
            raise ZeroDivisionError("Value division by a Value holding 0")
        # ∂(a/b)/∂a = 1/b, ∂(a/b)/∂b = -a/b²
        return Value(
            self.data / other.data,
            (self, other),
            "/",
            (1.0 / other.data, -self.data / other.data**2),
        )

    def __radd__(self, other: Number) -> Value:
        return self + other

    def __rmul__(self, other: Number) -> Value:
        return self * other

    def __rsub__(self, other: Number) -> Value:
        return _as_value(other) - self

    def __rtruediv__(self, other: Number) -> Value:
        return _as_value(other) / self

    def exp(self) -> Value:
        out = math.exp(self.data)
        return Value(out, (self,), "exp", (out,))  # ∂e^a/∂a = e^a

    def log(self) -> Value:
        if self.data <= 0:
            raise ValueError(f"log needs a positive Value, got {self.data}")
        return Value(math.log(self.data), (self,), "log", (1.0 / self.data,))  # ∂ln a/∂a = 1/a

    def tanh(self) -> Value:
        t = math.tanh(self.data)
        return Value(t, (self,), "tanh", (1.0 - t * t,))  # ∂tanh a/∂a = 1 - tanh² a

    def sigmoid(self) -> Value:
        # σ(a) = 1 / (1 + e^{-a}) from z = e^{-|a|} ≤ 1, which never overflows
        z = math.exp(-abs(self.data))
        s = 1.0 / (1.0 + z) if self.data >= 0 else z / (1.0 + z)
        return Value(s, (self,), "sigmoid", (s * (1.0 - s),))  # ∂σ(a)/∂a = σ(1 - σ)

    def relu(self) -> Value:
        # ∂relu(a)/∂a = 1 for a > 0, else 0 (PyTorch's choice at a = 0 too)
        return Value(max(self.data, 0.0), (self,), "relu", (float(self.data > 0),))

    # ---- backpropagation ---------------------------------------------------------------

    def topological_order(self) -> list[Value]:
        """Every node this one depends on, each after all of its parents (self last)."""
        order: list[Value] = []
        seen: set[int] = set()
        stack: list[tuple[Value, bool]] = [(self, False)]
        while stack:  # iterative depth-first search: deep graphs do not hit the recursion limit
            node, parents_done = stack.pop()
            if parents_done:
                order.append(node)
                continue
            if id(node) in seen:
                continue
            seen.add(id(node))
            stack.append((node, True))
            stack.extend((p, False) for p in node.parents if id(p) not in seen)
        return order

    def backward(self) -> None:
        """Backpropagate from this node: ``grad`` of every node becomes ∂self/∂node.

        Leaves *accumulate* (their ``grad`` is added to); intermediate nodes are reset
        to 0 first, so their ``grad`` belongs to this pass alone.
        """
        order = self.topological_order()
        for node in order:
            if not node.is_leaf:
                node.grad = 0.0
        self.grad += 1.0  # ∂self/∂self = 1 (self is a leaf only in the trivial graph)
        for node in reversed(order):  # each node is complete before it is passed on
            for parent, local in zip(node.parents, node._local_grads, strict=True):
                parent.grad += local * node.grad  # chain rule, summed over every use

    def zero_grad(self) -> None:
        """Set this node's ``grad`` to 0 (do it to parameters before each backward pass)."""
        self.grad = 0.0


def _as_value(x: Value | Number) -> Value:
    if isinstance(x, Value):
        return x
    if isinstance(x, bool) or not isinstance(x, int | float):
        raise TypeError(f"a Value combines with numbers or Values, got {type(x).__name__}")
    return Value(x, label=f"{x:g}")


def zero_grad(values: Iterable[Value]) -> None:
    """Set ``grad = 0`` on each of ``values`` (e.g. a model's parameters)."""
    for v in values:
        v.zero_grad()


def trace(root: Value) -> tuple[list[Value], list[tuple[Value, Value]]]:
    """The nodes of ``root``'s graph in topological order, and its (parent, child) edges."""
    nodes = root.topological_order()
    edges = [(p, node) for node in nodes for p in node.parents]
    return nodes, edges


def function_of_values(fn: Callable[..., Value], *xs: Number) -> tuple[float, list[float]]:
    """``fn`` at numbers ``xs`` and its gradient: ``(f(xs), [∂f/∂x_i])`` via :meth:`Value.backward`."""
    inputs = [Value(x) for x in xs]
    out = fn(*inputs)
    out.backward()
    return out.data, [v.grad for v in inputs]

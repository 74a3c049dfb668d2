r"""Step through the forward and backward pass of a small computational graph.

A graph of :class:`~dlkit.scratch.value.Value` nodes is drawn left (inputs) to right
(the output). Step :math:`k` of the **forward pass** computes the :math:`k`-th node in
topological order; step :math:`k` of the **backward pass** finishes the gradient of the
:math:`k`-th node in *reverse* topological order, by the chain rule summed over the
node's uses:

.. math::

    \frac{\partial L}{\partial v} = \sum_{c \,:\, v \to c}
    \frac{\partial L}{\partial c}\, \frac{\partial c}{\partial v} .

Nodes are grey before their value is known, blue once computed, orange once their
gradient is final; the current node has a red frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import ipywidgets as widgets
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from dlkit.scratch.value import Value, trace

_GREY, _BLUE, _ORANGE = "#e6e6e6", "#cfe2f3", "#fbd8a6"


@dataclass(frozen=True)
class Step:
    """One step of the stepper: which pass, which node, and what it computed (in words)."""

    phase: str  # "forward" or "backward"
    node: Value
    text: str


def example_graph() -> Value:
    r"""A neuron with a squared error: :math:`L = (\tanh(x_1 w_1 + x_2 w_2 + b) - t)^2`."""
    x1, w1 = Value(2.0, label="x1"), Value(-0.5, label="w1")
    x2, w2 = Value(1.0, label="x2"), Value(0.8, label="w2")
    b, t = Value(0.3, label="b"), Value(0.5, label="t")
    a1, a2 = x1 * w1, x2 * w2
    s = a1 + a2
    z = s + b
    o = z.tanh()
    e = o - t
    loss = e**2
    for node, name in [(a1, "a1"), (a2, "a2"), (s, "s"), (z, "z"), (o, "o"), (e, "e"), (loss, "L")]:
        node.label = name
    return loss


def display_names(root: Value) -> dict[int, str]:
    """Each node's ``label``, or ``v0, v1, ...`` in topological order for unlabelled nodes."""
    nodes, _ = trace(root)
    unnamed = (n for n in nodes if not n.label)
    auto = {id(n): f"v{i}" for i, n in enumerate(unnamed)}
    return {id(n): n.label or auto[id(n)] for n in nodes}


def _forward_text(node: Value, names: dict[int, str]) -> str:
    def _name(v: Value) -> str:
        return names[id(v)]

    if node.is_leaf:
        return f"forward: {_name(node)} = {node.data:.4g} is an input"
    args = ", ".join(f"{_name(p)}={p.data:.4g}" for p in node.parents)
    return f"forward: {_name(node)} = {node.op}({args}) = {node.data:.4g}"


def _backward_text(node: Value, children: list[Value], root: Value, names: dict[int, str]) -> str:
    def _name(v: Value) -> str:
        return names[id(v)]

    if node is root:
        return f"backward: ∂{_name(root)}/∂{_name(root)} = 1"
    terms = []
    for child in children:
        for parent, local in zip(child.parents, child._local_grads, strict=True):
            if parent is node:
                terms.append(f"{child.grad:.4g}·{local:.4g}")
    return (
        f"backward: ∂{_name(root)}/∂{_name(node)} = Σ ∂{_name(root)}/∂child · ∂child/∂{_name(node)}"
        f" = {' + '.join(terms)} = {node.grad:.4g}"
    )


def backprop_steps(root: Value) -> list[Step]:
    """The forward steps (topological order) then the backward steps (reverse order).

    Runs ``root.backward()`` after zeroing every gradient in the graph, so afterwards
    every node's ``grad`` is :math:`\\partial\\,\\text{root}/\\partial\\,\\text{node}`.
    """
    nodes, edges = trace(root)
    for node in nodes:
        node.zero_grad()
    root.backward()
    children: dict[int, list[Value]] = {id(n): [] for n in nodes}
    for parent, child in edges:
        if child not in children[id(parent)]:
            children[id(parent)].append(child)
    names = display_names(root)
    forward = [Step("forward", n, _forward_text(n, names)) for n in nodes]
    backward = [
        Step("backward", n, _backward_text(n, children[id(n)], root, names))
        for n in reversed(nodes)
    ]
    return forward + backward


def layout(root: Value) -> dict[int, tuple[float, float]]:
    """Position ``(x, y)`` of each node, keyed by ``id``.

    x: an operation sits one column right of its latest input; an input sits just left
    of its first use. y: each column is ordered by where its nodes are used, so edges
    cross little.
    """
    nodes, edges = trace(root)
    x: dict[int, int] = {}
    for node in nodes:  # parents come first in topological order
        if node.parents:
            x[id(node)] = 1 + max(x.get(id(p), 0) for p in node.parents)
    for node in nodes:
        if node.is_leaf:
            uses = [x[id(c)] for p, c in edges if p is node]
            x[id(node)] = min(uses, default=1) - 1
    children: dict[int, list[int]] = {id(n): [] for n in nodes}
    for parent, child in edges:
        children[id(parent)].append(id(child))
    y: dict[int, float] = {}
    for column in sorted(set(x.values()), reverse=True):  # right to left: children placed first
        members = [n for n in nodes if x[id(n)] == column]
        wanted = {
            id(n): sum(y.get(c, 0.0) for c in children[id(n)]) / max(len(children[id(n)]), 1)
            for n in members
        }
        members.sort(key=lambda n: -wanted[id(n)])
        center = sum(wanted.values()) / len(members)
        for i, node in enumerate(members):
            y[id(node)] = center + (len(members) - 1) / 2 - i
    return {key: (float(x[key]), y[key]) for key in x}


def plot_step(ax: Axes, root: Value, steps: list[Step], k: int) -> None:
    """Draw the graph as it stands after step ``k`` (0-based) of ``steps``."""
    nodes, edges = trace(root)
    n = len(nodes)
    positions = layout(root)
    names = display_names(root)
    computed = {id(s.node) for s in steps[: k + 1] if s.phase == "forward"}
    finished = {id(s.node) for s in steps[n : k + 1]}
    for parent, child in edges:
        (x0, y0), (x1, y1) = positions[id(parent)], positions[id(child)]
        ax.annotate(
            "",
            xy=(x1 - 0.28, y1),
            xytext=(x0 + 0.28, y0),
            arrowprops={"arrowstyle": "->", "color": "0.5", "lw": 1},
        )
    for node in nodes:
        x, y = positions[id(node)]
        name = names[id(node)]
        lines = [name if node.is_leaf else f"{name} = {node.op}"]
        color = _GREY
        if id(node) in computed:
            lines.append(f"{node.data:.3g}")
            color = _BLUE
        if id(node) in finished:
            lines.append(f"∂={node.grad:.3g}")
            color = _ORANGE
        current = steps[k].node is node
        ax.text(
            x,
            y,
            "\n".join(lines),
            ha="center",
            va="center",
            fontsize=9,
            bbox={
                "boxstyle": "round,pad=0.4",
                "facecolor": color,
                "edgecolor": "red" if current else "0.4",
                "linewidth": 2.5 if current else 1,
            },
        )
    xs = [p[0] for p in positions.values()]
    ys = [p[1] for p in positions.values()]
    ax.set(xlim=(min(xs) - 0.6, max(xs) + 0.6), ylim=(min(ys) - 0.8, max(ys) + 0.8))
    ax.axis("off")
    ax.set_title(steps[k].text, fontsize=10)


def graph_figure(root: Value, k: int, steps: list[Step] | None = None) -> Figure:
    """A figure of ``root``'s graph after step ``k`` (builds the steps when not given)."""
    steps = backprop_steps(root) if steps is None else steps
    if not 0 <= k < len(steps):
        raise ValueError(f"step must be in [0, {len(steps) - 1}], got {k}")
    n_columns = 1 + max(x for x, _ in layout(root).values())
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * n_columns), 4.0))
    plot_step(ax, root, steps, k)
    fig.tight_layout()
    return fig


def backprop_stepper(root: Value | None = None) -> widgets.Widget:
    """A slider (and Play button) over the forward then backward steps of ``root``'s graph.

    ``root`` defaults to :func:`example_graph`; its nodes' gradients are recomputed
    (zeroed, then one ``backward()``).
    """
    root = example_graph() if root is None else root
    steps = backprop_steps(root)
    slider = widgets.IntSlider(
        value=0,
        min=0,
        max=len(steps) - 1,
        description="step",
        continuous_update=False,
        layout=widgets.Layout(width="60%"),
    )
    play = widgets.Play(value=0, min=0, max=len(steps) - 1, interval=900, description="play")
    widgets.jslink((play, "value"), (slider, "value"))
    out = widgets.Output()

    def draw(change: object = None) -> None:
        with out:
            out.clear_output(wait=True)
            graph_figure(root, slider.value, steps)
            plt.show()

    slider.observe(draw, names="value")
    draw()
    return widgets.VBox([widgets.HBox([play, slider]), out])

"""The backprop stepper: its steps, its gradients (against PyTorch) and its widget."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")

from dlkit.scratch import Value
from dlkit.scratch.value import trace
from dlkit.viz.graph import (
    backprop_stepper,
    backprop_steps,
    display_names,
    example_graph,
    graph_figure,
    layout,
)


def test_example_graph_gradients_match_torch() -> None:
    root = example_graph()
    steps = backprop_steps(root)
    leaves = {s.node.label: s.node for s in steps if s.node.is_leaf and s.phase == "forward"}
    t = {
        k: torch.tensor(v.data, dtype=torch.float64, requires_grad=True) for k, v in leaves.items()
    }
    loss = (torch.tanh(t["x1"] * t["w1"] + t["x2"] * t["w2"] + t["b"]) - t["t"]) ** 2
    loss.backward()
    assert root.data == pytest.approx(loss.item(), rel=1e-12)
    for name, node in leaves.items():
        assert node.grad == pytest.approx(t[name].grad.item(), rel=1e-12), name


def test_steps_are_forward_in_topological_order_then_backward_in_reverse() -> None:
    root = example_graph()
    nodes, _ = trace(root)
    steps = backprop_steps(root)
    assert len(steps) == 2 * len(nodes)
    assert [s.node for s in steps[: len(nodes)]] == nodes
    assert [s.node for s in steps[len(nodes) :]] == nodes[::-1]
    assert {s.phase for s in steps[: len(nodes)]} == {"forward"}
    assert steps[len(nodes)].text == "backward: ∂L/∂L = 1"
    z_step = next(s for s in steps if s.phase == "forward" and s.node.label == "z")
    assert z_step.text == f"forward: z = +(s={z_step.node.parents[0].data:.4g}, b=0.3) = 0.1"


def test_backward_text_sums_over_every_use() -> None:
    a = Value(2.0, label="a")
    out = a * a  # d/da = a + a = 4: two uses of a
    out.label = "out"
    text = backprop_steps(out)[-1].text
    assert text.endswith("= 1·2 + 1·2 = 4"), text


def test_stepping_twice_does_not_accumulate() -> None:
    root = example_graph()
    first = [s.node.grad for s in backprop_steps(root)]
    second = [s.node.grad for s in backprop_steps(root)]
    np.testing.assert_allclose(first, second)


def test_unlabelled_nodes_get_names_and_every_edge_points_right() -> None:
    a, b = Value(1.0), Value(2.0)
    root = (a * b + a).tanh()
    names = display_names(root)
    assert sorted(names.values()) == ["v0", "v1", "v2", "v3", "v4"]
    positions = layout(root)
    for parent, child in trace(root)[1]:
        assert positions[id(parent)][0] < positions[id(child)][0]


def test_figure_and_widget_draw_every_step() -> None:
    root = example_graph()
    steps = backprop_steps(root)
    fig = graph_figure(root, len(steps) - 1, steps)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert any("∂=1" in t for t in texts)  # the output's gradient is shown at the end
    assert not any("∂=" in t for t in [x.get_text() for x in graph_figure(root, 3).axes[0].texts])
    with pytest.raises(ValueError, match="step must be in"):
        graph_figure(root, len(steps))
    widget = backprop_stepper()
    controls, output = widget.children
    play, slider = controls.children
    assert play.max == slider.max
    assert slider.max == len(steps) - 1
    for k in (1, len(steps) // 2, slider.max):
        slider.value = k  # calls the update callback
    assert output.outputs is not None
    matplotlib.pyplot.close("all")

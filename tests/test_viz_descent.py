"""The welcome widget's math: gradient descent on a x² against its closed form."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from dlkit.viz import descent_explorer, descent_path


@pytest.mark.parametrize("lr", [0.05, 0.3, 0.5, 0.9, 1.2])
@pytest.mark.parametrize("a", [0.5, 1.0, 3.0])
def test_path_matches_closed_form(a: float, lr: float) -> None:
    # x_k = (1 - 2 a η)^k x_0
    path = descent_path(lambda x: 2 * a * x, 4.0, lr, 15)
    np.testing.assert_allclose(path, (1 - 2 * a * lr) ** np.arange(16) * 4.0, rtol=1e-12)


def test_convergence_boundary_is_one_over_a() -> None:
    a = 2.0
    inside = descent_path(lambda x: 2 * a * x, 1.0, 0.99 / a, 200)
    outside = descent_path(lambda x: 2 * a * x, 1.0, 1.01 / a, 200)
    assert abs(inside[-1]) < abs(inside[0]) and abs(outside[-1]) > abs(outside[0])


@pytest.mark.parametrize(("lr", "steps", "match"), [(0.0, 3, "learning rate"), (0.1, -1, "steps")])
def test_bad_arguments(lr: float, steps: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        descent_path(lambda x: x, 1.0, lr, steps)


def test_explorer_builds_and_redraws() -> None:
    widget = descent_explorer(a=1.0)
    slider, output = widget.children
    slider.value = 1.1  # diverging: the plot must still draw
    assert slider.max == pytest.approx(1.2)
    assert output.outputs is not None

r"""How far a trained model can be pruned: the accuracy curve and the weights that survive.

Magnitude pruning (:mod:`dlkit.nn.pruning`) removes the fraction :math:`s` of weights with
the smallest :math:`|w|`. :func:`plot_sparsity_curve` draws the test accuracy :math:`a(s)` of
the pruned copies (:func:`dlkit.train.compression.sparsity_sweep`) against :math:`s`, a
dashed line at :math:`a_0 - \delta` and a marker at the last sparsity before the curve first
falls below it (:func:`~dlkit.train.compression.sparsity_at_drop`).

:class:`PruningExplorer` puts :math:`s` on a slider. Beside the curve it shows the histogram
of the surviving weights: pruning cuts a hole :math:`(-\tau, \tau)` around zero, where
:math:`\tau` is the magnitude of the smallest kept weight, and the hole widens as
:math:`s` grows. The sweep runs once, when the explorer is built; the slider only redraws.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from numbers import Real
from typing import Any

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import Tensor, nn

from dlkit.train.compression import sparsity_at_drop, sparsity_sweep
from dlkit.train.distillation import accuracy

__all__ = ["PruningExplorer", "plot_sparsity_curve", "pruning_explorer"]

CURVE_COLOUR, CURRENT_COLOUR, THRESHOLD_COLOUR = "#1f77b4", "#d62728", "grey"


def plot_sparsity_curve(
    rows: Sequence[Mapping[str, Any]],
    *,
    baseline: float,
    drop: float = 0.01,
    ax: Axes | None = None,
    label: str | None = None,
) -> Axes:
    """Accuracy (%) against sparsity (%) for the rows of a sweep; returns the axes.

    The first line of ``ax.lines`` is the curve (``x`` = 100 · sparsity, ``y`` = 100 ·
    accuracy), the second the dashed level ``100 (baseline - drop)``, the third a star at
    :func:`~dlkit.train.compression.sparsity_at_drop`.
    """
    s_star = sparsity_at_drop(rows, baseline=baseline, drop=drop)  # validates rows
    s = np.array([100 * float(r["sparsity"]) for r in rows])
    a = np.array([100 * float(r["accuracy"]) for r in rows])
    if ax is None:
        _, ax = plt.subplots(figsize=(5.0, 3.5))
    ax.plot(s, a, "o-", color=CURVE_COLOUR, label=label or "pruned, no retraining")
    ax.axhline(100 * (baseline - drop), color=THRESHOLD_COLOUR, ls="--", lw=1,
               label=f"dense − {100 * drop:g} pt")  # fmt: skip
    # s_star is a row's sparsity, or 0.0 when the first row already fails (then: dense)
    by_sparsity = {float(r["sparsity"]): 100 * float(r["accuracy"]) for r in rows}
    a_star = by_sparsity.get(s_star, 100 * baseline)
    ax.plot([100 * s_star], [a_star], "*", ms=14, color=CURRENT_COLOUR, alpha=0.6,
            label=f"last within the drop: {100 * s_star:g}%")  # fmt: skip
    ax.set(xlabel="sparsity (% of weights removed)", ylabel="test accuracy (%)")
    ax.legend(fontsize=8, loc="lower left")
    return ax


class PruningExplorer:
    """A sparsity slider over a precomputed global (or per-layer) magnitude-pruning sweep.

    After each :meth:`update`: ``sparsity`` (the slider's value), ``measured_sparsity``,
    ``accuracy`` (a fraction), ``drop`` (``baseline - accuracy``), ``weights`` (the
    surviving nonzero weights ``(n,)``) and ``figure``: ``axes[0]`` the curve with a marker
    at ``sparsity`` (its last line), ``axes[1]`` the histogram of ``weights`` (its bar
    heights sum to ``n``). ``rows`` is the sweep, ``baseline`` the dense accuracy.
    """

    def __init__(
        self,
        model: nn.Module,
        x: Tensor,
        y: Tensor,
        *,
        sparsities: Sequence[float] = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98),
        scope: str = "global",
        drop: float = 0.01,
        value: float | None = None,
        bins: int = 60,
    ) -> None:
        options = list(sparsities)  # validated by sparsity_sweep
        if value is not None and not any(
            isinstance(s, Real) and math.isclose(value, s, abs_tol=1e-9) for s in options
        ):  # checked before the sweep, which takes seconds
            raise ValueError(f"value must be one of the sparsities {options}, got {value!r}")
        self.rows = sparsity_sweep(model, x, y, options, scope=scope, keep_weights=True)
        options = [r["sparsity"] for r in self.rows]
        self.baseline = accuracy(model, x, y)
        self.drop_tolerance = float(drop)
        self.scope = scope
        least = self.rows[0]["weights"]  # least pruned: holds the largest magnitudes
        lim = float(np.abs(least).max()) if least.size else 1.0
        self.bin_edges = np.linspace(-lim, lim, bins + 1)  # same bins at every sparsity
        if value is None:  # start where the curve leaves the tolerated drop
            value = sparsity_at_drop(self.rows, baseline=self.baseline, drop=drop)
        start = min(options, key=lambda s: abs(s - value))
        self.slider = widgets.SelectionSlider(
            options=[(f"{100 * s:g}%", s) for s in options], value=start,
            description="sparsity", continuous_update=False,
            style={"description_width": "initial"},
        )  # fmt: skip
        self.status = widgets.HTML()
        self.output = widgets.Output()
        self.figure: Figure | None = None
        self.sparsity = start
        self.measured_sparsity = 0.0
        self.accuracy = self.baseline
        self.drop = 0.0
        self.weights = np.empty(0, dtype=np.float32)
        self.slider.observe(self.update, names="value")
        self.widget = widgets.VBox([self.slider, self.status, self.output])
        self.update()

    def _row(self) -> Mapping[str, Any]:
        return next(r for r in self.rows if r["sparsity"] == self.sparsity)

    def update(self, change: object = None) -> None:
        """Read the slider, look its row up in the sweep, and redraw."""
        self.sparsity = float(self.slider.value)
        row = self._row()
        self.measured_sparsity = float(row["measured_sparsity"])
        self.accuracy = float(row["accuracy"])
        self.drop = self.baseline - self.accuracy
        self.weights = row["weights"]
        self.status.value = (
            f"<b>{self.scope} sparsity {100 * self.sparsity:g}%</b> (measured "
            f"{100 * self.measured_sparsity:.2f}%, {self.weights.size:,} weights left): "
            f"accuracy {100 * self.accuracy:.2f}%, {100 * self.drop:+.2f} points below dense "
            f"({100 * self.baseline:.2f}%)"
        )
        self._draw()

    def _draw(self) -> None:
        if self.figure is not None:
            plt.close(self.figure)
        self.figure, (ax_curve, ax_hist) = plt.subplots(1, 2, figsize=(10.0, 3.6))
        plot_sparsity_curve(self.rows, baseline=self.baseline, drop=self.drop_tolerance,
                            ax=ax_curve)  # fmt: skip
        ax_curve.plot([100 * self.sparsity], [100 * self.accuracy], "o", ms=11, mfc="none",
                      mew=2, color=CURRENT_COLOUR)  # fmt: skip
        ax_curve.set_title(f"accuracy {100 * self.accuracy:.2f}% at {100 * self.sparsity:g}%",
                           fontsize=9)  # fmt: skip
        ax_hist.hist(self.weights, bins=self.bin_edges, color=CURVE_COLOUR)
        ax_hist.set_yscale("log")
        ax_hist.set(xlabel="weight value", ylabel="count (log)")
        ax_hist.set_title(f"{self.weights.size:,} surviving weights", fontsize=9)
        self.figure.tight_layout()
        with self.output:
            self.output.clear_output(wait=True)
            display(self.figure)
        plt.close(self.figure)


def pruning_explorer(model: nn.Module, x: Tensor, y: Tensor, **kwargs: Any) -> widgets.Widget:
    """The explorer as a widget (slider, status line, figure), ready to display.

    ``model`` a trained classifier, ``x`` ``(N, ...)``, ``y`` ``(N,)``; keyword arguments
    go to :class:`PruningExplorer`.
    """
    return PruningExplorer(model, x, y, **kwargs).widget

"""A loss/metric plot that updates in place in Jupyter and prints one line per epoch elsewhere.

In a notebook, one figure is displayed at the start of training and *redrawn in the same
output cell* after each epoch through an IPython display handle (no flicker, no pile of
figures). In a terminal, a script or a test, it prints ``epoch 3/10  loss 0.41  val_loss
0.47``. Which one is decided when training starts, by :func:`in_notebook`.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from dlkit.train.callbacks import Callback, Logs
from dlkit.train.distributed import is_main_process

if TYPE_CHECKING:
    from dlkit.train.trainer import Trainer


def in_notebook() -> bool:
    """True when running inside a Jupyter kernel (checked now, not at import).

    A Jupyter kernel's IPython shell has a ``kernel`` attribute; plain Python and the
    terminal IPython do not.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def group_metrics(names: Sequence[str]) -> dict[str, list[str]]:
    """Group training and validation versions of a metric: ``loss, val_loss -> {"loss": [...]}``."""
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(name.removeprefix("val_"), []).append(name)
    return groups


class LivePlot(Callback):
    """Plot ``metrics`` after every epoch: a live figure in Jupyter, a text line elsewhere.

    Args:
        metrics: history keys to show; the ones a run does not log are skipped. Each
            metric shares a panel with its ``val_`` twin (``loss`` with ``val_loss``).
        notebook: force the figure (True) or text (False); ``None`` detects it.

    Only the main process (rank 0) draws or prints.
    """

    order = 50

    def __init__(
        self, metrics: Sequence[str] = ("loss", "val_loss"), *, notebook: bool | None = None
    ) -> None:
        self.metrics = tuple(metrics)
        self.notebook = notebook
        self._live = False
        self._figure: Any = None
        self._handle: Any = None

    def on_fit_start(self, trainer: Trainer) -> None:
        self._live = in_notebook() if self.notebook is None else self.notebook
        self._figure = self._handle = None

    def on_epoch_end(self, trainer: Trainer, logs: Logs) -> None:
        if not is_main_process():
            return
        shown = [name for name in self.metrics if name in trainer.history]
        if self._live:
            self._draw(trainer, shown)
        else:
            values = "  ".join(f"{name} {logs[name]:.4g}" for name in shown if name in logs)
            print(f"epoch {trainer.epoch + 1}/{trainer.epochs}  {values}", flush=True)

    def _draw(self, trainer: Trainer, shown: list[str]) -> None:
        # A bare Figure (not pyplot: no global figure list, never auto-shown) rendered to
        # PNG bytes, which display in any frontend whatever the matplotlib backend.
        from IPython.display import Image, display
        from matplotlib.figure import Figure

        groups = group_metrics(shown)
        if self._figure is None:
            self._figure = Figure(figsize=(4.5 * max(len(groups), 1), 3.2), layout="constrained")
        figure = self._figure
        figure.clear()
        axes = figure.subplots(1, max(len(groups), 1), squeeze=False)[0]
        for ax, (title, names) in zip(axes, groups.items(), strict=False):
            for name in names:
                values = trainer.history[name]
                ax.plot(range(1, len(values) + 1), values, "o-", markersize=3, label=name)
            ax.set(xlabel="epoch", title=title)
            ax.set_xlim(0.5, max(trainer.epochs, 1) + 0.5)
            ax.legend()
        png = io.BytesIO()
        figure.savefig(png, format="png", dpi=90)
        image = Image(data=png.getvalue(), format="png")
        if self._handle is None:
            self._handle = display(image, display_id=True)
        else:
            self._handle.update(image)

r"""What a temperature does to a teacher's soft targets: bars of :math:`\operatorname{softmax}(z/T)`.

Distillation (:mod:`dlkit.nn.distillation`) trains a student on the teacher's softened
distribution :math:`p_T = \operatorname{softmax}(t / T)`. At :math:`T = 1` a confident
teacher puts almost all its mass on one class; raising :math:`T` lifts the small
probabilities of the other classes (which wrong classes look alike), until at large
:math:`T` everything tends to the uniform :math:`1/K`. Two numbers track this:

.. math:: H(p_T) = -\sum_i p_{T,i} \log p_{T,i} \;\in [0, \log K], \qquad
   \mathrm{KL}(p_T \,\|\, q_T) = \sum_i p_{T,i} \log \frac{p_{T,i}}{q_{T,i}},

the entropy of the soft targets and how far the student's :math:`q_T =
\operatorname{softmax}(s / T)` is from them (in nats). :func:`plot_softened` draws
:math:`p_T` for a few temperatures side by side; :func:`distillation_explorer` puts
:math:`T` on a slider and shows teacher and student bars with both numbers in the title.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import display
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import Tensor

from dlkit.nn.distillation import soft_targets

__all__ = [
    "STUDENT_COLOUR",
    "TEACHER_COLOUR",
    "DistillationExplorer",
    "distillation_explorer",
    "entropy",
    "kl_divergence",
    "plot_softened",
]

TEACHER_COLOUR, STUDENT_COLOUR = "#1f77b4", "#ff7f0e"  # matplotlib blue, orange


def _vector(logits: Tensor | Sequence[float] | np.ndarray, name: str) -> Tensor:
    """``logits`` as a float64 CPU tensor ``(K,)``, K >= 2, all finite."""
    if isinstance(logits, Tensor):
        z = logits.detach().cpu().double()
    else:
        z = torch.from_numpy(np.asarray(logits, dtype=np.float64))
    if z.ndim != 1 or z.shape[0] < 2:
        raise ValueError(f"{name} must be a vector (K,) with K >= 2, got shape {tuple(z.shape)}")
    if not bool(torch.isfinite(z).all()):
        raise ValueError(f"{name} must be finite")
    return z


def _names(class_names: Sequence[str] | None, K: int) -> list[str]:
    if class_names is None:
        return [str(i) for i in range(K)]
    names = [str(c) for c in class_names]
    if len(names) != K:
        raise ValueError(f"class_names must have K = {K} entries, got {len(names)}")
    return names


def entropy(p: Tensor) -> float:
    r""":math:`H(p) = -\sum_i p_i \log p_i` in nats of a probability vector ``(K,)`` (``0 log 0 = 0``)."""
    return float(-torch.special.xlogy(p, p).sum())


def kl_divergence(p: Tensor, q: Tensor) -> float:
    r""":math:`\mathrm{KL}(p \,\|\, q) = \sum_i p_i \log(p_i / q_i)` in nats, vectors ``(K,)``."""
    return float((torch.special.xlogy(p, p) - torch.special.xlogy(p, q)).sum())


def plot_softened(
    logits: Tensor | Sequence[float] | np.ndarray,
    temperatures: Sequence[float],
    *,
    class_names: Sequence[str] | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Grouped bars of ``softmax(logits / T)`` ``(K,)`` for each temperature ``T``.

    One colour per temperature (bar ``j`` of group ``k`` is class ``k`` at
    ``temperatures[j]``), the legend giving each :math:`T` and the entropy
    :math:`H(p_T)`; a dotted line marks the uniform :math:`1/K`. Returns the axes.
    """
    z = _vector(logits, "logits")
    K = z.shape[0]
    names = _names(class_names, K)
    temps = [float(T) for T in temperatures]
    if not temps or any(not (math.isfinite(T) and T > 0) for T in temps):
        raise ValueError(f"temperatures must be positive finite numbers, got {list(temperatures)}")
    if ax is None:
        _, ax = plt.subplots(figsize=(max(6.0, 0.6 * K + 2), 3.5))
    width = 0.8 / len(temps)
    x = np.arange(K)
    colours = plt.cm.viridis(np.linspace(0.1, 0.9, len(temps)))
    for j, (T, colour) in enumerate(zip(temps, colours, strict=True)):
        p = soft_targets(z, T)  # (K,)
        ax.bar(x + (j - (len(temps) - 1) / 2) * width, p.numpy(), width=width, color=colour,
               label=f"T = {T:g}  (H = {entropy(p):.2f} nats)")  # fmt: skip
    ax.axhline(1 / K, color="grey", ls=":", lw=1, label=f"uniform 1/K (H = {math.log(K):.2f})")
    ax.set_xticks(x, names)
    ax.set(xlabel="class", ylabel="probability", ylim=(0, 1.05),
           title="soft targets softmax(z / T)")  # fmt: skip
    ax.legend(fontsize=8)
    return ax


class DistillationExplorer:
    """A temperature slider over a teacher's (and optionally a student's) soft targets.

    After each :meth:`update`: ``temperature``, ``teacher_probs`` :math:`p_T` and
    ``student_probs`` :math:`q_T` (``(K,)`` float64 tensors; ``None`` without a student),
    ``entropy`` :math:`H(p_T)`, ``kl`` :math:`\\mathrm{KL}(p_T \\| q_T)` (``None`` without
    a student) and ``figure``, the last figure drawn (the teacher's bars first, then the
    student's, in ``figure.axes[0].patches``).
    """

    def __init__(
        self,
        teacher_logits: Tensor | Sequence[float] | np.ndarray,
        *,
        student_logits: Tensor | Sequence[float] | np.ndarray | None = None,
        class_names: Sequence[str] | None = None,
        temperatures: tuple[float, float] = (0.5, 10.0),
        temperature: float = 1.0,
    ) -> None:
        self.teacher_logits = _vector(teacher_logits, "teacher_logits")
        K = self.teacher_logits.shape[0]
        self.student_logits = None
        if student_logits is not None:
            self.student_logits = _vector(student_logits, "student_logits")
            if self.student_logits.shape[0] != K:
                raise ValueError(
                    f"student_logits must have the teacher's K = {K} classes, "
                    f"got {self.student_logits.shape[0]}"
                )
        self.class_names = _names(class_names, K)
        low, high = (float(v) for v in temperatures)
        if not 0 < low < high or not math.isfinite(high):
            raise ValueError(
                f"temperatures must be a range (low, high) with 0 < low < high, got {temperatures}"
            )
        if not low <= temperature <= high:  # the slider would clip it silently
            raise ValueError(f"temperature must lie in [{low:g}, {high:g}], got {temperature!r}")
        self.slider = widgets.FloatSlider(value=temperature, min=low, max=high, step=0.1,
                                          description="temperature T", continuous_update=False,
                                          style={"description_width": "initial"})  # fmt: skip
        self.output = widgets.Output()
        self.figure: Figure | None = None
        self.temperature = float(temperature)
        self.teacher_probs: Tensor = soft_targets(self.teacher_logits, self.temperature)
        self.student_probs: Tensor | None = None
        self.entropy = 0.0
        self.kl: float | None = None
        self.slider.observe(self.update, names="value")
        self.widget = widgets.VBox([self.slider, self.output])
        self.update()

    def update(self, change: object = None) -> None:
        """Recompute :math:`p_T`, :math:`q_T`, the entropy and the KL, and redraw."""
        T = self.temperature = float(self.slider.value)
        self.teacher_probs = soft_targets(self.teacher_logits, T)  # (K,)
        self.entropy = entropy(self.teacher_probs)
        if self.student_logits is not None:
            self.student_probs = soft_targets(self.student_logits, T)  # (K,)
            self.kl = kl_divergence(self.teacher_probs, self.student_probs)
        self._draw()

    def title(self) -> str:
        K = len(self.class_names)
        text = f"T = {self.temperature:g}: H(teacher) = {self.entropy:.3f} nats (max {math.log(K):.3f})"
        if self.kl is not None:
            text += f", KL(teacher ‖ student) = {self.kl:.4f} nats"
        return text

    def _draw(self) -> None:
        if self.figure is not None:
            plt.close(self.figure)
        K = len(self.class_names)
        self.figure, ax = plt.subplots(figsize=(max(6.0, 0.5 * K + 2), 3.2))
        x = np.arange(K)
        two = self.student_probs is not None
        width = 0.4 if two else 0.8
        ax.bar(x - width / 2 if two else x, self.teacher_probs.numpy(), width=width,
               color=TEACHER_COLOUR, label="teacher p_T")  # fmt: skip
        if two:
            ax.bar(x + width / 2, self.student_probs.numpy(), width=width, color=STUDENT_COLOUR,
                   label="student q_T")  # fmt: skip
        ax.axhline(1 / K, color="grey", ls=":", lw=1, label="uniform 1/K")
        ax.set_xticks(x, self.class_names)
        ax.set(xlabel="class", ylabel="probability", ylim=(0, 1.05))
        ax.set_title(self.title(), fontsize=9)
        ax.legend(fontsize=8, loc="upper right")
        self.figure.tight_layout()
        with self.output:
            self.output.clear_output(wait=True)
            display(self.figure)
        plt.close(self.figure)


def distillation_explorer(
    teacher_logits: Tensor | Sequence[float] | np.ndarray,
    *,
    student_logits: Tensor | Sequence[float] | np.ndarray | None = None,
    class_names: Sequence[str] | None = None,
    temperatures: tuple[float, float] = (0.5, 10.0),
    temperature: float = 1.0,
) -> widgets.Widget:
    """The explorer as a widget (a ``VBox``: the slider over the bars), ready to display.

    ``teacher_logits`` (and ``student_logits``) ``(K,)``; ``temperatures`` the slider's
    range ``(low, high)``, ``temperature`` its start. See :class:`DistillationExplorer`.
    """
    return DistillationExplorer(
        teacher_logits, student_logits=student_logits, class_names=class_names,
        temperatures=temperatures, temperature=temperature,
    ).widget  # fmt: skip

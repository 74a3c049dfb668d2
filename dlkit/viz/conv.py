r"""Looking inside a CNN, and a convolution explorer.

- :func:`plot_filters`: a layer's learned kernels as small images;
- :func:`feature_maps` / :func:`plot_feature_maps`: what a layer outputs for one input
  (captured with a forward hook, so any ``nn.Module`` layer works);
- :func:`saliency` / :func:`plot_saliency`: :math:`\big|\partial\, \text{logit}_k / \partial x\big|`,
  the gradient of the class score with respect to the input pixels (Simonyan et al., 2013),
  which marks the pixels whose change would move the score most;
- :func:`conv_explorer`: pick or edit a 3×3 kernel, a stride, padding and dilation, and see
  the output of :func:`dlkit.scratch.conv2d_forward` and its shape.
"""

from __future__ import annotations

import math
from typing import Any

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from dlkit.scratch.conv import conv2d_forward, conv2d_output_shape

__all__ = [
    "KERNEL_PRESETS",
    "ConvExplorer",
    "conv_explorer",
    "demo_image",
    "feature_maps",
    "plot_feature_maps",
    "plot_filters",
    "plot_saliency",
    "saliency",
]

KERNEL_PRESETS: dict[str, np.ndarray] = {
    "identity": np.array([[0, 0, 0], [0, 1, 0], [0, 0, 0]], dtype=float),
    "box blur": np.full((3, 3), 1 / 9),
    "gaussian blur": np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], dtype=float) / 16,
    "sharpen": np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], dtype=float),
    "edges (Laplacian)": np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=float),
    "vertical edges (Sobel x)": np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=float),
    "horizontal edges (Sobel y)": np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], dtype=float),
    "emboss": np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], dtype=float),
}


def _grid(n: int, ncols: int, size: float = 1.3) -> tuple[Figure, np.ndarray]:
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    return fig, axes.flat


def _numpy(a: Any) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def plot_filters(weight: Any, *, in_channel: int = 0, ncols: int = 8, title: str = "") -> Figure:
    """Kernels ``weight[:, in_channel]`` of a ``(O, C, KH, KW)`` weight, one panel per filter.

    Each panel has its own symmetric colour scale (red positive, blue negative).
    """
    w = _numpy(weight)
    if w.ndim != 4:
        raise ValueError(f"expected a weight of shape (O, C, KH, KW), got shape {w.shape}")
    if not 0 <= in_channel < w.shape[1]:
        raise ValueError(f"in_channel must lie in [0, {w.shape[1]}), got {in_channel}")
    fig, axes = _grid(w.shape[0], ncols)
    for o, ax in zip(range(w.shape[0]), axes, strict=False):
        kernel = w[o, in_channel]
        scale = float(np.abs(kernel).max()) or 1.0
        ax.imshow(kernel, cmap="RdBu_r", vmin=-scale, vmax=scale)
        ax.set_title(f"filter {o}", fontsize=8)
    fig.suptitle(
        title or f"{w.shape[0]} filters {w.shape[2]}×{w.shape[3]} (input channel {in_channel})"
    )
    fig.tight_layout()
    return fig


def feature_maps(model: nn.Module, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The output of ``layer`` (a submodule of ``model``) when ``model`` runs on ``x``.

    ``x`` is one batch ``(B, C, H, W)``; returns ``layer``'s output, e.g. ``(B, C', H', W')``,
    detached. The model runs in eval mode without gradients; its mode is restored afterwards.
    """
    captured: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _m, _i, out: captured.append(out.detach()))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
        model.train(was_training)
    if not captured:
        raise ValueError("the layer did not run during model(x); pass a submodule of the model")
    return captured[0]


def plot_feature_maps(maps: Any, *, ncols: int = 8, title: str = "feature maps") -> Figure:
    """One panel per channel of ``maps`` ``(C, H, W)`` (or ``(1, C, H, W)``)."""
    m = _numpy(maps)
    if m.ndim == 4 and m.shape[0] == 1:
        m = m[0]
    if m.ndim != 3:
        raise ValueError(f"expected maps of shape (C, H, W) or (1, C, H, W), got {m.shape}")
    fig, axes = _grid(m.shape[0], ncols)
    for c, ax in zip(range(m.shape[0]), axes, strict=False):
        ax.imshow(m[c], cmap="viridis")
        ax.set_title(f"ch {c}", fontsize=8)
    fig.suptitle(f"{title}: {m.shape[0]} × {m.shape[1]}×{m.shape[2]}")
    fig.tight_layout()
    return fig


def saliency(
    model: nn.Module, image: torch.Tensor, target: int | None = None
) -> tuple[np.ndarray, int]:
    r"""Saliency map :math:`\max_c |\partial z_k / \partial x_{c,i,j}|` of one image ``(C, H, W)``.

    :math:`z_k` is the logit of class ``target`` (default: the predicted class). Returns the
    map ``(H, W)`` and the class used. The model runs in eval mode (restored afterwards), so
    BatchNorm uses its running statistics.
    """
    if image.ndim != 3:
        raise ValueError(f"expected one image of shape (C, H, W), got {tuple(image.shape)}")
    x = image.detach().clone()[None].requires_grad_(True)  # (1, C, H, W)
    was_training = model.training
    try:
        model.eval()
        logits = model(x)  # (1, num_classes)
        k = int(logits.argmax(dim=1)) if target is None else target
        (grad,) = torch.autograd.grad(logits[0, k], x)  # (1, C, H, W)
    finally:
        model.train(was_training)
    return grad[0].abs().amax(dim=0).cpu().numpy(), k


def plot_saliency(image: Any, saliency_map: np.ndarray, *, title: str = "") -> Figure:
    """The image ``(H, W)`` or ``(C, H, W)`` beside its saliency map ``(H, W)``."""
    img = _numpy(image)
    img = img.mean(axis=0) if img.ndim == 3 else img
    fig, (left, right) = plt.subplots(1, 2, figsize=(6, 3))
    left.imshow(img, cmap="gray")
    left.set_title("input")
    right.imshow(saliency_map, cmap="hot")
    right.set_title("|∂ logit / ∂ pixel|")
    for ax in (left, right):
        ax.set_axis_off()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def demo_image(size: int = 24) -> np.ndarray:
    """A ``(size, size)`` test picture in ``[0, 1]``: a square, a disc and a diagonal bar."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = np.zeros((size, size))
    img[(yy > 0.15) & (yy < 0.45) & (xx > 0.1) & (xx < 0.4)] = 1.0  # square
    img[(yy - 0.65) ** 2 + (xx - 0.7) ** 2 < 0.04] = 0.7  # disc
    img[np.abs(yy - (1.0 - xx)) < 0.05] = 0.4  # anti-diagonal bar
    return img


class ConvExplorer:
    """Controls and drawing for :func:`conv_explorer`; ``widget`` is what to display.

    ``cells`` are the 3×3 kernel entries (edit them to draw your own kernel, or pick a
    preset); ``draw()`` recomputes the output with :func:`dlkit.scratch.conv2d_forward`.
    """

    def __init__(self, image: np.ndarray | None = None) -> None:
        self.image = demo_image() if image is None else np.asarray(image, dtype=float)
        if self.image.ndim != 2:
            raise ValueError(f"expected a greyscale image of shape (H, W), got {self.image.shape}")
        style = {"description_width": "initial"}
        self.preset = widgets.Dropdown(options=list(KERNEL_PRESETS), value="vertical edges (Sobel x)",
                                       description="kernel", style=style)  # fmt: skip
        self.cells = [widgets.FloatText(layout=widgets.Layout(width="70px")) for _ in range(9)]
        self.stride = widgets.IntSlider(1, min=1, max=4, description="stride", style=style)
        self.padding = widgets.IntSlider(0, min=0, max=3, description="padding", style=style)
        self.dilation = widgets.IntSlider(1, min=1, max=3, description="dilation", style=style)
        self.shape_label = widgets.HTML()
        self.out = widgets.Output()
        self._loading = False
        self.load_preset()
        self.preset.observe(lambda _: (self.load_preset(), self.draw()), names="value")
        for control in (*self.cells, self.stride, self.padding, self.dilation):
            control.observe(lambda _: self.draw(), names="value")
        kernel_grid = widgets.GridBox(self.cells, layout=widgets.Layout(
            grid_template_columns="repeat(3, 75px)"))  # fmt: skip
        controls = widgets.VBox(
            [self.preset, kernel_grid, self.stride, self.padding, self.dilation]
        )
        self.widget = widgets.VBox([widgets.HBox([controls, self.shape_label]), self.out])
        self.draw()

    def load_preset(self) -> None:
        self._loading = True  # one redraw for the nine cells, not nine
        try:
            for cell, value in zip(self.cells, KERNEL_PRESETS[self.preset.value].flat, strict=True):
                cell.value = round(float(value), 4)
        finally:
            self._loading = False

    @property
    def kernel(self) -> np.ndarray:
        """The kernel in the cells, ``(3, 3)``."""
        return np.array([cell.value for cell in self.cells], dtype=float).reshape(3, 3)

    def output(self) -> np.ndarray:
        """The convolution of the image with the kernel: ``(OH, OW)``."""
        x = self.image[None, None]  # (1, 1, H, W)
        w = self.kernel[None, None]  # (1, 1, 3, 3)
        geometry = {"stride": self.stride.value, "padding": self.padding.value,
                    "dilation": self.dilation.value}  # fmt: skip
        return conv2d_forward(x, w, **geometry)[0, 0]

    def draw(self) -> None:
        if self._loading:
            return
        h, w = self.image.shape
        s, p, d = self.stride.value, self.padding.value, self.dilation.value
        try:
            _, _, oh, ow = conv2d_output_shape(
                (1, 1, h, w), (1, 1, 3, 3), stride=s, padding=p, dilation=d
            )
        except ValueError as exc:
            self.shape_label.value = f"<b>no output:</b> {exc}"
            return
        self.shape_label.value = (
            f"<p>input {h}×{w}, kernel 3×3, stride {s}, padding {p}, dilation {d}</p>"
            f"<p>output height ⌊({h} + 2·{p} − {d}·(3 − 1) − 1) / {s}⌋ + 1 = <b>{oh}</b>, "
            f"width ⌊({w} + 2·{p} − {d}·2 − 1) / {s}⌋ + 1 = <b>{ow}</b></p>"
        )
        with self.out:
            self.out.clear_output(wait=True)
            fig = self.figure()
            plt.show()
            plt.close(fig)

    def figure(self) -> Figure:
        """Input, kernel and output side by side."""
        fig, axes = plt.subplots(1, 3, figsize=(10, 3.4))
        y = self.output()
        scale = float(np.abs(self.kernel).max()) or 1.0
        panels = [
            (self.image, "gray", None, f"input {self.image.shape[0]}×{self.image.shape[1]}"),
            (self.kernel, "RdBu_r", (-scale, scale), "kernel 3×3"),
            (y, "gray", None, f"output {y.shape[0]}×{y.shape[1]}"),
        ]
        for ax, (data, cmap, limits, title) in zip(axes, panels, strict=True):
            vmin, vmax = limits or (None, None)
            ax.imshow(data, cmap=cmap, vmin=vmin, vmax=vmax)
            ax.set_title(title)
            ax.set_axis_off()
        fig.tight_layout()
        return fig


def conv_explorer(image: np.ndarray | None = None) -> widgets.Widget:
    """A convolution explorer on ``image`` ``(H, W)`` (default :func:`demo_image`)."""
    return ConvExplorer(image).widget

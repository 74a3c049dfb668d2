"""Where a Transformer's training memory goes, and whether it fits on one GPU.

The numbers come from :mod:`dlkit.train.memory` (formulas checked against PyTorch's own
tensors in ``tests/test_train_memory.py``); this module only draws them.
"""

from __future__ import annotations

from dataclasses import dataclass

import ipywidgets as widgets
import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from dlkit.nn.gpt import GPTConfig
from dlkit.train.memory import activation_bytes_transformer, count_parameters, training_memory

GIB = 2**30
#: Memory of some accelerators, GiB, for the reference lines of the plot.
GPU_MEMORY_GIB = {"laptop GPU (8 GB)": 8 * 1e9 / GIB, "H100 (80 GB)": 80 * 1e9 / GIB}


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes of one training step of a Transformer with Adam in fp32 (``torch.autocast`` aside)."""

    n_params: int
    params: int
    grads: int
    optimizer_state: int
    activations: int
    loss_activations: int = 0  # what cross-entropy saves: the (B, T, V) log-probabilities

    @property
    def total(self) -> int:
        parts = (self.params, self.grads, self.optimizer_state, self.activations)
        return sum(parts) + self.loss_activations


def estimate_memory(config: GPTConfig, batch_size: int, seq_len: int) -> MemoryEstimate:
    """Params, grads and Adam state (16 bytes/param) plus the activations of one batch.

    The blocks' activations are :func:`activation_bytes_transformer`'s; the loss adds what
    ``F.cross_entropy`` saves for backward: the float32 log-softmax of the logits,
    :math:`4BTV` bytes (1.5 GiB for GPT-2 at B = 8, T = 1024), the int64 targets
    :math:`8BT` and a float32 total weight (4 bytes).
    """
    if batch_size < 1 or not 1 <= seq_len <= config.max_len:
        raise ValueError(
            f"need batch_size >= 1 and 1 <= seq_len <= max_len={config.max_len}, "
            f"got batch_size={batch_size}, seq_len={seq_len}"
        )
    n = count_parameters(config)
    state = training_memory(n, optimizer="adam")
    activations = activation_bytes_transformer(config, batch_size, seq_len)
    loss = 4 * batch_size * seq_len * config.vocab_size + 8 * batch_size * seq_len + 4
    return MemoryEstimate(n, state.params, state.grads, state.optimizer_state, activations, loss)


def plot_memory(estimate: MemoryEstimate, ax: Axes | None = None) -> Axes:
    """One stacked bar (GiB) of the five parts, with lines at common GPU memory sizes."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4))
    parts = {
        "parameters": estimate.params,
        "gradients": estimate.grads,
        "Adam m, v": estimate.optimizer_state,
        "activations": estimate.activations,
        "loss (log-probs)": estimate.loss_activations,
    }
    bottom = 0.0
    for name, size in parts.items():
        ax.bar(0, size / GIB, bottom=bottom, width=0.5, label=f"{name}: {size / GIB:.2f} GiB")
        bottom += size / GIB
    for name, gib in GPU_MEMORY_GIB.items():
        if gib < 2 * bottom:
            ax.axhline(gib, color="black", linestyle="--", linewidth=1)
            ax.text(0.3, gib, name, va="bottom", fontsize=8)
    ax.set_xlim(-0.5, 1.0)
    ax.set_xticks([])
    ax.set_ylabel("GiB")
    ax.set_title(f"{estimate.n_params / 1e6:,.1f} M parameters: {bottom:.2f} GiB per step")
    ax.legend(loc="upper right", fontsize=8)
    return ax


def memory_explorer(
    d_model: int = 768, n_layers: int = 12, batch_size: int = 8, seq_len: int = 1024
) -> widgets.Widget:
    """Sliders for a GPT's width, depth, batch and context; the bar shows what training needs.

    The vocabulary is GPT-2's (50,257 tokens), heads are 64 wide and the MLP is 4× wide.
    """

    def slider(description: str, value: int, low: int, high: int, step: int) -> widgets.IntSlider:
        return widgets.IntSlider(
            value=value, min=low, max=high, step=step, description=description,
            continuous_update=False, style={"description_width": "initial"},
        )  # fmt: skip

    sliders = {
        "d_model": slider("d_model", d_model, 128, 4096, 128),
        "n_layers": slider("layers", n_layers, 1, 96, 1),
        "batch_size": slider("batch", batch_size, 1, 64, 1),
        "seq_len": slider("context T", seq_len, 128, 4096, 128),
    }
    out = widgets.Output()

    def draw(change: object = None) -> None:
        c = sliders["d_model"].value
        config = GPTConfig.gpt2(
            vocab_size=50257, d_model=c, n_layers=sliders["n_layers"].value,
            n_heads=max(1, c // 64), max_len=sliders["seq_len"].value,
        )  # fmt: skip
        estimate = estimate_memory(config, sliders["batch_size"].value, sliders["seq_len"].value)
        with out:
            out.clear_output(wait=True)
            fig, ax = plt.subplots(figsize=(6, 4))
            plot_memory(estimate, ax)
            fig.tight_layout()
            plt.show()

    for s in sliders.values():
        s.observe(draw, names="value")
    draw()
    return widgets.VBox([widgets.HBox(list(sliders.values())[:2]),
                         widgets.HBox(list(sliders.values())[2:]), out])  # fmt: skip

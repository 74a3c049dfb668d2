"""The memory explorer: its numbers are dlkit.train.memory's, and it redraws headless."""

from __future__ import annotations

import matplotlib
import pytest

matplotlib.use("Agg")

from dlkit.nn import GPTConfig
from dlkit.viz.memory import estimate_memory, memory_explorer, plot_memory

GPT2 = GPTConfig(vocab_size=50257, d_model=768, n_layers=12, n_heads=12, d_ff=3072, max_len=1024)


def test_gpt2_small_needs_16_bytes_per_parameter_plus_activations() -> None:
    est = estimate_memory(GPT2, batch_size=8, seq_len=1024)
    assert est.n_params == 124_439_808  # GPT-2 small with tied embeddings
    assert est.params == est.grads == 4 * est.n_params
    assert est.optimizer_state == 8 * est.n_params
    assert est.total == 16 * est.n_params + est.activations + est.loss_activations
    assert est.loss_activations == 4 * 8 * 1024 * 50257 + 8 * 8 * 1024 + 4
    doubled = estimate_memory(GPT2, batch_size=16, seq_len=1024)
    assert doubled.activations > 1.9 * est.activations  # activations grow with the batch


def test_loss_bytes_are_what_cross_entropy_saves() -> None:
    """The estimate's loss part against the storages autograd saves in F.cross_entropy."""
    import torch

    from dlkit.train.memory import measure_saved_activation_bytes

    class LossOnly(torch.nn.Module):  # logits as a parameter: only the loss's tensors count
        def __init__(self, b: int, t: int, v: int) -> None:
            super().__init__()
            self.logits = torch.nn.Parameter(torch.randn(b * t, v))

        def forward(self, targets: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.cross_entropy(self.logits, targets)

    config = GPTConfig(vocab_size=97, d_model=8, n_layers=1, n_heads=2, d_ff=16, max_len=16)
    b, t = 3, 16
    targets = torch.randint(0, 97, (b * t,))
    measured = measure_saved_activation_bytes(LossOnly(b, t, 97), targets)
    assert estimate_memory(config, b, t).loss_activations == measured


def test_bad_sizes_are_named() -> None:
    with pytest.raises(ValueError, match="max_len=1024"):
        estimate_memory(GPT2, batch_size=1, seq_len=2048)


def test_plot_stacks_the_four_parts() -> None:
    ax = plot_memory(estimate_memory(GPT2, 8, 1024))
    heights = [p.get_height() for p in ax.patches]
    est = estimate_memory(GPT2, 8, 1024)
    assert sum(heights) == pytest.approx(est.total / 2**30)


def test_explorer_redraws_when_a_slider_moves(monkeypatch: pytest.MonkeyPatch) -> None:
    import matplotlib.pyplot as plt

    import dlkit.viz.memory as viz_memory

    drawn = []  # the estimate behind each redraw
    monkeypatch.setattr(viz_memory, "plot_memory", lambda estimate, ax: drawn.append(estimate))
    widget = memory_explorer(d_model=256, n_layers=2, batch_size=2, seq_len=256)
    first_row = widget.children[0]
    first_row.children[1].value = 4  # layers
    plt.close("all")
    per_layer = 4 * 256**2 + 2 * 256 * 1024 + 9 * 256 + 1024  # d_ff = 4 d_model
    assert len(drawn) == 2, "one drawing at creation, one after the slider moved"
    assert drawn[1].n_params - drawn[0].n_params == 2 * per_layer
    assert drawn[1].activations > drawn[0].activations

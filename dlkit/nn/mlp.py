"""A multilayer perceptron described by a config: Linear → ReLU → … → Linear."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

from torch import nn

__all__ = ["MLPConfig", "build_mlp"]


@dataclass
class MLPConfig:
    """Linear → ReLU → … → Linear: ``d_in → hidden[0] → … → hidden[-1] → d_out``."""

    d_in: int
    hidden: tuple[int, ...]
    d_out: int
    bias: bool = True


def build_mlp(config: MLPConfig) -> nn.Sequential:
    """The MLP that ``count_parameters(config)`` describes (ReLU between Linear layers)."""
    widths = [config.d_in, *config.hidden, config.d_out]
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(pairwise(widths)):
        layers.append(nn.Linear(a, b, bias=config.bias))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)

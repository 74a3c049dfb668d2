"""Activations and losses with the names of ``torch.nn.functional``, written to teach.

``from dlkit.nn import functional as F`` gives drop-in versions of ``F.relu``,
``F.softmax``, ``F.cross_entropy`` and friends, each built from primitive tensor
operations with its formula in the docstring and tested against PyTorch (float64,
values and gradients, extreme inputs). One module per family: ``activations.py``.
"""

from dlkit.nn.functional.activations import (
    elu,
    gelu,
    leaky_relu,
    log_softmax,
    relu,
    sigmoid,
    softmax,
    tanh,
)

__all__ = [
    "elu",
    "gelu",
    "leaky_relu",
    "log_softmax",
    "relu",
    "sigmoid",
    "softmax",
    "tanh",
]

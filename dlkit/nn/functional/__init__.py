"""Activations and losses with the names of ``torch.nn.functional``, written to teach.

``from dlkit.nn import functional as F`` gives drop-in versions of ``F.relu``,
``F.softmax``, ``F.cross_entropy`` and friends, each built from primitive tensor
operations with its formula in the docstring and tested against PyTorch (float64,
values and gradients, extreme inputs). One module per family: ``activations.py``
(relu to gelu, sigmoid, tanh, softmax), ``losses.py`` (regression, binary and KL
losses) and ``classification.py`` (``nll_loss``, ``cross_entropy``).
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
from dlkit.nn.functional.classification import cross_entropy, nll_loss
from dlkit.nn.functional.losses import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    huber_loss,
    kl_div,
    l1_loss,
    mse_loss,
)

__all__ = [
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "cross_entropy",
    "elu",
    "gelu",
    "huber_loss",
    "kl_div",
    "l1_loss",
    "leaky_relu",
    "log_softmax",
    "mse_loss",
    "nll_loss",
    "relu",
    "sigmoid",
    "softmax",
    "tanh",
]

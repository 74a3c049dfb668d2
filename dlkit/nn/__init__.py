"""PyTorch modules and functional ops written to teach.

Same names and argument conventions as ``torch.nn`` / ``torch.nn.functional``, built
from primitive tensor operations so the math is visible, and tested against PyTorch's
own implementations. One model per file: ``mlp.py``, ``gpt.py``; the chapters on
activations, losses, CNNs, RNNs and Transformers add theirs.
"""

from dlkit.nn import functional
from dlkit.nn.dropout import Dropout
from dlkit.nn.gpt import GPT, TransformerConfig, build_transformer
from dlkit.nn.mlp import MLPConfig, build_mlp
from dlkit.nn.normalization import BatchNorm1d, LayerNorm

__all__ = [
    "GPT",
    "BatchNorm1d",
    "Dropout",
    "LayerNorm",
    "MLPConfig",
    "TransformerConfig",
    "build_mlp",
    "build_transformer",
    "functional",
]

"""PyTorch modules and functional ops written to teach.

Same names and argument conventions as ``torch.nn`` / ``torch.nn.functional``, built
from primitive tensor operations so the math is visible, and tested against PyTorch's
own implementations. One model per file: ``mlp.py``, ``gpt.py``; the chapters on
activations, losses, CNNs, RNNs and Transformers add theirs.
"""

from dlkit.nn import functional
from dlkit.nn.char_lm import CharLM, sample_next
from dlkit.nn.dropout import Dropout
from dlkit.nn.gpt import GPT, TransformerConfig, build_transformer
from dlkit.nn.lenet import LeNet, LeNetConfig
from dlkit.nn.mlp import MLPConfig, build_mlp
from dlkit.nn.normalization import BatchNorm1d, LayerNorm
from dlkit.nn.recurrent import GRU, LSTM, GRUCell, LSTMCell
from dlkit.nn.resnet import BasicBlock, ResNet, ResNetConfig

__all__ = [
    "GPT",
    "GRU",
    "LSTM",
    "BasicBlock",
    "BatchNorm1d",
    "CharLM",
    "Dropout",
    "GRUCell",
    "LSTMCell",
    "LayerNorm",
    "LeNet",
    "LeNetConfig",
    "MLPConfig",
    "ResNet",
    "ResNetConfig",
    "TransformerConfig",
    "build_mlp",
    "build_transformer",
    "functional",
    "sample_next",
]

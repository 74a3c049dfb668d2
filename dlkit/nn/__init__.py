"""PyTorch modules and functional ops written to teach.

Same names and argument conventions as ``torch.nn`` / ``torch.nn.functional``, built
from primitive tensor operations so the math is visible, and tested against PyTorch's
own implementations. One model per file: ``mlp.py``, ``gpt.py``; the chapters on
activations, losses, CNNs, RNNs and Transformers add theirs.
"""

from dlkit.nn import functional
from dlkit.nn.attention import (
    MultiHeadAttention,
    attention_weights,
    causal_mask,
    scaled_dot_product_attention,
)
from dlkit.nn.char_lm import CharLM, sample_next
from dlkit.nn.dropout import Dropout
from dlkit.nn.feedforward import FeedForward, SwiGLU
from dlkit.nn.gpt import GPT, TransformerConfig, build_transformer
from dlkit.nn.kv_cache import KVCache, LayerKVCache, kv_cache_bytes
from dlkit.nn.layers import Embedding, Linear
from dlkit.nn.lenet import LeNet, LeNetConfig
from dlkit.nn.mlp import MLPConfig, build_mlp
from dlkit.nn.normalization import BatchNorm1d, LayerNorm, RMSNorm
from dlkit.nn.positions import (
    LearnedPositions,
    NoPositions,
    RotaryEmbedding,
    SinusoidalPositions,
    build_positions,
    sinusoidal_table,
)
from dlkit.nn.recurrent import GRU, LSTM, GRUCell, LSTMCell
from dlkit.nn.resnet import BasicBlock, ResNet, ResNetConfig
from dlkit.nn.transformer import (
    DecoderOnlyLM,
    EncoderDecoder,
    SequenceClassifier,
    TransformerDecoder,
    TransformerEncoder,
)
from dlkit.nn.transformer_blocks import DecoderBlock, EncoderBlock, TransformerStackConfig

__all__ = [
    "GPT",
    "GRU",
    "LSTM",
    "BasicBlock",
    "BatchNorm1d",
    "CharLM",
    "DecoderBlock",
    "DecoderOnlyLM",
    "Dropout",
    "Embedding",
    "EncoderBlock",
    "EncoderDecoder",
    "FeedForward",
    "GRUCell",
    "KVCache",
    "LSTMCell",
    "LayerKVCache",
    "LayerNorm",
    "LeNet",
    "LeNetConfig",
    "LearnedPositions",
    "Linear",
    "MLPConfig",
    "MultiHeadAttention",
    "NoPositions",
    "RMSNorm",
    "ResNet",
    "ResNetConfig",
    "RotaryEmbedding",
    "SequenceClassifier",
    "SinusoidalPositions",
    "SwiGLU",
    "TransformerConfig",
    "TransformerDecoder",
    "TransformerEncoder",
    "TransformerStackConfig",
    "attention_weights",
    "build_mlp",
    "build_positions",
    "build_transformer",
    "causal_mask",
    "functional",
    "kv_cache_bytes",
    "sample_next",
    "scaled_dot_product_attention",
    "sinusoidal_table",
]

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
from dlkit.nn.bert import MaskedLMEncoder, masked_accuracy, masked_lm_loss
from dlkit.nn.char_lm import CharLM, sample_next
from dlkit.nn.dropout import Dropout
from dlkit.nn.feedforward import FeedForward, SwiGLU
from dlkit.nn.gpt import GPT, GPTConfig, causal_lm_loss, next_token_loss
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
from dlkit.nn.sampling import (
    next_token_distribution,
    sample_next_token,
    top_k_filter,
    top_p_filter,
)
from dlkit.nn.transformer import (
    DecoderOnlyLM,
    EncoderDecoder,
    SequenceClassifier,
    TransformerDecoder,
    TransformerEncoder,
)
from dlkit.nn.transformer_blocks import DecoderBlock, EncoderBlock, TransformerStackConfig
from dlkit.nn.weights import (
    WeightsMismatchError,
    load_weights,
    read_config,
    read_metadata,
    save_weights,
)

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
    "GPTConfig",
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
    "MaskedLMEncoder",
    "MultiHeadAttention",
    "NoPositions",
    "RMSNorm",
    "ResNet",
    "ResNetConfig",
    "RotaryEmbedding",
    "SequenceClassifier",
    "SinusoidalPositions",
    "SwiGLU",
    "TransformerDecoder",
    "TransformerEncoder",
    "TransformerStackConfig",
    "WeightsMismatchError",
    "attention_weights",
    "build_mlp",
    "build_positions",
    "causal_lm_loss",
    "causal_mask",
    "functional",
    "kv_cache_bytes",
    "load_weights",
    "masked_accuracy",
    "masked_lm_loss",
    "next_token_distribution",
    "next_token_loss",
    "read_config",
    "read_metadata",
    "sample_next",
    "sample_next_token",
    "save_weights",
    "scaled_dot_product_attention",
    "sinusoidal_table",
    "top_k_filter",
    "top_p_filter",
]

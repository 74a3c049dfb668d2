"""From-scratch implementations in NumPy alone.

Everything here is written so a learner can read how it works, and nothing here may
import torch (``tests/test_package_layout.py`` enforces it): the point of these
modules is that no framework does the work. The autograd engine, layers, conv, RNN
and attention land here chapter by chapter.
"""

from dlkit.scratch.attention import (
    AttentionCache,
    MultiHeadSelfAttentionCache,
    attention_backward,
    attention_forward,
    multi_head_self_attention_backward,
    multi_head_self_attention_forward,
)
from dlkit.scratch.conv import (
    col2im,
    conv2d_backward,
    conv2d_backward_loop,
    conv2d_forward,
    conv2d_forward_loop,
    conv2d_output_shape,
    conv_output_size,
    im2col,
)
from dlkit.scratch.gradcheck import (
    GradcheckError,
    GradcheckResult,
    assert_gradcheck,
    gradcheck,
)
from dlkit.scratch.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_f1,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)
from dlkit.scratch.mlp import MLP, Linear, cross_entropy, train_mlp
from dlkit.scratch.model_selection import (
    PermutationImportance,
    cross_val_scores,
    kfold_indices,
    permutation_importance,
    stratified_kfold_indices,
)
from dlkit.scratch.ngram import BigramLM, UnigramLM
from dlkit.scratch.ops import unbroadcast
from dlkit.scratch.optimizers import SGD, Adagrad, Adam, AdamW, RMSprop, ScratchOptimizer
from dlkit.scratch.pooling import (
    avg_pool2d,
    avg_pool2d_backward,
    max_pool2d,
    max_pool2d_backward,
)
from dlkit.scratch.rnn import (
    GradientFlow,
    clip_grad_norm,
    gradient_flow,
    init_rnn_params,
    rnn_backward,
    rnn_forward,
    rnn_step_backward,
    rnn_step_forward,
)
from dlkit.scratch.tensor import Tensor
from dlkit.scratch.value import Value

__all__ = [
    "MLP",
    "SGD",
    "Adagrad",
    "Adam",
    "AdamW",
    "AttentionCache",
    "BigramLM",
    "GradcheckError",
    "GradcheckResult",
    "GradientFlow",
    "Linear",
    "MultiHeadSelfAttentionCache",
    "PermutationImportance",
    "RMSprop",
    "ScratchOptimizer",
    "Tensor",
    "UnigramLM",
    "Value",
    "accuracy_score",
    "assert_gradcheck",
    "attention_backward",
    "attention_forward",
    "avg_pool2d",
    "avg_pool2d_backward",
    "clip_grad_norm",
    "col2im",
    "confusion_matrix",
    "conv2d_backward",
    "conv2d_backward_loop",
    "conv2d_forward",
    "conv2d_forward_loop",
    "conv2d_output_shape",
    "conv_output_size",
    "cross_entropy",
    "cross_val_scores",
    "f1_score",
    "gradcheck",
    "gradient_flow",
    "im2col",
    "init_rnn_params",
    "kfold_indices",
    "max_pool2d",
    "max_pool2d_backward",
    "multi_head_self_attention_backward",
    "multi_head_self_attention_forward",
    "permutation_importance",
    "precision_recall_f1",
    "precision_score",
    "recall_score",
    "rnn_backward",
    "rnn_forward",
    "rnn_step_backward",
    "rnn_step_forward",
    "roc_auc_score",
    "roc_curve",
    "stratified_kfold_indices",
    "train_mlp",
    "unbroadcast",
]

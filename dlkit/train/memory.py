"""Where the memory of training goes: parameters, gradients, optimizer state, activations.

Every number here is first computed from a formula (bytes) and then measured on real PyTorch
tensors, so a learner can see the two agree. For :math:`N` parameters trained with Adam in fp32:

.. math:: \\underbrace{4N}_{\\text{params}} + \\underbrace{4N}_{\\text{grads}}
          + \\underbrace{8N}_{m,\\,v} = 16N \\text{ bytes}

With bf16 mixed precision (bf16 weights and gradients, fp32 master weights and Adam moments) it
is :math:`2N + 2N + 12N = 16N` too: mixed precision saves activation memory and time, not the
optimizer's memory (the ZeRO paper's :math:`2 + 2 + K` with :math:`K = 12`).
Activations grow with the batch size and are what ``measure_saved_activation_bytes`` measures.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Literal

import torch
from torch import Tensor, nn

from dlkit.nn.gpt import GPTConfig
from dlkit.nn.mlp import MLPConfig

OptimizerName = Literal["sgd", "sgd_momentum", "adam", "adamw"]
_STATES_PER_PARAM: dict[str, int] = {"sgd": 0, "sgd_momentum": 1, "adam": 2, "adamw": 2}


def count_parameters(config: MLPConfig | GPTConfig) -> int:
    """Parameters from the config alone.

    MLP with widths :math:`w_0 = d_{in}, w_1, …, w_L = d_{out}`:
    :math:`\\sum_{i=1}^{L} (w_{i-1} w_i + w_i)` (drop the :math:`+ w_i` without bias).

    GPT (``dlkit.nn.GPT``) with :math:`V, C` = vocab, d_model, :math:`S` = max_len,
    :math:`F` = d_ff, GPT-2 style (learned positions, LayerNorm, GELU, biases):
    :math:`VC + SC` (embeddings) :math:`+ L\\,(4C^2 + 2CF + 9C + F)` (per block: two LayerNorms
    :math:`4C`, QKV :math:`3C^2 + 3C`, output projection :math:`C^2 + C`, MLP :math:`2CF + F + C`)
    :math:`+ 2C` (final LayerNorm) :math:`+ VC` if the LM head is not tied to the token embedding.
    The other designs change single terms: positions other than ``"learned"`` have no table
    (:math:`SC \\to 0`), RMSNorm has no shift (:math:`C` per norm), a SwiGLU MLP has three
    matrices (:math:`3CF`, and :math:`2F + C` biases), ``bias=False`` drops every bias and
    LayerNorm shift.
    """
    if isinstance(config, MLPConfig):
        widths = [config.d_in, *config.hidden, config.d_out]
        return sum(a * b + (b if config.bias else 0) for a, b in pairwise(widths))
    if isinstance(config, GPTConfig):
        V, C, S, F_ = config.vocab_size, config.d_model, config.max_len, config.d_ff
        bias = int(config.bias)
        norm = C + (C * bias if config.norm == "layernorm" else 0)  # γ (and β)
        attention = 4 * C * C + 4 * C * bias  # W_Q, W_K, W_V, W_O and their biases
        if config.mlp == "swiglu":
            mlp = 3 * C * F_ + (2 * F_ + C) * bias  # W1, W3 (C -> F), W2 (F -> C)
        else:
            mlp = 2 * C * F_ + (F_ + C) * bias  # linear1 (C -> F), linear2 (F -> C)
        per_layer = 2 * norm + attention + mlp
        positions = S * C if config.positions == "learned" else 0
        head = 0 if config.tie_weights else V * C
        return V * C + positions + config.n_layers * per_layer + norm + head
    raise TypeError(f"expected MLPConfig or GPTConfig, got {type(config).__name__}")


@dataclass
class MemoryBreakdown:
    """Bytes of one training step's persistent state; ``total`` is their sum."""

    n_params: int
    params: int
    grads: int
    optimizer_state: int
    total: int = field(init=False)

    def __post_init__(self) -> None:
        self.total = self.params + self.grads + self.optimizer_state

    def __str__(self) -> str:
        rows = [
            ("parameters", self.params),
            ("gradients", self.grads),
            ("optimizer state", self.optimizer_state),
            ("total", self.total),
        ]
        n = max(self.n_params, 1)
        lines = [f"{'':16} {'bytes/param':>11} {'MiB':>12} {'GiB':>10}"]
        for name, b in rows:
            lines.append(f"{name:16} {b / n:11.1f} {b / 2**20:12.2f} {b / 2**30:10.3f}")
        return "\n".join(lines)


def training_memory(
    n_params: int,
    *,
    param_bytes: int = 4,
    grad_bytes: int = 4,
    optimizer: OptimizerName = "adam",
    state_bytes: int = 4,
    master_weights: bool = False,
) -> MemoryBreakdown:
    """Parameters, gradients and optimizer state for ``n_params`` parameters, in bytes.

    :math:`\\text{params} = N b_p`, :math:`\\text{grads} = N b_g`,
    :math:`\\text{state} = N (k\\, b_s + 4 [\\text{master}])` with :math:`k` = 0 (SGD),
    1 (SGD with momentum: the momentum buffer), 2 (Adam/AdamW: :math:`m` and :math:`v`).
    fp32 Adam: 4 + 4 + 8 = 16 bytes/param. bf16 mixed precision (``param_bytes=2,
    grad_bytes=2, master_weights=True``): 2 + 2 + 12 — the fp32 master copy is counted as
    optimizer state, as in the ZeRO paper (and Megatron/DeepSpeed, which store bf16 weights).
    ``torch.autocast`` is different: parameters and gradients stay fp32 (4 + 4 + 8) and bf16
    copies are made per op. Activations are not included (they depend on the batch).
    """
    if optimizer not in _STATES_PER_PARAM:
        raise ValueError(f"optimizer must be one of {sorted(_STATES_PER_PARAM)}, got {optimizer!r}")
    state = n_params * (_STATES_PER_PARAM[optimizer] * state_bytes + (4 if master_weights else 0))
    return MemoryBreakdown(n_params, n_params * param_bytes, n_params * grad_bytes, state)


def _storage_bytes(tensors: Iterable[Tensor], exclude: set[int] | None = None) -> int:
    """Bytes of the distinct storages behind ``tensors`` (views and repeats count once)."""
    seen = set(exclude or ())
    total = 0
    for t in tensors:
        storage = t.untyped_storage()
        if storage.data_ptr() not in seen and storage.nbytes() > 0:
            seen.add(storage.data_ptr())
            total += storage.nbytes()
    return total


def measure_param_bytes(model: nn.Module) -> int:
    """Bytes of the model's parameter storages (tied weights count once)."""
    return _storage_bytes(model.parameters())


def measure_grad_bytes(model: nn.Module) -> int:
    """Bytes of the ``.grad`` tensors that exist now (none before the first ``backward``)."""
    return _storage_bytes(p.grad for p in model.parameters() if p.grad is not None)


def measure_optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of every tensor in ``optimizer.state`` (empty until the first ``step``).

    Besides the per-element buffers of the formula, Adam/AdamW keep a 0-dim float32 ``step``
    counter per parameter *tensor*: measured = :math:`8N + 4 \\times` (number of parameter tensors).
    """
    return _storage_bytes(
        v for state in optimizer.state.values() for v in state.values() if isinstance(v, Tensor)
    )


def activation_bytes_mlp(config: MLPConfig, batch_size: int, dtype_bytes: int = 4) -> int:
    """Bytes autograd saves during the forward pass of ``build_mlp(config)``.

    Each Linear saves its input (for :math:`\\partial L/\\partial W = \\delta^\\top x`); ReLU saves
    its *output* (``relu_backward`` masks the gradient where :math:`y > 0`). That output is the
    very tensor the next Linear saves, so it is stored once: with batch :math:`B`,
    :math:`B\\,(d_{in} + \\sum_i h_i)\\, b`. The final logits are not saved (a loss may save them).
    A 1-bit ReLU mask would be smaller, but PyTorch keeps the full output.
    """
    return batch_size * (config.d_in + sum(config.hidden)) * dtype_bytes


def activation_bytes_transformer(
    config: GPTConfig,
    batch_size: int,
    seq_len: int,
    dtype_bytes: int = 4,
    *,
    attention: Literal["flash", "math"] = "flash",
) -> int:
    """Bytes autograd saves in the forward pass of ``dlkit.nn.GPT(config)`` on ``(B, T)`` ids.

    Exact for the GPT-2 design (learned positions, LayerNorm, GELU, no dropout) with
    ``kernels="torch"``, the design and kernels of a training run; other configs raise a
    ``ValueError`` (RMSNorm, SwiGLU, RoPE and dlkit's teaching ops save other tensors).

    Per block, in :math:`BTC` elements: LN1 input, QKV input, q/k/v (3), attention output, LN2
    input, fc input — 8 — plus :math:`2BTF` (GELU input, fc_out input) and float32 LayerNorm
    mean and rstd, :math:`2 \\times 2BT`. ``attention`` names the SDPA kernel that ran:

    * ``"flash"`` (fused; PyTorch's CPU default): q, k, v are views of the QKV output and the
      output is laid out ``(B, T, nh, hs)``, so merging the heads copies nothing and the output
      projection saves that same tensor; plus a float32 log-sum-exp :math:`B\\,n_h T`.
    * ``"math"`` (the reference fallback): saves copies of (scaled) q, kᵀ and v, the softmax
      probabilities :math:`B\\,n_h T^2` — quadratic in :math:`T`, what flash attention avoids —
      and the output projection saves the contiguous copy of the output. (Exact for
      ``n_heads > 1`` and ``T > 1``; otherwise some reshapes are views that keep the whole QKV
      output alive and the measurement is larger.)

    Outside the blocks: int64 token ids :math:`8BT` (the embedding lookup's index; the
    learned positions are a slice of their table and save nothing), final LayerNorm input and
    LM-head input :math:`2BTC`, their mean and rstd :math:`2BT` float32.
    """
    if attention not in ("flash", "math"):
        raise ValueError(f"attention must be 'flash' or 'math', got {attention!r}")
    design = (config.norm, config.mlp, config.positions, config.kernels, config.dropout)
    if design != ("layernorm", "gelu", "learned", "torch", 0.0):
        raise ValueError(
            "activation_bytes_transformer is exact for the GPT-2 design with kernels='torch' "
            "(norm='layernorm', mlp='gelu', positions='learned', dropout=0); got "
            f"norm={config.norm!r}, mlp={config.mlp!r}, positions={config.positions!r}, "
            f"kernels={config.kernels!r}, dropout={config.dropout}"
        )
    B, T, C, F_, nh = batch_size, seq_len, config.d_model, config.d_ff, config.n_heads
    per_layer = (8 * B * T * C + 2 * B * T * F_) * dtype_bytes + 2 * 2 * B * T * 4
    if attention == "flash":
        per_layer += B * nh * T * 4  # log-sum-exp, float32
    else:
        per_layer += B * nh * T * T * dtype_bytes  # attention probabilities (B, nh, T, T)
    ids = 8 * B * T  # token ids (B, T), int64
    final = 2 * B * T * C * dtype_bytes + 2 * B * T * 4  # ln_f and head inputs; ln_f mean, rstd
    return config.n_layers * per_layer + ids + final


def saved_tensor_bytes(
    forward: Callable[[], Tensor], *, exclude: Iterable[Tensor] = ()
) -> tuple[Tensor, int]:
    """Run ``forward()`` and count the bytes autograd saves for its backward pass.

    ``torch.autograd.graph.saved_tensors_hooks`` sees every tensor saved for backward. Each
    distinct storage counts once (q, k, v views of one buffer do not count three times), and
    the storages of ``exclude`` (e.g. the parameters) not at all. Returns ``(output, bytes)``.
    """
    saved: list[Tensor] = []

    def pack(t: Tensor) -> Tensor:
        saved.append(t)
        return t

    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = forward()
    skip = {t.untyped_storage().data_ptr() for t in exclude}
    return out, _storage_bytes(saved, exclude=skip)


def measure_saved_activation_bytes(model: nn.Module, *inputs: Tensor) -> int:
    """Run ``model(*inputs)`` and sum the bytes autograd saves for backward, parameters left
    out (they are counted by ``measure_param_bytes``)."""
    _, nbytes = saved_tensor_bytes(lambda: model(*inputs), exclude=model.parameters())
    return nbytes


def peak_cuda_memory(fn: Callable[[], object], device: torch.device | str = "cuda") -> int | None:
    """Peak bytes allocated on a CUDA device while ``fn()`` runs (``None`` without CUDA).

    ``torch.cuda.max_memory_allocated`` counts every live tensor, including those created before
    ``fn`` (the model's weights), so it is the device-level check of params + grads + optimizer
    state + activations. Without CUDA ``fn`` is not called.
    """
    if not torch.cuda.is_available():
        return None
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    torch.cuda.synchronize(device)
    return int(torch.cuda.max_memory_allocated(device))


__all__ = [
    "MemoryBreakdown",
    "activation_bytes_mlp",
    "activation_bytes_transformer",
    "count_parameters",
    "measure_grad_bytes",
    "measure_optimizer_state_bytes",
    "measure_param_bytes",
    "measure_saved_activation_bytes",
    "peak_cuda_memory",
    "saved_tensor_bytes",
    "training_memory",
]

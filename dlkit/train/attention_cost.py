r"""What attention costs against sequence length, next to a recurrent layer, and what a KV
cache saves when generating.

**One layer, forward and backward** (:func:`attention_cost`). For a batch of :math:`B`
sequences of :math:`T` vectors of width :math:`C`, self-attention with :math:`H` heads and a
GRU of the same width do (multiply-adds, forward):

.. math::

    \text{attention: } B\,(4 T C^2 + 2 T^2 C), \qquad \text{GRU: } B\, T\, 6 C^2,

and keep for the backward pass the :math:`B H T^2` attention weights (and the scores they
came from) against the GRU's few :math:`B C` vectors per step: attention's activation
memory grows as :math:`T^2`, the GRU's as :math:`T`. The GRU's :math:`T` steps run one
after another, while attention's :math:`T^2` work is a few large matrix products, so for
moderate :math:`T` attention can be faster in seconds although it does more arithmetic.

Memory is *measured*, not estimated: :func:`~dlkit.train.memory.saved_tensor_bytes` runs the forward pass
under ``torch.autograd.graph.saved_tensors_hooks`` and adds up the bytes of every distinct
storage autograd keeps for the backward pass (parameters excluded), so the numbers are
exact and the same on every run. Times are the median of ``repeats`` timed runs after one
warm-up, on one CPU thread.

**KV cache** (:func:`kv_cache_speedup`): tokens per second of
:meth:`dlkit.nn.transformer.DecoderOnlyLM.generate` with and without the cache.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from dlkit.nn.attention import MultiHeadAttention
from dlkit.nn.transformer import DecoderOnlyLM
from dlkit.nn.transformer_blocks import TransformerStackConfig
from dlkit.train.device import one_thread
from dlkit.train.memory import saved_tensor_bytes

__all__ = [
    "AttentionCost",
    "KVCacheSpeed",
    "attention_cost",
    "kv_cache_speedup",
]


def _median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: first-call allocations and dispatch
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@dataclass
class AttentionCost:
    """Forward+backward time and saved bytes of one attention layer and one GRU layer per ``T``."""

    lengths: list[int]
    attention_seconds: list[float]
    rnn_seconds: list[float]
    attention_bytes: list[int]  # saved for backward, parameters excluded
    rnn_bytes: list[int]
    attention_flops: list[int]  # forward multiply-adds × 2 (formula in the module docstring)
    rnn_flops: list[int]
    d_model: int
    n_heads: int
    batch_size: int

    def table(self) -> str:
        """The measurements as a fixed-width text table."""
        lines = [
            f"B={self.batch_size}, C={self.d_model}, H={self.n_heads}; forward+backward, 1 thread",
            f"{'T':>6} {'attn ms':>9} {'GRU ms':>9} {'attn MiB':>9} {'GRU MiB':>9}",
        ]
        for i, T in enumerate(self.lengths):
            lines.append(
                f"{T:>6} {1e3 * self.attention_seconds[i]:>9.2f} {1e3 * self.rnn_seconds[i]:>9.2f}"
                f" {self.attention_bytes[i] / 2**20:>9.2f} {self.rnn_bytes[i] / 2**20:>9.2f}"
            )
        return "\n".join(lines)


def _forward_backward(layer: nn.Module, x: Tensor, run: Callable[[Tensor], Tensor]) -> int:
    """One forward (counting saved bytes) and backward; returns the bytes."""
    x = x.detach().requires_grad_(True)
    out, nbytes = saved_tensor_bytes(lambda: run(x), exclude=list(layer.parameters()))
    out.sum().backward()
    return nbytes


def attention_cost(
    lengths: Sequence[int] = (64, 128, 256, 512, 1024),
    *,
    d_model: int = 64,
    n_heads: int = 4,
    batch_size: int = 1,
    causal: bool = False,
    repeats: int = 3,
    seed: int = 0,
) -> AttentionCost:
    """Time and saved memory of a forward+backward pass through one self-attention layer
    (:class:`dlkit.nn.attention.MultiHeadAttention`, ``causal`` or not) and through one
    ``torch.nn.GRU`` layer of the same width, for each sequence length in ``lengths``."""
    if not lengths or any(int(T) < 1 for T in lengths):
        raise ValueError(f"lengths must be positive integers, got {list(lengths)}")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    torch.manual_seed(seed)
    attention = MultiHeadAttention(d_model, n_heads, batch_first=True)
    gru = nn.GRU(d_model, d_model, batch_first=True)

    def attend(x: Tensor) -> Tensor:
        return attention(x, x, x, need_weights=False, is_causal=causal)[0]  # (B, T, C)

    def recur(x: Tensor) -> Tensor:
        return gru(x)[0]  # (B, T, C)

    result = AttentionCost(
        [], [], [], [], [], [], [], d_model=d_model, n_heads=n_heads, batch_size=batch_size
    )
    B, C = batch_size, d_model
    with one_thread():
        for T in lengths:
            T = int(T)
            x = torch.randn(B, T, C)  # (B, T, C)
            result.lengths.append(T)
            for layer, run, seconds, nbytes in (
                (attention, attend, result.attention_seconds, result.attention_bytes),
                (gru, recur, result.rnn_seconds, result.rnn_bytes),
            ):
                nbytes.append(_forward_backward(layer, x, run))
                seconds.append(
                    _median_seconds(
                        lambda layer=layer, run=run, x=x: _forward_backward(layer, x, run), repeats
                    )
                )
                layer.zero_grad(set_to_none=True)
            result.attention_flops.append(2 * B * (4 * T * C * C + 2 * T * T * C))
            result.rnn_flops.append(2 * B * T * 6 * C * C)
    return result


@dataclass
class KVCacheSpeed:
    """Greedy generation of ``new_tokens`` tokens with and without a KV cache."""

    prompt_len: int
    new_tokens: int
    batch_size: int
    cached_seconds: float
    uncached_seconds: float
    same_tokens: bool  # both ways produced exactly the same sequence

    @property
    def cached_tokens_per_second(self) -> float:
        return self.batch_size * self.new_tokens / self.cached_seconds

    @property
    def uncached_tokens_per_second(self) -> float:
        return self.batch_size * self.new_tokens / self.uncached_seconds

    @property
    def speedup(self) -> float:
        """How many times faster generation is with the cache."""
        return self.uncached_seconds / self.cached_seconds


def kv_cache_speedup(
    model: DecoderOnlyLM | None = None,
    *,
    prompt_len: int = 16,
    new_tokens: int = 112,
    batch_size: int = 1,
    d_model: int = 64,
    n_heads: int = 4,
    n_layers: int = 2,
    vocab_size: int = 64,
    repeats: int = 3,
    seed: int = 0,
) -> KVCacheSpeed:
    """Tokens per second of ``model.generate(..., use_cache=True / False)`` (greedy).

    Without ``model`` a randomly initialised :class:`DecoderOnlyLM` of the given size is
    built (``max_len = prompt_len + new_tokens``); speed does not depend on training. The
    prompt is random token ids from ``seed``. Times are medians of ``repeats`` runs.
    """
    if prompt_len < 1 or new_tokens < 1:
        raise ValueError(
            f"prompt_len and new_tokens must be >= 1, got {prompt_len} and {new_tokens}"
        )
    torch.manual_seed(seed)
    if model is None:
        config = TransformerStackConfig(
            d_model=d_model, n_heads=n_heads, n_layers=n_layers, d_ff=4 * d_model,
            max_len=prompt_len + new_tokens,
        )  # fmt: skip
        model = DecoderOnlyLM(config, vocab_size)
    model.eval()
    prompt = torch.randint(0, model.vocab_size, (batch_size, prompt_len))  # (B, T0)
    with one_thread():
        outputs = {c: model.generate(prompt, new_tokens, use_cache=c) for c in (True, False)}
        seconds = {
            c: _median_seconds(lambda c=c: model.generate(prompt, new_tokens, use_cache=c), repeats)
            for c in (True, False)
        }
    return KVCacheSpeed(
        prompt_len=prompt_len,
        new_tokens=new_tokens,
        batch_size=batch_size,
        cached_seconds=seconds[True],
        uncached_seconds=seconds[False],
        same_tokens=bool(torch.equal(outputs[True], outputs[False])),
    )

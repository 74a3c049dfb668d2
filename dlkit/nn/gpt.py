r"""GPT: a decoder-only Transformer language model, its configuration, and its two losses.

A GPT reads token ids :math:`x_1, \dots, x_T` and predicts, at every position, the next one:

.. math::

    h^{(0)}_t = E_{x_t} + P_t, \qquad h^{(\ell)} = \mathrm{Block}_\ell(h^{(\ell-1)}), \qquad
    p(x_{t+1} \mid x_{\le t}) = \operatorname{softmax}\big(E\, N(h^{(L)}_t)\big),

with pre-norm blocks of causal self-attention and an MLP (``dlkit.nn.transformer_blocks``),
a final norm :math:`N` and an output head that *is* the token embedding :math:`E`
(``tie_weights``: one :math:`V \times C` matrix, counted once). The model is chapter 08's
:class:`~dlkit.nn.transformer.DecoderOnlyLM`; this file adds what pretraining needs.

**Two designs from one config.** :meth:`GPTConfig.gpt2` is GPT-2 (Radford et al., 2019):
learned positions, LayerNorm, a GELU MLP of width :math:`4C`, biases. :meth:`GPTConfig.modern`
is the LLaMA recipe: rotary positions (RoPE), RMSNorm, a SwiGLU MLP of width
:math:`\approx \tfrac83 C` (the parameters of a :math:`4C` GELU MLP), no biases.

**Initialization** (GPT-2): every weight matrix and embedding
:math:`\sim \mathcal N(0, 0.02^2)`, biases 0, norm gains 1, and the two projections that
write into the residual stream in each block (attention's ``out_proj``, the MLP's last
linear) :math:`\sim \mathcal N(0, (0.02 / \sqrt{2 n_\text{layers}})^2)`: the residual stream
is a sum of :math:`2 n_\text{layers}` such branches, so its variance at initialization stays
that of one branch instead of growing with depth.

**Losses.** The causal LM loss is the mean over the :math:`B (T-1)` predicted positions

.. math:: \mathcal L = -\frac{1}{B (T-1)} \sum_{b} \sum_{t=1}^{T-1}
   \log p_\theta(x_{b,t+1} \mid x_{b,\le t}),

(:func:`causal_lm_loss` shifts inside; :func:`next_token_loss` takes targets already shifted,
as ``dlkit.data.TokenWindows`` gives them, and averages over all :math:`B T` positions).

**Generation** (:meth:`GPT.generate`) appends one token at a time, drawn by
:func:`dlkit.nn.sampling.sample_next_token` (temperature, top-k, top-p), and keeps every
layer's keys and values in a KV cache so each step runs only the new token.

``kernels="torch"`` (the default here) runs PyTorch's fused kernels for the same math
(``transformer_blocks``' module docstring); ``kernels="dlkit"`` the ops written to teach.
Their state dicts are the same.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from dataclasses import KW_ONLY, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlkit.nn.feedforward import FeedForward, SwiGLU
from dlkit.nn.kv_cache import KVCache
from dlkit.nn.layers import Embedding
from dlkit.nn.normalization import LayerNorm, RMSNorm
from dlkit.nn.positions import LearnedPositions
from dlkit.nn.sampling import sample_next_token
from dlkit.nn.transformer import DecoderOnlyLM
from dlkit.nn.transformer_blocks import TransformerStackConfig
from dlkit.optim.param_groups import weight_decay_groups

__all__ = ["GPT", "GPTConfig", "causal_lm_loss", "next_token_loss"]

INIT_STD = 0.02  # GPT-2's standard deviation for weights and embeddings
_NORMS = (LayerNorm, RMSNorm, nn.LayerNorm, nn.RMSNorm)


@dataclass
class GPTConfig:
    """The shape and design of a :class:`GPT` (positional sizes, keyword-only choices).

    Args:
        vocab_size: :math:`V`, the number of token ids.
        d_model: :math:`C`, the width.
        n_layers: number of blocks.
        n_heads: attention heads (must divide ``d_model``).
        d_ff: the MLP's hidden width.
        max_len: the longest sequence (positions, KV cache, generation).
        dropout: on embeddings, attention weights, MLP hidden units and residual branches.
        bias: biases in linear layers and LayerNorm.
        norm: ``"layernorm"`` or ``"rmsnorm"``; ``norm_eps`` its :math:`\\varepsilon`.
        mlp: ``"gelu"``, ``"relu"`` or ``"swiglu"``.
        positions: ``"learned"``, ``"sinusoidal"``, ``"rope"`` or ``"none"``.
        tie_weights: the output head is the token embedding matrix.
        kernels: ``"torch"`` (fused, to train) or ``"dlkit"`` (the ops written to teach).
    """

    vocab_size: int
    d_model: int
    n_layers: int
    n_heads: int
    d_ff: int
    max_len: int
    _: KW_ONLY
    dropout: float = 0.0
    bias: bool = True
    norm: str = "layernorm"
    mlp: str = "gelu"
    positions: str = "learned"
    norm_eps: float = 1e-5
    tie_weights: bool = True
    kernels: str = "torch"

    def __post_init__(self) -> None:
        v = self.vocab_size
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"GPTConfig: vocab_size must be a positive int, got {v!r}")
        for name in ("bias", "tie_weights"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"GPTConfig: {name} must be a bool, got {getattr(self, name)!r}")
        self.stack_config()  # validates the rest (sizes, kinds, divisibility)

    @classmethod
    def gpt2(
        cls, vocab_size: int, d_model: int, n_layers: int, n_heads: int, max_len: int, **kw: Any
    ) -> GPTConfig:
        """GPT-2's design: learned positions, LayerNorm, GELU MLP of width :math:`4C`, biases."""
        base: dict[str, Any] = {"d_ff": 4 * d_model, "positions": "learned", "bias": True}
        base.update(norm="layernorm", mlp="gelu")
        return cls._build(vocab_size, d_model, n_layers, n_heads, max_len, {**base, **kw})

    @classmethod
    def modern(
        cls, vocab_size: int, d_model: int, n_layers: int, n_heads: int, max_len: int, **kw: Any
    ) -> GPTConfig:
        """LLaMA's design: RoPE, RMSNorm, SwiGLU, no biases.

        ``d_ff`` defaults to :math:`\\tfrac83 C` rounded up to a multiple of 8, so the three
        SwiGLU matrices hold about the parameters of a :math:`4C` GELU MLP's two.
        """
        d_ff = 8 * -(-d_model // 3)  # 8 · ceil(8C / 3 / 8) = 8 · ceil(C / 3), in integers
        base: dict[str, Any] = {"d_ff": d_ff, "positions": "rope", "bias": False}
        base.update(norm="rmsnorm", mlp="swiglu")
        return cls._build(vocab_size, d_model, n_layers, n_heads, max_len, {**base, **kw})

    @classmethod
    def _build(cls, V: int, C: int, L: int, H: int, S: int, kw: dict[str, Any]) -> GPTConfig:
        d_ff = kw.pop("d_ff")
        return cls(V, C, L, H, d_ff, S, **kw)

    def stack_config(self) -> TransformerStackConfig:
        """The :class:`TransformerStackConfig` of the blocks (pre-norm)."""
        return TransformerStackConfig(
            d_model=self.d_model, n_heads=self.n_heads, n_layers=self.n_layers, d_ff=self.d_ff,
            max_len=self.max_len, dropout=self.dropout, bias=self.bias, norm=self.norm,
            norm_eps=self.norm_eps, norm_first=True, mlp=self.mlp, positions=self.positions,
            kernels=self.kernels,
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-safe (ints, floats, strings, bools)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GPTConfig:
        """The config :meth:`to_dict` wrote; unknown or missing keys are a ``ValueError``."""
        fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "_"}
        unknown = sorted(set(d) - set(fields))
        if unknown:
            raise ValueError(f"GPTConfig.from_dict: unknown keys {unknown}; known: {list(fields)}")
        required = [n for n, f in fields.items() if f.default is dataclasses.MISSING and n not in d]
        if required:
            raise ValueError(f"GPTConfig.from_dict: missing keys {required}")
        return cls(**d)


class GPT(DecoderOnlyLM):
    """Token ids ``(B, T)`` → next-token logits ``(B, T, V)``, built from a :class:`GPTConfig`.

    A :class:`~dlkit.nn.transformer.DecoderOnlyLM` (parameters under ``decoder.``) with
    GPT-2's initialization, parameter counting, AdamW parameter groups and sampling.
    ``tok_emb``, ``blocks`` and ``head`` name its parts; with ``tie_weights``,
    ``head.weight is tok_emb.weight``. Seed (``torch.manual_seed``) before building for
    reproducible weights.
    """

    def __init__(self, config: GPTConfig) -> None:
        if not isinstance(config, GPTConfig):
            raise TypeError(f"GPT expects a GPTConfig, got {type(config).__name__}")
        super().__init__(config.stack_config(), config.vocab_size, tie_weights=config.tie_weights)
        self.config: GPTConfig = config  # type: ignore[assignment]  # was the stack's config
        self.reset_parameters()

    @property
    def tok_emb(self) -> Embedding:
        """The token embedding :math:`E` ``(V, C)``."""
        return self.decoder.embed.tok_emb

    @property
    def blocks(self) -> nn.ModuleList:
        """The ``n_layers`` decoder blocks."""
        return self.decoder.blocks

    @property
    def head(self) -> nn.Module:
        """The output layer ``(V, C)`` (no bias)."""
        return self.decoder.head

    def residual_projections(self) -> list[Tensor]:
        """The weights that write into the residual stream: per block ``out_proj`` and the
        MLP's last linear (``linear2`` or SwiGLU's ``w2``)."""
        weights = []
        for block in self.blocks:
            mlp = block.mlp
            if not isinstance(mlp, FeedForward | SwiGLU):
                raise TypeError(f"GPT: unexpected MLP {type(mlp).__name__}")
            last = mlp.w2 if isinstance(mlp, SwiGLU) else mlp.linear2
            weights += [block.self_attn.out_proj.weight, last.weight]
        return weights

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """GPT-2's initialization (module docstring), in ``named_parameters()`` order."""
        residual = {id(w) for w in self.residual_projections()}
        residual_std = INIT_STD / math.sqrt(2 * self.config.n_layers)
        norms = [m for m in self.modules() if isinstance(m, _NORMS)]
        norm_gains = {id(m.weight) for m in norms if m.weight is not None}
        for p in self.parameters():  # a tied matrix once
            if id(p) in norm_gains:
                p.fill_(1.0)  # norm gains γ
            elif p.dim() == 1:
                p.zero_()  # biases: in_proj_bias, Linear biases, LayerNorm's β
            elif id(p) in residual:
                p.normal_(0.0, residual_std)
            else:
                p.normal_(0.0, INIT_STD)  # Linear weights, in_proj_weight, embeddings

    def num_parameters(self, *, non_embedding: bool = False) -> int:
        """Parameters (a tied matrix once); ``non_embedding`` leaves out the token and learned
        position tables (Kaplan et al.'s :math:`N`)."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.tok_emb.weight.numel()
            pos = self.decoder.embed.pos
            if isinstance(pos, LearnedPositions):
                n -= pos.embedding.weight.numel()
        return n

    def param_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        """AdamW groups: decay on weight matrices, none on biases, norms and embeddings
        (:func:`dlkit.optim.param_groups.weight_decay_groups`)."""
        return weight_decay_groups(self, weight_decay)

    def new_cache(
        self,
        batch_size: int,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> KVCache:
        """An empty KV cache for ``batch_size`` sequences of up to ``max_len`` positions."""
        return self.decoder.new_cache(batch_size, dtype=dtype, device=device)

    @torch.no_grad()
    def generate(  # type: ignore[override]  # GPT's sampling arguments, not DecoderOnlyLM's
        self,
        prompt: Tensor | Sequence[int],
        max_new_tokens: int,
        *,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        stop: int | Iterable[int] | None = None,
        seed: int | None = None,
        use_cache: bool = True,
    ) -> Tensor:
        """Extend ``prompt`` by up to ``max_new_tokens`` sampled tokens → ``(B, T + n)``.

        Args:
            prompt: ids ``(B, T)`` or ``(T,)`` (a LongTensor) or a list of ids; a 1-D or list
                prompt is one row, so the result is ``(1, T + n)``.
            max_new_tokens: tokens to append; ``T + max_new_tokens <= max_len``.
            temperature, top_k, top_p: as :func:`dlkit.nn.sampling.sample_next_token`;
                ``temperature=0`` is greedy (deterministic).
            stop: an id or ids; a row that emits one stops, its later positions are filled
                with that id, and generation ends early once every row has stopped
                (so ``n <= max_new_tokens``).
            seed: seeds a ``torch.Generator`` for the draws (same seed, same tokens);
                ``None`` draws from torch's global generator.
            use_cache: keep keys and values (the default) instead of recomputing the whole
                prefix every step; the tokens are the same.

        Runs in evaluation mode (no dropout) and restores the previous mode afterwards.
        """
        idx = self._prompt_ids(prompt)  # (B, T)
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int):
            raise TypeError(f"generate: max_new_tokens must be an int, got {max_new_tokens!r}")
        if max_new_tokens < 0:
            raise ValueError(f"generate: max_new_tokens must be >= 0, got {max_new_tokens}")
        B, T = idx.shape
        if T + max_new_tokens > self.config.max_len:
            raise ValueError(
                f"generate: {T} prompt + {max_new_tokens} new tokens = {T + max_new_tokens} "
                f"exceeds max_len={self.config.max_len}"
            )
        stop_ids = self._stop_ids(stop, idx.device)  # (K,)
        generator = None
        if seed is not None:
            generator = torch.Generator(device=idx.device).manual_seed(seed)
        was_training = self.training
        self.eval()
        try:
            cache = self.new_cache(B) if use_cache else None
            finished = torch.zeros(B, dtype=torch.bool, device=idx.device)  # (B,)
            fill = torch.zeros(B, dtype=torch.long, device=idx.device)  # stop id of each row
            step_in = idx  # the first step feeds the whole prompt
            for _ in range(max_new_tokens):
                logits = self(step_in if use_cache else idx, cache=cache)[:, -1]  # (B, V)
                nxt = sample_next_token(
                    logits, temperature=temperature, top_k=top_k, top_p=top_p,
                    generator=generator,
                )  # fmt: skip  # (B,)
                nxt = torch.where(finished, fill, nxt)  # finished rows repeat their stop id
                idx = torch.cat([idx, nxt[:, None]], dim=1)  # (B, t + 1)
                step_in = nxt[:, None]  # (B, 1)
                if stop_ids.numel():
                    hit = torch.isin(nxt, stop_ids) & ~finished  # (B,)
                    fill = torch.where(hit, nxt, fill)
                    finished |= hit
                    if bool(finished.all()):
                        break
        finally:
            self.train(was_training)
        return idx

    def _prompt_ids(self, prompt: Tensor | Sequence[int]) -> Tensor:
        device = self.tok_emb.weight.device
        if not isinstance(prompt, Tensor):
            prompt = torch.tensor(list(prompt), dtype=torch.long)
        if prompt.is_floating_point() or prompt.is_complex() or prompt.dtype == torch.bool:
            raise TypeError(f"generate: prompt must hold integer token ids, got {prompt.dtype}")
        if prompt.dim() == 1:
            prompt = prompt[None, :]  # (1, T)
        if prompt.dim() != 2 or prompt.shape[1] == 0 or prompt.shape[0] == 0:
            raise ValueError(
                f"generate: prompt must be (B, T) or (T,) with T >= 1, got {tuple(prompt.shape)}"
            )
        V = self.config.vocab_size
        if int(prompt.min()) < 0 or int(prompt.max()) >= V:
            raise ValueError(f"generate: prompt ids must lie in [0, {V}), got {prompt.tolist()}")
        return prompt.to(device=device, dtype=torch.long)

    def _stop_ids(self, stop: int | Iterable[int] | None, device: torch.device) -> Tensor:
        if stop is None:
            ids: list[int] = []
        elif isinstance(stop, int | Tensor) and not (isinstance(stop, Tensor) and stop.dim()):
            ids = [int(stop)]
        else:
            ids = [int(s) for s in stop]
        V = self.config.vocab_size
        bad = [s for s in ids if not 0 <= s < V]
        if bad:
            raise ValueError(f"generate: stop ids must lie in [0, {V}), got {bad}")
        return torch.tensor(ids, dtype=torch.long, device=device)  # (K,)

    def extra_repr(self) -> str:
        return f"{self.config}"


def _check_logits_ids(logits: Tensor, ids: Tensor, name: str, what: str) -> None:
    if not isinstance(logits, Tensor) or logits.dim() != 3 or not logits.is_floating_point():
        got = f"{logits.dtype} {tuple(logits.shape)}" if isinstance(logits, Tensor) else logits
        raise ValueError(f"{name}: logits must be a float tensor (B, T, V), got {got}")
    if not isinstance(ids, Tensor) or ids.dtype.is_floating_point or ids.dtype == torch.bool:
        got = ids.dtype if isinstance(ids, Tensor) else type(ids).__name__
        raise TypeError(f"{name}: {what} must be an integer tensor, got {got}")
    if tuple(ids.shape) != tuple(logits.shape[:2]):
        raise ValueError(
            f"{name}: {what} must have shape (B, T) = {tuple(logits.shape[:2])} like the "
            f"logits (B, T, V) = {tuple(logits.shape)}, got {tuple(ids.shape)}"
        )


def causal_lm_loss(logits: Tensor, ids: Tensor) -> Tensor:
    """Mean of :math:`-\\log p(\\text{ids}_{t+1} \\mid \\text{ids}_{\\le t})` over the
    :math:`B (T - 1)` positions that have a next token.

    ``logits`` ``(B, T, V)`` are the model's outputs for ``ids`` ``(B, T)`` itself: position
    :math:`t`'s logits are scored against token :math:`t + 1` (the shift happens here).
    """
    _check_logits_ids(logits, ids, "causal_lm_loss", "ids")
    if ids.shape[1] < 2:
        raise ValueError(f"causal_lm_loss needs T >= 2 (a next token), got ids {tuple(ids.shape)}")
    V = logits.shape[-1]
    pred = logits[:, :-1].reshape(-1, V)  # (B (T-1), V): positions 0 .. T-2
    target = ids[:, 1:].reshape(-1)  # (B (T-1),): tokens 1 .. T-1
    return F.cross_entropy(pred, target.long())


def next_token_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean cross-entropy over all :math:`B T` positions, ``targets`` already shifted.

    ``targets[b, t]`` is the token after input position :math:`t` (``y`` of
    ``dlkit.data.TokenWindows``). Targets of ``-100`` are left out (PyTorch's ignore index).
    """
    _check_logits_ids(logits, targets, "next_token_loss", "targets")
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten().long())  # (B T, V), (B T,)

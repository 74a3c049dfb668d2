r"""Supervised fine-tuning (SFT): teach a pretrained causal LM to answer prompts.

An example is a prompt :math:`p_1, \dots, p_P` and a response :math:`r_1, \dots, r_R`,
followed by the end-of-text token :math:`r_{R+1} = \texttt{<|endoftext|>}` so that the
model learns to stop. The model reads the whole sequence
:math:`x = (p_1, \dots, p_P, r_1, \dots, r_{R+1})` of length :math:`T = P + R + 1`, and
the loss is the causal LM loss restricted to the response:

.. math:: \mathcal L = -\frac{1}{|S|} \sum_{(b, t) \in S}
   \log p_\theta(x_{b,t+1} \mid x_{b,\le t}), \qquad
   S = \{(b, t) : x_{b,t+1} \text{ is a response or end token}\}.

The prompt is context, not a target: the model is not trained to write instructions.

**Labels** (:func:`encode_example`) are already shifted: ``labels[t]`` is the target of
the logits at position :math:`t`, i.e. token :math:`t + 1`,

.. math:: \text{labels}_t = \begin{cases} x_{t+1} & P \le t + 1 \le T - 1
   \text{ (0-based: the next token is in the response)} \\
   -100 & \text{otherwise (the next token is in the prompt, or } t = T - 1),
   \end{cases}

so the first supervised position is the prompt's last one (:math:`t = P - 1` predicts
:math:`r_1`) and the last one predicts the end token. ``-100`` is PyTorch's
``ignore_index`` (:data:`dlkit.data.masking.IGNORE_INDEX`). :func:`collate` pads ``ids``
on the right with ``<|pad|>`` and ``labels`` with ``-100``: in a causal model a position
never attends to later ones, so right padding changes no supervised logit.

**Evaluation** is exact match: greedy decoding (:meth:`dlkit.nn.gpt.GPT.generate` with
``temperature=0``) from the prompt until the end token, compared with the response
(whitespace stripped at both ends). Prompts with the same number of tokens are decoded
together as one batch.

**Forgetting.** Fine-tuning on one narrow task moves the weights away from what
pretraining found; :func:`pretraining_loss` measures the pretraining objective (the
validation split of the corpus) before and after, the cost side of :func:`sft_experiment`.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from dlkit.data.instructions import Example, make_instruction_examples
from dlkit.data.masking import IGNORE_INDEX
from dlkit.optim.schedules import WarmupCosine
from dlkit.text import BPETokenizer
from dlkit.train.device import one_thread

__all__ = [
    "EOS_TOKEN",
    "PAD_TOKEN",
    "SFTHistory",
    "collate",
    "encode_example",
    "exact_match",
    "generate_response",
    "pretraining_loss",
    "sft_experiment",
    "sft_loss",
    "train_sft",
]

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"


def _special_id(tokenizer: BPETokenizer, token: str) -> int:
    if token not in tokenizer.special_tokens:
        raise ValueError(
            f"the tokenizer has no special token {token!r}: {tokenizer.special_tokens}"
        )
    return tokenizer.special_tokens[token]


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def encode_example(
    tokenizer: BPETokenizer, prompt: str, response: str, *, max_len: int, eos_id: int
) -> tuple[Tensor, Tensor]:
    """``ids`` ``(T,)`` = prompt + response + end token and their shifted ``labels`` ``(T,)``.

    ``labels[t]`` is ``ids[t + 1]`` where that token belongs to the response or is the end
    token, and ``IGNORE_INDEX`` (-100) elsewhere, including the last position (module
    docstring). Special-looking text in the prompt or response is ordinary text. Raises
    ``ValueError`` if the prompt or response is empty or ``T > max_len``.
    """
    _check_int(max_len, "encode_example: max_len", 2)
    prompt_ids = tokenizer.encode(prompt, allowed_special="none")  # P tokens
    response_ids = [*tokenizer.encode(response, allowed_special="none"), int(eos_id)]  # R + 1
    if not prompt_ids or len(response_ids) == 1:
        raise ValueError(
            f"encode_example: prompt and response must be non-empty, got {prompt!r}, {response!r}"
        )
    T = len(prompt_ids) + len(response_ids)
    if T > max_len:
        raise ValueError(
            f"encode_example: {len(prompt_ids)} prompt + {len(response_ids)} response tokens "
            f"(with the end token) = {T} exceed max_len={max_len}"
        )
    ids = torch.tensor(prompt_ids + response_ids, dtype=torch.long)  # (T,)
    labels = torch.full((T,), IGNORE_INDEX, dtype=torch.long)  # (T,)
    P = len(prompt_ids)
    labels[P - 1 : T - 1] = ids[P:T]  # position t predicts token t + 1, t = P-1 .. T-2
    return ids, labels


def collate(examples: Sequence[tuple[Tensor, Tensor]], pad_id: int) -> tuple[Tensor, Tensor]:
    """Right-pad ``(ids, labels)`` pairs to the longest → ``ids`` and ``labels`` ``(B, T_max)``.

    ``ids`` are padded with ``pad_id`` and ``labels`` with ``IGNORE_INDEX``.
    """
    if not examples:
        raise ValueError("collate: no examples")
    for i, (ids, labels) in enumerate(examples):
        if ids.dim() != 1 or ids.shape != labels.shape:
            raise ValueError(
                f"collate: example {i} must be two 1-D tensors of one length, got ids "
                f"{tuple(ids.shape)} and labels {tuple(labels.shape)}"
            )
    T = max(len(ids) for ids, _ in examples)
    batch_ids = torch.full((len(examples), T), int(pad_id), dtype=torch.long)  # (B, T)
    batch_labels = torch.full((len(examples), T), IGNORE_INDEX, dtype=torch.long)  # (B, T)
    for b, (ids, labels) in enumerate(examples):
        batch_ids[b, : len(ids)] = ids
        batch_labels[b, : len(labels)] = labels
    return batch_ids, batch_labels


def sft_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean cross-entropy over the supervised positions (``labels != -100``) only.

    ``logits`` ``(B, T, V)``, ``labels`` ``(B, T)`` int64 already shifted
    (:func:`encode_example`). Raises ``ValueError`` if no position is supervised.
    """
    if not isinstance(logits, Tensor) or logits.dim() != 3 or not logits.is_floating_point():
        got = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise ValueError(f"sft_loss: logits must be a float tensor (B, T, V), got {got}")
    if not isinstance(labels, Tensor) or labels.dtype != torch.long:
        got = labels.dtype if isinstance(labels, Tensor) else type(labels).__name__
        raise TypeError(f"sft_loss: labels must be an int64 tensor, got {got}")
    if tuple(labels.shape) != tuple(logits.shape[:2]):
        raise ValueError(
            f"sft_loss: labels must have shape (B, T) = {tuple(logits.shape[:2])}, "
            f"got {tuple(labels.shape)}"
        )
    if not bool((labels != IGNORE_INDEX).any()):
        raise ValueError("sft_loss: no supervised position (every label is -100)")
    return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX)


@dataclass
class SFTHistory:
    """What :func:`train_sft` recorded: one loss, learning rate and gradient norm per step."""

    losses: list[float] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)
    grad_norms: list[float] = field(default_factory=list)
    seconds: float = 0.0


def train_sft(
    model: nn.Module,
    tokenizer: BPETokenizer,
    examples: Sequence[Example],
    *,
    steps: int,
    batch_size: int = 16,
    lr: float = 2e-3,
    warmup: int = 50,
    weight_decay: float = 0.0,
    clip: float = 1.0,
    seed: int = 0,
    progress: bool = False,
) -> SFTHistory:
    """Fine-tune ``model`` (in place) on ``examples`` with :func:`sft_loss` → :class:`SFTHistory`.

    AdamW (betas 0.9, 0.95) on the parameters that require gradients (so frozen or LoRA
    models train only what is trainable), linear warm-up over ``warmup`` steps to ``lr``
    then cosine decay to 0 at ``steps`` (:class:`~dlkit.optim.schedules.WarmupCosine`),
    gradient norm clipped at ``clip``. Batches take ``batch_size`` examples in epochs of a
    permutation seeded by ``seed``. Runs in training mode (dropout on) on one CPU thread,
    then restores the model's mode. ``progress``: a tqdm bar.
    """
    _check_int(steps, "train_sft: steps", 1)
    _check_int(batch_size, "train_sft: batch_size", 1)
    if not 0 <= warmup < steps:
        raise ValueError(f"train_sft: warmup must lie in [0, steps={steps}), got {warmup}")
    if not examples:
        raise ValueError("train_sft: no examples")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("train_sft: the model has no trainable parameter")
    device = params[0].device
    max_len = int(model.config.max_len)
    eos_id, pad_id = _special_id(tokenizer, EOS_TOKEN), _special_id(tokenizer, PAD_TOKEN)
    encoded = [
        encode_example(tokenizer, e.prompt, e.response, max_len=max_len, eos_id=eos_id)
        for e in examples
    ]
    optimizer = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.95), weight_decay=weight_decay)
    schedule = WarmupCosine(optimizer, warmup, steps)
    generator = torch.Generator().manual_seed(seed)
    order: list[int] = []
    history = SFTHistory()
    was_training = model.training
    model.train()
    start = time.perf_counter()
    try:
        with one_thread():
            for _ in tqdm(range(steps), disable=not progress, desc="SFT", leave=False):
                if len(order) < batch_size:
                    order += torch.randperm(len(encoded), generator=generator).tolist()
                batch, order = order[:batch_size], order[batch_size:]
                ids, labels = collate([encoded[i] for i in batch], pad_id)  # (B, T), (B, T)
                ids, labels = ids.to(device), labels.to(device)
                loss = sft_loss(model(ids), labels)  # logits (B, T, V)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                norm = nn.utils.clip_grad_norm_(params, clip)
                history.lrs.append(optimizer.param_groups[0]["lr"])
                optimizer.step()
                schedule.step()
                history.losses.append(loss.item())
                history.grad_norms.append(float(norm))
    finally:
        model.train(was_training)
    history.seconds = time.perf_counter() - start
    return history


def _cut_at_eos(ids: list[int], eos_id: int) -> list[int]:
    return ids[: ids.index(eos_id)] if eos_id in ids else ids


def _new_tokens(model: nn.Module, prompt_len: int, max_new_tokens: int) -> int:
    room = int(model.config.max_len) - prompt_len
    if room < 1:
        raise ValueError(f"the prompt has {prompt_len} tokens, max_len={model.config.max_len}")
    return min(max_new_tokens, room)


def generate_response(
    model: nn.Module, tokenizer: BPETokenizer, prompt: str, *, max_new_tokens: int = 32
) -> str:
    """Greedy continuation of ``prompt`` up to the end token (not included), decoded.

    At most ``max_new_tokens`` tokens (fewer if the prompt leaves less room in ``max_len``).
    """
    _check_int(max_new_tokens, "generate_response: max_new_tokens", 1)
    eos_id = _special_id(tokenizer, EOS_TOKEN)
    ids = tokenizer.encode(prompt, allowed_special="none")
    n = _new_tokens(model, len(ids), max_new_tokens)
    out = model.generate(ids, n, temperature=0.0, stop=eos_id)[0, len(ids) :]  # (n',)
    return tokenizer.decode(_cut_at_eos(out.tolist(), eos_id))


def exact_match(
    model: nn.Module,
    tokenizer: BPETokenizer,
    examples: Sequence[Example],
    *,
    max_new_tokens: int = 32,
) -> float:
    """Share of ``examples`` whose greedy response equals ``example.response`` (both stripped).

    Prompts of equal token length are decoded as one batch; the result equals calling
    :func:`generate_response` on each.
    """
    _check_int(max_new_tokens, "exact_match: max_new_tokens", 1)
    if not examples:
        raise ValueError("exact_match: no examples")
    eos_id = _special_id(tokenizer, EOS_TOKEN)
    groups: dict[int, list[int]] = {}
    prompts = [tokenizer.encode(e.prompt, allowed_special="none") for e in examples]
    for i, ids in enumerate(prompts):
        groups.setdefault(len(ids), []).append(i)
    right = 0
    for P, members in groups.items():
        batch = torch.tensor([prompts[i] for i in members], dtype=torch.long)  # (G, P)
        n = _new_tokens(model, P, max_new_tokens)
        out = model.generate(batch, n, temperature=0.0, stop=eos_id)[:, P:]  # (G, n')
        for i, row in zip(members, out.tolist(), strict=True):
            text = tokenizer.decode(_cut_at_eos(row, eos_id))
            right += text.strip() == examples[i].response.strip()
    return right / len(examples)


def pretraining_loss(
    model: nn.Module, *, split: str = "val", max_tokens: int | None = 20_000, batch_size: int = 16
) -> float:
    """Nats per token of ``model`` on the corpus split (the pretraining objective).

    :func:`dlkit.train.lm_metrics.evaluate_lm` on the first ``max_tokens`` tokens of
    :func:`dlkit.data.corpus.load_tokens` in windows of ``max_len`` tokens.
    """
    from dlkit.data.corpus import load_tokens
    from dlkit.train.lm_metrics import evaluate_lm

    with one_thread():
        return evaluate_lm(
            model, load_tokens(split), int(model.config.max_len), batch_size=batch_size,
            max_tokens=max_tokens,
        )  # fmt: skip


def sft_experiment(
    *,
    n_train: int = 4000,
    n_test: int = 200,
    steps: int = 900,
    batch_size: int = 16,
    lr: float = 2e-3,
    warmup: int = 50,
    seed: int = 0,
    eval_tokens: int | None = 20_000,
    samples: int = 3,
    progress: bool = False,
) -> dict[str, Any]:
    """Fine-tune a copy of the shipped GPT on the call-writing task; measure before and after.

    Returns ``{"exact_match_before", "exact_match_after", "val_loss_before",
    "val_loss_after", "train_seconds", "history", "samples", "model"}``: exact match on
    ``n_test`` test examples (functions never seen in training), the pretraining
    validation loss (:func:`pretraining_loss`, ``eval_tokens`` tokens; ``None`` skips it),
    ``samples`` test prompts with the answers before and after, and the fine-tuned model.
    The defaults are the full configuration (about 1.5 minutes on one thread);
    ``n_train=500, steps=60, n_test=40, eval_tokens=None`` a quick one (about 9 s).
    """
    from dlkit.train.pretrained import load_pretrained_gpt

    pretrained, tokenizer = load_pretrained_gpt()
    model = copy.deepcopy(pretrained)
    train = make_instruction_examples(n_train, seed=seed, split="train")
    test = make_instruction_examples(n_test, seed=seed + 1, split="test")
    shown = test[:samples]
    result: dict[str, Any] = {
        "exact_match_before": exact_match(model, tokenizer, test),
        "val_loss_before": math.nan if eval_tokens is None else pretraining_loss(
            model, max_tokens=eval_tokens
        ),
    }  # fmt: skip
    before = [generate_response(model, tokenizer, e.prompt) for e in shown]
    history = train_sft(
        model, tokenizer, train, steps=steps, batch_size=batch_size, lr=lr,
        warmup=min(warmup, steps - 1), seed=seed, progress=progress,
    )  # fmt: skip
    model.eval()
    result["exact_match_after"] = exact_match(model, tokenizer, test)
    result["val_loss_after"] = (
        math.nan if eval_tokens is None else pretraining_loss(model, max_tokens=eval_tokens)
    )
    result["train_seconds"] = history.seconds
    result["history"] = history
    result["samples"] = [
        {"prompt": e.prompt, "expected": e.response, "before": b,
         "after": generate_response(model, tokenizer, e.prompt)}
        for e, b in zip(shown, before, strict=True)
    ]  # fmt: skip
    result["model"] = model
    return result

r"""The transfer ladder: how much of a pretrained GPT to train, from nothing to everything.

One task (:mod:`dlkit.data.docstring_areas`: which library area a docstring comes from), one
architecture (the shipped GPT, :func:`dlkit.train.pretrained.load_pretrained_gpt`, with a
linear head on the mean of its final hidden states, :class:`dlkit.nn.lm_classifier.LMClassifier`),
five ways to train it on :math:`k` labelled documents per class:

=============  ==============================================================================
``scratch``    the same architecture, **random** initialization, every parameter trained
``probe``      the pretrained backbone frozen; multinomial logistic regression on its pooled
               features :math:`\bar h(x) \in \mathbb{R}^C` (:func:`~dlkit.train.linear_probe.fit_linear_probe`)
``last_block`` the last block, the final norm and the head trained; the rest frozen
``full``       every parameter trained, from the pretrained weights (optionally with
               discriminative learning rates, :math:`\eta_\ell = \eta\,\gamma^{L-\ell}`)
``lora``       the backbone frozen; low-rank updates :math:`W + \tfrac{\alpha}{r} B A` on every
               ``out_proj`` and SwiGLU ``w1, w2, w3`` (:func:`dlkit.nn.lora.apply_lora`) and the head
=============  ==============================================================================

Every trained method minimizes the cross-entropy
:math:`\mathcal L = -\frac1{|S|}\sum_{(x, y) \in S} \log \operatorname{softmax}(W \bar h(x) + b)_y`
with AdamW, linear warm-up then linear decay to 0, clipping at 1, for
:meth:`FinetuneRecipe.steps` steps: ``epochs`` passes over the :math:`K k` examples, at least
``min_steps``. Batches group documents of similar length (:func:`length_grouped_batches`), so
little of each batch is padding. Each run starts from a deep copy of the backbone, seeded.

:func:`forgetting` measures the other side of fine-tuning: the pretraining loss (next-token
cross-entropy on the corpus's val split, through the tied LM head) before and after the
classifier was fine-tuned, for full fine-tuning, LoRA (the base weights untouched: only the
low-rank update, which the LM head path also passes through) and full fine-tuning at a
lower learning rate.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from dlkit.data.docstring_areas import AreaSplits, labels_per_class_subset
from dlkit.data.token_windows import eval_windows
from dlkit.nn.freezing import count_parameters, freeze, unfreeze
from dlkit.nn.gpt import GPT, next_token_loss
from dlkit.nn.lm_classifier import LMClassifier, pad_batch
from dlkit.nn.lora import apply_lora
from dlkit.optim.param_groups import discriminative_lr_groups
from dlkit.train.linear_probe import fit_linear_probe

__all__ = [
    "DEFAULT_RECIPES",
    "LORA_TARGETS",
    "METHODS",
    "FinetuneRecipe",
    "bag_of_tokens_baseline",
    "build_classifier",
    "forgetting",
    "format_ladder_table",
    "length_grouped_batches",
    "lm_loss",
    "predict",
    "run_ladder",
    "summarize_ladder",
    "train_classifier",
]

METHODS = ("scratch", "probe", "last_block", "full", "lora")
LORA_TARGETS = ("*.out_proj", "*.mlp.w1", "*.mlp.w2", "*.mlp.w3")


@dataclass(frozen=True)
class FinetuneRecipe:
    r"""How one method is trained: AdamW at peak ``lr``, ``epochs`` passes (at least
    ``min_steps`` steps, at most ``max_steps``), batches of ``batch_size``.

    ``layer_decay`` (``full`` only) gives layer :math:`\ell` of :math:`L` (bottom to top,
    head last) the rate :math:`\eta\,\gamma^{L-\ell}`: the lower, more general layers move less.
    """

    lr: float
    epochs: int = 8
    min_steps: int = 0
    max_steps: int | None = None
    batch_size: int = 16
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    grad_clip: float = 1.0
    layer_decay: float | None = None

    def __post_init__(self) -> None:
        if not self.lr > 0 or self.epochs < 1 or self.batch_size < 1 or self.min_steps < 0:
            raise ValueError(f"FinetuneRecipe needs lr > 0, epochs >= 1, batch_size >= 1: {self}")
        if self.layer_decay is not None and not 0 < self.layer_decay <= 1:
            raise ValueError(f"layer_decay must be in (0, 1], got {self.layer_decay}")

    def steps(self, n_examples: int) -> int:
        """``epochs · ceil(n / batch_size)``, clipped to ``[min_steps, max_steps]``."""
        n = self.epochs * math.ceil(n_examples / self.batch_size)
        n = max(n, self.min_steps)
        return n if self.max_steps is None else min(n, self.max_steps)


# Chosen on the val set (k = 100, seed 0, first 32 tokens): each method's best of a few peak
# rates; every method gets the same budget, 8 epochs, at least 200 and at most 600 steps.
DEFAULT_RECIPES: dict[str, FinetuneRecipe] = {
    name: FinetuneRecipe(lr=lr, epochs=8, min_steps=200, max_steps=600)
    for name, lr in (("scratch", 3e-3), ("last_block", 3e-3), ("full", 1e-3), ("lora", 1e-2))
}


def build_classifier(
    method: str,
    backbone: GPT,
    num_classes: int,
    *,
    seed: int,
    pad_id: int,
    lora_rank: int = 8,
    lora_alpha: float = 16.0,
) -> LMClassifier:
    """An :class:`LMClassifier` on a copy of ``backbone`` with ``method``'s trainable set.

    ``scratch`` re-initializes the copy (``GPT(backbone.config)`` under seed ``seed``); the
    head (``classifier``) is always new and trainable.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: expected one of {METHODS}")
    torch.manual_seed(seed)
    body = GPT(backbone.config) if method == "scratch" else copy.deepcopy(backbone)
    model = LMClassifier(body, num_classes, pad_id=pad_id)
    if method in ("probe", "last_block"):
        freeze(model, "backbone.*")
        if method == "last_block":
            last = len(body.blocks) - 1
            unfreeze(model, [f"backbone.decoder.blocks.{last}.*", "backbone.decoder.norm.*"])
    elif method == "lora":
        apply_lora(model, LORA_TARGETS, r=lora_rank, alpha=lora_alpha, trainable=("classifier.*",))
    return model


def length_grouped_batches(
    lengths: Sequence[int], batch_size: int, rng: np.random.Generator, *, chunk: int = 8
) -> list[np.ndarray]:
    """One epoch of index batches: shuffle, sort each run of ``chunk · batch_size`` indices by
    length, cut it into batches, shuffle the batches. Every index appears exactly once."""
    order = rng.permutation(len(lengths))
    lengths = np.asarray(lengths)
    batches = []
    for start in range(0, len(order), chunk * batch_size):
        block = order[start : start + chunk * batch_size]
        block = block[np.argsort(lengths[block], kind="stable")]
        batches += [block[i : i + batch_size] for i in range(0, len(block), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def _optimizer(model: LMClassifier, recipe: FinetuneRecipe) -> torch.optim.Optimizer:
    if recipe.layer_decay is not None:
        groups = discriminative_lr_groups(
            model, model.layer_prefixes(), base_lr=recipe.lr, decay=recipe.layer_decay
        )
    else:
        groups = [{"params": [p for p in model.parameters() if p.requires_grad]}]
    return torch.optim.AdamW(groups, lr=recipe.lr, weight_decay=recipe.weight_decay)


def train_classifier(
    model: LMClassifier,
    ids: Sequence[Sequence[int]],
    labels: np.ndarray,
    recipe: FinetuneRecipe,
    *,
    seed: int,
    max_len: int,
    progress: bool = False,
) -> dict[str, Any]:
    """Fine-tune ``model``'s trainable parameters on ``ids`` (``N`` token lists) and ``labels``
    ``(N,)``; returns ``{"steps", "seconds", "final_loss"}``."""
    if len(ids) != len(labels) or len(ids) == 0:
        raise ValueError(f"need as many labels as sequences (> 0), got {len(ids)}, {len(labels)}")
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)  # (N,)
    total = recipe.steps(len(ids))
    warmup = max(1, round(recipe.warmup_fraction * total))
    opt = _optimizer(model, recipe)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda t: min(1.0, (t + 1) / warmup) * max(0.0, (total - t) / total)
    )
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    lengths = [len(x) for x in ids]
    params = [p for p in model.parameters() if p.requires_grad]

    def batches() -> Iterator[np.ndarray]:
        while True:
            yield from length_grouped_batches(lengths, recipe.batch_size, rng)

    start = time.perf_counter()
    model.train()
    loss = torch.tensor(float("nan"))
    for _, batch in zip(
        tqdm(range(total), desc="fine-tune", disable=not progress, leave=False),
        batches(),
        strict=False,
    ):
        x = pad_batch([ids[i] for i in batch], model.pad_id, max_len)  # (B, T)
        loss = F.cross_entropy(model(x), y[batch])  # (B, K) logits
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(params, recipe.grad_clip)
        opt.step()
        sched.step()
    model.eval()
    return {
        "steps": total,
        "seconds": time.perf_counter() - start,
        "final_loss": float(loss.detach()),
    }


@torch.no_grad()
def _batched(
    fn: Any, ids: Sequence[Sequence[int]], pad_id: int, max_len: int, batch_size: int
) -> Tensor:
    order = np.argsort([len(x) for x in ids], kind="stable")  # little padding per batch
    outs = []
    for start in range(0, len(ids), batch_size):
        chunk = order[start : start + batch_size]
        outs.append(fn(pad_batch([ids[i] for i in chunk], pad_id, max_len)))
    out = torch.cat(outs)  # (N, ...) in length order
    return out[torch.as_tensor(np.argsort(order))]  # back to the input order


def predict(
    model: LMClassifier, ids: Sequence[Sequence[int]], *, max_len: int, batch_size: int = 64
) -> np.ndarray:
    """Predicted class ``(N,)`` of each token list (eval mode, no grad)."""
    model.eval()
    logits = _batched(model, ids, model.pad_id, max_len, batch_size)  # (N, K)
    return logits.argmax(dim=1).numpy()


def _features(model: LMClassifier, ids: Sequence[Sequence[int]], *, max_len: int) -> Tensor:
    model.eval()
    return _batched(model.features, ids, model.pad_id, max_len, 64)  # (N, C)


def run_ladder(
    *,
    data: AreaSplits,
    backbone: GPT,
    methods: Sequence[str] = METHODS,
    labels_per_class: Sequence[int | str] = (10, 100, "all"),
    seeds: Sequence[int] = (0, 1, 2),
    recipes: Mapping[str, FinetuneRecipe] | None = None,
    pad_id: int = 2045,
    lora_rank: int = 8,
    lora_alpha: float = 16.0,
    probe_steps: int = 200,
    evaluate_on: str = "test",
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Every ``method`` × ``labels_per_class`` × ``seed``: train on the seed's nested label
    subset of ``data``'s pool, score on ``evaluate_on`` (``"test"`` or ``"val"``).

    Rows ``{method, labels_per_class, seed, accuracy, trainable_params, total_params,
    seconds, steps}``; ``accuracy`` in [0, 1]. ``backbone`` (e.g. the shipped GPT) is never
    modified. ``recipes`` override :data:`DEFAULT_RECIPES` per method.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown methods {unknown}: expected some of {METHODS}")
    if evaluate_on not in ("test", "val"):
        raise ValueError(f"evaluate_on must be 'test' or 'val', got {evaluate_on!r}")
    recipes = {**DEFAULT_RECIPES, **(recipes or {})}
    eval_ids = data.test_ids if evaluate_on == "test" else data.val_ids
    y_eval = data.y_test if evaluate_on == "test" else data.y_val
    max_len = data.max_tokens
    runs = [(m, k, s) for m in methods for k in labels_per_class for s in seeds]
    cached: dict[str, Tensor] = {}
    rows = []
    for method, k, seed in tqdm(runs, desc="ladder", disable=not progress):
        start = time.perf_counter()
        idx = labels_per_class_subset(data.y_train, k, seed=seed)
        model = build_classifier(
            method, backbone, data.num_classes, seed=seed, pad_id=pad_id,
            lora_rank=lora_rank, lora_alpha=lora_alpha,
        )  # fmt: skip
        if method == "probe":  # the frozen features are the same for every seed and k
            if not cached:
                cached["pool"] = _features(model, data.train_ids, max_len=max_len)  # (N, C)
                cached["eval"] = _features(model, eval_ids, max_len=max_len)  # (M, C)
            head = fit_linear_probe(
                cached["pool"][idx], torch.as_tensor(data.y_train[idx]), data.num_classes,
                steps=probe_steps, seed=seed,
            )  # fmt: skip
            with torch.no_grad():
                pred = head(cached["eval"]).argmax(dim=1).numpy()
            model.classifier = head
            steps = probe_steps
        else:
            ids = [data.train_ids[i] for i in idx]
            info = train_classifier(
                model, ids, data.y_train[idx], recipes[method], seed=seed, max_len=max_len
            )
            pred = predict(model, eval_ids, max_len=max_len)
            steps = info["steps"]
        count = count_parameters(model)
        rows.append({
            "method": method, "labels_per_class": k, "seed": seed,
            "accuracy": float((pred == y_eval).mean()), "trainable_params": count.trainable,
            "total_params": count.total, "seconds": time.perf_counter() - start, "steps": steps,
        })  # fmt: skip
    return rows


def bag_of_tokens_baseline(
    data: AreaSplits,
    *,
    labels_per_class: Sequence[int | str] = (10, 100, "all"),
    seeds: Sequence[int] = (0, 1, 2),
    vocab_size: int = 2048,
    C: float = 10.0,
) -> list[dict[str, Any]]:
    """How far keywords alone go: tf-idf of token counts (no order, no pretraining) and
    scikit-learn's logistic regression (inverse regularization ``C``), on the same label
    subsets as :func:`run_ladder`; rows ``{method: "bag of tokens", labels_per_class, seed,
    accuracy}``, test accuracy."""
    from scipy.sparse import csr_matrix
    from sklearn.feature_extraction.text import TfidfTransformer
    from sklearn.linear_model import LogisticRegression

    def counts(seqs: Sequence[Sequence[int]]) -> Any:
        rows = np.repeat(np.arange(len(seqs)), [len(x) for x in seqs])
        cols = np.concatenate([np.asarray(x, dtype=np.int64) for x in seqs])
        return csr_matrix((np.ones(len(cols)), (rows, cols)), shape=(len(seqs), vocab_size))

    tfidf = TfidfTransformer().fit(counts(data.train_ids))  # idf from the unlabelled pool
    pool, test = tfidf.transform(counts(data.train_ids)), tfidf.transform(counts(data.test_ids))
    rows = []
    for k in labels_per_class:
        for seed in seeds:
            idx = labels_per_class_subset(data.y_train, k, seed=seed)
            clf = LogisticRegression(C=C, max_iter=3000).fit(pool[idx], data.y_train[idx])
            acc = float((clf.predict(test) == data.y_test).mean())
            rows.append({
                "method": "bag of tokens", "labels_per_class": k, "seed": seed,
                "accuracy": acc, "trainable_params": vocab_size * data.num_classes,
                "total_params": vocab_size * data.num_classes, "seconds": 0.0,
            })  # fmt: skip
    return rows


def summarize_ladder(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Mean and (sample, ``ddof=1``; 0 for one seed) standard deviation of the accuracy over
    seeds, per method and budget, in the rows' order."""
    groups: dict[tuple[str, Any], list[Mapping[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["method"], r["labels_per_class"]), []).append(r)
    out = []
    for (method, k), rs in groups.items():
        acc = np.array([r["accuracy"] for r in rs])
        out.append({
            "method": method, "labels_per_class": k, "seeds": len(rs),
            "accuracy_mean": float(acc.mean()),
            "accuracy_std": float(acc.std(ddof=1)) if len(rs) > 1 else 0.0,
            "trainable_params": rs[0]["trainable_params"], "total_params": rs[0]["total_params"],
            "trainable_fraction": rs[0]["trainable_params"] / rs[0]["total_params"],
            "seconds_mean": float(np.mean([r["seconds"] for r in rs])),
        })  # fmt: skip
    return out


def format_ladder_table(summary: Sequence[Mapping[str, Any]]) -> str:
    """A Markdown table: one row per method, one column per budget (accuracy % mean ± std),
    then the trainable parameters and the mean seconds per run."""
    budgets = list(dict.fromkeys(r["labels_per_class"] for r in summary))
    methods = list(dict.fromkeys(r["method"] for r in summary))
    cell = {(r["method"], r["labels_per_class"]): r for r in summary}
    head = " | ".join(f"{k} / class" for k in budgets)
    lines = [
        f"| Method | {head} | Trainable params | s / run |",
        "|:--|" + "--:|" * len(budgets) + "--:|--:|",
    ]
    for m in methods:
        rs = [cell[(m, k)] for k in budgets if (m, k) in cell]
        accs = " | ".join(
            f"{100 * cell[(m, k)]['accuracy_mean']:.1f} ± {100 * cell[(m, k)]['accuracy_std']:.1f}"
            if (m, k) in cell else "–"
            for k in budgets
        )  # fmt: skip
        r = rs[0]
        secs = np.mean([x["seconds_mean"] for x in rs])
        lines.append(
            f"| {m} | {accs} | {r['trainable_params']:,} ({100 * r['trainable_fraction']:.1f}%) "
            f"| {secs:.0f} |"
        )
    return "\n".join(lines)


@torch.no_grad()
def lm_loss(
    gpt: GPT, tokens: Any, *, batch_size: int = 16, max_tokens: int | None = 20_000
) -> float:
    """Mean next-token cross-entropy (nats) of ``gpt`` on the first ``max_tokens`` targets of
    ``tokens`` (consecutive windows of ``gpt.config.max_len``, each target once)."""
    was_training = gpt.training
    gpt.eval()
    total, count = 0.0, 0
    for x, y in eval_windows(tokens, gpt.config.max_len, batch_size, max_tokens=max_tokens):
        total += float(next_token_loss(gpt(x), y)) * y.numel()  # (B, T, V) logits
        count += y.numel()
    gpt.train(was_training)
    return total / count


def forgetting(
    *,
    data: AreaSplits,
    backbone: GPT,
    lm_tokens: Any,
    labels_per_class: int | str = 100,
    seed: int = 0,
    recipes: Mapping[str, FinetuneRecipe] | None = None,
    low_lr_factor: float = 0.1,
    pad_id: int = 2045,
    lora_rank: int = 8,
    lora_alpha: float = 16.0,
    max_tokens: int | None = 20_000,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """The pretraining loss on ``lm_tokens`` (e.g. ``load_tokens("val")``) before and after
    fine-tuning the classifier: ``full``, ``lora`` and ``full`` at ``low_lr_factor`` × its rate.

    Rows ``{method, lr, accuracy, lm_loss_before, lm_loss_after, lm_loss_increase}``
    (accuracy on ``data``'s test set).
    """
    recipes = {**DEFAULT_RECIPES, **(recipes or {})}
    before = lm_loss(backbone, lm_tokens, max_tokens=max_tokens)
    full = recipes["full"]
    variants = [
        ("full", "full", full),
        ("lora", "lora", recipes["lora"]),
        (f"full, lr × {low_lr_factor:g}", "full", replace(full, lr=full.lr * low_lr_factor)),
    ]
    idx = labels_per_class_subset(data.y_train, labels_per_class, seed=seed)
    ids = [data.train_ids[i] for i in idx]
    rows = []
    for name, method, recipe in tqdm(variants, desc="forgetting", disable=not progress):
        model = build_classifier(
            method, backbone, data.num_classes, seed=seed, pad_id=pad_id,
            lora_rank=lora_rank, lora_alpha=lora_alpha,
        )  # fmt: skip
        train_classifier(model, ids, data.y_train[idx], recipe, seed=seed, max_len=data.max_tokens)
        pred = predict(model, data.test_ids, max_len=data.max_tokens)
        after = lm_loss(model.backbone, lm_tokens, max_tokens=max_tokens)
        rows.append({
            "method": name, "lr": recipe.lr, "accuracy": float((pred == data.y_test).mean()),
            "lm_loss_before": before, "lm_loss_after": after, "lm_loss_increase": after - before,
        })  # fmt: skip
    return rows

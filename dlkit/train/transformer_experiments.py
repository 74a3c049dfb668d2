r"""The measured comparisons of the Transformer chapter, each on one toy task with one budget.

- :func:`rnn_vs_transformer`: chapter 07's GRU encoder–decoder squeezes the whole source
  into one vector :math:`h_S \in \mathbb{R}^H`; reversing :math:`n` digits needs
  :math:`n \log_2 10` bits in it, and exact match falls as :math:`n` grows. The
  Transformer's decoder reads every source position through cross-attention instead.
  Both train on the same batches for the same number of steps; the result holds exact
  match per source length.
- :func:`compare_positions`: the same encoder–decoder with no, sinusoidal, learned or
  rotary positions. Without positions self-attention is permutation-equivariant,
  :math:`\mathrm{Attn}(PX) = P\,\mathrm{Attn}(X)` for a permutation matrix :math:`P`, so the
  encoder's output is a *set* of vectors and reversal cannot be learned.
- :func:`compare_norm_placement`: pre-norm against post-norm at depth, same learning rate,
  no warm-up, one run per seed: the loss curves show which trains.

Every run is seeded (initialisation and batches) and trains on one CPU thread.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from dlkit.data.seq2seq import Seq2SeqTask
from dlkit.train.seq2seq_training import GRUSeq2Seq, Seq2SeqRun, seq2seq_transformer, train_seq2seq

__all__ = ["compare_norm_placement", "compare_positions", "rnn_vs_transformer"]

POSITION_KINDS = ("none", "sinusoidal", "learned", "rope")


def rnn_vs_transformer(
    task: Seq2SeqTask,
    *,
    steps: int,
    batch_size: int = 64,
    lr: float = 2e-3,
    warmup: int = 50,
    hidden_size: int = 128,
    d_model: int = 64,
    n_heads: int = 4,
    n_layers: int = 2,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Seq2SeqRun]:
    """Train a :class:`GRUSeq2Seq` (``hidden_size``) and a Transformer encoder–decoder
    (``d_model``, ``n_heads``, ``n_layers`` per side) on ``task`` with the same batches,
    steps and optimizer. Returns ``{"gru": run, "transformer": run}``; each run's
    ``test.by_length`` maps a source length to the test exact match at that length."""
    torch.manual_seed(seed)
    gru = GRUSeq2Seq(task.vocab_size, hidden_size=hidden_size, pad_id=task.pad_id)
    transformer = seq2seq_transformer(
        task, d_model=d_model, n_heads=n_heads, n_layers=n_layers, seed=seed
    )
    options = dict(steps=steps, batch_size=batch_size, lr=lr, warmup=warmup, seed=seed)
    return {
        name: train_seq2seq(model, task, progress=progress, **options)  # type: ignore[arg-type]
        for name, model in (("gru", gru), ("transformer", transformer))
    }


def compare_positions(
    task: Seq2SeqTask,
    *,
    kinds: Sequence[str] = POSITION_KINDS,
    steps: int,
    batch_size: int = 64,
    lr: float = 2e-3,
    warmup: int = 50,
    d_model: int = 64,
    n_heads: int = 4,
    n_layers: int = 2,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Seq2SeqRun]:
    """One encoder–decoder per position kind (``"none"``, ``"sinusoidal"``, ``"learned"``,
    ``"rope"``), same initial seed, batches and budget. Returns ``{kind: run}``."""
    unknown = [k for k in kinds if k not in POSITION_KINDS]
    if unknown:
        raise ValueError(f"unknown position kinds {unknown}; expected some of {POSITION_KINDS}")
    results = {}
    for kind in kinds:
        model = seq2seq_transformer(
            task, d_model=d_model, n_heads=n_heads, n_layers=n_layers, positions=kind, seed=seed
        )
        results[kind] = train_seq2seq(
            model, task, steps=steps, batch_size=batch_size, lr=lr, warmup=warmup, seed=seed,
            progress=progress,
        )  # fmt: skip
    return results


def compare_norm_placement(
    task: Seq2SeqTask,
    *,
    n_layers: int = 6,
    seeds: Sequence[int] = (0, 1),
    steps: int,
    batch_size: int = 64,
    lr: float = 2e-3,
    warmup: int = 0,
    d_model: int = 64,
    n_heads: int = 4,
    evaluate: bool = True,
    progress: bool = False,
) -> dict[str, list[Seq2SeqRun]]:
    """Pre-norm and post-norm encoder–decoders of ``n_layers`` blocks per side, trained with
    the same learning rate and warm-up (none by default) from each seed in ``seeds``.

    Returns ``{"pre-norm": [run per seed], "post-norm": [run per seed]}``: compare the
    loss curves (``run.losses``) and, with ``evaluate``, the test exact match.
    """
    if not seeds:
        raise ValueError("seeds must name at least one seed")
    results: dict[str, list[Seq2SeqRun]] = {"pre-norm": [], "post-norm": []}
    for label, norm_first in (("pre-norm", True), ("post-norm", False)):
        for seed in seeds:
            model = seq2seq_transformer(
                task, d_model=d_model, n_heads=n_heads, n_layers=n_layers,
                norm_first=norm_first, seed=seed,
            )  # fmt: skip
            run = train_seq2seq(
                model, task, steps=steps, batch_size=batch_size, lr=lr, warmup=warmup,
                seed=seed, evaluate=evaluate, progress=progress,
            )  # fmt: skip
            results[label].append(run)
    return results

"""What one training batch costs: the old ``CharBlocks`` loader against ``random_window_loader``.

Both draw ``(x, y)`` batches of ``--batch-size`` windows of ``--context`` tokens (``y`` = ``x``
shifted by one) from the same ``uint16`` token file of ``--tokens`` ids (the shipped
corpus's train tokens repeated, written to a temporary file and memory-mapped, as
:func:`dlkit.data.corpus.load_tokens` gives them). Measured **side by side in one run**,
``--repeat`` rounds with the order rotating, median (and min) over rounds:

- **old, stride 1**: ``CharBlocks(tokens, context, stride=1)`` (every start is a window, as
  in ``TokenWindows``) in ``dlkit.train.make_loader(shuffle=True)``, the chapter-07 way.
  Building it copies the whole array to int64; each epoch's first ``next()`` draws a
  permutation of all ``N - T`` windows: both :math:`O(N)`.
- **old, stride T**: the same with ``CharBlocks``' default non-overlapping windows
  (:math:`N/T` of them): the copy remains, the permutation is :math:`T` times smaller, and
  only :math:`1/T` of the starts are ever seen.
- **new**: ``random_window_loader(tokens, context, batch_size, num_batches)``: a
  ``RandomSampler(replacement=True)`` over ``TokenWindows``, :math:`O(B T)` per batch
  whatever :math:`N`; no copy, no permutation.

Per round and side: **first batch** = build the loader, ``iter``, first ``next`` (what a
fresh epoch, or a fresh notebook cell, pays before it can train); **steady batch** = the
mean of the ``--steady`` batches after it. Both sides' batches are checked (shapes, dtype,
``y[:, :-1] == x[:, 1:]``). The old loader also returns a short last batch when an epoch's
windows run out (``drop_last=False``); the report counts it for the default stride.

Results go to ``OUT/token_sampler.md`` and ``OUT/token_sampler.json``. Run from the
repository root (``--smoke``: tiny sizes, for the test)::

    .venv/bin/python bench/token_sampler.py [--tokens 20000000] [--repeat 5] [--out DIR]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from machine_info import describe_machine, load_average, machine_info

from dlkit.data.corpus import load_tokens
from dlkit.data.text import CharBlocks
from dlkit.data.token_windows import random_window_loader
from dlkit.train import make_loader

BENCH = Path(__file__).resolve().parent
PACKAGES = ("torch", "numpy")
SIDES = ("old, stride 1", "old, stride T", "new")


def token_file(path: Path, n_tokens: int) -> np.memmap:
    """``n_tokens`` ids: the corpus's train tokens repeated, written to ``path``, memory-mapped."""
    train = np.asarray(load_tokens("train"))
    reps = -(-n_tokens // len(train))  # ceil
    np.tile(train, reps)[:n_tokens].astype("<u2").tofile(path)
    return np.memmap(path, dtype="<u2", mode="r")  # (n_tokens,)


def make_side(side: str, tokens: np.ndarray, args: argparse.Namespace) -> Callable[[], Any]:
    """A function that builds the side's loader for one epoch of at least ``steady + 1`` batches."""
    T, B = args.context, args.batch_size
    if side == "new":
        return lambda: random_window_loader(tokens, T, B, args.steady + 1, seed=0)
    stride = 1 if side == "old, stride 1" else T
    return lambda: make_loader(
        CharBlocks(tokens, T, stride=stride), B, shuffle=True, seed=0, device="cpu"
    )


def check_batch(batch: Any, args: argparse.Namespace) -> None:
    x, y = batch
    assert x.shape == y.shape == (args.batch_size, args.context), x.shape
    assert x.dtype == y.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1]), "y is not x shifted by one"


def time_side(build: Callable[[], Any], args: argparse.Namespace) -> dict[str, float]:
    gc.collect()
    start = time.perf_counter()
    loader = build()
    batches = iter(loader)
    first = next(batches)
    first_seconds = time.perf_counter() - start
    check_batch(first, args)
    start = time.perf_counter()
    steady = [next(batches) for _ in range(args.steady)]
    steady_seconds = (time.perf_counter() - start) / args.steady
    for batch in steady:
        check_batch(batch, args)
    del loader, batches, first, steady
    return {"first": first_seconds, "steady": steady_seconds}


def short_batches(n_tokens: int, args: argparse.Namespace) -> dict[str, int]:
    """An old epoch with the default stride: how many batches, and the size of the last."""
    windows = (n_tokens - args.context - 1) // args.context + 1  # CharBlocks.__len__, stride T
    return {
        "windows": windows,
        "batches": -(-windows // args.batch_size),
        "last_batch_size": windows % args.batch_size or args.batch_size,
    }


def measure(tokens: np.ndarray, args: argparse.Namespace) -> dict[str, Any]:
    builders = {side: make_side(side, tokens, args) for side in SIDES}
    samples: dict[str, dict[str, list[float]]] = {s: {"first": [], "steady": []} for s in SIDES}
    for round_ in range(args.repeat):
        order = SIDES[round_ % 3 :] + SIDES[: round_ % 3]  # rotate: drift falls on all sides
        for side in order:
            for key, value in time_side(builders[side], args).items():
                samples[side][key].append(value)
    stats = {
        side: {key: {"median": statistics.median(v), "min": min(v)} for key, v in per_side.items()}
        for side, per_side in samples.items()
    }
    new_first = stats["new"]["first"]["median"]
    return {
        **stats,
        "ratio_first_batch": {
            side: stats[side]["first"]["median"] / new_first for side in SIDES[:2]
        },
        "short_batches_old_stride_T": short_batches(len(tokens), args),
        "samples": samples,
    }


def to_markdown(report: dict[str, Any]) -> str:
    r, s = report["result"], report["settings"]
    short = r["short_batches_old_stride_T"]

    def ms(side: str, key: str) -> str:
        values = (1e3 * r[side][key]["median"], 1e3 * r[side][key]["min"])
        return " / ".join(f"{v:,.0f}" if v >= 100 else f"{v:.3g}" for v in values)

    rows = [
        f"| {side} | {ms(side, 'first')} | {ms(side, 'steady')} | "
        f"{r['ratio_first_batch'].get(side, 1.0):.0f}× |"
        for side in SIDES
    ]
    lines = [
        "# Token sampler: one training batch, old CharBlocks loader vs random_window_loader",
        "",
        "Written by `bench/token_sampler.py`; rerun it (`.venv/bin/python bench/token_sampler.py`) "
        "to refresh.",
        "",
        f"Token file: {s['tokens']:,} `uint16` ids (memory-mapped); batch {s['batch_size']} × "
        f"context {s['context']}; median / min of {s['repeat']} rounds, torch threads "
        f"{s['threads']}.",
        "",
        "| loader | first batch (ms): build + iter + next | steady batch (ms) | first batch ÷ new |",
        "|---|--:|--:|--:|",
        *rows,
        "",
        "The old loader's first batch pays an int64 copy of the whole file (`CharBlocks`) and, "
        "with shuffling, a permutation of every window (`RandomSampler` without replacement, "
        "drawn at the first `next`); both grow with the file. The new loader draws "
        "`batch_size` starts with replacement and slices them: its cost does not depend on "
        "the file's length. Once running, both slice one window per item, so their steady "
        "batches cost about the same.",
        "",
        f"Short batches: an old epoch with the default stride has {short['windows']:,} windows "
        f"= {short['batches']:,} batches, the last of {short['last_batch_size']} windows "
        "(`drop_last=False`); every batch of the new loader is full.",
        "",
        describe_machine(report["machine"], PACKAGES),
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Time the old and new token batch samplers.")
    parser.add_argument("--tokens", type=int, default=20_000_000)
    parser.add_argument("--context", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steady", type=int, default=50, help="batches timed after the first")
    parser.add_argument("--repeat", type=int, default=5, help="rounds (default 5)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one round")
    parser.add_argument(
        "--out", type=Path, default=BENCH / "results", help="default: bench/results"
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.tokens, args.context, args.batch_size, args.steady, args.repeat = 5000, 16, 5, 3, 1
    if args.repeat < 1 or args.steady < 1 or args.tokens < args.context * args.batch_size * 2:
        parser.error("need --repeat >= 1, --steady >= 1, --tokens >= 2 * context * batch size")
    torch.set_num_threads(args.threads)

    load_at_start = load_average()
    with tempfile.TemporaryDirectory() as tmp:
        tokens = token_file(Path(tmp) / "tokens.u16", args.tokens)
        result = measure(tokens, args)
        del tokens
    report = {
        "settings": {
            "tokens": args.tokens,
            "context": args.context,
            "batch_size": args.batch_size,
            "steady": args.steady,
            "repeat": args.repeat,
            "threads": torch.get_num_threads(),
        },
        "machine": machine_info(load_at_start, PACKAGES),
        "result": result,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "token_sampler.json").write_text(json.dumps(report, indent=2) + "\n")
    table = to_markdown(report)
    (args.out / "token_sampler.md").write_text(table, encoding="utf-8")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

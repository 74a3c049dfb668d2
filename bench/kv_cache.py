"""Greedy generation with a KV cache against recomputing the whole prefix at every step.

One ``dlkit.nn.DecoderOnlyLM`` (``TransformerStackConfig(d_model=128, n_heads=4,
n_layers=4, d_ff=512, max_len=1024, positions="learned")``, vocabulary 1024, pre-norm,
tied embeddings, float32, **random initialization**: the tokens it writes are meaningless,
the arithmetic per token is that of a trained model of this shape) extends a random prompt
of ``--prompt`` tokens to a total length ``T`` (256 and 1024 by default), batch 1, greedy:

* **cached**: ``generate(..., use_cache=True)``: the prompt runs once and fills a
  preallocated ``KVCache``; each new token then runs alone through the stack and attends
  to the cached keys and values, :math:`O(t)` attention work at step :math:`t`;
* **recompute**: ``generate(..., use_cache=False)``: every step runs the whole sequence
  so far, :math:`O(t^2)` attention and :math:`O(t)` MLP work at step :math:`t`.

Both are measured **side by side in one run**: after ``--warmup`` untimed short
generations of each, each of ``--repeat`` rounds times one full generation of each path
with ``time.perf_counter`` (the order alternating between rounds), and the table reports
new tokens per second (median over rounds) and the ratio cached / recompute. The goal is a
speed-up of at least **5×** at T = 256.

Fairness is checked, not assumed: in every round both paths must produce the same tokens
(float32 logits of the two paths agree to about 1e-5; tests/test_nn_transformer.py checks
that in float32 and float64).

Results go to ``OUT/kv_cache.md`` and ``OUT/kv_cache.json`` (every sample and the machine,
with the load average). Run from the repository root::

    .venv/bin/python bench/kv_cache.py [--lengths 256 1024] [--repeat 3] [--threads 1] [--out DIR]

``--tiny`` swaps in a 2-layer, width-32 model (for the test that runs every bench script).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from machine_info import describe_machine, load_average, machine_info
from tqdm import tqdm

from dlkit.nn import DecoderOnlyLM, TransformerStackConfig, kv_cache_bytes

BENCH = Path(__file__).resolve().parent
GOAL = 5.0  # cached tokens/s at least this many times recompute's, at T = GOAL_LENGTH
GOAL_LENGTH = 256
PATHS = ("cached", "recompute")

MODEL = TransformerStackConfig(
    d_model=128, n_heads=4, n_layers=4, d_ff=512, max_len=1024, positions="learned"
)
VOCAB = 1024
TINY_MODEL = TransformerStackConfig(
    d_model=32, n_heads=4, n_layers=2, d_ff=64, max_len=64, positions="learned"
)
TINY_VOCAB = 64

NOTES = """\
- Greedy generation, batch 1, float32, CPU, {threads} intra-op thread{s}, under
  `torch.no_grad()`; a random prompt of {prompt} tokens extended to the total length T, so
  tokens/s counts the T − {prompt} new tokens (the cached path's prompt pass included in its
  time). Median (and per-round range) over {repeat} rounds, after {warmup} untimed short
  warm-up generation(s) of each path; the order of the two paths alternates each round.
- Model: `DecoderOnlyLM(TransformerStackConfig({config}), vocab_size={vocab})`,
  {parameters:,} parameters, **random initialization** (timing only: the text is noise,
  the work per token is not).
- **cached**: `generate(use_cache=True)`: the prompt fills a preallocated `KVCache`, then one
  token per step attends to the cached keys and values. **recompute**:
  `generate(use_cache=False)`: the whole prefix runs again at every step.
- Check: in every round both paths produced the same tokens.
- Cache size: 2 · layers · batch · max_len · d_model · 4 bytes = {cache_kib:.0f} KiB
  (`KVCache.nbytes`, preallocated for max_len = {max_len}).
"""


def build_model(tiny: bool, seed: int) -> tuple[DecoderOnlyLM, TransformerStackConfig, int]:
    config, vocab = (TINY_MODEL, TINY_VOCAB) if tiny else (MODEL, VOCAB)
    torch.manual_seed(seed)
    return DecoderOnlyLM(config, vocab).eval(), config, vocab


def time_generation(
    model: DecoderOnlyLM, prompt: torch.Tensor, new_tokens: int, use_cache: bool
) -> tuple[float, torch.Tensor]:
    gc.collect()
    start = time.perf_counter()
    tokens = model.generate(prompt, new_tokens, use_cache=use_cache)
    return time.perf_counter() - start, tokens


def measure(
    model: DecoderOnlyLM, vocab: int, total: int, args: argparse.Namespace
) -> dict[str, Any]:
    """Seconds per generation of ``total - prompt`` new tokens on both paths, interleaved."""
    generator = torch.Generator().manual_seed(args.seed + total)
    prompt = torch.randint(0, vocab, (1, args.prompt), generator=generator)  # (1, P)
    new_tokens = total - args.prompt
    for _ in range(args.warmup):
        for path in PATHS:
            time_generation(model, prompt, min(new_tokens, 32), path == "cached")
    samples: dict[str, list[float]] = {path: [] for path in PATHS}
    order = list(PATHS)
    for _ in range(args.repeat):
        outputs = {}
        for path in order:
            seconds, outputs[path] = time_generation(model, prompt, new_tokens, path == "cached")
            samples[path].append(seconds)
        if not torch.equal(outputs["cached"], outputs["recompute"]):
            raise AssertionError(f"T={total}: the cached and recomputed generations differ")
        order.reverse()  # alternate who goes first
    tokens_per_s = {p: [new_tokens / s for s in v] for p, v in samples.items()}
    median = {p: statistics.median(v) for p, v in tokens_per_s.items()}
    ratios = [c / r for c, r in zip(tokens_per_s["cached"], tokens_per_s["recompute"], strict=True)]
    return {
        "total_length": total,
        "prompt_length": args.prompt,
        "new_tokens": new_tokens,
        "median_tokens_per_s": median,
        "speedup": median["cached"] / median["recompute"],
        "speedup_per_round": ratios,
        "same_tokens": True,
        "seconds": samples,
    }


def to_markdown(report: dict[str, Any]) -> str:
    lines = [
        "# KV-cache decoding: cached vs recomputing the prefix",
        "",
        "Written by `bench/kv_cache.py`; rerun it (`.venv/bin/python bench/kv_cache.py`)"
        " to refresh.",
        "",
        "| Total length T | New tokens | Cached (tokens/s) | Recompute (tokens/s) | Speed-up "
        "| Per-round speed-up | Same tokens |",
        "|--:|--:|--:|--:|--:|--:|:-:|",
    ]
    for r in report["results"]:
        med, per_round = r["median_tokens_per_s"], r["speedup_per_round"]
        lines.append(
            f"| {r['total_length']} | {r['new_tokens']} | {med['cached']:.1f} "
            f"| {med['recompute']:.1f} | **{r['speedup']:.2f}×** "
            f"| {min(per_round):.2f}–{max(per_round):.2f}× | {'yes' if r['same_tokens'] else 'NO'} |"
        )
    s = report["settings"]
    at_goal = [r for r in report["results"] if r["total_length"] == GOAL_LENGTH]
    if at_goal:
        met = at_goal[0]["speedup"] >= GOAL
        verdict = (
            f"Speed-up at T = {GOAL_LENGTH}: **{at_goal[0]['speedup']:.2f}×** (goal ≥ {GOAL:g}×: "
            f"{'met' if met else 'NOT met'})."
        )
    else:
        verdict = f"T = {GOAL_LENGTH} not measured in this run: the {GOAL:g}× goal is not assessed."
    config = s["config"]
    lines += [
        "",
        verdict,
        "",
        NOTES.format(
            threads=s["threads"],
            s="" if s["threads"] == 1 else "s",
            prompt=s["prompt"],
            repeat=s["repeat"],
            warmup=s["warmup"],
            config=", ".join(f"{k}={v!r}" for k, v in config.items() if k in s["config_shown"]),
            vocab=s["vocab_size"],
            parameters=s["parameters"],
            cache_kib=s["cache_bytes"] / 1024,
            max_len=config["max_len"],
        ),
        describe_machine(report["machine"]),
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Time KV-cache decoding against recomputing.")
    parser.add_argument("--lengths", nargs="+", type=int, default=[256, 1024],
                        help="total lengths T (default 256 1024)")  # fmt: skip
    parser.add_argument("--prompt", type=int, default=16, help="prompt tokens (default 16)")
    parser.add_argument("--repeat", type=int, default=3, help="timed rounds (default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds (default 1)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiny", action="store_true", help="a tiny model, for tests")
    parser.add_argument(
        "--out", type=Path, default=BENCH / "results", help="default: bench/results"
    )
    args = parser.parse_args(argv)
    model, config, vocab = build_model(args.tiny, args.seed)
    if min(args.repeat, args.threads, args.prompt) < 1 or args.warmup < 0:
        parser.error("--repeat, --threads and --prompt must be >= 1, --warmup >= 0")
    bad = [t for t in args.lengths if not args.prompt < t <= config.max_len]
    if bad:
        parser.error(f"--lengths must lie in ({args.prompt}, {config.max_len}], got {bad}")
    torch.set_num_threads(args.threads)

    load_at_start = load_average()
    results = [
        measure(model, vocab, total, args) for total in tqdm(args.lengths, desc="lengths", unit="T")
    ]
    report = {
        "settings": {
            "lengths": args.lengths,
            "prompt": args.prompt,
            "repeat": args.repeat,
            "warmup": args.warmup,
            "threads": args.threads,
            "seed": args.seed,
            "goal": GOAL,
            "goal_length": GOAL_LENGTH,
            "tiny": args.tiny,
            "config": asdict(config),
            "config_shown": ["d_model", "n_heads", "n_layers", "d_ff", "max_len", "positions"],
            "vocab_size": vocab,
            "parameters": sum(p.numel() for p in model.parameters()),
            "cache_bytes": kv_cache_bytes(config.n_layers, 1, config.max_len, config.d_model, 4),
        },
        "machine": machine_info(load_at_start),
        "results": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "kv_cache.json").write_text(json.dumps(report, indent=2) + "\n")
    table = to_markdown(report)
    (args.out / "kv_cache.md").write_text(table, encoding="utf-8")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

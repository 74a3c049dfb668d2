"""Generation tokens/s of the shipped pretrained GPT, with and without the KV cache.

The model is the checkpoint that ships in ``dlkit/assets/gpt_small/``
(:func:`dlkit.train.pretrained.load_pretrained_gpt`, its files checked against the
manifest), float32, CPU, ``--threads`` thread(s), batch 1, under ``torch.no_grad()``. A
fixed English prompt (encoded with the checkpoint's tokenizer) is extended to a total
length ``T`` (``--lengths``, at most the model's ``max_len``) by ``GPT.generate``:

* **cached**: ``generate(..., use_cache=True)``: the prompt runs once and fills the KV
  cache, then each new token runs alone through the stack and attends to the cached keys
  and values;
* **recompute**: ``generate(..., use_cache=False)``: every step runs the whole sequence so
  far again.

Two decoding modes: **greedy** (``temperature=0``) and **sampled** (``temperature=0.8,
top_k=50, top_p=0.95, seed=...``: the sampling filters run on every step of both paths).
Both paths are measured **side by side in one run**: after ``--warmup`` untimed short
generations of each, each of ``--repeat`` rounds times one full generation of each path
(the order alternating), and the table reports new tokens per second (median over rounds)
and the ratio cached / recompute. Fairness is checked: in every round both paths must
produce the same tokens (same seed, logits equal to float32 rounding).

Without the built checkpoint the script stops and says how to build it; ``--random-init``
times a randomly initialised model of the shape ``tools/build_checkpoint.py`` builds
instead (for development and the smoke test; the report says so). ``--tiny`` swaps in a
one-layer model of width 32 (with ``--random-init``, for the test).

Results go to ``OUT/generation.md`` and ``OUT/generation.json``. Run from the repository
root::

    nice .venv/bin/python bench/generation.py [--lengths 64 128] [--repeat 7] [--out DIR]
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from machine_info import describe_machine, load_average, machine_info
from tqdm import tqdm

from dlkit.data.corpus import corpus_meta, load_tokenizer
from dlkit.nn.gpt import GPT, GPTConfig
from dlkit.text import BPETokenizer
from dlkit.train.pretrained import PRETRAINED_DIR, load_pretrained_gpt

BENCH = Path(__file__).resolve().parent
BUILD_SCRIPT = BENCH.parent / "tools" / "build_checkpoint.py"
PATHS = ("cached", "recompute")
PROMPT = "Return a new list containing"
MODES: dict[str, dict[str, Any]] = {
    "greedy": {"temperature": 0.0},
    "sampled": {"temperature": 0.8, "top_k": 50, "top_p": 0.95},
}
TINY = {"style": "gpt2", "d_model": 32, "n_layers": 1, "n_heads": 2, "max_len": 32}


def build_checkpoint_shape(tiny: bool) -> dict[str, Any]:
    """The model spec ``tools/build_checkpoint.py`` trains (``MODEL``), or the tiny one."""
    if tiny:
        return dict(TINY)
    spec = importlib.util.spec_from_file_location("build_checkpoint", BUILD_SCRIPT)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"cannot load {BUILD_SCRIPT}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return dict(module.MODEL)


def random_model(tiny: bool, seed: int) -> tuple[GPT, BPETokenizer, dict[str, Any]]:
    """A randomly initialised GPT of the checkpoint's shape, and the corpus tokenizer."""
    shape = build_checkpoint_shape(tiny)
    spec = dict(shape)
    style = spec.pop("style")
    factory = {"gpt2": GPTConfig.gpt2, "modern": GPTConfig.modern}[style]
    spec.pop("dropout", None)  # eval mode: dropout is off anyway
    config = factory(
        corpus_meta()["vocab_size"],
        spec.pop("d_model"),
        spec.pop("n_layers"),
        spec.pop("n_heads"),
        spec.pop("max_len"),
        **spec,
    )
    torch.manual_seed(seed)
    return GPT(config).eval(), load_tokenizer(), shape


def time_generation(
    model: GPT,
    prompt: torch.Tensor,
    new_tokens: int,
    use_cache: bool,
    options: dict[str, Any],
    seed: int,
) -> tuple[float, torch.Tensor]:
    gc.collect()
    with torch.no_grad():
        start = time.perf_counter()
        tokens = model.generate(prompt, new_tokens, seed=seed, use_cache=use_cache, **options)
        return time.perf_counter() - start, tokens


def measure(
    model: GPT, prompt: torch.Tensor, total: int, mode: str, args: argparse.Namespace
) -> dict[str, Any]:
    """Seconds per generation of ``total - prompt`` new tokens on both paths, interleaved."""
    options = MODES[mode]
    new_tokens = total - prompt.shape[1]
    for _ in range(args.warmup):
        for path in PATHS:
            time_generation(
                model, prompt, min(new_tokens, 16), path == "cached", options, args.seed
            )
    samples: dict[str, list[float]] = {path: [] for path in PATHS}
    order = list(PATHS)
    output = prompt
    for round_ in range(args.repeat):
        outputs = {}
        for path in order:
            seconds, outputs[path] = time_generation(
                model, prompt, new_tokens, path == "cached", options, args.seed + round_
            )
            samples[path].append(seconds)
        if not torch.equal(outputs["cached"], outputs["recompute"]):
            raise AssertionError(f"T={total}, {mode}: the cached and recomputed tokens differ")
        output = outputs["cached"]
        order.reverse()
    tokens_per_s = {p: [new_tokens / s for s in v] for p, v in samples.items()}
    median = {p: statistics.median(v) for p, v in tokens_per_s.items()}
    ratios = [c / r for c, r in zip(tokens_per_s["cached"], tokens_per_s["recompute"], strict=True)]
    return {
        "mode": mode,
        "options": options,
        "total_length": total,
        "prompt_length": int(prompt.shape[1]),
        "new_tokens": new_tokens,
        "median_tokens_per_s": median,
        "speedup": median["cached"] / median["recompute"],
        "speedup_per_round": ratios,
        "same_tokens": True,
        "seconds": samples,
        "last_output_ids": output[0].tolist(),
    }


def to_markdown(report: dict[str, Any]) -> str:
    s = report["settings"]
    lines = [
        "# Generation with and without the KV cache: the shipped GPT",
        "",
        "Written by `bench/generation.py`; rerun it (`nice .venv/bin/python bench/generation.py`)"
        " to refresh.",
        "",
    ]
    if s["random_init"]:
        lines += [
            "**Random initialisation, not the shipped checkpoint** (`--random-init`): the "
            "timings have the checkpoint's shape, the text is noise.",
            "",
        ]
    lines += [
        "| Mode | Total length T | New tokens | Cached (tokens/s) | Recompute (tokens/s) "
        "| Speed-up | Per-round speed-up | Same tokens |",
        "|:--|--:|--:|--:|--:|--:|--:|:-:|",
    ]
    for r in report["results"]:
        med, per_round = r["median_tokens_per_s"], r["speedup_per_round"]
        lines.append(
            f"| {r['mode']} | {r['total_length']} | {r['new_tokens']} | {med['cached']:.1f} "
            f"| {med['recompute']:.1f} | **{r['speedup']:.2f}×** "
            f"| {min(per_round):.2f}–{max(per_round):.2f}× | {'yes' if r['same_tokens'] else 'NO'} |"
        )
    config = s["config"]
    lines += [
        "",
        f"- Model: `GPTConfig({', '.join(f'{k}={v!r}' for k, v in config.items())})`, "
        f"{s['parameters']:,} parameters, float32, CPU, {s['threads']} thread(s), batch 1, "
        f"`torch.no_grad()`; loaded from `{s['source']}`.",
        f"- Prompt `{s['prompt']!r}` ({s['prompt_tokens']} tokens) extended to the total "
        "length T; tokens/s counts the new tokens (the cached path's prompt pass included). "
        f"Median (and per-round range) over {s['repeat']} rounds after {s['warmup']} untimed "
        "short warm-up generation(s) of each path; the order alternates each round.",
        "- Modes: " + "; ".join(f"**{m}** `{o}`" for m, o in MODES.items()) + ". The sampled "
        "rounds use seeds seed, seed + 1, ... (the same seed on both paths).",
        "- Check: in every round both paths produced the same tokens.",
        "",
    ]
    for r in report["results"]:
        if r["mode"] == "greedy" and r["total_length"] == max(s["lengths"]):
            lines += [
                "Greedy continuation (T = {}):".format(r["total_length"]),
                "",
                "```text",
                report["greedy_text"],
                "```",
                "",
            ]
            break
    lines += [describe_machine(report["machine"]), ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Time generation with and without a KV cache.")
    parser.add_argument(
        "--lengths",
        nargs="+",
        type=int,
        default=[64, 128],
        help="total lengths T, at most the model's max_len (default 64 128)",
    )
    parser.add_argument("--repeat", type=int, default=7, help="timed rounds (default 7)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds (default 1)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--random-init",
        action="store_true",
        help="a random model of the checkpoint's shape (no checkpoint needed)",
    )
    parser.add_argument("--tiny", action="store_true", help="with --random-init: a tiny model")
    parser.add_argument(
        "--checkpoint",
        type=Path,
        default=PRETRAINED_DIR,
        help="the checkpoint folder (default: the shipped one)",
    )
    parser.add_argument("--out", type=Path, default=BENCH / "results", help="bench/results")
    args = parser.parse_args(argv)
    if min(args.repeat, args.threads) < 1 or args.warmup < 0:
        parser.error("--repeat and --threads must be >= 1, --warmup >= 0")
    if args.tiny and not args.random_init:
        parser.error("--tiny needs --random-init (the shipped checkpoint has its own size)")
    if args.random_init:
        model, tokenizer, _ = random_model(args.tiny, args.seed)
        shape = "--tiny" if args.tiny else "tools/build_checkpoint.py MODEL"
        source = f"random initialisation ({shape} shape)"
    else:
        try:
            model, tokenizer = load_pretrained_gpt(folder=args.checkpoint)
        except FileNotFoundError as error:
            print(
                f"bench/generation.py: {error}; or pass --random-init to time a randomly "
                "initialised model of the shape tools/build_checkpoint.py builds.",
                file=sys.stderr,
            )
            return 2
        source = os.path.relpath(args.checkpoint.resolve(), BENCH.parent)
    config = model.config
    prompt = torch.tensor([tokenizer.encode(PROMPT)], dtype=torch.long)  # (1, P)
    bad = [t for t in args.lengths if not prompt.shape[1] < t <= config.max_len]
    if bad:
        parser.error(f"--lengths must lie in ({prompt.shape[1]}, {config.max_len}], got {bad}")
    torch.set_num_threads(args.threads)

    load_at_start = load_average()
    runs = [(t, m) for t in args.lengths for m in MODES]
    results = [measure(model, prompt, t, m, args) for t, m in tqdm(runs, desc="runs")]
    longest_greedy = max(
        (r for r in results if r["mode"] == "greedy"), key=lambda r: r["total_length"]
    )
    report = {
        "settings": {
            "lengths": args.lengths,
            "repeat": args.repeat,
            "warmup": args.warmup,
            "threads": args.threads,
            "seed": args.seed,
            "random_init": args.random_init,
            "tiny": args.tiny,
            "source": source,
            "config": config.to_dict(),
            "parameters": model.num_parameters(),
            "prompt": PROMPT,
            "prompt_tokens": int(prompt.shape[1]),
        },
        "machine": machine_info(load_at_start),
        "results": results,
        "greedy_text": tokenizer.decode(longest_greedy["last_output_ids"]),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "generation.json").write_text(json.dumps(report, indent=2) + "\n")
    table = to_markdown(report)
    (args.out / "generation.md").write_text(table, encoding="utf-8")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

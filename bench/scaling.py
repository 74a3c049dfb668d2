"""A small scaling sweep: GPTs of four sizes, each trained on the same number of corpus tokens.

Each size is a GPT-2-style ``dlkit.nn.gpt.GPT`` (learned positions, LayerNorm, GELU, tied
embeddings, dropout 0, head width 32) trained by ``dlkit.train.lm_training.train_lm`` on
the shipped corpus's train split for the same ``steps × batch × context`` tokens :math:`D`,
with the same recipe (AdamW, peak learning rate ``LR``, warm-up then cosine to a tenth,
weight decay 0.1, clipping at 1), one CPU thread, seed 0. Every ``eval_every`` steps the
whole validation split is scored (nats per token and bits per byte, exact).

For each size the report lists the parameters :math:`N` (non-embedding, as Kaplan et al.
2020 count them, and total, as Hoffmann et al. 2022 do; tied weights once), the tokens
:math:`D`, the compute :math:`C = 6ND` (:func:`dlkit.train.scaling.training_flops`, with
the total :math:`N`: the tied output head is a real :math:`V \\times d` matrix product per
token, so at this scale the total count is the one that matches the arithmetic), the final
validation loss and bits per byte, the wall time, and what the Chinchilla rule (about 20
tokens per parameter, :func:`dlkit.train.scaling.chinchilla_optimal`) would have spent the
same compute on. A power law :math:`L = a C^{-b}` is fitted to the four final losses
(:func:`dlkit.train.scaling.fit_power_law`; also with an irreducible term :math:`c`, which
four points barely determine). With :math:`D` fixed, :math:`C \\propto N`: this is loss
against model size at one data budget, a slice of the scaling surface, not the
compute-optimal frontier (that needs several :math:`D` per size: the learning curves in the
json, loss against :math:`6 N D_t` at each validation, show how far each size is from it).

The corpus is small (about 0.46 M train tokens), so the sweep trains for about two epochs,
and every size sees fewer than Chinchilla's 20 tokens per parameter: the compute-optimal
split of these budgets would want smaller models on more tokens than the corpus holds
(repeated epochs). These numbers describe this corpus and recipe only.

Results go to ``OUT/scaling.json`` (settings, every validation row, the fits, the machine)
and ``OUT/scaling.md``; the chapter's quick mode shows the stored json. Full mode takes
about ten minutes on one thread. Run from the repository root (``--smoke``: two tiny sizes,
a few steps, seconds; for the test)::

    nice .venv/bin/python bench/scaling.py [--steps 960] [--out DIR]
    .venv/bin/python bench/scaling.py --render    # rewrite scaling.md from scaling.json
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from machine_info import describe_machine, load_average, machine_info

from dlkit.data.corpus import bytes_per_token, corpus_meta, corpus_stats, load_tokens
from dlkit.nn.gpt import GPT, GPTConfig
from dlkit.train.lm_training import LMTrainConfig, train_lm
from dlkit.train.scaling import (
    CHINCHILLA_TOKENS_PER_PARAMETER,
    attention_training_flops,
    chinchilla_optimal,
    fit_power_law,
    training_flops,
)

BENCH = Path(__file__).resolve().parent
LR, WARMUP_FRACTION, WEIGHT_DECAY = 2e-3, 0.05, 0.1


@dataclass(frozen=True)
class Size:
    """One model of the sweep."""

    name: str
    d_model: int
    n_layers: int
    n_heads: int


SIZES = (
    Size("XS", d_model=32, n_layers=2, n_heads=1),
    Size("S", d_model=64, n_layers=2, n_heads=2),
    Size("M", d_model=96, n_layers=3, n_heads=3),
    Size("L", d_model=128, n_layers=4, n_heads=4),
)
SMOKE_SIZES = (
    Size("XS", d_model=16, n_layers=1, n_heads=1),
    Size("S", d_model=24, n_layers=1, n_heads=1),
    Size("M", d_model=32, n_layers=1, n_heads=2),
)
FULL = {"steps": 960, "batch_size": 16, "context": 64, "eval_every": 120, "eval_tokens": None}
SMOKE = {"steps": 8, "batch_size": 4, "context": 16, "eval_every": 4, "eval_tokens": 512}


def model_for(size: Size, vocab_size: int, context: int) -> GPT:
    config = GPTConfig.gpt2(
        vocab_size, size.d_model, size.n_layers, size.n_heads, context, dropout=0.0
    )
    torch.manual_seed(0)
    return GPT(config)


def train_config(run: dict[str, Any], seed: int, threads: int) -> LMTrainConfig:
    return LMTrainConfig(
        run["steps"],
        run["batch_size"],
        run["context"],
        LR,
        warmup_steps=max(1, round(WARMUP_FRACTION * run["steps"])),
        eval_every=run["eval_every"],
        eval_tokens=run["eval_tokens"],
        weight_decay=WEIGHT_DECAY,
        threads=threads,
        seed=seed,
    )


def train_size(size: Size, run: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Train one size; its parameters, compute, final validation loss and learning curve."""
    vocab = corpus_meta()["vocab_size"]
    model = model_for(size, vocab, run["context"])
    config = train_config(run, args.seed, args.threads)
    result = train_lm(
        model,
        load_tokens("train"),
        load_tokens("val"),
        config,
        bytes_per_token=bytes_per_token("val"),
        progress=args.progress,
        device="cpu",
    )
    n_total = model.num_parameters()
    n_non_embedding = model.num_parameters(non_embedding=True)
    tokens = config.steps * config.tokens_per_step
    compute = training_flops(n_total, tokens)
    n_opt, d_opt = chinchilla_optimal(compute)
    final = result.history[-1]
    return {
        "size": asdict(size),
        "parameters": n_total,
        "non_embedding_parameters": n_non_embedding,
        "tokens": tokens,
        "tokens_per_parameter": tokens / n_total,
        "flops": compute,
        "flops_non_embedding": training_flops(n_non_embedding, tokens),
        "attention_flops": attention_training_flops(
            size.n_layers, run["context"], size.d_model, tokens
        ),
        "final_val_loss": final["val_loss"],
        "final_val_bpb": final["val_bpb"],
        "final_train_loss": final["train_loss"],
        "chinchilla_optimal": {"parameters": n_opt, "tokens": d_opt},
        "wall_seconds": result.wall_seconds,
        "tokens_per_second": result.tokens_per_second,
        "curve": [
            {
                "step": r["step"],
                "tokens": r["tokens"],
                "flops": training_flops(n_total, r["tokens"]),
                "train_loss": r["train_loss"],
                "val_loss": r["val_loss"],
                "val_bpb": r["val_bpb"],
            }
            for r in result.history
        ],
    }


def fits(results: list[dict[str, Any]]) -> dict[str, Any]:
    compute = [r["flops"] for r in results]
    loss = [r["final_val_loss"] for r in results]
    out: dict[str, Any] = {}
    for name, irreducible in (("power_law", False), ("power_law_with_floor", True)):
        if len(results) >= (3 if irreducible else 2):
            law = fit_power_law(compute, loss, irreducible=irreducible)
            out[name] = {
                "a": law.a,
                "b": law.b,
                "c": law.c,
                "rmse_log": law.rmse_log,
                "formula": str(law),
                "predicted": [float(law(c)) for c in compute],
            }
    non_emb = [r["flops_non_embedding"] for r in results]
    law = fit_power_law(non_emb, loss)
    out["power_law_non_embedding"] = {
        "a": law.a,
        "b": law.b,
        "rmse_log": law.rmse_log,
        "formula": str(law),
    }
    return out


def chinchilla_note(report: dict[str, Any]) -> str:
    """What Chinchilla's ~20 tokens per parameter says about the sweep, in one sentence."""
    results, ratio = report["results"], CHINCHILLA_TOKENS_PER_PARAMETER
    under = sum(r["tokens_per_parameter"] < ratio for r in results)
    largest = max(results, key=lambda r: r["flops"])
    opt = largest["chinchilla_optimal"]
    return (
        f"{under} of the {len(results)} sizes see fewer than {ratio:g} tokens per parameter "
        f"(Chinchilla's rule); for the largest budget ({largest['flops']:.3g} FLOPs) the rule "
        f"picks N ≈ {opt['parameters']:,.0f} parameters on D ≈ {opt['tokens']:,.0f} tokens "
        f"({opt['tokens'] / report['settings']['train_tokens']:.2g} epochs of this corpus)."
    )


def to_markdown(report: dict[str, Any]) -> str:
    s, f = report["settings"], report["fits"]
    lines = [
        f"# Scaling sweep: loss against compute for {len(report['results'])} GPT sizes on the "
        "shipped corpus",
        "",
        "Written by `bench/scaling.py`; rerun it (`nice .venv/bin/python bench/scaling.py`, "
        f"{report['wall_seconds']:.0f} s on this machine) to refresh.",
        "",
        "| Size | d × layers × heads | N (non-emb.) | N (total) | D (tokens) | D / N "
        "| C = 6ND (FLOPs) | + attention | Val loss (nats) | Val bpb | Chinchilla N, D for C "
        "| Wall (s) |",
        "|:--|:-:|--:|--:|--:|--:|--:|--:|--:|--:|:-:|--:|",
    ]
    for r in report["results"]:
        z, opt = r["size"], r["chinchilla_optimal"]
        lines.append(
            f"| {z['name']} | {z['d_model']} × {z['n_layers']} × {z['n_heads']} "
            f"| {r['non_embedding_parameters']:,} | {r['parameters']:,} | {r['tokens']:,} "
            f"| {r['tokens_per_parameter']:.3g} | {r['flops']:.3g} "
            f"| +{r['attention_flops'] / r['flops']:.0%} | {r['final_val_loss']:.3f} "
            f"| {r['final_val_bpb']:.3f} | {opt['parameters']:,.0f}, {opt['tokens']:,.0f} "
            f"| {r['wall_seconds']:.0f} |"
        )
    law = f["power_law"]
    lines += [
        "",
        f"Fit over the {len(report['results'])} final losses: **{law['formula']}** "
        f"(C in FLOPs, L in nats per token; RMS residual {law['rmse_log']:.3f} in ln L).",
    ]
    if "power_law_with_floor" in f:
        floor = f["power_law_with_floor"]
        lines.append(
            f"With an irreducible term: {floor['formula']} (RMS residual "
            f"{floor['rmse_log']:.3f}; three parameters from {len(report['results'])} points: "
            "take c as indicative only)."
        )
    lines += [
        f"With the non-embedding count (Kaplan's convention): "
        f"{f['power_law_non_embedding']['formula']}.",
        "",
        f"- Recipe (all sizes): `GPTConfig.gpt2(vocab={s['vocab_size']}, d, layers, heads, "
        f"max_len={s['context']}, dropout=0)`, `train_lm` for {s['steps']} steps of "
        f"{s['batch_size']} × {s['context']} tokens, AdamW lr {s['lr']:g} (warm-up "
        f"{s['warmup_steps']} steps, cosine to {s['lr'] / 10:g}), weight decay "
        f"{WEIGHT_DECAY:g}, clipping at 1, seed {s['seed']}, {s['threads']} thread(s). "
        f"Validation: {s['val_tokens_scored']:,} of the val split's tokens, every "
        f"{s['eval_every']} steps.",
        f"- The train split holds {s['train_tokens']:,} tokens: D = {s['tokens']:,} is "
        f"{s['epochs']:.2g} epochs. {chinchilla_note(report)}",
        "- C uses the total parameter count (tied weights once: the output head's "
        "V × d product is real arithmetic per token); '+ attention' is the "
        "6 · layers · context · d FLOPs per token of QKᵀ and AV that 6ND leaves out.",
        "- D is fixed, so C ∝ N: the fit is loss against model size at one data budget, not "
        "the compute-optimal frontier. Learning curves (loss at each validation against "
        "6 N D_t) are in `scaling.json` (`results[i].curve`). For scale, not for comparison: "
        "Kaplan et al. 2020 report L ∝ N^−0.076 for models trained to convergence "
        "(non-embedding N) and L ∝ C^−0.050 along the compute-efficient frontier, for models "
        "of 10³–10⁹ non-embedding parameters on up to about 23 billion tokens.",
        "",
        describe_machine(report["machine"]),
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train GPTs of several sizes; fit L(C).")
    parser.add_argument("--steps", type=int, default=None, help=f"default {FULL['steps']}")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, a few steps (tests)")
    parser.add_argument("--progress", action="store_true", help="tqdm bars while training")
    parser.add_argument("--out", type=Path, default=BENCH / "results", help="bench/results")
    parser.add_argument(
        "--render",
        action="store_true",
        help="only rewrite OUT/scaling.md from the stored OUT/scaling.json",
    )
    args = parser.parse_args(argv)
    if args.render:
        report = json.loads((args.out / "scaling.json").read_text())
        (args.out / "scaling.md").write_text(to_markdown(report), encoding="utf-8")
        return 0
    run = dict(SMOKE if args.smoke else FULL)
    if args.steps is not None:
        if args.steps < run["eval_every"] or args.steps % run["eval_every"]:
            parser.error(f"--steps must be a positive multiple of {run['eval_every']}")
        run["steps"] = args.steps
    if args.threads < 1:
        parser.error("--threads must be >= 1")
    sizes = SMOKE_SIZES if args.smoke else SIZES

    load_at_start = load_average()
    start = time.perf_counter()
    results = []
    for size in sizes:
        results.append(train_size(size, run, args))
        r = results[-1]
        print(
            f"{size.name}: N={r['parameters']:,} C={r['flops']:.3g} "
            f"val loss {r['final_val_loss']:.4f} ({r['wall_seconds']:.0f} s)",
            flush=True,
        )
    train_tokens = corpus_stats("train")["n_tokens"]
    val_tokens = corpus_stats("val")["n_tokens"] - 1
    config = train_config(run, args.seed, args.threads)
    report = {
        "settings": {
            **run,
            "smoke": args.smoke,
            "lr": LR,
            "warmup_steps": config.warmup_steps,
            "weight_decay": WEIGHT_DECAY,
            "seed": args.seed,
            "threads": args.threads,
            "vocab_size": corpus_meta()["vocab_size"],
            "tokens": config.steps * config.tokens_per_step,
            "train_tokens": train_tokens,
            "epochs": config.steps * config.tokens_per_step / train_tokens,
            "val_tokens_scored": min(val_tokens, run["eval_tokens"] or math.inf),
            "train_config": config.to_dict(),
        },
        "results": results,
        "fits": fits(results),
        "wall_seconds": time.perf_counter() - start,
        "machine": machine_info(load_at_start),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scaling.json").write_text(json.dumps(report, indent=2) + "\n")
    table = to_markdown(report)
    (args.out / "scaling.md").write_text(table, encoding="utf-8")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

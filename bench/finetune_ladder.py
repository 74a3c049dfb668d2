"""The transfer ladder on the docstring-area task: scratch, probe, last block, full, LoRA.

Task (``dlkit.data.docstring_areas``): the first ``--max-tokens`` BPE tokens of a standard-
library docstring → its area, 7 classes (tkinter, distutils, asyncio, email, importlib,
logging, xml), a balanced test set of 50 documents per class, fine-tuning on 10, 100 or
all pool labels per class (nested subsets, one per seed). Model: the shipped GPT
(``dlkit.train.load_pretrained_gpt``, deep-copied per run) with a linear head on its
mean-pooled final hidden states; ``scratch`` is the same architecture randomly initialized.
Methods and recipes: ``dlkit.train.transfer_ladder`` (``run_ladder``, ``DEFAULT_RECIPES``).
A bag-of-tokens baseline (tf-idf + logistic regression on the same labels) says how far
keywords alone go. ``forgetting`` then measures the pretraining loss (val split, 20,000
tokens) before and after full fine-tuning, LoRA and full fine-tuning at a tenth of the rate.

Results go to ``OUT/finetune_ladder.json`` and ``.md``. Run from the repository root::

    nice .venv/bin/python bench/finetune_ladder.py [--seeds 0 1 2] [--smoke] [--out DIR]

``--smoke`` (the tests) uses a tiny random GPT, 2 labels per class, one seed, a few steps.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine_info import describe_machine, load_average, machine_info

from dlkit.data.corpus import load_tokens
from dlkit.data.docstring_areas import load_docstring_areas
from dlkit.nn.gpt import GPT, GPTConfig
from dlkit.train.pretrained import load_pretrained_gpt
from dlkit.train.transfer_ladder import (
    DEFAULT_RECIPES,
    METHODS,
    bag_of_tokens_baseline,
    forgetting,
    format_ladder_table,
    run_ladder,
    summarize_ladder,
)

BENCH = Path(__file__).resolve().parent


def gap(summary: list[dict[str, Any]], a: str, b: str, k: Any) -> float | None:
    cell = {(r["method"], r["labels_per_class"]): r["accuracy_mean"] for r in summary}
    if (a, k) not in cell or (b, k) not in cell:
        return None
    return 100 * (cell[(a, k)] - cell[(b, k)])


def to_markdown(report: dict[str, Any]) -> str:
    s, summary = report["settings"], report["summary"]
    budgets = s["labels_per_class"]
    pretrained = ("probe", "last_block", "full", "lora")
    lines = [
        "# Fine-tuning ladder: how much of the pretrained GPT to train",
        "",
        "Written by `bench/finetune_ladder.py`; rerun it (`nice .venv/bin/python "
        f"bench/finetune_ladder.py`, {report['wall_seconds'] / 60:.1f} min on this machine) "
        "to refresh."
        + (" **Smoke run (tiny random GPT): numbers mean nothing.**" if s["smoke"] else ""),
        "",
        f"Task: {s['data']}. Test accuracy (%) mean ± std over seeds {s['seeds']} "
        f"(chance {100 / s['num_classes']:.1f}%).",
        "",
        format_ladder_table(summary),
        "",
        "Targets:",
    ]
    for k in budgets:
        if k == "all":
            continue
        best = max(
            (m for m in pretrained if gap(summary, m, "scratch", k) is not None),
            key=lambda m: gap(summary, m, "scratch", k),
            default=None,
        )
        if best is not None:
            d = gap(summary, best, "scratch", k)
            lines.append(
                f"- {k} labels/class: best pretrained method ({best}) − scratch = **{d:+.1f}** "
                f"points (target ≥ +10: {'met' if d >= 10 else 'missed'})."
            )
    for k in budgets:
        d = gap(summary, "lora", "full", k)
        if d is not None:
            lines.append(
                f"- {k} labels/class: LoRA − full = **{d:+.1f}** points (target within 1: "
                f"{'met' if abs(d) <= 1 or d > 0 else 'missed'})."
            )
    lora = next((r for r in summary if r["method"] == "lora"), None)
    if lora is not None:
        lines.append(
            f"- LoRA trains {lora['trainable_params']:,} of {lora['total_params']:,} "
            f"parameters ({100 * lora['trainable_fraction']:.2f}%; target ≤ 5%)."
        )
    lines += ["", "Bag-of-tokens reference (tf-idf + logistic regression, same labels):", ""]
    lines.append(
        "| | " + " | ".join(f"{k} / class" for k in budgets) + " |\n|:--|" + "--:|" * len(budgets)
    )
    bow = {r["labels_per_class"]: r for r in summarize_ladder(report["bag_of_tokens"])}
    lines.append(
        "| tf-idf + LR | "
        + " | ".join(
            f"{100 * bow[k]['accuracy_mean']:.1f} ± {100 * bow[k]['accuracy_std']:.1f}"
            for k in budgets
        )
        + " |"
    )
    f = report["forgetting"]
    if f:
        lines += [
            "",
            f"Forgetting ({s['forgetting_labels']} labels/class, seed 0): next-token loss "
            f"(nats) on the first {s['forgetting_tokens']:,} val-split tokens, through the "
            "tied LM head.",
            "",
            "| Fine-tuning | lr | Test acc. (%) | LM loss before | after | increase |",
            "|:--|--:|--:|--:|--:|--:|",
        ]
        lines += [
            f"| {r['method']} | {r['lr']:g} | {100 * r['accuracy']:.1f} | "
            f"{r['lm_loss_before']:.3f} | {r['lm_loss_after']:.3f} | "
            f"{r['lm_loss_increase']:+.3f} |"
            for r in f
        ]
    recipes = "; ".join(
        f"{m}: lr {r['lr']:g}, {r['epochs']} epochs, ≥ {r['min_steps']} steps"
        + (f", ≤ {r['max_steps']}" if r["max_steps"] else "")
        for m, r in s["recipes"].items()
    )
    lines += [
        "",
        f"- Recipes (AdamW, batch 16, weight decay 0.01, warm-up 10% then linear decay to 0, "
        f"clipping at 1): {recipes}. Probe: `fit_linear_probe`, {s['probe_steps']} steps. "
        f"LoRA: rank {s['lora_rank']}, α {s['lora_alpha']:g} on every `out_proj`, `mlp.w1/w2/w3`.",
        "- Most test documents were in the GPT's pretraining data (the corpus train split), "
        "unlabelled; the area label never was. "
        f"{s['test_unseen']} of the {s['n_test']} come from modules it never saw.",
        f"- One CPU thread; {s['runs']} ladder runs.",
        "",
        describe_machine(report["machine"]),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--no-forgetting", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="tiny random GPT, a few steps")
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    load_start = load_average()
    start = time.perf_counter()

    data = load_docstring_areas(max_tokens=8 if args.smoke else args.max_tokens)
    if args.smoke:
        torch.manual_seed(0)
        backbone = GPT(GPTConfig.modern(2048, 16, 1, 2, 16))
        budgets: list[Any] = [2]
        seeds = args.seeds[:1]
        recipes = {m: replace(r, epochs=1, min_steps=2) for m, r in DEFAULT_RECIPES.items()}
        probe_steps, lm_tokens_n = 5, 512
    else:
        backbone, _ = load_pretrained_gpt()
        budgets, seeds, recipes = [10, 100, "all"], args.seeds, dict(DEFAULT_RECIPES)
        probe_steps, lm_tokens_n = 200, 20_000

    rows = run_ladder(
        data=data, backbone=backbone, methods=args.methods, labels_per_class=budgets,
        seeds=seeds, recipes=recipes, probe_steps=probe_steps, progress=args.progress,
    )  # fmt: skip
    summary = summarize_ladder(rows)
    print(format_ladder_table(summary), flush=True)
    bow = bag_of_tokens_baseline(data, labels_per_class=budgets, seeds=seeds)
    forget_k = 2 if args.smoke else 100
    forget: list[dict[str, Any]] = []
    if not args.no_forgetting:
        forget = forgetting(
            data=data, backbone=backbone, lm_tokens=load_tokens("val"),
            labels_per_class=forget_k, recipes=recipes, max_tokens=lm_tokens_n,
            progress=args.progress,
        )  # fmt: skip
    report = {
        "settings": {
            "smoke": args.smoke,
            "data": data.describe(),
            "classes": list(data.classes),
            "num_classes": data.num_classes,
            "n_test": len(data.y_test),
            "test_unseen": int(data.test_unseen.sum()),
            "max_tokens": data.max_tokens,
            "labels_per_class": budgets,
            "seeds": list(seeds),
            "methods": args.methods,
            "recipes": {m: asdict(r) for m, r in recipes.items()},
            "probe_steps": probe_steps,
            "lora_rank": 8,
            "lora_alpha": 16.0,
            "forgetting_labels": forget_k,
            "forgetting_tokens": lm_tokens_n,
            "threads": torch.get_num_threads(),
            "runs": len(rows),
        },
        "rows": rows,
        "summary": summary,
        "bag_of_tokens": bow,
        "forgetting": forget,
        "wall_seconds": time.perf_counter() - start,
        "machine": machine_info(load_start),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "finetune_ladder.json").write_text(json.dumps(report, indent=2) + "\n")
    text = to_markdown(report)
    (args.out / "finetune_ladder.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

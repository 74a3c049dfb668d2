"""The shipped GPT checkpoint against unigram and bigram baselines, in bits per byte.

One run scores, on the same token files of the shipped corpus (``val``, ``test`` and the
out-of-distribution ``ood`` pydoc topics):

* the shipped checkpoint (``dlkit.train.load_pretrained_gpt``), with
  ``dlkit.train.evaluate_lm``: consecutive non-overlapping windows of its context, every
  token predicted exactly once;
* a **unigram** model (add-1 smoothing) and a **bigram** model (add-α, with α chosen on
  ``val`` from the same grid as the build), both fitted on the ``train`` tokens
  (``dlkit.scratch.ngram``).

Bits per byte :math:`= \\bar\\ell \\cdot N_\\text{tokens} / (N_\\text{bytes} \\ln 2)` with
:math:`\\bar\\ell` the mean nats per token and the split's counts from the corpus manifest,
so the numbers do not depend on the tokenizer. The table also gives perplexity per token,
and the build's wall time and training tokens/s from the checkpoint's ``train_log.json``.

Results go to ``OUT/checkpoint_quality.md`` and ``.json``. Run from the repository root::

    .venv/bin/python bench/checkpoint_quality.py [--checkpoint DIR] [--out DIR] [--max-tokens N]

``--max-tokens`` limits every split (the test that runs every bench script uses it).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine_info import describe_machine, load_average, machine_info

from dlkit.data import corpus_stats, load_tokens
from dlkit.scratch.ngram import BigramLM, UnigramLM
from dlkit.train import PRETRAINED_DIR, evaluate_lm, load_pretrained_gpt, pretrained_log

SPLITS = ("val", "test", "ood")
BIGRAM_ALPHAS = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)


def bits_per_byte(nats: float, n_tokens: int, n_bytes: int) -> float:
    return nats * n_tokens / (n_bytes * math.log(2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=PRETRAINED_DIR)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--max-tokens", type=int, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    load_start = load_average()
    try:
        model, _ = load_pretrained_gpt(folder=args.checkpoint)
    except FileNotFoundError as err:
        print(f"{err}\nbuild it with: python3 tasks.py build checkpoint", file=sys.stderr)
        return 2
    log = pretrained_log(folder=args.checkpoint)
    context = model.config.max_len
    V = model.config.vocab_size
    train = load_tokens("train")
    unigram = UnigramLM(V, alpha=1.0).fit(train)
    val = load_tokens("val")[: args.max_tokens]
    alpha = min(BIGRAM_ALPHAS, key=lambda a: BigramLM(V, alpha=a).fit(train).mean_nll(val))
    bigram = BigramLM(V, alpha=alpha).fit(train)

    rows = []
    for split in SPLITS:
        tokens = load_tokens(split)[: args.max_tokens]
        stats = corpus_stats(split)
        # bytes of the scored prefix, at the split's mean bytes per token when it is cut
        n_tokens = len(tokens)
        n_bytes = stats["n_bytes"] * n_tokens / stats["n_tokens"]
        start = time.perf_counter()
        gpt = evaluate_lm(model, tokens, context, batch_size=32)
        seconds = time.perf_counter() - start
        scores = {
            "gpt": gpt,
            "unigram": unigram.mean_nll(tokens),
            "bigram": bigram.mean_nll(tokens),
        }
        rows.append(
            {
                "split": split,
                "n_tokens": n_tokens,
                "n_bytes": n_bytes,
                "eval_seconds": seconds,
                **{
                    name: {
                        "nats_per_token": nats,
                        "perplexity": math.exp(nats),
                        "bits_per_byte": bits_per_byte(nats, n_tokens, n_bytes),
                    }
                    for name, nats in scores.items()
                },
            }
        )
    machine = machine_info(load_start, packages=("torch", "safetensors"))
    result = {
        "checkpoint": str(args.checkpoint),
        "n_parameters": log.get("n_parameters"),
        "model": model.config.to_dict(),
        "bigram_alpha": alpha,
        "build_seconds": log.get("build_seconds"),
        "train_tokens_per_second": log.get("tokens_per_second"),
        "best_step": log.get("best_step"),
        "rows": rows,
        "machine": machine,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "checkpoint_quality.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# The shipped GPT checkpoint against n-gram baselines",
        "",
        "Written by `bench/checkpoint_quality.py`. Lower is better; bits per byte compare "
        "models whatever their tokenizer.",
        "",
        f"Model: {result['n_parameters']:,} parameters, {model.config.n_layers} layers, "
        f"width {model.config.d_model}, context {context}, positions "
        f"{model.config.positions}, {model.config.norm}, {model.config.mlp}. Build: "
        f"{(result['build_seconds'] or 0) / 60:.1f} min wall on 1 CPU thread, "
        f"{result['train_tokens_per_second'] or 0:,.0f} training tokens/s, best validation "
        f"at step {result['best_step']}. Bigram α = {alpha} (chosen on val).",
        "",
        "| split | tokens | GPT bits/byte | bigram | unigram | GPT perplexity | bigram | unigram "
        "| GPT / bigram |",
        "| --- | --: | --: | --: | --: | --: | --: | --: | --: |",
    ]
    for r in rows:
        g, b, u = r["gpt"], r["bigram"], r["unigram"]
        lines.append(
            f"| {r['split']} | {r['n_tokens']:,} | {g['bits_per_byte']:.3f} | "
            f"{b['bits_per_byte']:.3f} | {u['bits_per_byte']:.3f} | {g['perplexity']:.1f} | "
            f"{b['perplexity']:.1f} | {u['perplexity']:.1f} | "
            f"{g['bits_per_byte'] / b['bits_per_byte']:.3f} |"
        )
    lines += ["", describe_machine(machine, ("torch", "safetensors")), ""]
    (args.out / "checkpoint_quality.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

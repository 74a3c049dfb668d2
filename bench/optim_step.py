"""How long one ``optimizer.step()`` of ``dlkit.optim`` takes, against ``torch.optim``'s.

For each model and optimizer three implementations update identical copies of the same
parameters with the same fixed gradients: ``dlkit.optim`` (readable per-parameter loops),
``torch.optim`` with ``foreach=True`` (its multi-tensor implementation, the comparison the
goal is set against: dlkit at most **1.5×** its time) and ``torch.optim`` with
``foreach=False`` (its own per-parameter loop, for context). They are measured **side by
side in one run**: after ``--warmup`` untimed steps each, every one of ``--repeat`` rounds
times ``--steps`` consecutive steps of each implementation with ``time.perf_counter``, the
order rotating from round to round so drift and other load fall on all alike; the table
reports the median (and min) time per step over rounds.

Models (float32, CPU): ``mlp``, a ``dlkit.nn.build_mlp`` 256→512×5→10 MLP (12 tensors,
1.19 M parameters, mostly large matrices) and ``gpt``, a small ``dlkit.nn.GPT`` (GPT-2
design, 4 layers, d_model 128, 52 tensors, 0.83 M parameters, many of them small vectors,
where per-tensor overhead shows). Gradients are random and fixed (set once), so only the update is timed.

Fairness is checked, not assumed: every implementation takes the same number of steps from
the same weights with the same gradients, so at the end their weights must agree (to
``TOLERANCE``, float32 rounding of different but equivalent operation orders).

Results go to ``OUT/optim_step.md`` and ``OUT/optim_step.json`` (every sample and the
machine, with the load average). Run from the repository root::

    .venv/bin/python bench/optim_step.py [--repeat 15] [--steps 10] [--threads 1] [--out DIR]
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from machine_info import describe_machine, load_average, machine_info
from torch import nn
from tqdm import tqdm

import dlkit.optim
from dlkit.nn import GPT, GPTConfig, MLPConfig, build_mlp

BENCH = Path(__file__).resolve().parent
GOAL = 1.5  # dlkit's step time at most this many times torch.optim's foreach step
TOLERANCE = 1e-4  # relative, float32: equivalent formulas in different orders round differently
IMPLEMENTATIONS = ("dlkit", "torch foreach", "torch for-loop")

MODELS: dict[str, Callable[[], nn.Module]] = {
    "mlp": lambda: build_mlp(MLPConfig(d_in=256, hidden=(512,) * 5, d_out=10)),
    "gpt": lambda: GPT(
        GPTConfig.gpt2(vocab_size=256, d_model=128, n_layers=4, n_heads=4, max_len=64)
    ),
}

# name: (dlkit class, torch class, keyword arguments shared by both)
OPTIMIZERS: dict[str, tuple[type, type, dict[str, Any]]] = {
    "SGD (momentum 0.9)": (dlkit.optim.SGD, torch.optim.SGD, {"lr": 0.01, "momentum": 0.9}),
    "Adagrad": (dlkit.optim.Adagrad, torch.optim.Adagrad, {"lr": 0.01}),
    "RMSprop": (dlkit.optim.RMSprop, torch.optim.RMSprop, {"lr": 1e-3}),
    "Adam": (dlkit.optim.Adam, torch.optim.Adam, {"lr": 1e-3}),
    "AdamW": (dlkit.optim.AdamW, torch.optim.AdamW, {"lr": 1e-3}),
}

NOTES = """\
- One `optimizer.step()` on fixed random gradients (float32, CPU, {threads} intra-op
  thread{s}); median and min over {repeat} rounds of {steps} consecutive steps, after
  {warmup} untimed steps; the order of the three implementations rotates each round.
- **dlkit**: `dlkit.optim`, a readable per-parameter loop of in-place tensor ops.
  **torch foreach**: `torch.optim` with `foreach=True` (multi-tensor `torch._foreach_*`
  kernels); the goal is dlkit ≤ {goal}× its time. **torch for-loop**: `torch.optim` with
  `foreach=False`, its own per-parameter loop (PyTorch's default on CPU).
- Check: after the run every implementation's weights agree to {tolerance:g} relative
  (they took the same steps from the same weights with the same gradients).
"""


def make_implementations(
    model: nn.Module, optimizer: str, seed: int
) -> dict[str, tuple[torch.optim.Optimizer, nn.Module]]:
    """Three copies of ``model`` with the same fixed gradients, one optimizer each."""
    ours_cls, torch_cls, kwargs = OPTIMIZERS[optimizer]
    generator = torch.Generator().manual_seed(seed)
    grads = [torch.randn(p.shape, generator=generator) * 1e-2 for p in model.parameters()]
    built = {}
    for name in IMPLEMENTATIONS:
        copy_ = copy.deepcopy(model)
        for param, grad in zip(copy_.parameters(), grads, strict=True):
            param.grad = grad.clone()
        if name == "dlkit":
            opt = ours_cls(copy_.parameters(), **kwargs)
        else:
            opt = torch_cls(copy_.parameters(), foreach=name == "torch foreach", **kwargs)
        built[name] = (opt, copy_)
    return built


def max_relative_difference(a: nn.Module, b: nn.Module) -> float:
    worst = 0.0
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        scale = q.detach().abs().max().clamp_min(1e-12)
        worst = max(worst, float((p.detach() - q.detach()).abs().max() / scale))
    return worst


def measure(model_name: str, optimizer: str, args: argparse.Namespace) -> dict[str, Any]:
    """Per-step times of the three implementations, interleaved."""
    torch.manual_seed(args.seed)
    built = make_implementations(MODELS[model_name](), optimizer, args.seed)
    for opt, _ in built.values():
        for _ in range(args.warmup):
            opt.step()
    samples: dict[str, list[float]] = {name: [] for name in IMPLEMENTATIONS}
    order = list(IMPLEMENTATIONS)
    for _ in range(args.repeat):
        for name in order:
            opt = built[name][0]
            gc.collect()
            start = time.perf_counter()
            for _ in range(args.steps):
                opt.step()
            samples[name].append((time.perf_counter() - start) / args.steps)
        order = order[1:] + order[:1]  # rotate who goes first

    reference = built["torch foreach"][1]
    differences = {
        name: max_relative_difference(model, reference) for name, (_, model) in built.items()
    }
    worst = max(differences.values())
    if worst > TOLERANCE:
        raise AssertionError(f"{model_name}/{optimizer}: weights differ by {worst:.2e} relative")
    stats = {name: {"median": statistics.median(v), "min": min(v)} for name, v in samples.items()}
    ours = stats["dlkit"]["median"]
    first_model = built["dlkit"][1]
    return {
        "model": model_name,
        "optimizer": optimizer,
        "tensors": sum(1 for _ in first_model.parameters()),
        "parameters": sum(p.numel() for p in first_model.parameters()),
        **stats,
        "ratio_vs_foreach": ours / stats["torch foreach"]["median"],
        "ratio_vs_for_loop": ours / stats["torch for-loop"]["median"],
        "max_relative_difference": differences,
        "samples": samples,
    }


def to_markdown(report: dict[str, Any]) -> str:
    def ms(stat: dict[str, float]) -> str:
        return f"{1e3 * stat['median']:.3f} / {1e3 * stat['min']:.3f}"

    lines = [
        "# Optimizer step time: dlkit.optim vs torch.optim",
        "",
        "Written by `bench/optim_step.py`; rerun it (`.venv/bin/python bench/optim_step.py`)"
        " to refresh.",
        "",
        "| Model | Optimizer | dlkit (median / min ms) | torch foreach (ms) | torch for-loop (ms) "
        f"| dlkit / foreach | dlkit / for-loop | ≤ {GOAL}× |",
        "|---|---|--:|--:|--:|--:|--:|:-:|",
    ]
    for r in report["results"]:
        model = f"{r['model']} ({r['tensors']} tensors, {r['parameters'] / 1e6:.2f} M)"
        lines.append(
            f"| {model} | {r['optimizer']} | {ms(r['dlkit'])} | {ms(r['torch foreach'])} "
            f"| {ms(r['torch for-loop'])} | {r['ratio_vs_foreach']:.2f}× "
            f"| {r['ratio_vs_for_loop']:.2f}× | {'yes' if r['ratio_vs_foreach'] <= GOAL else 'NO'} |"
        )
    s = report["settings"]
    worst = max(r["ratio_vs_foreach"] for r in report["results"])
    lines += [
        "",
        f"Worst ratio to torch foreach: **{worst:.2f}×** (goal ≤ {GOAL}×).",
        "",
        NOTES.format(
            threads=s["threads"],
            s="" if s["threads"] == 1 else "s",
            repeat=s["repeat"],
            steps=s["steps"],
            warmup=s["warmup"],
            goal=GOAL,
            tolerance=TOLERANCE,
        ),
        describe_machine(report["machine"]),
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Time dlkit.optim's step against torch.optim's.")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument(
        "--optimizers", nargs="+", default=list(OPTIMIZERS), choices=list(OPTIMIZERS)
    )
    parser.add_argument("--repeat", type=int, default=15, help="timed rounds (default 15)")
    parser.add_argument("--steps", type=int, default=10, help="steps per round (default 10)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", type=Path, default=BENCH / "results", help="default: bench/results"
    )
    args = parser.parse_args(argv)
    if min(args.repeat, args.steps, args.threads) < 1 or args.warmup < 0:
        parser.error("--repeat, --steps and --threads must be >= 1, --warmup >= 0")
    torch.set_num_threads(args.threads)

    load_at_start = load_average()
    pairs = [(m, o) for m in args.models for o in args.optimizers]
    results = [measure(m, o, args) for m, o in tqdm(pairs, desc="optimizer steps", unit="case")]
    report = {
        "settings": {
            "repeat": args.repeat,
            "steps": args.steps,
            "warmup": args.warmup,
            "threads": args.threads,
            "seed": args.seed,
            "goal": GOAL,
        },
        "machine": machine_info(load_at_start),
        "results": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "optim_step.json").write_text(json.dumps(report, indent=2) + "\n")
    table = to_markdown(report)
    (args.out / "optim_step.md").write_text(table, encoding="utf-8")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

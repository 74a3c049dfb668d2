"""Pretraining throughput: dlkit's GPT in the chapter's own loop against a plain PyTorch loop.

Training tokens per second on the shipped corpus's train split (vocabulary 2,048), float32,
CPU, one thread, dropout 0, AdamW (β = (0.9, 0.95), weight decay 0.1), gradient clipping at
norm 1, warm-up then cosine. Three sides at the same width, depth, heads, context and
batch, measured **side by side in one run**:

- **dlkit (train_lm)**: ``dlkit.nn.gpt.GPT(GPTConfig.gpt2(...))`` (``kernels="torch"``)
  trained by ``dlkit.train.lm_training.train_lm``: the ``random_window_loader`` sampler,
  the ``Trainer`` with its callbacks, AdamW over the weight-decay groups, ``WarmupCosine``.
  Each timed round is one ``train_lm`` call, so its set-up (optimizer, loader, Trainer) is
  counted in the round.
- **dlkit GPT, plain loop**: the same model in a hand-written loop (below): so the cost of
  the Trainer and the sampler shows apart from the model's.
- **torch (plain loop)**: the same loop over ``torch.nn.TransformerEncoderLayer(d, heads,
  4d, dropout=0, activation="gelu", batch_first=True, norm_first=True)`` layers run with a
  causal mask (``is_causal=True``), between the same learned token and position embeddings,
  final LayerNorm and tied output head (:class:`TorchEncoderLM`). Same parameter count,
  checked.

The plain loop is what one writes from the PyTorch tutorials: a nanoGPT-style
``get_batch`` (random starts, ``B`` slices of the ``uint16`` memmap stacked as int64),
``F.cross_entropy``, ``loss.backward()``, ``clip_grad_norm_``, ``AdamW.step()`` (one group,
``torch.optim.AdamW(model.parameters())``), a ``LambdaLR`` warm-up-cosine.

After one untimed warm-up round per side, each of ``--repeat`` rounds trains every side for
``steps`` steps from a fresh model (built outside the timed region), the side order rotating
between rounds: many short rounds, so that changes in the machine's load fall on all sides
alike. Reported: median tokens/s per side, per-round range, and the ratios
dlkit / torch (goal ≥ 1.0×), dlkit-plain / torch (the model) and dlkit / dlkit-plain (the
Trainer and sampler). **Where the time goes**: each side trains ``--profile-steps`` more
steps under ``torch.profiler`` (CPU), top operators by self time; and for the two plain
loops, the step split into data, forward + loss, backward and clip + optimizer step
(``time.process_time`` around each phase: CPU time, so waiting for a core on a loaded
machine does not count). Every round is also timed in CPU seconds of the process, and the
ratios are given both ways.

Results go to ``OUT/pretrain_throughput.md`` and ``OUT/pretrain_throughput.json``. Run from
the repository root (``--smoke``: tiny sizes and a few steps, for the test)::

    nice .venv/bin/python bench/pretrain_throughput.py [--repeat 11] [--threads 1] [--out DIR]
    .venv/bin/python bench/pretrain_throughput.py --render   # rewrite the .md from the .json
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from machine_info import describe_machine, load_average, machine_info
from torch import Tensor, nn
from torch.profiler import ProfilerActivity, profile, record_function
from tqdm import tqdm

from dlkit.data.corpus import load_tokens
from dlkit.nn.gpt import GPT, GPTConfig
from dlkit.train.lm_training import LMTrainConfig, train_lm

BENCH = Path(__file__).resolve().parent
GOAL = 1.0  # dlkit (train_lm) tokens/s at least this many times the plain torch loop's
SIDES = ("dlkit (train_lm)", "dlkit GPT, plain loop", "torch (plain loop)")
LR, BETAS, WEIGHT_DECAY, CLIP = 1e-3, (0.9, 0.95), 0.1, 1.0
TOP_OPS = 8
CLOCKS = {
    "wall": "Tokens per second (wall clock)",
    "cpu": "Tokens per CPU-second (process time)",
}
# (group, test on an operator's name): the first group that matches takes its self time
OP_GROUPS = (
    ("matrix products", lambda n: n in {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"}),
    ("attention (SDPA)", lambda n: "scaled_dot_product" in n),
    ("cross-entropy", lambda n: "log_softmax" in n or "nll_loss" in n),
    ("GELU", lambda n: "gelu" in n),
    ("LayerNorm", lambda n: "layer_norm" in n),
)


@dataclass(frozen=True)
class Size:
    """One model and batch shape, and how many steps a timed round trains."""

    name: str
    n_layers: int
    n_heads: int
    d_model: int
    context: int
    batch_size: int
    steps: int


SIZES = (
    Size("small", n_layers=4, n_heads=4, d_model=128, context=64, batch_size=12, steps=8),
    Size("larger", n_layers=6, n_heads=8, d_model=256, context=128, batch_size=12, steps=3),
)
SMOKE_SIZES = (Size("smoke", n_layers=2, n_heads=2, d_model=32, context=16, batch_size=4, steps=3),)


class TorchEncoderLM(nn.Module):
    """PyTorch's own encoder layers as a causal LM: embeddings, ``n_layers`` ×
    ``TransformerEncoderLayer`` (pre-norm, causal mask), final LayerNorm, tied head."""

    def __init__(self, vocab_size: int, size: Size) -> None:
        super().__init__()
        C = size.d_model
        self.tok_emb = nn.Embedding(vocab_size, C)
        self.pos_emb = nn.Embedding(size.context, C)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(
                C,
                size.n_heads,
                4 * C,
                dropout=0.0,
                activation="gelu",
                batch_first=True,
                norm_first=True,
            )
            for _ in range(size.n_layers)
        )
        self.ln_f = nn.LayerNorm(C)
        for p in self.parameters():  # GPT-2-like scale; the timing does not depend on it
            if p.dim() > 1:
                nn.init.normal_(p, std=0.02)

    def forward(self, idx: Tensor) -> Tensor:
        T = idx.shape[1]
        x = self.tok_emb(idx) + self.pos_emb(torch.arange(T, device=idx.device))  # (B, T, C)
        mask = nn.Transformer.generate_square_subsequent_mask(T, device=idx.device)  # (T, T)
        for layer in self.layers:
            x = layer(x, src_mask=mask, is_causal=True)  # (B, T, C)
        return F.linear(self.ln_f(x), self.tok_emb.weight)  # (B, T, V), tied head


def build(side: str, vocab_size: int, size: Size, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    if side == SIDES[2]:
        return TorchEncoderLM(vocab_size, size)
    config = GPTConfig.gpt2(
        vocab_size,
        size.d_model,
        size.n_layers,
        size.n_heads,
        size.context,
        dropout=0.0,
        kernels="torch",
    )
    return GPT(config)


def warmup_cosine(steps: int) -> Callable[[int], float]:
    """The learning-rate factor of ``train_lm``'s schedule (warm-up a quarter, floor 0.1)."""
    warmup = max(steps // 4, 0)

    def factor(t: int) -> float:
        if t < warmup:
            return t / warmup
        progress = (t - warmup) / max(steps - warmup, 1)
        return 0.1 + 0.45 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return factor


class PlainLoop:
    """The hand-written training loop; ``phases`` accumulates seconds per phase if asked."""

    def __init__(
        self, model: nn.Module, tokens: np.ndarray, size: Size, steps: int, seed: int
    ) -> None:
        self.model, self.tokens, self.size, self.steps = model, tokens, size, steps
        self.generator = torch.Generator().manual_seed(seed)
        self.optimizer = torch.optim.AdamW(
            model.parameters(), lr=LR, betas=BETAS, weight_decay=WEIGHT_DECAY
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, warmup_cosine(steps))
        self.phases = {"data": 0.0, "forward + loss": 0.0, "backward": 0.0, "clip + step": 0.0}

    def get_batch(self) -> tuple[Tensor, Tensor]:
        T, B = self.size.context, self.size.batch_size
        with record_function("get_batch"):  # a profiler label only
            starts = torch.randint(len(self.tokens) - T, (B,), generator=self.generator)  # (B,)
            windows = [
                torch.from_numpy(self.tokens[s : s + T + 1].astype(np.int64)) for s in starts
            ]
            batch = torch.stack(windows)  # (B, T + 1)
        return batch[:, :-1], batch[:, 1:]  # (B, T), (B, T)

    def run(self, timed_phases: bool = False) -> float:
        """Train ``steps`` steps; returns the last loss."""
        self.model.train()
        clock = time.process_time  # CPU seconds: time spent descheduled does not count
        loss = torch.zeros(())
        for _ in range(self.steps):
            t0 = clock()
            x, y = self.get_batch()
            t1 = clock()
            logits = self.model(x)  # (B, T, V)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            t2 = clock()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            t3 = clock()
            nn.utils.clip_grad_norm_(self.model.parameters(), CLIP)
            self.optimizer.step()
            self.scheduler.step()
            t4 = clock()
            if timed_phases:
                for name, (a, b) in zip(
                    self.phases, ((t0, t1), (t1, t2), (t2, t3), (t3, t4)), strict=True
                ):
                    self.phases[name] += b - a
        return loss.item()


def trainer_config(size: Size, steps: int, seed: int, threads: int) -> LMTrainConfig:
    return LMTrainConfig(
        steps,
        size.batch_size,
        size.context,
        LR,
        warmup_steps=steps // 4,
        eval_every=steps,
        weight_decay=WEIGHT_DECAY,
        betas=BETAS,
        grad_clip=CLIP,
        threads=threads,
        seed=seed,
    )


def train_side(
    side: str, model: nn.Module, tokens: np.ndarray, size: Size, steps: int, seed: int, threads: int
) -> Callable[[], float]:
    """A no-argument function that trains ``model`` for ``steps`` steps (the timed part)."""
    if side == SIDES[0]:

        def fit() -> float:
            run = train_lm(
                model,
                tokens,
                None,
                trainer_config(size, steps, seed, threads),
                progress=False,
                device="cpu",
            )
            return run.step_history[-1]["train_loss"]

        return fit

    def loop() -> float:
        return PlainLoop(model, tokens, size, steps, seed).run()

    return loop


def measure(size: Size, tokens: np.ndarray, vocab: int, args: argparse.Namespace) -> dict:
    steps = size.steps if args.steps is None else args.steps
    params = {
        side: sum(p.numel() for p in build(side, vocab, size, 0).parameters()) for side in SIDES
    }
    if len(set(params.values())) != 1:
        raise AssertionError(f"{size.name}: the models differ in size: {params}")
    seconds: dict[str, list[float]] = {side: [] for side in SIDES}
    cpu_seconds: dict[str, list[float]] = {side: [] for side in SIDES}
    last_loss: dict[str, float] = {}
    order = list(SIDES)
    for round_ in range(args.warmup + args.repeat):
        for side in order:
            model = build(side, vocab, size, args.seed + round_)
            fit = train_side(side, model, tokens, size, steps, args.seed + round_, args.threads)
            gc.collect()
            start, cpu_start = time.perf_counter(), time.process_time()
            last_loss[side] = fit()
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
            if round_ >= args.warmup:
                seconds[side].append(elapsed)
                cpu_seconds[side].append(cpu)
        order = order[1:] + order[:1]  # rotate who goes first
    tokens_per_step = size.batch_size * size.context
    dl, plain, torch_ = SIDES
    clocks = {}
    for clock, samples in (("wall", seconds), ("cpu", cpu_seconds)):
        rates = {s: [steps * tokens_per_step / t for t in v] for s, v in samples.items()}
        median = {s: statistics.median(v) for s, v in rates.items()}
        clocks[clock] = {
            "seconds": samples,
            "tokens_per_s": rates,
            "median_tokens_per_s": median,
            "ratio_dlkit_vs_torch": median[dl] / median[torch_],
            "ratio_dlkit_plain_vs_torch": median[plain] / median[torch_],
            "ratio_trainer_vs_plain": median[dl] / median[plain],
        }
    return {
        "size": asdict(size),
        "steps_per_round": steps,
        "tokens_per_step": tokens_per_step,
        "parameters": params[dl],
        **clocks,
        "last_train_loss": last_loss,
        "where_the_time_goes": where_the_time_goes(size, tokens, vocab, args),
    }


def op_groups(events: Any) -> dict[str, float]:
    """Shares of the profiled self CPU time: operators called inside ``Optimizer.step`` or
    ``Optimizer.zero_grad`` count as "optimizer", inside the DataLoader's ``__next__`` or the
    plain loop's ``get_batch`` as "data", the rest by name (:data:`OP_GROUPS`, else "other")."""
    totals: dict[str, float] = {}
    for event in events:
        scopes, parent = [], event.cpu_parent
        while parent is not None:
            scopes.append(parent.name)
            parent = parent.cpu_parent
        names = [event.name, *scopes]
        if any(n.startswith("Optimizer.") for n in names):
            group = "optimizer"
        elif any(n.startswith(("enumerate(DataLoader)", "get_batch")) for n in names):
            group = "data"
        else:
            group = next((g for g, test in OP_GROUPS if test(event.name)), "other")
        totals[group] = totals.get(group, 0.0) + event.self_cpu_time_total
    everything = sum(totals.values()) or 1.0
    return {g: t / everything for g, t in sorted(totals.items(), key=lambda kv: -kv[1])}


def where_the_time_goes(
    size: Size, tokens: np.ndarray, vocab: int, args: argparse.Namespace
) -> dict:
    """Top operators by self CPU time per side (torch.profiler) and the plain loops' phases."""
    steps = args.profile_steps
    out: dict[str, Any] = {"profile_steps": steps, "groups": {}, "top_ops": {}, "phases": {}}
    for side in SIDES:
        model = build(side, vocab, size, args.seed)
        train_side(side, model, tokens, size, 2, args.seed, args.threads)()  # warm-up
        fit = train_side(side, model, tokens, size, steps, args.seed, args.threads)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            fit()
        out["groups"][side] = op_groups(prof.events())
        events = prof.key_averages()
        total = sum(e.self_cpu_time_total for e in events)
        top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:TOP_OPS]
        out["top_ops"][side] = [
            {
                "op": e.key,
                "calls_per_step": e.count / steps,
                "self_ms_per_step": e.self_cpu_time_total / 1e3 / steps,
                "share": e.self_cpu_time_total / total,
            }
            for e in top
        ]
        if side != SIDES[0]:
            loop = PlainLoop(build(side, vocab, size, args.seed), tokens, size, steps, args.seed)
            loop.run(timed_phases=True)
            out["phases"][side] = {k: v / steps * 1e3 for k, v in loop.phases.items()}  # ms
    return out


def to_markdown(report: dict[str, Any]) -> str:
    s = report["settings"]
    dl, plain, torch_ = SIDES
    lines = [
        "# Pretraining throughput: dlkit GPT + train_lm vs a plain PyTorch loop",
        "",
        "Written by `bench/pretrain_throughput.py`; rerun it (`nice .venv/bin/python "
        "bench/pretrain_throughput.py`) to refresh.",
        "",
    ]
    for clock, title in CLOCKS.items():
        lines += [
            f"**{title}**",
            "",
            "| Size | Layers × heads × width | Context × batch | Parameters | Steps/round "
            f"| {dl} | {plain} | {torch_} | dlkit / torch | plain dlkit / torch "
            "| Trainer / plain |",
            "|:--|:-:|:-:|--:|--:|--:|--:|--:|--:|--:|--:|",
        ]
        for r in report["results"]:
            z, c = r["size"], r[clock]
            med, rates = c["median_tokens_per_s"], c["tokens_per_s"]
            cells = [f"{med[x]:,.0f} ({min(rates[x]):,.0f}–{max(rates[x]):,.0f})" for x in SIDES]
            lines.append(
                f"| {z['name']} | {z['n_layers']} × {z['n_heads']} × {z['d_model']} "
                f"| {z['context']} × {z['batch_size']} | {r['parameters']:,} "
                f"| {r['steps_per_round']} | {' | '.join(cells)} "
                f"| **{c['ratio_dlkit_vs_torch']:.2f}×** | {c['ratio_dlkit_plain_vs_torch']:.2f}× "
                f"| {c['ratio_trainer_vs_plain']:.2f}× |"
            )
        lines.append("")
    for clock, title in CLOCKS.items():
        worst = min(r[clock]["ratio_dlkit_vs_torch"] for r in report["results"])
        lines.append(
            f"- Smallest dlkit / torch ratio, {title.split(' (')[0].lower()}: **{worst:.2f}×** "
            f"(goal ≥ {GOAL:g}×: {'met' if worst >= GOAL else 'NOT met'})."
        )
    lines += [
        "",
        "- Tokens/s = steps × batch × context / wall seconds of a round of training; median "
        f"(and range) over {s['repeat']} rounds after {s['warmup']} untimed "
        "warm-up round(s); the side order rotates each round; each round starts from a fresh "
        "model. The CPU-time table divides by the CPU seconds of the process "
        "(`time.process_time`) instead: with more runnable processes than cores (see the load "
        "average below) wall time also counts the time a side spent waiting for a core, "
        "unevenly between sides; CPU time does not. "
        f"float32, CPU, {s['threads']} thread(s), dropout 0, AdamW lr {LR:g}, "
        f"betas {BETAS}, weight decay {WEIGHT_DECAY:g}, clipping at {CLIP:g}, warm-up + cosine.",
        f"- **{dl}**: `GPT(GPTConfig.gpt2(2048, d, L, H, context, dropout=0, kernels='torch'))`"
        " in `train_lm(..., progress=False)` (sampler, Trainer, AdamW groups, schedule; "
        "set-up counted). "
        f"**{plain}**: the same model in the hand-written loop. **{torch_}**: "
        "`nn.TransformerEncoderLayer(d, H, 4d, dropout=0, activation='gelu', batch_first=True, "
        "norm_first=True)` × L with a causal mask, same embeddings and tied head, same "
        "hand-written loop (nanoGPT-style `get_batch`, `clip_grad_norm_`, `AdamW`, `LambdaLR`).",
        "- Check: the three models of a size have the same number of parameters.",
        "",
        "## Where the time goes",
        "",
    ]
    for r in report["results"]:
        w = r["where_the_time_goes"]
        lines += [f"### {r['size']['name']}", ""]
        if w["phases"]:
            names = list(next(iter(w["phases"].values())))
            lines += [
                f"Plain loops, CPU ms per step by phase (process_time, {w['profile_steps']} steps):",
                "",
                f"| Side | {' | '.join(names)} | total |",
                "|:--|" + "--:|" * (len(names) + 1),
            ]
            for side, phases in w["phases"].items():
                cells = " | ".join(f"{phases[n]:.1f}" for n in names)
                lines.append(f"| {side} | {cells} | {sum(phases.values()):.1f} |")
            lines.append("")
        lines += [
            f"Profiled self CPU time by kind (torch.profiler, {w['profile_steps']} steps; "
            "optimizer = everything inside `Optimizer.step`/`zero_grad`, data = inside the "
            "DataLoader's `__next__` or `get_batch`):",
            "",
        ]
        for side, groups in w["groups"].items():
            shares = ", ".join(f"{g} {v:.0%}" for g, v in groups.items())
            lines.append(f"- **{side}**: {shares}")
        lines += [
            "",
            f"Top {TOP_OPS} operators by self CPU time (torch.profiler, "
            f"{w['profile_steps']} steps; share of all recorded self time; a scope such as "
            "`Optimizer.step#AdamW.step` or `enumerate(DataLoader)...` counts the Python time "
            "spent in it outside the operators it calls):",
            "",
        ]
        for side, ops in w["top_ops"].items():
            listed = ", ".join(
                f"`{o['op']}` {o['self_ms_per_step']:.1f} ms ({o['share']:.0%})" for o in ops
            )
            lines.append(f"- **{side}** (per step): {listed}")
        lines.append("")
    lines += [describe_machine(report["machine"], ("torch", "numpy")), ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Time GPT pretraining: dlkit vs plain torch.")
    parser.add_argument("--repeat", type=int, default=11, help="timed rounds (default 11)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds (default 1)")
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="steps per round (default: per size, 8 small, 3 larger)",
    )
    parser.add_argument("--profile-steps", type=int, default=4, help="profiled steps (default 4)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="a tiny size, a few steps (tests)")
    parser.add_argument("--out", type=Path, default=BENCH / "results", help="bench/results")
    parser.add_argument(
        "--render",
        action="store_true",
        help="only rewrite OUT/pretrain_throughput.md from the stored .json",
    )
    args = parser.parse_args(argv)
    if args.render:
        report = json.loads((args.out / "pretrain_throughput.json").read_text())
        (args.out / "pretrain_throughput.md").write_text(to_markdown(report), encoding="utf-8")
        return 0
    if min(args.repeat, args.threads, args.profile_steps) < 1 or args.warmup < 0:
        parser.error("--repeat, --threads and --profile-steps must be >= 1, --warmup >= 0")
    if args.steps is not None and args.steps < 2:
        parser.error("--steps must be >= 2 (train_lm warms up for steps // 4 < steps)")
    sizes = SMOKE_SIZES if args.smoke else SIZES
    torch.set_num_threads(args.threads)
    tokens = load_tokens("train")
    vocab = 2048

    load_at_start = load_average()
    results = [measure(size, tokens, vocab, args) for size in tqdm(sizes, desc="sizes")]
    report = {
        "settings": {
            "repeat": args.repeat,
            "warmup": args.warmup,
            "steps": args.steps or "per size",
            "profile_steps": args.profile_steps,
            "threads": args.threads,
            "seed": args.seed,
            "smoke": args.smoke,
            "goal": GOAL,
            "sides": list(SIDES),
            "optimizer": {
                "lr": LR,
                "betas": list(BETAS),
                "weight_decay": WEIGHT_DECAY,
                "grad_clip": CLIP,
            },
        },
        "machine": machine_info(load_at_start, ("torch", "numpy")),
        "results": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "pretrain_throughput.json").write_text(json.dumps(report, indent=2) + "\n")
    table = to_markdown(report)
    (args.out / "pretrain_throughput.md").write_text(table, encoding="utf-8")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

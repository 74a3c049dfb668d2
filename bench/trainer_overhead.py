"""What ``dlkit.train.Trainer`` costs per epoch on a CPU, against a hand-written PyTorch loop.

Both sides train the same MLP (``dlkit.nn.build_mlp``, identical initial weights) with the
same optimizer (SGD with momentum) on the same synthetic, seeded, in-memory data through
identically seeded ``DataLoader``\\ s (``dlkit.train.make_loader``, shuffled), and are
measured **side by side in one run**: after ``--warmup`` untimed rounds, each of
``--repeat`` rounds times one epoch of each side with ``time.perf_counter``, the order
alternating (trainer first, then hand-written first, ...) so that drift and other load on
the machine fall on both sides alike. A third, shorter measurement per round iterates the
loader alone: the part of an epoch that is neither the model nor the loop.

The Trainer runs as a learner would use it for this: ``Trainer(model, optimizer, loss_fn,
device="cpu", progress=False)`` with no callbacks, metrics, clipping or accumulation, and
``seed=None`` (the hand-written loop does not reseed either; both loaders' generators were
seeded once, the same). Each timed Trainer epoch is one ``fit(loader, epochs=1)`` call, so
``fit``'s own per-call set-up is counted in every epoch: an upper bound on what an epoch
costs inside ``fit(epochs=N)``. The hand-written loop is :func:`hand_written_epoch`.

Fairness is checked, not assumed: both sides train the same number of epochs on the same
batches, so at the end their weights must agree (bit for bit is expected on a CPU; the
stated tolerance is ``TOLERANCE``) and so must the last epoch's mean loss.

Two setups, chosen with ``--setups``: ``tiny`` (a 16→32→4 MLP on batches of 16, so compute
per step is tiny and the loop's fixed per-step cost shows) and ``realistic`` (an MNIST-sized
784→512→256→10 MLP on batches of 128). Results go to ``OUT/trainer_overhead.md`` and
``OUT/trainer_overhead.json`` (every sample and the machine). Run from the repository root::

    .venv/bin/python bench/trainer_overhead.py [--repeat 9] [--warmup 1] [--threads 1] [--out DIR]
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from machine_info import describe_machine, load_average, machine_info
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from tqdm import tqdm

from dlkit.nn import MLPConfig, build_mlp
from dlkit.train import Trainer, make_loader

BENCH = Path(__file__).resolve().parent
GOAL = 1.03  # the goal: at most 3 % extra time per epoch on a CPU
TOLERANCE = 1e-6  # largest |difference| in any final weight still called the same training
SEED = 0
LR, MOMENTUM = 0.01, 0.9


@dataclass(frozen=True)
class Setup:
    """One configuration to measure: the model, how much data, and the batch size."""

    name: str
    description: str
    mlp: MLPConfig
    samples: int
    batch_size: int


SETUPS = {
    s.name: s
    for s in (
        Setup(
            "tiny",
            "tiny steps: exposes the fixed per-step overhead",
            MLPConfig(d_in=16, hidden=(32,), d_out=4),
            samples=8192,
            batch_size=16,
        ),
        Setup(
            "realistic",
            "realistic: MNIST-sized MLP and batch",
            MLPConfig(d_in=784, hidden=(512, 256), d_out=10),
            samples=16384,
            batch_size=128,
        ),
    )
}

NOTES = """\
- **Hand-written**: the loop a PyTorch user writes (`hand_written_epoch` in the script):
  `model.train()`, then per batch `zero_grad(set_to_none=True)`, forward, cross-entropy,
  `backward()`, `step()`, and the epoch's mean loss accumulated with `loss.item()`.
- **Trainer**: `dlkit.train.Trainer(..., device="cpu", progress=False)`, no callbacks or
  metrics, `seed=None`; one `fit(loader, epochs=1)` per timed epoch, so `fit`'s per-call
  set-up is counted in every epoch (an upper bound for `fit(epochs=N)`).
- Same model (identical initial weights), data (synthetic, seeded, in memory), shuffled
  `make_loader` with the same seed, and optimizer (SGD, lr {lr}, momentum {momentum}) on
  both sides; {warmup} untimed warm-up round(s), then {repeat} timed rounds, each one epoch
  per side, the order alternating (Trainer first, hand-written first, ...);
  `gc.collect()` before each timed epoch; `torch.set_num_threads({threads})`.
- **Ratio** = median Trainer epoch / median hand-written epoch; **min–max** = the range of
  the per-round ratios (each round's two epochs ran back to back). **Extra per step** =
  (median Trainer - median hand-written) / steps per epoch. **Loader alone** = one pass over
  the same loader with no model: the share of each epoch that is data loading.
- **Goal**: at most 3 % extra time per epoch (ratio ≤ {goal:.2f}), judged on the ratio of medians.
- **Same weights**: after the last round both models' weights are compared
  (`torch.equal`; the stated tolerance is |Δ| ≤ {tolerance:g}), as are the last epoch's mean losses.
"""


# ---------------------------------------------------------------- the two sides
def hand_written_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    loader: DataLoader[Any],
) -> float:
    """One epoch of the plain PyTorch loop; returns the epoch's sample-weighted mean loss."""
    model.train()
    total, count = 0.0, 0
    for inputs, targets in loader:  # (B, d_in), (B,)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(inputs), targets)  # logits (B, d_out) -> scalar mean loss
        loss.backward()
        optimizer.step()
        total += loss.item() * len(targets)
        count += len(targets)
    return total / count


def loader_only_epoch(loader: DataLoader[Any]) -> None:
    """Read every batch and do nothing with it: the data-loading share of an epoch."""
    for _batch in loader:
        pass


def synthetic_data(config: MLPConfig, samples: int, seed: int) -> TensorDataset:
    """Gaussian inputs labelled by a random linear teacher (so the loss can fall)."""
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(samples, config.d_in, generator=generator)  # (N, d_in)
    teacher = torch.randn(config.d_in, config.d_out, generator=generator)  # (d_in, d_out)
    return TensorDataset(inputs, (inputs @ teacher).argmax(dim=1))  # targets (N,)


def timed(fn: Callable[[], object]) -> float:
    """Seconds that ``fn()`` takes, after a garbage collection outside the timing."""
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# ---------------------------------------------------------------- one setup
def compare_weights(a: nn.Module, b: nn.Module) -> dict[str, Any]:
    pairs = list(zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    diff = max(float((x - y).abs().max()) for x, y in pairs)
    return {"identical": all(torch.equal(x, y) for x, y in pairs), "max_abs_diff": diff}


def measure_setup(setup: Setup, repeat: int, warmup: int, progress: tqdm) -> dict[str, Any]:
    """Time ``repeat`` alternating rounds of both sides (after ``warmup``) on ``setup``."""
    data = synthetic_data(setup.mlp, setup.samples, SEED)
    torch.manual_seed(SEED)
    initial = build_mlp(setup.mlp)
    models = {"trainer": copy.deepcopy(initial), "hand": copy.deepcopy(initial)}
    optimizers = {
        side: torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
        for side, model in models.items()
    }
    loaders = {  # three loaders whose generators start from the same seed
        side: make_loader(data, setup.batch_size, shuffle=True, seed=SEED, device="cpu")
        for side in ("trainer", "hand", "loader")
    }
    loss_fn = nn.CrossEntropyLoss()
    trainer = Trainer(
        models["trainer"], optimizers["trainer"], loss_fn, device="cpu", progress=False
    )
    hand_losses: list[float] = []
    epochs: dict[str, Callable[[], object]] = {
        "trainer": lambda: trainer.fit(loaders["trainer"], epochs=1),
        "hand": lambda: hand_losses.append(
            hand_written_epoch(models["hand"], optimizers["hand"], loss_fn, loaders["hand"])
        ),
        "loader": lambda: loader_only_epoch(loaders["loader"]),
    }

    samples: dict[str, list[float]] = {"trainer": [], "hand": [], "loader": []}
    progress.set_postfix_str(setup.name)
    for r in range(warmup + repeat):
        order = ["trainer", "hand"] if r % 2 == 0 else ["hand", "trainer"]
        times = {side: timed(epochs[side]) for side in [*order, "loader"]}
        if r >= warmup:
            for side, seconds in times.items():
                samples[side].append(seconds)
        progress.update(1)

    steps = len(loaders["hand"])
    median = {side: statistics.median(values) for side, values in samples.items()}
    ratios = [t / h for t, h in zip(samples["trainer"], samples["hand"], strict=True)]
    ratio = median["trainer"] / median["hand"]
    trainer_loss = trainer.history["loss"][-1]
    return {
        "setup": setup.name,
        "description": setup.description,
        "mlp": asdict(setup.mlp),
        "parameters": sum(p.numel() for p in initial.parameters()),
        "samples": setup.samples,
        "batch_size": setup.batch_size,
        "steps_per_epoch": steps,
        "median_seconds": median,
        "min_seconds": {side: min(values) for side, values in samples.items()},
        "ratio": ratio,
        "round_ratios": ratios,
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "extra_us_per_step": (median["trainer"] - median["hand"]) / steps * 1e6,
        "goal_met": ratio <= GOAL,
        "weights": compare_weights(models["trainer"], models["hand"]),
        "last_epoch_loss": {"trainer": trainer_loss, "hand": hand_losses[-1]},
        "epochs_trained": warmup + repeat,
        "samples_seconds": samples,
    }


def fair(result: dict[str, Any]) -> bool:
    """Both sides did the same training: final weights within ``TOLERANCE``, same last loss."""
    losses = result["last_epoch_loss"]
    return (
        result["weights"]["max_abs_diff"] <= TOLERANCE
        and abs(losses["trainer"] - losses["hand"]) <= TOLERANCE
    )


# ---------------------------------------------------------------- report
def to_markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Trainer overhead on a CPU",
        "",
        "Written by `bench/trainer_overhead.py`; rerun it"
        " (`.venv/bin/python bench/trainer_overhead.py`) to refresh.",
        "",
        "| Setup | MLP (parameters) | Batch × steps/epoch | Hand-written (median s/epoch) "
        "| Trainer (median s/epoch) | Ratio | Per-round ratio min–max | Extra per step "
        "| Loader alone (median s/epoch) | ≤ 3 % extra? | Same weights |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|:-:|:-:|",
    ]
    for r in report["setups"]:
        mlp = r["mlp"]
        widths = "→".join(str(w) for w in (mlp["d_in"], *mlp["hidden"], mlp["d_out"]))
        med, w = r["median_seconds"], r["weights"]
        same = (
            "bit-identical"
            if w["identical"]
            else (f"max Δ {w['max_abs_diff']:.1e}" + ("" if r["fair"] else " ✗"))
        )
        lines.append(
            f"| **{r['setup']}** ({r['description']}) | {widths} ({r['parameters']:,}) "
            f"| {r['batch_size']} × {r['steps_per_epoch']} | {med['hand']:.4f} "
            f"| {med['trainer']:.4f} | **{r['ratio']:.3f}** "
            f"| {r['ratio_min']:.3f}–{r['ratio_max']:.3f} | {r['extra_us_per_step']:+.1f} µs "
            f"| {med['loader']:.4f} | {'yes' if r['goal_met'] else 'no'} | {same} |"
        )
    lines += [
        "",
        NOTES.format(
            lr=LR,
            momentum=MOMENTUM,
            warmup=report["warmup"],
            repeat=report["repeat"],
            threads=report["threads"],
            goal=GOAL,
            tolerance=TOLERANCE,
        ),
        describe_machine(report["machine"]),
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Time dlkit's Trainer against a hand-written PyTorch loop, side by side."
    )
    parser.add_argument(
        "--setups", nargs="+", choices=list(SETUPS), default=list(SETUPS), help="default: all"
    )
    parser.add_argument("--repeat", type=int, default=9, help="timed rounds (default 9)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds (default 1)")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    parser.add_argument(
        "--out", type=Path, default=BENCH / "results", help="default: bench/results"
    )
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.warmup < 0 or args.threads < 1:
        parser.error("--repeat and --threads must be at least 1, --warmup at least 0")

    torch.set_num_threads(args.threads)
    load_at_start = load_average()
    setups = [SETUPS[name] for name in args.setups]
    results = []
    with tqdm(total=len(setups) * (args.warmup + args.repeat), desc="rounds") as progress:
        for setup in setups:
            result = measure_setup(setup, args.repeat, args.warmup, progress)
            result["fair"] = fair(result)
            results.append(result)

    report = {
        "repeat": args.repeat,
        "warmup": args.warmup,
        "threads": torch.get_num_threads(),
        "goal_ratio": GOAL,
        "tolerance": TOLERANCE,
        "machine": machine_info(load_at_start),
        "setups": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "trainer_overhead.json").write_text(json.dumps(report, indent=2) + "\n")
    table = to_markdown(report)
    (args.out / "trainer_overhead.md").write_text(table, encoding="utf-8")
    print(table)
    unfair = [r["setup"] for r in results if not r["fair"]]
    if unfair:
        print(f"the two sides did not train alike in: {', '.join(unfair)} (see 'Same weights')")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

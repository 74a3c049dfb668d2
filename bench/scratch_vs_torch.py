"""dlkit.scratch.Tensor against PyTorch (CPU): the same MLP, data, weights and batches.

For each configuration (``chapter``: the 64-64-10 network of chapter 01, batch 64;
``wide``: 64-512-512-10, batch 256, where matrix products dominate) both engines train
``MLP(sizes)`` with mini-batch SGD on cross-entropy over the digits
training split, in float32, for ``--steps`` steps, starting from the *same* weights
(the scratch model's initial weights are copied into ``torch.nn.Linear`` layers) and
seeing the *same* batches (:func:`dlkit.scratch.mlp.minibatches`). The two are run
alternately ``--repeat`` times in one process and the median wall time of each is
reported with their ratio (goal: scratch ≤ 3× PyTorch). As a check that both did the same
computation, the largest difference between the two loss curves is reported.

Both engines run with ``--threads`` threads (default 1: these matrices are tiny, and on a
shared, loaded machine PyTorch's multi-threaded kernels were over 20× slower than one
thread, which would flatter the scratch engine). Linux only (it reads ``/proc``).

Memory, measured in a fresh subprocess per engine so the numbers do not mix:

- **peak RSS increase**: the process's peak resident memory during training (``VmHWM``,
  reset just before training with ``/proc/self/clear_refs``) minus its resident memory just
  before training (after imports, data, model and a 2-step warm-up). It counts everything
  the training loop touched: NumPy or torch buffers and allocator caches.
- **tracemalloc peak**: the peak of memory allocated through Python's tracked allocators
  during training. NumPy reports its array buffers there, so for the scratch engine this is
  its arrays' peak; torch's C++ allocator is invisible to tracemalloc, so for torch it
  counts only what passes through Python's allocators, never tensor storage, and is *not* a
  measure of torch's memory.

Run from the repository root::

    .venv/bin/python bench/scratch_vs_torch.py [--configs chapter wide] [--steps 300] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import torch
from machine_info import describe_machine, load_average, machine_info
from threadpoolctl import threadpool_limits

from dlkit.data import load_digits
from dlkit.scratch import MLP, Tensor, cross_entropy
from dlkit.scratch.mlp import minibatches, sgd_step

BENCH = Path(__file__).resolve().parent
DTYPE = np.float32


def setup(sizes: list[int], steps: int, batch_size: int, seed: int) -> dict[str, Any]:
    data = load_digits(seed=0)
    x, y = data.x_train.astype(DTYPE), data.y_train
    return {
        "x": x,
        "y": y,
        "batches": minibatches(len(x), batch_size, steps, seed),
        "model": MLP(sizes, seed=seed, dtype=DTYPE),
    }


def torch_copy(model: MLP) -> torch.nn.Sequential:
    """A ``torch.nn`` MLP holding the same weights as the scratch ``model``."""
    layers: list[torch.nn.Module] = []
    for layer in model.layers:
        out_features, in_features = layer.weight.shape
        linear = torch.nn.Linear(in_features, out_features)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(layer.weight.data.copy()))
            linear.bias.copy_(torch.from_numpy(layer.bias.data.copy()))
        layers += [linear, torch.nn.ReLU()]
    return torch.nn.Sequential(*layers[:-1])


def fresh_scratch(model: MLP, seed: int) -> MLP:
    """A scratch model with ``model``'s initial weights (same seed and sizes)."""
    sizes = [model.layers[0].weight.shape[1]] + [layer.weight.shape[0] for layer in model.layers]
    return MLP(sizes, seed=seed, dtype=DTYPE)


def train_scratch(
    model: MLP, x: np.ndarray, y: np.ndarray, batches: list, lr: float
) -> list[float]:
    losses = []
    params = model.parameters()
    for idx in batches:
        for p in params:
            p.zero_grad()
        loss = cross_entropy(model(Tensor(x[idx])), y[idx])
        loss.backward()
        sgd_step(params, lr)
        losses.append(loss.item())
    return losses


def train_torch(
    model: torch.nn.Module, x: np.ndarray, y: np.ndarray, batches: list, lr: float
) -> list[float]:
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    losses = []
    for idx in batches:
        index = torch.from_numpy(idx)
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(xt[index]), yt[index])
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def run_engine(
    engine: str, cfg: dict[str, Any], args: argparse.Namespace
) -> tuple[float, list[float]]:
    """Train one fresh model with ``engine``; return (seconds, losses)."""
    model = fresh_scratch(cfg["model"], args.seed)
    if engine == "torch":
        model = torch_copy(model)
        train = train_torch
    else:
        train = train_scratch
    start = time.perf_counter()
    losses = train(model, cfg["x"], cfg["y"], cfg["batches"], args.lr)
    return time.perf_counter() - start, losses


def _status_bytes(field: str) -> int:
    """``VmRSS`` (resident now) or ``VmHWM`` (peak resident) of this process, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024  # reported in kB
    raise RuntimeError(f"/proc/self/status has no {field}")


def _reset_peak_rss() -> None:
    """Make ``VmHWM`` restart from the current resident size (Linux ``clear_refs`` 5)."""
    Path("/proc/self/clear_refs").write_text("5")


def memory_child(engine: str, args: argparse.Namespace) -> dict[str, float]:
    """In this (fresh) process: peak RSS increase and tracemalloc peak of one training run."""
    cfg = setup(args.sizes, args.steps, args.batch_size, args.seed)
    run_engine(engine, {**cfg, "batches": cfg["batches"][:2]}, args)  # warm-up: lazy init
    _reset_peak_rss()  # the peak so far (imports, data loading) must not count
    before = _status_bytes("VmRSS")
    tracemalloc.start()
    run_engine(engine, cfg, args)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    peak = _status_bytes("VmHWM")
    return {
        "rss_peak_increase_mib": max(peak - before, 0) / 2**20,
        "tracemalloc_peak_mib": traced_peak / 2**20,
    }


def measure_memory(engine: str, args: argparse.Namespace) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--memory-child", engine, *_common_args(args)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _common_args(args: argparse.Namespace) -> list[str]:
    return [
        "--steps", str(args.steps), "--batch-size", str(args.batch_size), "--lr", str(args.lr),
        "--seed", str(args.seed), "--threads", str(args.threads), "--sizes", *map(str, args.sizes),
    ]  # fmt: skip


CONFIGS = {  # name: (layer sizes, batch size)
    "chapter": ([64, 64, 10], 64),  # the network of chapter 01
    "wide": ([64, 512, 512, 10], 256),  # matrix products dominate
}

NOTES = """\
- *Time*: wall time of the training loop alone (model and data built beforehand), runs
  alternating between the engines so that machine load hits both alike. *Ratio* = median
  scratch / median PyTorch (goal ≤ 3×).
- *Loss diff*: the largest difference between the two engines' loss curves: float32 rounding
  only, so both did the same computation.
- *Peak RSS increase*: a fresh process per engine and configuration; peak resident memory
  during training (VmHWM, reset just before) minus resident memory just before it (after a
  2-step warm-up). 0.0 means the loop needed no memory beyond what the warm-up had mapped.
- *tracemalloc peak*: allocations Python's tracemalloc sees during training. NumPy's array
  buffers are tracked, so for scratch it is the peak of its arrays (graph, activations,
  gradients); torch's tensor storage is not tracked, so for PyTorch it counts only what passes
  through Python's allocators and says nothing about tensor memory.
"""


def to_markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "# dlkit.scratch vs PyTorch (CPU): the same MLP training run",
        "",
        "Written by `bench/scratch_vs_torch.py`; rerun it (`.venv/bin/python bench/scratch_vs_torch.py`)"
        " to refresh.",
        "",
        f"ReLU MLPs, float32, SGD lr {report['lr']}, {report['steps']} steps on the digits training "
        f"split ({report['n_train']} examples); same initial weights and batches in both engines; "
        f"{report['repeat']} alternating runs each. Threads: {report['threads']} for PyTorch "
        "and for NumPy's BLAS (threadpoolctl).",
        "",
        "| Config | Engine | Time per run (median / min s) | ms per step | Ratio | Loss diff "
        "| Peak RSS increase (MiB) | tracemalloc peak (MiB) |",
        "|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    for c in report["configs"]:
        name = f"{c['name']}: {c['sizes']}, batch {c['batch_size']}"
        for engine, label in (("torch", f"PyTorch {m['torch']}"), ("scratch", "dlkit.scratch")):
            t, mem = c["time_s"][engine], c["memory"][engine]
            ratio = f"**{c['ratio']:.2f}×**" if engine == "scratch" else ""
            diff = f"{c['max_loss_difference']:.1e}" if engine == "scratch" else ""
            traced = f"{mem['tracemalloc_peak_mib']:.2f}" + (
                " (no tensors)" if engine == "torch" else ""
            )
            lines.append(
                f"| {name if engine == 'torch' else ''} | {label} | {t['median']:.3f} / {t['min']:.3f} "
                f"| {1000 * t['median'] / report['steps']:.2f} | {ratio} | {diff} "
                f"| {mem['rss_peak_increase_mib']:.1f} | {traced} |"
            )
    worst = max(c["ratio"] for c in report["configs"])
    lines += [
        "",
        f"Largest ratio: {worst:.2f}× (goal ≤ 3×: {'met' if worst <= 3 else 'missed'}).",
        "",
        NOTES,
        describe_machine(m, packages=("torch", "numpy")),
        "",
    ]
    return "\n".join(lines)


def measure_config(args: argparse.Namespace) -> dict[str, Any]:
    """Time both engines on one configuration (``args.sizes``, ``args.batch_size``)."""
    cfg = setup(args.sizes, args.steps, args.batch_size, args.seed)
    run_engine("scratch", {**cfg, "batches": cfg["batches"][:5]}, args)  # warm-up both
    run_engine("torch", {**cfg, "batches": cfg["batches"][:5]}, args)
    samples: dict[str, list[float]] = {"scratch": [], "torch": []}
    losses: dict[str, list[float]] = {}
    for i in range(args.repeat):
        for engine in ("scratch", "torch") if i % 2 == 0 else ("torch", "scratch"):
            seconds, losses[engine] = run_engine(engine, cfg, args)
            samples[engine].append(seconds)
    time_s = {e: {"median": statistics.median(v), "min": min(v)} for e, v in samples.items()}
    return {
        "sizes": args.sizes,
        "batch_size": args.batch_size,
        "time_s": time_s,
        "ratio": time_s["scratch"]["median"] / time_s["torch"]["median"],
        "max_loss_difference": float(
            np.max(np.abs(np.subtract(losses["scratch"], losses["torch"])))
        ),
        "final_loss": {e: v[-1] for e, v in losses.items()},
        "memory": {e: measure_memory(e, args) for e in ("scratch", "torch")},
        "samples_s": samples,
        "n_train": len(cfg["x"]),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    parser.add_argument("--sizes", type=int, nargs="+", help="one custom config instead")
    parser.add_argument("--batch-size", type=int, default=64, help="with --sizes")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--threads", type=int, default=1, help="threads for PyTorch and NumPy's BLAS (default 1)"
    )
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    parser.add_argument("--memory-child", choices=["scratch", "torch"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    with threadpool_limits(limits=args.threads):  # NumPy's BLAS
        run(args)


def run(args: argparse.Namespace) -> None:
    if args.memory_child:
        print(json.dumps(memory_child(args.memory_child, args)))
        return
    load_start = load_average()
    configs = (
        {"custom": (args.sizes, args.batch_size)}
        if args.sizes
        else {k: CONFIGS[k] for k in args.configs}
    )
    results = []
    for name, (sizes, batch_size) in configs.items():
        args.sizes, args.batch_size = sizes, batch_size
        results.append({"name": name, **measure_config(args)})
    report = {
        "steps": args.steps,
        "lr": args.lr,
        "seed": args.seed,
        "repeat": args.repeat,
        "threads": args.threads,
        "n_train": results[0]["n_train"],
        "numpy": np.__version__,
        "configs": results,
        "machine": machine_info(load_start, packages=("torch", "numpy")),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scratch_vs_torch.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "scratch_vs_torch.md").write_text(to_markdown(report))
    print(to_markdown(report))


if __name__ == "__main__":
    main()

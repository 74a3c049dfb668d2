"""Attention forward + backward against the sequence length T: dlkit.nn, NumPy, PyTorch.

Three implementations of :math:`\\operatorname{softmax}(QK^\\top/\\sqrt d)\\,V` and its
gradients, on the same float32 inputs ``(B, H, T, hd)`` (default B = 4, H = 4, hd = 32, no
mask) for T = 64 … 1024:

- **dlkit.nn**: ``dlkit.nn.attention.scaled_dot_product_attention`` (primitive tensor ops,
  autograd backward), materializing the ``(B, H, T, T)`` scores and weights;
- **numpy**: ``dlkit.scratch.attention.attention_forward`` / ``attention_backward`` (the
  hand-written backward of chapter 08), materializing them too;
- **torch**: ``torch.nn.functional.scaled_dot_product_attention``, which on the CPU picks a
  fused flash-attention kernel that never stores the ``T × T`` matrix (it keeps the
  per-row log-sum-exp and recomputes the weights in the backward).

They are measured **side by side in one run**: after ``--warmup`` untimed calls each, every
one of ``--repeat`` rounds times ``--steps`` consecutive forward + backward calls of each
implementation with ``time.perf_counter``, the order rotating from round to round so that
drift and other load fall on all alike; the table reports the median (and min) per call.
Memory, per implementation:

- **saved for backward**: the bytes kept between forward and backward (distinct storages
  of the tensors autograd saves, through ``torch.autograd.graph.saved_tensors_hooks``; for
  NumPy the arrays of the forward's cache). The same measure for all three, and the one
  that grows as :math:`T^2` when the weights are stored.
- **NumPy tracemalloc peak**: the peak of NumPy's allocations during one forward +
  backward (NumPy reports its buffers to ``tracemalloc``; torch's allocator is invisible
  to it, so there is no such column for torch).

Fairness is checked, not assumed: outputs and the three gradients of every implementation
agree with torch's to ``TOLERANCE`` (float32). The scaling exponent is the least-squares
slope of log(time) (and log(bytes)) against log(T) over the largest four lengths:
2 means :math:`O(T^2)`.

Results go to ``OUT/attention.md`` and ``OUT/attention.json`` (every sample and the
machine, with the load average). Run from the repository root::

    .venv/bin/python bench/attention.py [--lengths 64 128 256 512 1024] [--repeat 7] [--out DIR]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from machine_info import describe_machine, load_average, machine_info
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from dlkit.nn.attention import scaled_dot_product_attention
from dlkit.scratch.attention import attention_backward, attention_forward
from dlkit.train.memory import saved_tensor_bytes

BENCH = Path(__file__).resolve().parent
TOLERANCE = 1e-4  # relative to the largest entry, float32: different summation orders
IMPLEMENTATIONS = ("dlkit.nn", "numpy", "torch")

NOTES = """\
- One forward + backward of attention on float32 `(B, H, T, hd)` = ({B}, {H}, T, {hd}) inputs,
  no mask, CPU, {threads} thread{s} for torch and for NumPy's BLAS (threadpoolctl); median
  and min over {repeat} rounds of {steps} consecutive calls after {warmup} untimed ones,
  the order of the implementations rotating each round.
- **dlkit.nn**: `dlkit.nn.attention.scaled_dot_product_attention` + autograd.
  **numpy**: `dlkit.scratch.attention.attention_forward` + `attention_backward`.
  **torch**: `torch.nn.functional.scaled_dot_product_attention` + autograd (on the CPU a
  fused flash-attention kernel that does not store the T × T weights).
- *Saved*: bytes held between forward and backward (distinct storages autograd saves; for
  NumPy the forward cache's arrays). *NumPy peak*: tracemalloc peak of one forward +
  backward. One `(B, H, T, T)` float32 matrix is B·H·T²·4 bytes.
- Check: every output and gradient agrees with torch's to {tolerance:g} relative.
- Scaling: slope of log(time) or log(bytes) against log(T) over T ≥ {fit_from}
  (least squares); 2 = O(T²), 1 = O(T).
"""


def make_inputs(B: int, H: int, T: int, hd: int, seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    shape = (B, H, T, hd)
    return {name: torch.randn(shape, generator=gen) for name in ("q", "k", "v", "dout")}


def torch_runner(
    fn: Callable[..., torch.Tensor], inputs: dict[str, torch.Tensor]
) -> Callable[[], tuple[torch.Tensor, ...]]:
    q, k, v = (inputs[n].clone().requires_grad_(True) for n in ("q", "k", "v"))
    dout = inputs["dout"]

    def run() -> tuple[torch.Tensor, ...]:
        q.grad = k.grad = v.grad = None
        out = fn(q, k, v)
        out.backward(dout)
        return out.detach(), q.grad, k.grad, v.grad

    return run


def numpy_runner(inputs: dict[str, torch.Tensor]) -> Callable[[], tuple[np.ndarray, ...]]:
    q, k, v, dout = (inputs[n].numpy().copy() for n in ("q", "k", "v", "dout"))

    def run() -> tuple[np.ndarray, ...]:
        out, cache = attention_forward(q, k, v)
        dq, dk, dv = attention_backward(dout, cache)
        return out, dq, dk, dv

    return run


def saved_bytes_torch(fn: Callable[..., torch.Tensor], inputs: dict[str, torch.Tensor]) -> int:
    """Bytes of the distinct storages autograd saves for the backward of ``fn``."""
    q, k, v = (inputs[n].clone().requires_grad_(True) for n in ("q", "k", "v"))
    _, nbytes = saved_tensor_bytes(lambda: fn(q, k, v))
    return nbytes


def saved_bytes_numpy(inputs: dict[str, torch.Tensor]) -> tuple[int, int]:
    """(bytes of the forward cache's distinct arrays, tracemalloc peak of forward + backward)."""
    q, k, v, dout = (inputs[n].numpy().copy() for n in ("q", "k", "v", "dout"))
    _, cache = attention_forward(q, k, v)
    arrays = {id(a.base if a.base is not None else a): a.nbytes for a in cache[:4]}
    saved = sum(arrays.values())
    del cache
    gc.collect()
    tracemalloc.start()
    out, cache = attention_forward(q, k, v)
    grads = attention_backward(dout, cache)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del out, cache, grads
    return saved, peak


def max_relative_difference(ours: Sequence[Any], ref: Sequence[torch.Tensor]) -> float:
    worst = 0.0
    for a, e in zip(ours, ref, strict=True):
        a = torch.as_tensor(a)
        worst = max(worst, float((a - e).abs().max() / e.abs().max().clamp_min(1e-12)))
    return worst


def measure(T: int, args: argparse.Namespace) -> dict[str, Any]:
    inputs = make_inputs(args.batch, args.heads, T, args.head_dim, args.seed + T)
    runners: dict[str, Callable[[], Sequence[Any]]] = {
        "dlkit.nn": torch_runner(scaled_dot_product_attention, inputs),
        "numpy": numpy_runner(inputs),
        "torch": torch_runner(F.scaled_dot_product_attention, inputs),
    }
    reference = runners["torch"]()
    differences = {name: max_relative_difference(run(), reference) for name, run in runners.items()}
    if max(differences.values()) > TOLERANCE:
        raise AssertionError(f"T={T}: results differ from torch's: {differences}")
    for run in runners.values():
        for _ in range(args.warmup):
            run()
    samples: dict[str, list[float]] = {name: [] for name in IMPLEMENTATIONS}
    order = list(IMPLEMENTATIONS)
    for _ in range(args.repeat):
        for name in order:
            run = runners[name]
            gc.collect()
            start = time.perf_counter()
            for _ in range(args.steps):
                run()
            samples[name].append((time.perf_counter() - start) / args.steps)
        order = order[1:] + order[:1]  # rotate who goes first
    numpy_saved, numpy_peak = saved_bytes_numpy(inputs)
    saved = {
        "dlkit.nn": saved_bytes_torch(scaled_dot_product_attention, inputs),
        "numpy": numpy_saved,
        "torch": saved_bytes_torch(F.scaled_dot_product_attention, inputs),
    }
    stats = {name: {"median": statistics.median(v), "min": min(v)} for name, v in samples.items()}
    return {
        "T": T,
        **stats,
        "ratio_dlkit_vs_torch": stats["dlkit.nn"]["median"] / stats["torch"]["median"],
        "ratio_numpy_vs_torch": stats["numpy"]["median"] / stats["torch"]["median"],
        "saved_bytes": saved,
        "numpy_tracemalloc_peak_bytes": numpy_peak,
        "weights_matrix_bytes": args.batch * args.heads * T * T * 4,
        "max_relative_difference": differences,
        "samples": samples,
    }


def slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of log(y) against log(x)."""
    lx, ly = np.log(np.asarray(xs, float)), np.log(np.asarray(ys, float))
    return float(np.polyfit(lx, ly, 1)[0])


def scaling(results: list[dict[str, Any]]) -> dict[str, Any]:
    fit = results[-4:] if len(results) >= 4 else results
    Ts = [r["T"] for r in fit]
    if len(Ts) < 2:
        return {"fit_T": Ts, "time": {}, "saved_bytes": {}}
    return {
        "fit_T": Ts,
        "time": {n: slope(Ts, [r[n]["median"] for r in fit]) for n in IMPLEMENTATIONS},
        "saved_bytes": {n: slope(Ts, [r["saved_bytes"][n] for r in fit]) for n in IMPLEMENTATIONS},
        "numpy_peak": slope(Ts, [r["numpy_tracemalloc_peak_bytes"] for r in fit]),
    }


def to_markdown(report: dict[str, Any]) -> str:
    def ms(stat: dict[str, float]) -> str:
        return f"{1e3 * stat['median']:.2f} / {1e3 * stat['min']:.2f}"

    def mib(n: float) -> str:
        return f"{n / 2**20:.1f}"

    s = report["settings"]
    lines = [
        "# Attention forward + backward: dlkit.nn vs NumPy vs torch",
        "",
        "Written by `bench/attention.py`; rerun it (`.venv/bin/python bench/attention.py`) to"
        " refresh.",
        "",
        "| T | dlkit.nn (median / min ms) | numpy (ms) | torch (ms) | dlkit / torch "
        "| numpy / torch | saved dlkit / numpy / torch (MiB) | NumPy peak (MiB) "
        "| one T×T (MiB) |",
        "|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in report["results"]:
        sb = r["saved_bytes"]
        lines.append(
            f"| {r['T']} | {ms(r['dlkit.nn'])} | {ms(r['numpy'])} | {ms(r['torch'])} "
            f"| {r['ratio_dlkit_vs_torch']:.2f}× | {r['ratio_numpy_vs_torch']:.2f}× "
            f"| {mib(sb['dlkit.nn'])} / {mib(sb['numpy'])} / {mib(sb['torch'])} "
            f"| {mib(r['numpy_tracemalloc_peak_bytes'])} | {mib(r['weights_matrix_bytes'])} |"
        )
    sc = report["scaling"]
    if sc["time"]:
        t, b = sc["time"], sc["saved_bytes"]
        lines += [
            "",
            f"Scaling exponents over T = {', '.join(map(str, sc['fit_T']))} (2 = O(T²)): "
            f"time dlkit.nn **{t['dlkit.nn']:.2f}**, numpy **{t['numpy']:.2f}**, torch "
            f"**{t['torch']:.2f}**; saved bytes dlkit.nn {b['dlkit.nn']:.2f}, numpy "
            f"{b['numpy']:.2f}, torch {b['torch']:.2f}; NumPy peak {sc['numpy_peak']:.2f}.",
        ]
    lines += [
        "",
        NOTES.format(
            B=s["batch"],
            H=s["heads"],
            hd=s["head_dim"],
            threads=s["threads"],
            s="" if s["threads"] == 1 else "s",
            repeat=s["repeat"],
            steps=s["steps"],
            warmup=s["warmup"],
            tolerance=TOLERANCE,
            fit_from=sc["fit_T"][0] if sc["fit_T"] else "-",
        ),
        describe_machine(report["machine"], packages=("torch", "numpy")),
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Time attention forward + backward against T.")
    parser.add_argument("--lengths", nargs="+", type=int, default=[64, 128, 256, 512, 1024])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--head-dim", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=7, help="timed rounds (default 7)")
    parser.add_argument("--steps", type=int, default=3, help="calls per round (default 3)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls first (default 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch and BLAS threads (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", type=Path, default=BENCH / "results", help="default: bench/results"
    )
    args = parser.parse_args(argv)
    sizes = (args.repeat, args.steps, args.threads, args.batch, args.heads, args.head_dim)
    if min(sizes) < 1 or args.warmup < 0 or min(args.lengths) < 1:
        parser.error("sizes, --repeat, --steps and --threads must be >= 1, --warmup >= 0")
    torch.set_num_threads(args.threads)

    load_at_start = load_average()
    lengths = sorted(args.lengths)
    with threadpool_limits(limits=args.threads, user_api="blas"):
        results = [measure(T, args) for T in tqdm(lengths, desc="attention", unit="T")]
    report = {
        "settings": {
            "lengths": lengths,
            "batch": args.batch,
            "heads": args.heads,
            "head_dim": args.head_dim,
            "repeat": args.repeat,
            "steps": args.steps,
            "warmup": args.warmup,
            "threads": args.threads,
            "seed": args.seed,
        },
        "machine": machine_info(load_at_start, packages=("torch", "numpy")),
        "results": results,
        "scaling": scaling(results),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "attention.json").write_text(json.dumps(report, indent=2) + "\n")
    table = to_markdown(report)
    (args.out / "attention.md").write_text(table, encoding="utf-8")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

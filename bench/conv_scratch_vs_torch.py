"""From-scratch NumPy conv2d (im2col) against ``torch.nn.functional.conv2d``, forward + backward.

For LeNet-sized layers, one *step* is the forward pass and the backward pass for all three
gradients (input, weight, bias) given an upstream gradient:

- **scratch**: :func:`dlkit.scratch.conv2d_forward` then :func:`dlkit.scratch.conv2d_backward`
  (NumPy, float32; the backward recomputes im2col, as a layer without a cache would);
- **torch**: ``F.conv2d`` on tensors with ``requires_grad=True``, then ``y.backward(g)``
  (autograd, float32, CPU);

each with the default threads and again limited to one thread (torch's intra-op threads,
NumPy's BLAS threads through threadpoolctl).

Both are checked to give the same output and gradients first. The two run interleaved
(scratch, torch, scratch, ...) after warm-up, so a change in machine load hits both alike,
first with the default threads, then with one thread each; we report the median and min of ``--repeat`` runs and the ratio of medians
scratch / torch (goal: at most 5×). Results go to ``OUT/conv_scratch_vs_torch.md`` and
``.json``. Run from the repository root::

    .venv/bin/python bench/conv_scratch_vs_torch.py [--repeat 30] [--out bench/results]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from machine_info import describe_machine, load_average, machine_info
from threadpoolctl import ThreadpoolController, threadpool_info

from dlkit.scratch import conv2d_backward, conv2d_forward

BENCH = Path(__file__).resolve().parent
BLAS = ThreadpoolController()  # finds NumPy's BLAS once
PACKAGES = ("torch", "numpy")
GOAL = 5.0
# (name, input shape (N, C, H, W), out channels, kernel, padding)
LAYERS = [
    ("LeNet-5 conv1: (64,1,28,28) → 6 ch 5×5", (64, 1, 28, 28), 6, 5, 0),
    ("LeNet-5 conv2: (64,6,14,14) → 16 ch 5×5", (64, 6, 14, 14), 16, 5, 0),
    ("digits LeNet conv1: (64,1,8,8) → 16 ch 3×3 pad 1", (64, 1, 8, 8), 16, 3, 1),
    ("digits LeNet conv2: (64,16,4,4) → 32 ch 3×3 pad 1", (64, 16, 4, 4), 32, 3, 1),
]


def make_steps(
    shape: tuple[int, ...], out_ch: int, kernel: int, padding: int, seed: int = 0
) -> dict[str, Callable[[], Any]]:
    """The functions to time for one layer, after checking that they agree."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape).astype(np.float32)
    w = (rng.normal(size=(out_ch, shape[1], kernel, kernel)) / kernel).astype(np.float32)
    b = rng.normal(size=out_ch).astype(np.float32)
    g = rng.normal(size=conv2d_forward(x, w, b, padding=padding).shape).astype(np.float32)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    gt = torch.from_numpy(g)

    def scratch() -> tuple[np.ndarray, ...]:
        y = conv2d_forward(x, w, b, padding=padding)
        return (y, *conv2d_backward(g, x, w, padding=padding))

    def torch_step() -> tuple[torch.Tensor, ...]:
        for t in (xt, wt, bt):
            t.grad = None
        y = F.conv2d(xt, wt, bt, padding=padding)
        y.backward(gt)
        return y, xt.grad, wt.grad, bt.grad

    for ours, theirs in zip(scratch(), torch_step(), strict=True):
        np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=1e-3, atol=1e-3)
    return {"scratch": scratch, "torch": torch_step}


def measure(
    steps: dict[str, Callable[[], Any]], repeat: int, warmup: int = 3
) -> dict[str, list[float]]:
    for _ in range(warmup):
        for step in steps.values():
            step()
    samples: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeat):
        for name, step in steps.items():  # interleaved: load changes hit every variant
            start = time.perf_counter()
            step()
            samples[name].append(time.perf_counter() - start)
    return samples


def to_markdown(report: dict[str, Any]) -> str:
    rows = [
        "| Layer | scratch (median / min ms) | torch (median / min ms) | ratio scratch/torch "
        "| goal ≤ 5× | scratch, 1 thread (median ms) | torch, 1 thread (median ms) | ratio, 1 thread each |",
        "|---|--:|--:|--:|:-:|--:|--:|--:|",
    ]
    for layer in report["layers"]:
        s, t = layer["scratch"], layer["torch"]
        s1, t1 = layer["scratch_1_thread"], layer["torch_1_thread"]
        rows.append(
            f"| {layer['name']} | {s['median_ms']:.2f} / {s['min_ms']:.2f} | "
            f"{t['median_ms']:.2f} / {t['min_ms']:.2f} | {layer['ratio']:.2f}× | "
            f"{'met' if layer['ratio'] <= GOAL else 'missed'} | {s1['median_ms']:.2f} | "
            f"{t1['median_ms']:.2f} | {layer['ratio_1_thread']:.2f}× |"
        )
    return "\n".join([
        "# From-scratch conv2d vs torch, forward + backward (CPU, float32)",
        "",
        "Written by `bench/conv_scratch_vs_torch.py`; rerun it to refresh.",
        "",
        *rows,
        "",
        "- One step: forward, then the input, weight and bias gradients for a given upstream "
        "gradient. Scratch: `dlkit.scratch.conv2d_forward` + `conv2d_backward` (im2col with a "
        "matrix product; col2im as a strided loop over kernel offsets). Torch: `F.conv2d` + "
        "autograd `backward`.",
        f"- Defaults: torch with {report['torch_threads']} intra-op threads, NumPy's BLAS "
        f"({report['blas']}) with its own. The *1 thread* columns limit both to one thread "
        "(`torch.set_num_threads(1)`, threadpoolctl's limit), set once for a second interleaved phase: on a busy "
        "machine, threads that wait for a core can make the multi-threaded times erratic.",
        f"- Median and min of {report['repeat']} interleaved runs per phase after 3 warm-up runs; "
        "ratio = median scratch / median torch.",
        "",
        describe_machine(report["machine"], PACKAGES),
        "",
    ])  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    args = parser.parse_args(argv)
    load_at_start = load_average()
    layers = []
    for name, shape, out_ch, kernel, padding in LAYERS:
        steps = make_steps(shape, out_ch, kernel, padding)
        samples = measure(steps, args.repeat)
        # Then both limited to one thread, set once for the whole phase (switching the
        # thread pools on every call would cost more than some of these layers).
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with BLAS.limit(limits=1, user_api="blas"):
                single = measure(steps, args.repeat)
        finally:
            torch.set_num_threads(threads)
        samples |= {f"{variant}_1_thread": times for variant, times in single.items()}
        stats = {
            variant: {
                "median_ms": 1e3 * statistics.median(times),
                "min_ms": 1e3 * min(times),
                "samples_ms": [1e3 * t for t in times],
            }
            for variant, times in samples.items()
        }
        scratch_ms = stats["scratch"]["median_ms"]
        layers.append({
            "name": name, "input": list(shape), "out_channels": out_ch, "kernel": kernel,
            "padding": padding, **stats,
            "ratio": scratch_ms / stats["torch"]["median_ms"],
            "ratio_1_thread": stats["scratch_1_thread"]["median_ms"]
            / stats["torch_1_thread"]["median_ms"],
        })  # fmt: skip
        print(f"{name}: scratch {scratch_ms:.2f} ms, torch {stats['torch']['median_ms']:.2f} ms, "
              f"ratio {layers[-1]['ratio']:.2f}×")  # fmt: skip
    report = {
        "goal_ratio": GOAL,
        "repeat": args.repeat,
        "torch_threads": torch.get_num_threads(),
        "blas": ", ".join(
            f"{i['internal_api']} {i['num_threads']} threads"
            for i in threadpool_info()
            if i["user_api"] == "blas"
        ),
        "layers": layers,
        "machine": machine_info(load_at_start, PACKAGES),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "conv_scratch_vs_torch.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "conv_scratch_vs_torch.md").write_text(to_markdown(report), encoding="utf-8")
    return 0 if all(layer["ratio"] <= GOAL for layer in layers) else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Mixed precision on a GPU: bf16 autocast against fp32 (and TF32) training steps.

For a small GPT (``dlkit.nn.GPT``) and a small CNN (``dlkit.nn``'s ResNet), one training
step (forward and loss under ``dlkit.train.autocast``, backward, AdamW step) is timed in
three precisions **side by side in one run**: ``fp32`` (TF32 off: true float32 matmuls),
``tf32`` (float32 storage, TF32 tensor-core matmuls, ``dlkit.train.enable_tf32``) and
``bf16`` (autocast to bfloat16). Each round times ``--steps`` steps of every precision in
a rotating order, after ``--warmup`` untimed steps, synchronizing CUDA around the clock;
the report gives medians over ``--repeat`` rounds and the speed-up ``fp32 / bf16``.

Without a CUDA device nothing is measured: the results file says so and names the
machine, rather than reporting a CPU number as a GPU one. ``--device cpu`` runs the same
code on a CPU (fp32 and bf16 only), to check the script, not to report speed-ups.
Run from the repository root::

    .venv/bin/python bench/gpu_precision.py [--repeat 5] [--steps 20] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from machine_info import describe_machine, load_average, machine_info
from torch import Tensor, nn

from dlkit.nn import GPT, GPTConfig, ResNet, ResNetConfig
from dlkit.train import autocast, enable_tf32, get_device, seed_everything

BENCH = Path(__file__).resolve().parent
PRECISIONS_CUDA = ("fp32", "tf32", "bf16")
PRECISIONS_CPU = ("fp32", "bf16")


@dataclass(frozen=True)
class Workload:
    """A model and a batch maker: ``make_batch(device) -> (inputs, targets)``."""

    name: str
    description: str
    build: Callable[[], nn.Module]
    make_batch: Callable[[torch.device], tuple[Tensor, Tensor]]
    loss: Callable[[Tensor, Tensor], Tensor]


def gpt_workload(batch: int, seq_len: int, d_model: int = 512, n_layers: int = 6) -> Workload:
    config = GPTConfig.gpt2(
        vocab_size=4096, d_model=d_model, n_layers=n_layers, n_heads=8, max_len=seq_len
    )  # GPT-2 design, fused kernels (kernels="torch")

    def make_batch(device: torch.device) -> tuple[Tensor, Tensor]:
        g = torch.Generator().manual_seed(0)
        tokens = torch.randint(0, config.vocab_size, (batch, seq_len + 1), generator=g)
        return tokens[:, :-1].to(device), tokens[:, 1:].to(device)  # (B, T), (B, T)

    def loss(logits: Tensor, targets: Tensor) -> Tensor:  # (B, T, V), (B, T)
        return nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())

    return Workload(
        "gpt",
        f"GPT, {n_layers} layers, d_model {d_model}, batch {batch} × {seq_len} tokens",
        lambda: GPT(config),
        make_batch,
        loss,
    )


def cnn_workload(batch: int, image_size: int, widths: tuple[int, ...] = (64, 128, 256)) -> Workload:
    config = ResNetConfig(in_channels=3, num_classes=10, widths=widths, blocks=(2,) * len(widths))

    def make_batch(device: torch.device) -> tuple[Tensor, Tensor]:
        g = torch.Generator().manual_seed(0)
        images = torch.randn(batch, 3, image_size, image_size, generator=g)  # (B, 3, H, W)
        return images.to(device), torch.randint(0, 10, (batch,), generator=g).to(device)

    return Workload(
        "cnn",
        f"ResNet, widths {'-'.join(map(str, widths))}, batch {batch} × 3×{image_size}×{image_size}",
        lambda: ResNet(config),
        make_batch,
        nn.functional.cross_entropy,
    )


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    workload: Workload,
    batch: tuple[Tensor, Tensor],
    device: torch.device,
    precision: str,
    steps: int,
) -> float:
    """Seconds per training step, averaged over ``steps`` consecutive steps."""
    inputs, targets = batch
    enable_tf32(precision == "tf32")
    amp = "bf16" if precision == "bf16" else "fp32"
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, amp):
            loss = workload.loss(model(inputs), targets)
        loss.backward()
        optimizer.step()
    sync(device)
    return (time.perf_counter() - start) / steps


def measure(
    workload: Workload, device: torch.device, precisions: Sequence[str], args: argparse.Namespace
) -> dict[str, Any]:
    seed_everything(0)
    model = workload.build().to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batch = workload.make_batch(device)
    for precision in precisions:  # warm-up: kernels, allocator, optimizer state
        time_steps(model, optimizer, workload, batch, device, precision, args.warmup)
    samples: dict[str, list[float]] = {p: [] for p in precisions}
    for r in range(args.repeat):
        order = list(precisions[r % len(precisions) :]) + list(precisions[: r % len(precisions)])
        for precision in order:
            samples[precision].append(
                time_steps(model, optimizer, workload, batch, device, precision, args.steps)
            )
    enable_tf32(False)
    median = {p: statistics.median(v) for p, v in samples.items()}
    return {
        "workload": workload.name,
        "description": workload.description,
        "parameters": sum(p.numel() for p in model.parameters()),
        "median_seconds_per_step": median,
        "speedup_bf16_over_fp32": median["fp32"] / median["bf16"],
        "speedup_bf16_over_tf32": median["tf32"] / median["bf16"] if "tf32" in median else None,
        "samples": samples,
    }


def to_markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Mixed precision on a GPU",
        "",
        "Written by `bench/gpu_precision.py`; rerun it on a machine with a CUDA GPU to refresh.",
        "",
    ]
    if not report["results"]:
        lines += [f"**Not measured**: {report['reason']}", ""]
    else:
        lines += [
            f"Device: **{report['device_name']}**.",
            "",
            "| Workload | Parameters | fp32 ms/step | TF32 ms/step | bf16 ms/step "
            "| bf16 speed-up over fp32 | over TF32 |",
            "|---|--:|--:|--:|--:|--:|--:|",
        ]
        for r in report["results"]:
            m = r["median_seconds_per_step"]
            tf32 = f"{m['tf32'] * 1e3:.2f}" if "tf32" in m else "n/a"
            over_tf32 = r["speedup_bf16_over_tf32"]
            lines.append(
                f"| {r['description']} | {r['parameters']:,} | {m['fp32'] * 1e3:.2f} | {tf32} "
                f"| {m['bf16'] * 1e3:.2f} | **{r['speedup_bf16_over_fp32']:.2f}×** "
                f"| {'n/a' if over_tf32 is None else f'{over_tf32:.2f}×'} |"
            )
        lines += [
            "",
            f"Medians over {report['repeat']} rounds of {report['steps']} steps per precision "
            f"(after {report['warmup']} warm-up steps), the order rotating each round. A step is "
            "forward and loss under `dlkit.train.autocast`, backward and an AdamW step.",
            "",
        ]
    lines += [describe_machine(report["machine"]), ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="bf16 autocast vs fp32 training-step time.")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu, to check")
    parser.add_argument("--repeat", type=int, default=5, help="timed rounds (default 5)")
    parser.add_argument("--steps", type=int, default=20, help="steps per timing (default 20)")
    parser.add_argument("--warmup", type=int, default=5, help="warm-up steps (default 5)")
    parser.add_argument(
        "--small", action="store_true", help="tiny models and batches, to check the script"
    )
    parser.add_argument(
        "--out", type=Path, default=BENCH / "results", help="default: bench/results"
    )
    args = parser.parse_args(argv)
    load_at_start = load_average()
    report: dict[str, Any] = {
        "repeat": args.repeat,
        "steps": args.steps,
        "warmup": args.warmup,
        "results": [],
    }
    if args.device == "cuda" and not torch.cuda.is_available():
        report["reason"] = "no CUDA device on this machine; a CPU number is not a GPU speed-up."
    else:
        device = get_device(args.device)
        report["device_name"] = (
            torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
        )
        precisions = PRECISIONS_CUDA if device.type == "cuda" else PRECISIONS_CPU
        if args.small:
            workloads = [gpt_workload(2, 16, d_model=64, n_layers=2), cnn_workload(4, 8, (8, 16))]
        else:
            workloads = [gpt_workload(32, 512), cnn_workload(128, 64)]
        for workload in workloads:
            report["results"].append(measure(workload, device, precisions, args))
    report["machine"] = machine_info(load_at_start)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_precision.json").write_text(json.dumps(report, indent=2) + "\n")
    table = to_markdown(report)
    (args.out / "gpu_precision.md").write_text(table, encoding="utf-8")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

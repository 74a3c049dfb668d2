"""Choosing the device to compute on: CUDA, then Apple MPS, then CPU.

The device is always an argument resolved when it is asked for, never a global
computed at import time, so the same notebook runs on a laptop CPU and on a GPU.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

DeviceLike = str | torch.device


def mps_available() -> bool:
    """True when Apple's Metal backend is built into this torch and usable now."""
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def get_device(spec: DeviceLike = "auto") -> torch.device:
    """Resolve ``spec`` to a usable ``torch.device``.

    ``"auto"`` picks CUDA if a GPU is visible, else MPS, else CPU. An explicit
    ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"mps"`` is honoured, and raises
    ``RuntimeError`` naming what is missing when this machine cannot provide it.
    """
    if isinstance(spec, str) and spec.strip().lower() == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(spec)
    except (RuntimeError, TypeError) as err:
        raise ValueError(
            f"device {spec!r} is not a device name; expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
        ) from err
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"device {spec!r} was asked for, but CUDA is not available here "
                f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'}); "
                "use 'auto' or 'cpu'"
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise RuntimeError(
                f"device {spec!r} was asked for, but only {count} CUDA device(s) exist "
                f"(valid indices 0..{count - 1})"
            )
    elif device.type == "mps" and not mps_available():
        raise RuntimeError(f"device {spec!r} was asked for, but Apple MPS is not available here")
    elif device.type not in {"cpu", "cuda", "mps"}:
        raise ValueError(
            f"device type {device.type!r} is not supported; use 'cpu', 'cuda' or 'mps'"
        )
    return device


def describe_device(device: DeviceLike) -> str:
    """A one-line human description, e.g. ``cuda:0 (NVIDIA H100, 80 GiB)`` or ``cpu (8 threads)``."""
    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        return f"cuda:{index} ({props.name}, {props.total_memory / 2**30:.0f} GiB)"
    if device.type == "mps":
        return "mps (Apple GPU)"
    return f"cpu ({torch.get_num_threads()} threads)"


@contextmanager
def one_thread() -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(1)``, then restore the previous count.

    For small models on a CPU, threads mostly wait on each other, and on a busy machine
    two threads can be far slower than one (a tiny training loop here ran 150x slower).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)

"""What machine a benchmark ran on: CPU, platform, package versions and the load average.

Shared by the benchmark scripts in this folder (run as ``python bench/NAME.py``, which puts
``bench/`` on ``sys.path``). Timings mean little without the machine beside them, and the
load average says whether other work was competing for the CPUs while they were taken.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any


def cpu_model() -> str:
    """``platform.processor()``, or on Linux (where it is often empty) the model in /proc/cpuinfo."""
    if platform.processor():
        return platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []
    return next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), "")


def load_average() -> float | None:
    """The 1-minute load average (None where the OS has none): other work inflates the times."""
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def machine_info(
    load_at_start: float | None, packages: Sequence[str] = ("torch",)
) -> dict[str, Any]:
    """The machine, the versions of ``packages``, and the load average at start and now."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "processor": cpu_model(),
        "machine": platform.machine(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        **{name: package_version(name) for name in packages},
        "load_average": {"start": load_at_start, "end": load_average()},
    }


def describe_machine(m: dict[str, Any], packages: Sequence[str] = ("torch",)) -> str:
    """One Markdown line naming the machine of :func:`machine_info` and its load."""
    versions = ", ".join(f"{name} {m[name]}" for name in packages)
    return (
        f"Machine: {m['cpu_count']} CPUs ({m['cpus_usable']} usable), {m['processor'] or '?'} "
        f"({m['machine']}), {m['platform']}; Python {m['python']}, {versions}; "
        f"measured {m['date']}; 1-minute load average {m['load_average']['start']} at the "
        f"start, {m['load_average']['end']} at the end."
    )

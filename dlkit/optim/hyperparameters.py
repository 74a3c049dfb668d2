"""Checks on optimizer hyper-parameters, shared by every optimizer in :mod:`dlkit.optim`.

Each check raises a ``ValueError`` that names the argument, the value it got and the range
it expects, before any state is created: a negative learning rate or a ``beta`` of 1 would
otherwise train silently in the wrong direction or divide by zero. The ranges are PyTorch's,
with one deliberate difference: ``eps`` must be strictly positive here (``torch.optim``
accepts 0), because ``eps`` is what keeps the adaptive methods from dividing by zero.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "check_betas",
    "check_fraction",
    "check_hyperparameters",
    "check_lr",
    "check_non_negative",
    "check_positive",
]


def _as_float(name: str, value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number, got {value!r}") from None


def check_lr(lr: float) -> None:
    """The learning rate :math:`\\eta` must be a number :math:`\\ge 0`."""
    if not _as_float("lr", lr) >= 0.0:  # `not >=` also rejects NaN
        raise ValueError(f"Invalid learning rate: lr={lr}; expected lr >= 0")


def check_non_negative(name: str, value: float) -> None:
    """``value`` (momentum, weight_decay, lr_decay, ...) must be :math:`\\ge 0`."""
    if not _as_float(name, value) >= 0.0:
        raise ValueError(f"Invalid {name} value: {name}={value}; expected {name} >= 0")


def check_positive(name: str, value: float) -> None:
    """``value`` (eps) must be :math:`> 0`."""
    if not _as_float(name, value) > 0.0:
        raise ValueError(f"Invalid {name} value: {name}={value}; expected {name} > 0")


def check_fraction(name: str, value: float) -> None:
    """``value`` (an averaging coefficient) must lie in :math:`[0, 1)`."""
    if not 0.0 <= _as_float(name, value) < 1.0:
        raise ValueError(f"Invalid {name} value: {name}={value}; expected 0 <= {name} < 1")


def check_betas(betas: Sequence[float]) -> tuple[float, float]:
    """Adam's :math:`(\\beta_1, \\beta_2)`: two numbers, each in :math:`[0, 1)`."""
    if len(betas) != 2:
        raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
    for index, beta in enumerate(betas):
        if not 0.0 <= _as_float(f"betas[{index}]", beta) < 1.0:
            raise ValueError(
                f"Invalid beta parameter at index {index}: betas[{index}]={beta}; "
                "expected 0 <= beta < 1"
            )
    return float(betas[0]), float(betas[1])


NON_NEGATIVE = ("momentum", "weight_decay", "lr_decay", "initial_accumulator_value")


def check_hyperparameters(options: Mapping[str, Any]) -> None:
    """Check every known option in ``options`` (an optimizer's defaults, or a parameter group
    merged with them), so that per-group settings are checked as strictly as the defaults."""
    if "lr" in options:
        check_lr(options["lr"])
    for name in NON_NEGATIVE:
        if name in options:
            check_non_negative(name, options[name])
    if "eps" in options:
        check_positive("eps", options["eps"])
    if "alpha" in options:
        check_fraction("alpha", options["alpha"])
    if "betas" in options:
        check_betas(options["betas"])
    if "dampening" in options and not 0.0 <= options["dampening"] <= 1.0:
        raise ValueError(
            f"Invalid dampening value: {options['dampening']}; expected 0 <= dampening <= 1"
        )
    if options.get("nesterov") and (options["momentum"] <= 0 or options["dampening"] != 0):
        raise ValueError(
            "Nesterov momentum requires a momentum and zero dampening, "
            f"got momentum={options['momentum']}, dampening={options['dampening']}"
        )

"""Argument checks and reductions shared by the loss functions, with errors that name what was expected."""

from __future__ import annotations

from torch import Tensor

__all__ = ["REDUCTIONS", "check_float", "check_reduction", "check_same_shape", "reduce"]

REDUCTIONS = ("mean", "sum", "none")


def check_float(x: object, fn: str, name: str) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{fn}: {name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(
            f"{fn}: {name} must be a floating-point tensor, got dtype {x.dtype} "
            "(convert with .float() or .double())"
        )


def check_same_shape(input: Tensor, target: Tensor, fn: str) -> None:
    check_float(input, fn, "input")
    check_float(target, fn, "target")
    if input.shape != target.shape:
        raise ValueError(
            f"{fn}: target has shape {tuple(target.shape)} but input has shape "
            f"{tuple(input.shape)}; expected the same shape (one target per prediction)"
        )


def check_reduction(reduction: str, fn: str, allowed: tuple[str, ...] = REDUCTIONS) -> None:
    if reduction not in allowed:
        raise ValueError(
            f"{fn}: reduction must be one of {', '.join(map(repr, allowed))}, got {reduction!r}"
        )


def reduce(loss: Tensor, reduction: str, fn: str) -> Tensor:
    check_reduction(reduction, fn)
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss

"""``forbid_calls``: reject a "from scratch" answer that just calls the library.

A hidden test runs the learner's function with the library version switched off::

    with forbid_calls("torch.nn.functional.relu", "torch.relu"):
        out = my_relu(x)

Inside the block each named attribute is replaced by a function that raises
:class:`~dlkit.grading.checks.CheckFailed`; on leaving it (normally or by an
exception) the originals are put back. If the learner's code catches that error and
carries on, the check still fails when the block ends.

Only look-ups through the replaced attribute are caught: ``F.relu(x)`` and
``torch.nn.functional.relu(x)`` are, but a name bound before the block
(``from torch.nn.functional import relu``) and aliases at other paths (``torch.relu``;
``torch.Tensor.relu`` for ``x.relu()``) are not, so list every path a shortcut could take.
Pair it with :func:`~dlkit.grading.shortcuts.assert_no_shortcuts`, which reads the
answer's code and catches a shortcut bound under another name.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from dlkit.grading.checks import CheckFailed

_ABSENT = object()  # the attribute was not in the owner's own __dict__ (inherited or lazy)


def _message(target: str) -> str:
    return f"your answer called {target}; write it from primitive operations instead"


def _resolve(target: str, who: str = "forbid_calls") -> tuple[object, str]:
    """Split ``"numpy.linalg.inv"`` into (the ``numpy.linalg`` module, ``"inv"``).

    The longest prefix that imports is the module; the rest are attributes, so
    ``"torch.Tensor.relu"`` gives (``torch.Tensor``, ``"relu"``).
    """
    parts = target.split(".")
    if len(parts) < 2 or not all(parts):
        raise ValueError(f"{who} needs a dotted path like 'numpy.linalg.inv', got {target!r}")
    owner: object = None
    for cut in range(len(parts) - 1, 0, -1):
        try:
            owner = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        break
    else:
        raise ValueError(f"{who}: no module in {target!r} can be imported")
    try:
        for attribute in parts[cut:-1]:
            owner = getattr(owner, attribute)
        getattr(owner, parts[-1])
    except AttributeError as exc:
        raise ValueError(f"{who}: {target!r} does not exist ({exc})") from exc
    return owner, parts[-1]


def _forbidden(target: str, original: object, calls: list[str]) -> Callable[..., object]:
    def forbidden(*args: object, **kwargs: object) -> object:
        calls.append(target)
        raise CheckFailed(_message(target))

    try:  # keep the original's name and docstring for anyone who inspects it
        functools.update_wrapper(forbidden, original)  # type: ignore[arg-type]
    except (AttributeError, TypeError):
        pass
    return forbidden


@contextmanager
def forbid_calls(*targets: str) -> Iterator[None]:
    """Make calls to the dotted paths ``targets`` fail while the block runs.

    Args:
        targets: dotted paths such as ``"torch.nn.functional.relu"`` or
            ``"numpy.linalg.inv"``; the longest importable prefix is imported with
            :mod:`importlib` and the rest is looked up as attributes.

    Raises:
        CheckFailed: "your answer called numpy.linalg.inv; write it from primitive
            operations instead", from the call itself, or when the block ends if the
            learner's code caught that error.
        ValueError: if a target cannot be resolved (a mistake in the test, not the answer).
    """
    if not targets:
        raise ValueError("forbid_calls needs at least one dotted path")
    calls: list[str] = []
    patched: list[tuple[object, str, object]] = []  # (owner, attribute, what to restore)
    try:
        for target in targets:
            owner, attribute = _resolve(target)
            saved = getattr(owner, "__dict__", {}).get(attribute, _ABSENT)
            replacement = _forbidden(target, getattr(owner, attribute), calls)
            try:
                setattr(owner, attribute, replacement)
            except (AttributeError, TypeError) as exc:
                raise ValueError(f"forbid_calls cannot replace {target!r} ({exc})") from exc
            patched.append((owner, attribute, saved))
        yield
    finally:
        for owner, attribute, saved in reversed(patched):
            if saved is _ABSENT:
                delattr(owner, attribute)
            else:
                setattr(owner, attribute, saved)
    if calls:  # the body finished normally, so the learner's code swallowed the error
        raise CheckFailed(_message(calls[0]) + " (the error it raised was caught)")

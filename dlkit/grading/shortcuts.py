"""``assert_no_shortcuts``: reject a "from scratch" answer that reaches the library by name.

:func:`~dlkit.grading.forbid.forbid_calls` replaces module attributes while the
learner's function runs, so it misses a name bound before the block::

    from torch.nn.functional import cross_entropy as _ce  # _ce still is the real one

This check reads the answer instead of running it. Starting from ``fn`` it visits

* every code object: the function's own, and nested functions, lambdas and
  comprehensions (found in ``co_consts``);
* the module globals those code objects name (``co_names``), the values in the
  function's closure cells (``fn.__closure__``) and its default arguments;
* recursively, the learner's own helpers: functions (and methods of classes) defined
  in the same globals as ``fn``, i.e. in the same notebook.

A value counts as a banned target if it *is* one, or wraps one: a bound method
(``__func__``), a :func:`functools.partial` (``.func``) or a :func:`functools.wraps`
wrapper (``__wrapped__``). Attribute look-ups such as ``F.cross_entropy(...)`` are not
resolved here (``co_names`` cannot tell whose attribute a name is); use
:func:`forbid_calls` for those, or list the attribute in ``names``.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable, Iterable, Iterator

from dlkit.grading.checks import CheckFailed
from dlkit.grading.forbid import _resolve


def _label(target: object) -> str:
    """A readable dotted name for a target given as an object."""
    module = getattr(target, "__module__", None)
    qualname = getattr(target, "__qualname__", None) or getattr(target, "__name__", None)
    if module and qualname:
        return f"{module}.{qualname}"
    return repr(target)


def _banned(targets: tuple[object, ...]) -> dict[int, str]:
    """Map ``id`` of each banned object to the label a learner will read."""
    banned: dict[int, str] = {}
    for target in targets:
        if isinstance(target, str):
            owner, attribute = _resolve(target, who="assert_no_shortcuts")
            banned.setdefault(id(getattr(owner, attribute)), target)
        else:
            banned.setdefault(id(target), _label(target))
    return banned


def _unwrapped(value: object) -> Iterator[object]:
    """``value`` and what it wraps: bound method → function, partial → func, __wrapped__."""
    seen: set[int] = set()
    while value is not None and id(value) not in seen:
        seen.add(id(value))
        yield value
        if isinstance(value, functools.partial):
            value = value.func
        elif isinstance(value, types.MethodType):
            value = value.__func__
        else:  # functools.wraps stores __wrapped__ in the instance dict; never call __getattr__
            try:
                own = object.__getattribute__(value, "__dict__")
            except AttributeError:
                own = None
            value = own.get("__wrapped__") if isinstance(own, dict) else None


def _code_objects(code: types.CodeType) -> Iterator[types.CodeType]:
    """``code`` and every code object nested in it (inner functions, lambdas, comprehensions)."""
    todo = [code]
    while todo:
        current = todo.pop()
        yield current
        todo.extend(c for c in current.co_consts if isinstance(c, types.CodeType))


def _helpers(value: object, namespace: dict[str, object]) -> list[Callable[..., object]]:
    """Functions defined in ``namespace`` that ``value`` is or holds (a class's methods)."""
    found = []
    for candidate in _unwrapped(value):
        if isinstance(candidate, types.FunctionType) and candidate.__globals__ is namespace:
            found.append(candidate)
    if isinstance(value, type) and value.__module__ == namespace.get("__name__"):
        for attribute in vars(value).values():
            if isinstance(attribute, staticmethod | classmethod):
                attribute = attribute.__func__
            if isinstance(attribute, types.FunctionType) and attribute.__globals__ is namespace:
                found.append(attribute)
    return found


def _bindings(function: types.FunctionType) -> Iterator[tuple[str, object]]:
    """(name, value) for what ``function`` names: globals, closure cells, defaults."""
    namespace = function.__globals__
    for code in _code_objects(function.__code__):
        for name in code.co_names:
            if name in namespace:
                yield name, namespace[name]
    for name, cell in zip(function.__code__.co_freevars, function.__closure__ or (), strict=True):
        try:
            yield name, cell.cell_contents
        except ValueError:  # an empty cell: the variable is not assigned yet
            continue
    defaults = function.__defaults__ or ()
    params = function.__code__.co_varnames[: function.__code__.co_argcount]
    yield from zip(params[len(params) - len(defaults) :], defaults, strict=True)
    yield from (function.__kwdefaults__ or {}).items()


def assert_no_shortcuts(
    fn: Callable[..., object],
    *targets: object,
    name: str | None = None,
    names: Iterable[str] = (),
    hint: str = "write it yourself",
) -> None:
    """Fail if ``fn`` (or a helper it uses) reaches a banned function under any name.

    Args:
        fn: the learner's function (a bound method or ``functools.partial`` is unwrapped).
        targets: what is banned: dotted paths such as ``"torch.nn.functional.cross_entropy"``
            (resolved like :func:`forbid_calls`: the longest importable prefix, then
            attributes) or the objects themselves.
        name: what to call ``fn`` in the message (default: its ``__name__``).
        names: identifiers banned however they are reached, even as an attribute
            (``"ops"`` catches ``torch.ops.aten.convolution(...)``); a name bound to one
            of the learner's own functions in ``fn``'s globals does not count.
        hint: the end of the message, telling the learner what to do instead.

    Raises:
        CheckFailed: "your mul_backward uses dlkit.scratch.ops.unbroadcast (as
            'unbroadcast'); write it yourself".
        ValueError: if no targets or names are given, or a dotted path cannot be
            resolved (a mistake in the test, not the answer).
    """
    banned_names = frozenset(names)
    if not targets and not banned_names:
        raise ValueError("assert_no_shortcuts needs at least one target or name")
    banned = _banned(targets)
    shown = name or getattr(fn, "__name__", "answer")
    if shown == "<lambda>":
        shown = "answer"
    start = [c for c in _unwrapped(fn) if isinstance(c, types.FunctionType)]
    if not start:
        raise ValueError(f"assert_no_shortcuts needs a Python function, got {fn!r}")
    # The innermost function is the learner's code; outer layers are decorators such as
    # @torch.no_grad() (and torch.optim's profiling hook around Optimizer.step).
    todo: list[types.FunctionType] = start[-1:]
    seen: set[int] = set()
    while todo:
        function = todo.pop()
        if id(function) in seen:
            continue
        seen.add(id(function))
        namespace = function.__globals__
        for alias, value in _bindings(function):
            for candidate in _unwrapped(value):
                if id(candidate) in banned:
                    raise CheckFailed(
                        f"your {shown} uses {banned[id(candidate)]} (as {alias!r}); {hint}"
                    )
            todo.extend(_helpers(value, namespace))  # type: ignore[arg-type]
        for code in _code_objects(function.__code__):
            for identifier in code.co_names:
                if identifier in banned_names and not _helpers(
                    namespace.get(identifier), namespace
                ):
                    raise CheckFailed(
                        f"your {shown} uses the name {identifier!r}, which reaches a "
                        f"library shortcut; {hint}"
                    )

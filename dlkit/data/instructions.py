r"""An instruction-following task built offline from the corpus: write a function call.

Supervised fine-tuning (SFT) teaches a pretrained language model to answer a prompt in
a fixed format instead of continuing it like the text it was pretrained on. The task
here is small enough for the shipped docstring GPT (:mod:`dlkit.train.pretrained`, 1 M
parameters, 128 positions) to learn in a couple of CPU minutes, and it needs both what
pretraining gave (the sub-word pieces of real identifiers, copying from the context) and
what only fine-tuning can give (the format)::

    Instruction: Write a call to getproxies with the arguments path, timeout.
    Response: getproxies(path, timeout)

Each example names a function and :math:`k \in \{0, \dots, K\}` arguments
(``max_args`` :math:`= K`); the answer is the call
:math:`f(a_1, \dots, a_k)` written in Python. Before fine-tuning, the model continues the
prompt with docstring prose, so its exact match is 0.

**The items.** The function names are the last component of the qualified names of the
corpus's docstrings (``Message.get_payload`` gives ``get_payload``), kept when they are
public ``snake_case`` identifiers (:data:`IDENTIFIER`). They are split once, by hash, so
that no test function is ever seen in training:

.. math:: \text{name} \in \text{test} \iff \operatorname{sha256}(\text{name}) \bmod 5 = 0,

about 80% train and 20% test (2,133 and 521 names). The argument names come from
:data:`ARGUMENT_NAMES` (common Python parameter names) in both splits; the test set
measures calls of *unseen functions*.

**Determinism.** :func:`make_instruction_examples` draws with ``random.Random(seed)``
only: the same ``(n, seed, split)`` gives the same examples on every machine. The
function names are taken in a seeded order without replacement, so each name appears
once before any repeats.

**Format.** :attr:`Example.prompt` ends with ``"Response:"``; :attr:`Example.response`
starts with the space that separates it. Byte-level BPE keeps a word's leading space
with the word (``" get"`` is one token), so ``encode(prompt) + encode(response)`` is the
tokenization the model would see for the whole text, and a generation that starts after
``"Response:"`` produces that same space-led token first.
"""

from __future__ import annotations

import functools
import hashlib
import random
import re
from dataclasses import dataclass

from dlkit.data.corpus import load_documents

__all__ = [
    "ARGUMENT_NAMES",
    "IDENTIFIER",
    "INSTRUCTION_SPLITS",
    "Example",
    "call_instruction",
    "function_names",
    "make_instruction_examples",
]

INSTRUCTION_SPLITS = ("train", "test")
IDENTIFIER = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")  # public snake_case: get_payload
TEST_BUCKETS = 5  # sha256(name) % 5 == 0: test

ARGUMENT_NAMES = (
    "path", "name", "value", "key", "data", "size", "timeout", "encoding", "mode",
    "default", "text", "obj", "item", "index", "start", "stop", "step", "count", "file",
    "flags", "level", "message", "prefix", "suffix", "length", "offset", "callback",
    "buffer", "host", "port", "line", "args", "kwargs", "source", "target", "limit",
)  # fmt: skip


@dataclass(frozen=True)
class Example:
    """One instruction and its answer.

    ``prompt`` is the whole text the model reads (``"Instruction: ...\\nResponse:"``);
    ``response`` the answer it should write, with its leading space (``" f(a, b)"``).
    ``function`` and ``arguments`` are the parts the answer was built from.
    """

    prompt: str
    response: str
    function: str = ""
    arguments: tuple[str, ...] = ()


def _test_bucket(name: str) -> bool:
    return int(hashlib.sha256(name.encode("utf-8")).hexdigest(), 16) % TEST_BUCKETS == 0


@functools.cache
def _split_names() -> dict[str, tuple[str, ...]]:
    names = {d.name.split(".")[-1] for d in load_documents() if d.source == "docstring"}
    names = {n for n in names if IDENTIFIER.match(n)}
    test = sorted(n for n in names if _test_bucket(n))
    train = sorted(names - set(test))
    return {"train": tuple(train), "test": tuple(test)}


def function_names(split: str) -> list[str]:
    """The sorted function names of ``split`` (``"train"`` or ``"test"``); the two are disjoint."""
    if split not in INSTRUCTION_SPLITS:
        raise ValueError(f"unknown split {split!r}: expected one of {INSTRUCTION_SPLITS}")
    return list(_split_names()[split])


def call_instruction(function: str, arguments: tuple[str, ...] | list[str]) -> Example:
    """The :class:`Example` asking for the call ``function(*arguments)``.

    >>> call_instruction("dirname", ["path"]).response
    ' dirname(path)'
    """
    if not isinstance(function, str) or not function.isidentifier():
        raise ValueError(f"call_instruction: function must be an identifier, got {function!r}")
    arguments = tuple(arguments)
    bad = [a for a in arguments if not isinstance(a, str) or not a.isidentifier()]
    if bad:
        raise ValueError(f"call_instruction: arguments must be identifiers, got {bad}")
    if not arguments:
        what = "no arguments"
    elif len(arguments) == 1:
        what = f"the argument {arguments[0]}"
    else:
        what = f"the arguments {', '.join(arguments)}"
    prompt = f"Instruction: Write a call to {function} with {what}.\nResponse:"
    response = f" {function}({', '.join(arguments)})"
    return Example(prompt=prompt, response=response, function=function, arguments=arguments)


def make_instruction_examples(
    n: int, *, seed: int, split: str = "train", max_args: int = 3
) -> list[Example]:
    """``n`` call-writing examples of ``split``, drawn with ``random.Random(seed)``.

    Functions are taken from :func:`function_names` in a seeded order, each once before
    any repeats; each example has a uniform number of arguments in ``0 .. max_args``,
    distinct names from :data:`ARGUMENT_NAMES` in random order.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"make_instruction_examples: n must be an int >= 0, got {n!r}")
    if isinstance(max_args, bool) or not isinstance(max_args, int):
        raise TypeError(f"make_instruction_examples: max_args must be an int, got {max_args!r}")
    if not 0 <= max_args <= len(ARGUMENT_NAMES):
        raise ValueError(
            f"make_instruction_examples: max_args must lie in [0, {len(ARGUMENT_NAMES)}], "
            f"got {max_args}"
        )
    names = function_names(split)
    rng = random.Random(seed)
    examples: list[Example] = []
    order: list[str] = []
    for _ in range(n):
        if not order:
            order = rng.sample(names, len(names))  # a fresh permutation of the names
        function = order.pop()
        arguments = rng.sample(ARGUMENT_NAMES, rng.randint(0, max_args))
        examples.append(call_instruction(function, arguments))
    return examples

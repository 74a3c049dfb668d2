"""The call-writing instruction task: deterministic, disjoint splits, answers that parse."""

from __future__ import annotations

import ast
import hashlib
from collections import Counter

import pytest

from dlkit.data.corpus import load_documents, load_tokenizer
from dlkit.data.instructions import (
    ARGUMENT_NAMES,
    IDENTIFIER,
    Example,
    call_instruction,
    function_names,
    make_instruction_examples,
)


def test_same_seed_same_examples_other_seed_differs() -> None:
    a = make_instruction_examples(50, seed=3)
    assert a == make_instruction_examples(50, seed=3)
    assert a != make_instruction_examples(50, seed=4)
    assert all(isinstance(e, Example) for e in a)


def test_train_and_test_functions_are_disjoint_and_split_by_hash() -> None:
    train, test = set(function_names("train")), set(function_names("test"))
    assert not train & test
    assert len(train) > 1500 and len(test) > 300  # about 80% / 20% of the names
    assert all(int(hashlib.sha256(n.encode()).hexdigest(), 16) % 5 == 0 for n in test)
    assert not any(int(hashlib.sha256(n.encode()).hexdigest(), 16) % 5 == 0 for n in train)
    examples = make_instruction_examples(300, seed=0, split="test")
    assert {e.function for e in examples} <= test


def test_names_are_real_corpus_identifiers() -> None:
    last = {d.name.split(".")[-1] for d in load_documents() if d.source == "docstring"}
    names = function_names("train") + function_names("test")
    assert set(names) <= last
    assert all(IDENTIFIER.match(n) for n in names)
    assert "_private" not in names and all(not n.startswith("_") for n in names)


def test_responses_are_the_python_call_of_the_instruction() -> None:
    for e in make_instruction_examples(200, seed=1):
        assert e.prompt.startswith("Instruction: Write a call to ")
        assert e.prompt.endswith("\nResponse:") and e.response.startswith(" ")
        call = ast.parse(e.response.strip(), mode="eval").body
        assert isinstance(call, ast.Call) and isinstance(call.func, ast.Name)
        assert call.func.id == e.function
        assert tuple(a.id for a in call.args) == e.arguments  # type: ignore[attr-defined]
        assert f" {e.function} with " in e.prompt
        assert all(a in e.prompt for a in e.arguments)


def test_argument_counts_cover_zero_to_max_and_are_distinct() -> None:
    examples = make_instruction_examples(400, seed=0, max_args=3)
    counts = Counter(len(e.arguments) for e in examples)
    assert set(counts) == {0, 1, 2, 3} and min(counts.values()) > 60
    for e in examples:
        assert len(set(e.arguments)) == len(e.arguments)
        assert set(e.arguments) <= set(ARGUMENT_NAMES)
    assert all(not e.arguments for e in make_instruction_examples(20, seed=0, max_args=0))


def test_each_function_once_before_any_repeats() -> None:
    names = function_names("test")
    examples = make_instruction_examples(len(names) + 5, seed=0, split="test")
    first = [e.function for e in examples[: len(names)]]
    assert sorted(first) == names


def test_call_instruction_wording() -> None:
    assert call_instruction("f", []).prompt == (
        "Instruction: Write a call to f with no arguments.\nResponse:"
    )
    assert call_instruction("f", []).response == " f()"
    assert "with the argument x." in call_instruction("f", ["x"]).prompt
    e = call_instruction("dirname", ["path", "mode"])
    assert "with the arguments path, mode." in e.prompt
    assert e.response == " dirname(path, mode)"


def test_examples_fit_the_shipped_context_with_room() -> None:
    tok = load_tokenizer()
    examples = make_instruction_examples(300, seed=0) + make_instruction_examples(
        300, seed=0, split="test"
    )
    lengths = [len(tok.encode(e.prompt + e.response)) for e in examples]
    assert max(lengths) + 1 <= 96  # + <|endoftext|>, well inside max_len 128
    # the prompt and response tokenize apart exactly as together (the space opens the answer)
    for e in examples[:100]:
        assert tok.encode(e.prompt) + tok.encode(e.response) == tok.encode(e.prompt + e.response)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n": -1, "seed": 0}, ValueError, "n must be"),
        ({"n": 2, "seed": 0, "split": "val"}, ValueError, "unknown split"),
        ({"n": 2, "seed": 0, "max_args": 99}, ValueError, "max_args"),
        ({"n": 2, "seed": 0, "max_args": 1.5}, TypeError, "max_args"),
    ],
)
def test_bad_arguments_raise(kwargs, error, match) -> None:
    n = kwargs.pop("n")
    with pytest.raises(error, match=match):
        make_instruction_examples(n, **kwargs)


def test_call_instruction_rejects_non_identifiers() -> None:
    with pytest.raises(ValueError, match="identifier"):
        call_instruction("not a name", ["x"])
    with pytest.raises(ValueError, match="identifiers"):
        call_instruction("f", ["x y"])

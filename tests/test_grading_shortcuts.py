"""Tests for dlkit.grading.assert_no_shortcuts: a shortcut is caught under any name it is bound to."""

from __future__ import annotations

import functools
import json
from json import dumps as _dumps  # the shortcut under an alias, as a learner would import it

import pytest

from dlkit.grading import CheckFailed, assert_no_shortcuts


def failure(fn, *targets, **kwargs) -> str:
    with pytest.raises(CheckFailed) as info:
        assert_no_shortcuts(fn, *targets, **kwargs)
    return str(info.value)


def clean(x):
    return "[" + ", ".join(str(v) for v in x) + "]"


def aliased(x):
    return _dumps(x)


def _helper(x):
    return _dumps(x)


def via_helper(x):
    return _helper(x)


def via_nested_function(x):
    def inner(v):
        return _dumps(v)

    return inner(x)


def via_lambda(x):
    return (lambda v: _dumps(v))(x)


def via_default(x, encode=_dumps):
    return encode(x)


def make_closure():
    encode = json.dumps

    def via_closure(x):
        return encode(x)

    return via_closure


_partial = functools.partial(json.dumps, indent=None)


def via_partial(x):
    return _partial(x)


class _Encoder:
    def encode(self, x):
        return json.dumps(x)

    @staticmethod
    def static(x):
        return _dumps(x)


_bound = json.JSONEncoder().encode


def via_bound_method(x):
    return _bound(x)


def via_class_helper(x):
    return _Encoder.static(x)


def via_attribute(x):
    return json.dumps(x)


def test_clean_function_passes():
    assert_no_shortcuts(clean, "json.dumps", json.loads)
    assert clean([1, 2]) == json.dumps([1, 2])  # the clean answer really is an answer


def test_alias_import_is_caught_and_message_names_target_and_alias():
    message = failure(aliased, "json.dumps")
    assert message == "your aliased uses json.dumps (as '_dumps'); write it yourself"


def test_object_target_name_and_hint_appear_in_the_message():
    message = failure(aliased, json.dumps, name="encode", hint="build the string yourself")
    assert message == "your encode uses json.dumps (as '_dumps'); build the string yourself"


@pytest.mark.parametrize(
    ("fn", "alias"),
    [
        (via_helper, "_dumps"),
        (via_nested_function, "_dumps"),
        (via_lambda, "_dumps"),
        (via_default, "encode"),
        (make_closure(), "encode"),
        (via_class_helper, "_dumps"),
    ],
)
def test_every_route_to_the_shortcut_is_caught(fn, alias):
    assert f"(as {alias!r})" in failure(fn, "json.dumps")


def test_partial_and_bound_method_wrapping_a_banned_function_are_caught():
    assert "(as '_partial')" in failure(via_partial, "json.dumps")
    assert "json.encoder.JSONEncoder.encode (as '_bound')" in failure(
        via_bound_method, json.JSONEncoder.encode
    )


def test_the_learners_function_may_itself_be_a_partial_or_bound_method():
    assert "(as '_dumps')" in failure(functools.partial(aliased, 1), "json.dumps")
    assert "the name 'dumps'" in failure(_Encoder().encode, "json.loads", names=["dumps"])


def test_attribute_access_is_left_to_forbid_calls_unless_the_name_is_banned():
    assert_no_shortcuts(via_attribute, "json.dumps")  # co_names cannot say whose attribute
    message = failure(via_attribute, names=["dumps"], hint="no json")
    assert (
        message
        == "your via_attribute uses the name 'dumps', which reaches a library shortcut; no json"
    )


def test_a_banned_name_bound_to_the_learners_own_function_does_not_count():
    assert_no_shortcuts(via_helper, names=["_helper"])
    assert "'json'" in failure(via_attribute, names=["json"])


def test_other_banned_objects_do_not_trigger_on_a_clean_function():
    assert_no_shortcuts(via_helper, "json.loads", "json.JSONDecoder.decode")


@pytest.mark.parametrize("target", ["json.no_such_function", "no_such_module.f", "dumps", "json."])
def test_unresolvable_dotted_path_is_a_value_error(target):
    with pytest.raises(ValueError, match="assert_no_shortcuts"):
        assert_no_shortcuts(clean, target)


def test_no_targets_or_a_non_function_is_a_value_error():
    with pytest.raises(ValueError, match="at least one"):
        assert_no_shortcuts(clean)
    with pytest.raises(ValueError, match="Python function"):
        assert_no_shortcuts(len, "json.dumps")


def test_mutually_recursive_helpers_terminate_and_are_searched():
    def ping(n):
        return pong(n - 1) if n else 0

    def pong(n):
        return ping(n) if n else _dumps(n)

    assert_no_shortcuts(ping, "json.loads")
    assert "(as '_dumps')" in failure(ping, "json.dumps")


def test_a_lambda_answer_is_called_your_answer():
    assert failure(lambda x: _dumps(x), "json.dumps").startswith("your answer uses json.dumps")


def test_a_decorated_answer_is_read_through_its_decorators() -> None:
    # Decorators from another module (here torch's) have globals of their own: the check
    # must read the learner's innermost function, not the decorator's wrapper.
    torch = pytest.importorskip("torch")

    @torch.no_grad()
    def answer(x):
        return _dumps(x)

    with pytest.raises(CheckFailed, match=r"uses json\.dumps \(as '_dumps'\)"):
        assert_no_shortcuts(answer, "json.dumps")
    assert_no_shortcuts(torch.no_grad()(clean), "json.dumps")  # a decorated clean answer

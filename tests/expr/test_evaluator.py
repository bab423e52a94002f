"""Runtime expressions: jq with variables, deep templates, no environment, bounded run time."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsloom.expr.evaluator import Evaluator, ExpressionError, ExpressionTimeoutError, is_expression
from opsloom.expr.problem import type_matches


@pytest.fixture
async def evaluator() -> AsyncIterator[Evaluator]:
    ev = Evaluator(timeout=1.0)
    yield ev
    await ev.close()


async def test_evaluate__wrapped_and_bare_expressions(evaluator: Evaluator) -> None:
    assert await evaluator.evaluate("${ .a + 1 }", {"a": 1}) == 2
    assert await evaluator.evaluate(".a + 1", {"a": 1}) == 2
    assert await evaluator.evaluate("${ .missing }", {}) is None
    assert await evaluator.evaluate("${ empty }", {}) is None


async def test_evaluate__variables_are_passed_by_name(evaluator: Evaluator) -> None:
    names = {"input": {"id": 7}, "context": {"n": 1}, "color": "red"}
    text = "${ { id: $input.id, n: $context.n, color: $color, none: $unknown } }"
    assert await evaluator.evaluate(text, None, names) == {
        "id": 7,
        "n": 1,
        "color": "red",
        "none": None,
    }
    # A variable the expression binds itself wins over a passed one.
    assert await evaluator.evaluate("${ 5 as $color | $color }", None, names) == 5


async def test_evaluate__the_process_environment_is_not_visible(
    evaluator: Evaluator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSLOOM_TEST_SECRET", "hunter2")
    assert os.environ["OPSLOOM_TEST_SECRET"] == "hunter2"
    assert await evaluator.evaluate("${ $ENV }", None) == {}
    assert await evaluator.evaluate("${ env }", None) == {}
    assert await evaluator.evaluate("${ $ENV.OPSLOOM_TEST_SECRET }", None) is None
    assert await evaluator.evaluate("${ env.PATH }", None) is None
    # Also in the helper process that evaluates unbounded expressions.
    assert await evaluator.evaluate("${ [range(1)] | env }", None) == {}


async def test_compile__is_cached(evaluator: Evaluator) -> None:
    first = evaluator.compile("${ .x }")
    assert evaluator.compile("${ .x }") is first
    small = Evaluator(cache_size=2)
    a = small.compile(".a")
    small.compile(".b")
    small.compile(".c")
    assert small.compile(".a") is not a  # evicted, least recently used


async def test_evaluate__common_expressions_take_microseconds(evaluator: Evaluator) -> None:
    text = "${ .colors + [$input.color] }"
    names = {"input": {"color": "red"}}
    await evaluator.evaluate(text, {"colors": []}, names)
    started = time.perf_counter()
    for _ in range(2000):
        await evaluator.evaluate(text, {"colors": ["blue"]}, names)
    per_call = (time.perf_counter() - started) / 2000
    assert per_call < 200e-6, f"{per_call * 1e6:.1f} µs per evaluation"


async def test_evaluate__invalid_expression_is_an_expression_error(evaluator: Evaluator) -> None:
    with pytest.raises(ExpressionError) as caught:
        await evaluator.evaluate("${ .a | | }", {})
    assert type_matches("expression", caught.value.type)
    with pytest.raises(ExpressionError):
        await evaluator.evaluate("${ .a.b }", {"a": 1})


async def test_render__evaluates_templates_deeply(evaluator: Evaluator) -> None:
    template = {
        "name": "${ .user }",
        "fixed": "plain text",
        "list": ["${ .n * 2 }", 3, {"deep": "${ .n }"}],
    }
    assert await evaluator.render(template, {"user": "ada", "n": 2}) == {
        "name": "ada",
        "fixed": "plain text",
        "list": [4, 3, {"deep": 2}],
    }
    assert is_expression("  ${ . }  ") and not is_expression("$ {.}")


async def test_runaway_expression__times_out_and_other_work_goes_on(
    evaluator: Evaluator,
) -> None:
    ticks = 0

    async def other_runs() -> None:
        nonlocal ticks
        while True:
            await evaluator.evaluate("${ .n + 1 }", {"n": ticks})
            ticks += 1
            await asyncio.sleep(0.01)

    background = asyncio.create_task(other_runs())
    started = time.monotonic()
    try:
        with pytest.raises(ExpressionTimeoutError) as caught:
            await evaluator.evaluate("${ [range(1e12)] }", None)
    finally:
        background.cancel()
    elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 4.0
    assert caught.value.status == 408 and type_matches("timeout", caught.value.type)
    assert "expression took longer than 1 s" in (caught.value.detail or "")
    assert ticks > 20, "the event loop was blocked while the expression ran"
    # The helper was replaced: the next unbounded expression works.
    assert await evaluator.evaluate("${ [range(3)] }", None) == [0, 1, 2]


@settings(max_examples=50, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=5),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
        max_leaves=10,
    )
)
def test_evaluate__identity_round_trips_any_json(value: object) -> None:
    evaluator = Evaluator()
    assert asyncio.run(evaluator.evaluate("${ . }", value)) == value

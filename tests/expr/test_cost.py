"""Every expression has a deadline: only provably cheap ones run in the worker's process."""

from __future__ import annotations

import time

import pytest

from opsloom.expr.cost import provably_cheap
from opsloom.expr.evaluator import Evaluator, ExpressionTimeoutError


@pytest.mark.parametrize(
    "body",
    [
        ".a.b",
        "{id: .id, names: [.items[] | .name]}",
        '.status == "firing" and (.labels.severity // "none") != "info"',
        'if .n > 3 then "big" else "small" end',
        "[.a, .b, .c] | length",
        "$input.service | ascii_downcase",
        "map(select(.ok)) | length",
        '"a, b; c * d" | length',
    ],
)
def test_cheap__common_expressions_stay_in_process(body: str) -> None:
    assert provably_cheap(body)


@pytest.mark.parametrize(
    "body",
    [
        "reduce .[] as $x (0; . + $x)",
        "[foreach .[] as $x (0; . + 1)]",
        "[.[] as $a | .[] as $b | 1] | length",
        "[.[] + .[]] | length",
        "{a: .[], b: .[]}",
        "[(0,1) + (0,1) + (0,1)]",
        '"x" * 1000000000',
        '"\\(.[] + .[])"',
        '[.[] | test("a+")]',
        "[range(10)]",
        "label $out | 1",
        "def f: f; f",
        "[.. | numbers]",
    ],
)
def test_cheap__generators_products_and_unknown_builtins_are_not(body: str) -> None:
    assert not provably_cheap(body)


async def test_deadline__a_product_of_generators_is_stopped_in_time() -> None:
    evaluator = Evaluator(timeout=0.5)
    big = list(range(400))
    text = "${ [.[] as $a | .[] as $b | .[] | 1] | length }"  # 64 million outputs
    started = time.monotonic()
    try:
        with pytest.raises(ExpressionTimeoutError):
            await evaluator.evaluate(text, big)
    finally:
        await evaluator.close()
    assert time.monotonic() - started < 5.0

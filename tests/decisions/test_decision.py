"""Decision tables: unary tests, hit policies, validation with positions, jq isolation."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsloom.decisions.evaluation import evaluate
from opsloom.decisions.loader import load_table, table_from_data
from opsloom.errors import OpsloomError
from opsloom.model.decision import (
    Decision,
    DecisionError,
    DecisionTable,
    HitPolicy,
    InvalidDecisionTableError,
)
from opsloom.model.unary import UnaryTestSyntaxError, from_cell, parse


def table(
    policy: str,
    rules: list[tuple[list[Any], list[Any]]],
    *,
    inputs: tuple[str, ...] = ("a",),
    outputs: list[dict[str, Any]] | None = None,
    aggregation: str | None = None,
) -> DecisionTable:
    """A table over inputs ``.a``, ``.b`` … from (when, then) pairs; rule ids r1, r2 …"""
    data: dict[str, Any] = {
        "name": "t",
        "version": "1",
        "hitPolicy": policy,
        "inputs": [{"name": name, "expression": f".{name}"} for name in inputs],
        "outputs": outputs or [{"name": "out"}],
        "rules": [
            {"id": f"r{index + 1}", "when": when, "then": then}
            for index, (when, then) in enumerate(rules)
        ],
    }
    if aggregation is not None:
        data["aggregation"] = aggregation
    return table_from_data(data)


def problems_of(text: str) -> list[str]:
    with pytest.raises(InvalidDecisionTableError) as caught:
        load_table(text, "t.yaml")
    assert caught.value.code == "invalid_decision_table"
    return [str(problem) for problem in caught.value.problems]


# --- unary tests ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "value", "expected"),
    [
        ("-", {"any": "thing"}, True),
        ("-", None, True),
        ('"production"', "production", True),
        ('"production"', "staging", False),
        ("production", "production", True),
        ("eu-west-1.prod/a", "eu-west-1.prod/a", True),
        (42, 42.0, True),
        (42, "42", False),
        (1, True, False),
        (True, True, True),
        ("true", 1, False),
        ("null", None, True),
        ("null", 0, False),
        ("< 5", 4.9, True),
        ("< 5", 5, False),
        ("<= 5", 5, True),
        (">= 0.8", 0.8, True),
        ("> 0.8", 0.8, False),
        ("< 5", "4", False),
        ('< "m"', "apple", True),
        ('>= "m"', "apple", False),
        ("= 3", 3, True),
        ("!= 3", 3, False),
        ("!= 3", "3", True),
        ("[1..5]", 1, True),
        ("[1..5]", 5, True),
        ("(1..5]", 1, False),
        ("]1..5]", 1, False),
        ("[1..5)", 5, False),
        ("[1..5[", 5, False),
        ("[1..5[", 4.99, True),
        ("[-5..-1]", -3, True),
        ("[1.5..2.5]", 2, True),
        ('["a".."c"]', "b", True),
        ('["a".."c"]', "d", False),
        ('"a", "b"', "b", True),
        ('"a", "b"', "c", False),
        ("< 0, > 10", 11, True),
        ("< 0, > 10", 5, False),
        ('not("x")', "y", True),
        ('not("x")', "x", False),
        ('not("x", [1..3])', 2, False),
        ('not("x", [1..3])', None, True),
        ("not(< 5)", 7, True),
        (" [ 1 .. 5 ] ", 3, True),
    ],
)
def test_unary__grammar(cell: Any, value: Any, expected: bool) -> None:
    assert from_cell(cell).matches(value) is expected


@pytest.mark.parametrize(
    ("text", "offset", "fragment"),
    [
        ("", 0, "empty"),
        ("< ", 2, "expected a value"),
        ("[1..5", 5, "closing the range"),
        ("[1 5]", 3, "'..'"),
        ("[5..1]", 0, "empty"),
        ("(3..3]", 0, "empty"),
        ('[1.."z"]', 1, "numbers or strings"),
        ("< true", 2, "compares with a number or a string"),
        ("a b", 2, "separate several tests"),
        ("not(a", 5, "')'"),
        ("not a", 4, "'('"),
        ("a, not(b)", 3, "whole test"),
        ("#x", 0, "unexpected character"),
        ('"open', 0, "unexpected character"),
        ("x ${ . }", 2, "whole cell"),
        ("${ }", 0, "empty"),
    ],
)
def test_unary__syntax_errors_say_where(text: str, offset: int, fragment: str) -> None:
    with pytest.raises(UnaryTestSyntaxError) as caught:
        parse(text)
    assert caught.value.offset == offset
    assert fragment in caught.value.message


@pytest.mark.parametrize("cell", [None, [1, 2], {"a": 1}, float("nan")])
def test_unary__cells_that_are_not_tests(cell: Any) -> None:
    with pytest.raises(UnaryTestSyntaxError):
        from_cell(cell)


# --- hit policies --------------------------------------------------------------------------


def test_unique__one_match_or_none() -> None:
    t = table("UNIQUE", [(["< 0"], ["negative"]), (["[0..10]"], ["small"]), (["> 10"], ["big"])])
    decision = evaluate(t, {"a": 3})
    assert decision.output == {"out": "small"}
    assert decision.matched == ("r2",) and decision.selected == ("r2",)
    assert evaluate(t, {"a": "text"}).output is None
    assert evaluate(t, {"a": "text"}).matched == ()


def test_unique__several_matches_of_jq_tests_fail_at_evaluation() -> None:
    t = table("UNIQUE", [(["${ . > 1 }"], ["x"]), (["${ . > 2 }"], ["y"]), (["< 0"], ["z"])])
    assert evaluate(t, {"a": 2}).output == {"out": "x"}
    with pytest.raises(DecisionError) as caught:
        evaluate(t, {"a": 5, "who": "me"})
    error = caught.value
    assert isinstance(error, OpsloomError) and error.code == "decision_error"
    assert (
        error.table == "t" and error.rules == ("r1", "r2") and error.input == {"a": 5, "who": "me"}
    )
    message = str(error)
    assert "'r1', 'r2'" in message and '"who": "me"' in message and "UNIQUE" in message


def test_first__takes_the_first_match_in_order() -> None:
    t = table("FIRST", [(["> 10"], ["big"]), (["> 5"], ["medium"]), (["-"], ["other"])])
    assert evaluate(t, {"a": 20}).output == {"out": "big"}
    assert evaluate(t, {"a": 7}).output == {"out": "medium"}
    decision = evaluate(t, {"a": 1})
    assert decision.output == {"out": "other"} and decision.matched == ("r3",)


def test_priority__the_output_listed_first_wins() -> None:
    outputs = [{"name": "level", "values": ["page", "ticket", "ignore"]}, {"name": "why"}]
    t = table(
        "PRIORITY",
        [
            (["-"], ["ignore", "default"]),
            ([">= 5"], ["ticket", "five or more"]),
            ([">= 9"], ["page", "nine or more"]),
            ([">= 7"], ["ticket", "seven or more"]),
        ],
        outputs=outputs,
    )
    assert evaluate(t, {"a": 1}).output == {"level": "ignore", "why": "default"}
    decision = evaluate(t, {"a": 8})
    # Two rules give "ticket": the earlier one wins the tie.
    assert decision.output == {"level": "ticket", "why": "five or more"}
    assert decision.matched == ("r1", "r2", "r4") and decision.selected == ("r2",)
    assert evaluate(t, {"a": 10}).output == {"level": "page", "why": "nine or more"}


def test_priority__compares_columns_in_order() -> None:
    outputs = [
        {"name": "team", "values": ["sre", "dev"]},
        {"name": "urgency", "values": ["high", "low"]},
    ]
    t = table(
        "PRIORITY",
        [(["-"], ["dev", "high"]), (["-"], ["sre", "low"]), (["-"], ["sre", "high"])],
        outputs=outputs,
    )
    assert evaluate(t, {"a": 0}).output == {"team": "sre", "urgency": "high"}


def test_priority__jq_output_outside_the_values_is_an_error() -> None:
    outputs = [{"name": "level", "values": ["page", "ticket"]}]
    t = table("PRIORITY", [(["-"], ["${ .level }"])], outputs=outputs)
    assert evaluate(t, {"a": 0, "level": "page"}).output == {"level": "page"}
    with pytest.raises(DecisionError, match="not one of its values"):
        evaluate(t, {"a": 0, "level": "sms"})


def test_any__agreeing_matches_are_fine_and_disagreeing_ones_fail() -> None:
    t = table(
        "ANY",
        [(["${ . > 0 }"], ["${ .x }"]), (["${ . > 5 }"], ["yes"]), (["< 0"], ["no"])],
    )
    assert evaluate(t, {"a": 3, "x": "whatever"}).output == {"out": "whatever"}
    decision = evaluate(t, {"a": 9, "x": "yes"})
    assert decision.output == {"out": "yes"} and decision.selected == ("r1", "r2")
    with pytest.raises(DecisionError) as caught:
        evaluate(t, {"a": 9, "x": "maybe"})
    assert caught.value.rules == ("r1", "r2")
    assert '"maybe"' in str(caught.value) and "ANY" in str(caught.value)


def test_collect__lists_every_match_in_rule_order() -> None:
    t = table(
        "COLLECT",
        [(["> 0"], ["positive"]), (["> 10"], ["big"]), (["< 0"], ["negative"])],
    )
    decision = evaluate(t, {"a": 11})
    assert decision.output == [{"out": "positive"}, {"out": "big"}]
    assert decision.matched == decision.selected == ("r1", "r2")
    assert evaluate(t, {"a": 0}).output == []


@pytest.mark.parametrize(
    ("aggregation", "value", "expected"),
    [
        ("SUM", 11, 13.5),
        ("MIN", 11, 0.5),
        ("MAX", 11, 10),
        ("COUNT", 11, 4),
        ("SUM", 5, 3),
        ("COUNT", -1, 0),
        ("SUM", -1, None),
        ("MIN", -1, None),
        ("MAX", -1, None),
    ],
)
def test_collect__aggregations(aggregation: str, value: int, expected: Any) -> None:
    t = table(
        "COLLECT",
        [(["> 0"], [1]), (["> 0"], [2]), (["> 10"], [10]), (["> 10"], ["${ .a / 22 }"])],
        aggregation=aggregation,
    )
    assert evaluate(t, {"a": value}).output == expected


def test_collect__aggregating_a_non_number_from_jq_fails() -> None:
    t = table("COLLECT", [(["-"], [1]), (["-"], ["${ .label }"])], aggregation="SUM")
    assert evaluate(t, {"a": 0, "label": 2}).output == 3
    with pytest.raises(DecisionError, match="cannot aggregate") as caught:
        evaluate(t, {"a": 0, "label": "two"})
    assert caught.value.rules == ("r2",)


def test_evaluate__several_inputs_must_all_match() -> None:
    t = table(
        "FIRST",
        [(["production", ">= 0.7"], ["board"]), (["production", "-"], ["owner"])],
        inputs=("env", "risk"),
    )
    assert evaluate(t, {"env": "production", "risk": 0.9}).output == {"out": "board"}
    assert evaluate(t, {"env": "production", "risk": 0.1}).output == {"out": "owner"}
    assert evaluate(t, {"env": "staging", "risk": 0.9}).output is None


def test_evaluate__jq_sees_the_value_and_the_whole_input() -> None:
    t = table(
        "FIRST",
        [(["${ . > $input.limit }"], ["${ {over: (.a - .limit), who: $input.who} }"])],
    )
    assert evaluate(t, {"a": 7, "limit": 5, "who": "x"}).output == {"out": {"over": 2, "who": "x"}}
    assert evaluate(t, {"a": 3, "limit": 5}).output is None
    summed = table("FIRST", [(["${ (reduce .[] as $x (0; . + $x)) > 10 }"], ["${ $input.a[0] }"])])
    assert evaluate(summed, {"a": [5, 6]}).output == {"out": 5}
    assert evaluate(summed, {"a": [5, 5]}).output is None


def test_evaluate__a_failing_expression_is_an_error_not_a_miss() -> None:
    t = table("FIRST", [(['${ test("^db") }'], ["db"]), (["-"], ["other"])])
    assert evaluate(t, {"a": "db-1"}).output == {"out": "db"}
    with pytest.raises(DecisionError, match=r"rule 'r1'.*cannot be matched") as caught:
        evaluate(t, {"a": 5})
    assert caught.value.rules == ("r1",)
    bad_input = table_from_data(
        {
            "name": "t",
            "version": "1",
            "inputs": [{"name": "a", "expression": ".a.b"}],
            "outputs": [{"name": "out"}],
            "rules": [{"when": ["-"], "then": [1]}],
        }
    )
    with pytest.raises(DecisionError, match="input 'a'"):
        evaluate(bad_input, {"a": "text"})


def test_evaluate__input_must_be_json() -> None:
    t = table("FIRST", [(["-"], [1])])
    with pytest.raises(DecisionError, match="not a JSON document"):
        evaluate(t, {"a": object()})


def test_evaluate__the_process_environment_is_not_visible(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPSLOOM_TEST_SECRET", "hunter2")
    t = table_from_data(
        {
            "name": "t",
            "version": "1",
            "hitPolicy": "FIRST",
            "inputs": [
                {"name": "a", "expression": "$ENV.OPSLOOM_TEST_SECRET"},
                {"name": "b", "expression": "env.OPSLOOM_TEST_SECRET"},
            ],
            "outputs": [{"name": "x"}, {"name": "y"}],
            "rules": [
                {
                    "when": ['${ . == "hunter2" }', "-"],
                    "then": ["leaked through $ENV", None],
                },
                {
                    "when": ["-", '${ [$ENV, env] | tostring | contains("hunter2") }'],
                    "then": ["leaked through a test", None],
                },
                {
                    "when": ["null", "null"],
                    "then": ["${ $ENV.OPSLOOM_TEST_SECRET }", "${ env | length }"],
                },
            ],
        }
    )
    decision = evaluate(t, {})
    assert decision.selected == ("rule-3",)
    assert decision.output == {"x": None, "y": 0}


# --- validation ----------------------------------------------------------------------------

GOOD = """\
name: sample
version: "1.0.0"
hitPolicy: UNIQUE
inputs:
  - name: env
    expression: .env
  - name: risk
    expression: .risk
outputs:
  - name: stage
rules:
  - when: [production, ">= 0.5"]
    then: [board]
  - when: [production, "< 0.5"]
    then: [owner]
  - when: ['not("production")', "-"]
    then: [none]
"""


def test_load__a_valid_table() -> None:
    t = load_table(GOOD, "t.yaml")
    assert t.name == "sample" and t.version == "1.0.0" and t.hit_policy is HitPolicy.UNIQUE
    assert [rule.id for rule in t.rules] == ["rule-1", "rule-2", "rule-3"]
    assert evaluate(t, {"env": "staging", "risk": 1}).output == {"stage": "none"}


def test_load__bad_unary_test_is_reported_at_its_column() -> None:
    text = GOOD.replace('">= 0.5"', '">= 0.5 0.6"')
    (problem,) = problems_of(text)
    # Line 12 holds the rule; the quote opens at column 24, the stray "0.6" is 7 further on.
    assert problem.startswith("t.yaml:12:32: /rules/0/when/1: invalid test '>= 0.5 0.6'")


def test_load__unknown_hit_policy_and_keys() -> None:
    text = GOOD.replace("hitPolicy: UNIQUE", "hitPolicy: SOMETIMES\nhitpolicy: FIRST")
    problems = problems_of(text)
    assert problems[0].startswith("t.yaml:4:1: /hitpolicy: unknown key 'hitpolicy'")
    assert problems[1].startswith("t.yaml:3:1: /hitPolicy: unknown hit policy 'SOMETIMES'")


def test_load__rule_arity_mismatches() -> None:
    text = GOOD.replace("then: [owner]", "then: [owner, extra]").replace(
        '[production, ">= 0.5"]', "[production]"
    )
    problems = problems_of(text)
    assert problems == [
        "t.yaml:12:5: /rules/0/when: 'when' has 1 test but the table has 2 inputs",
        "t.yaml:15:5: /rules/1/then: 'then' has 2 values but the table has 1 output",
    ]


def test_load__jq_syntax_errors_and_unknown_variables() -> None:
    text = GOOD.replace("expression: .risk", "expression: .risk |").replace(
        "'not(\"production\")'", "'${ . == $context }'"
    )
    problems = problems_of(text)
    assert problems[0] == (
        "t.yaml:8:5: /inputs/1/expression: jq does not compile: syntax error, unexpected end "
        "of file (at column 7 of '.risk |')"
    )
    assert problems[1].startswith("t.yaml:16:12: /rules/2/when/0: unknown variable $context")


@pytest.mark.parametrize(
    ("expression", "allowed"),
    [
        ("[range(1e12)] | length", False),
        ("def f: f; f", False),
        ("last(recurse(. + 1))", False),
        ("until(false; .)", False),
        ("input", False),
        ('.reason == "out of range"', True),
        ("{range: .a, input: $input.b} | .range", True),
        ("reduce .[] as $x (0; . + $x)", True),
        ("[..] | length", True),
    ],
)
def test_load__jq_that_may_loop_is_refused(expression: str, allowed: bool) -> None:
    data = {
        "name": "t",
        "version": "1",
        "inputs": [{"name": "a", "expression": expression}],
        "outputs": [{"name": "out"}],
        "rules": [{"when": ["-"], "then": [1]}],
    }
    if allowed:
        table_from_data(data)
    else:
        with pytest.raises(InvalidDecisionTableError, match="must not loop or recurse"):
            table_from_data(data)


def test_load__priority_needs_output_values() -> None:
    text = GOOD.replace("hitPolicy: UNIQUE", "hitPolicy: PRIORITY")
    (problem,) = problems_of(text)
    assert problem.startswith("t.yaml:9:1: /outputs: PRIORITY needs the allowed 'values'")


def test_load__output_values_restrict_literal_outputs() -> None:
    text = GOOD.replace("  - name: stage", "  - name: stage\n    values: [board, owner]")
    (problem,) = problems_of(text)
    assert problem.startswith("t.yaml:18:12: /rules/2/then/0: 'none' is not one of the values")


def test_load__aggregation_rules() -> None:
    on_unique = problems_of(GOOD.replace("hitPolicy: UNIQUE", "hitPolicy: FIRST\naggregation: SUM"))
    assert on_unique == [
        "t.yaml:4:1: /aggregation: 'aggregation' applies to the COLLECT hit policy only, not FIRST"
    ]
    text = GOOD.replace("hitPolicy: UNIQUE", "hitPolicy: COLLECT\naggregation: SUM")
    problems = problems_of(text)
    assert len(problems) == 3 and all("SUM needs numbers" in p for p in problems)
    two_outputs = problems_of(
        GOOD.replace("hitPolicy: UNIQUE", "hitPolicy: COLLECT\naggregation: COUNT").replace(
            "  - name: stage", "  - name: stage\n  - name: other"
        )
    )
    assert "COUNT aggregates a single output; the table has 2" in two_outputs[0]


def test_load__unique_overlap_is_caught_with_both_rules_named() -> None:
    text = GOOD.replace('[production, "< 0.5"]', '[production, "[0.2..0.6]"]')
    (problem,) = problems_of(text)
    assert problem == (
        "t.yaml:14:5: /rules/1: rule 'rule-2' can match the same input as rule 'rule-1' "
        "(line 12): UNIQUE allows one matching rule; make their tests exclusive or use "
        "FIRST, PRIORITY or COLLECT"
    )


@pytest.mark.parametrize(
    ("first", "second", "overlap"),
    [
        ("[1..5]", "(5..10]", False),
        ("[1..5]", "[5..10]", True),
        ("< 5", ">= 5", False),
        ("< 5", "> 4.9", True),
        ('"a", "b"', '"c"', False),
        ('"a", "b"', '"c", "b"', True),
        ('not("a")', '"a"', False),
        ('not("a")', '"b"', True),
        ('not("a", "b")', 'not("c")', True),
        ("not(< 0, >= 0)", "-", True),
        ("not(< 0, >= 0)", "[1..2]", False),
        ('["a".."m"]', '"n"', False),
        ('["a".."m"]', '"mz"', False),
        ('["a".."m"]', '"lz"', True),
        ("true", "false", False),
        ("true", "not(false)", True),
        ("null", "-", True),
        ("1", "1.0", True),
        ("!= 1", "[0..2]", True),
        ("!= 1", "1", False),
        ("${ . > 1 }", "-", False),
    ],
)
def test_load__unique_overlap_per_test_kind(first: str, second: str, overlap: bool) -> None:
    data = {
        "name": "t",
        "version": "1",
        "inputs": [{"name": "a", "expression": ".a"}],
        "outputs": [{"name": "out"}],
        "rules": [{"when": [first], "then": [1]}, {"when": [second], "then": [2]}],
    }
    if overlap:
        with pytest.raises(InvalidDecisionTableError, match="can match the same input"):
            table_from_data(data)
    else:
        table_from_data(data)


def test_load__unique_rules_that_differ_in_one_column_do_not_overlap() -> None:
    table("UNIQUE", [(["-", "< 0"], [1]), (["-", ">= 0"], [2])], inputs=("a", "b"))


def test_load__any_overlap_with_different_outputs_is_caught() -> None:
    agreeing = [(["> 0"], ["yes"]), (["> 5"], ["yes"])]
    assert table("ANY", agreeing).hit_policy is HitPolicy.ANY
    with pytest.raises(InvalidDecisionTableError, match="with different outputs"):
        table("ANY", [(["> 0"], ["yes"]), (["> 5"], ["no"])])
    # A jq output cannot be compared before evaluation.
    table("ANY", [(["> 0"], ["yes"]), (["> 5"], ["${ .x }"])])


def test_load__duplicate_names_and_ids() -> None:
    text = GOOD.replace("  - name: risk", "  - name: env").replace(
        '  - when: [production, "< 0.5"]', '  - id: rule-1\n    when: [production, "< 0.5"]'
    )
    problems = problems_of(text)
    assert "/inputs/1/name: the name 'env' is already used" in problems[0]
    assert "/rules/1/id: the rule id 'rule-1' is already used by rule 1" in problems[1]


def test_load__not_a_table() -> None:
    assert problems_of("- 1\n- 2\n") == [
        "t.yaml:1:1: /: a decision table is a mapping with 'name', 'version', 'inputs', "
        "'outputs' and 'rules'"
    ]
    assert problems_of("") == [
        "t.yaml:1:1: /: a decision table is a mapping with 'name', 'version', 'inputs', "
        "'outputs' and 'rules'"
    ]
    assert problems_of("name: [unclosed\n")[0].startswith("t.yaml:2:1: /: invalid YAML")
    missing = problems_of("name: x\nversion: 1.0\n")
    assert (
        missing[0]
        == "t.yaml:2:1: /version: 'version' must be a string (a string such as '1.0.0'); quote it"
    )
    assert any("the table has no 'inputs'" in p for p in missing)


# --- properties ----------------------------------------------------------------------------


@st.composite
def int_tests(draw: st.DrawFn) -> tuple[str, Any]:
    """A unary test over small integers, as text and as an independent Python predicate."""
    kind = draw(st.sampled_from(["any", "eq", "cmp", "range", "list", "not"]))
    a = draw(st.integers(-3, 3))
    b = draw(st.integers(a, 4))
    if kind == "any":
        return "-", lambda v: True
    if kind == "eq":
        return str(a), lambda v: v == a
    if kind == "cmp":
        op = draw(st.sampled_from(["<", "<=", ">", ">="]))
        checks = {
            "<": lambda v: v < a,
            "<=": lambda v: v <= a,
            ">": lambda v: v > a,
            ">=": lambda v: v >= a,
        }
        return f"{op} {a}", checks[op]
    if kind == "range":
        lo_open = draw(st.booleans()) and a < b
        hi_open = draw(st.booleans()) and a < b and not lo_open
        text = f"{'(' if lo_open else '['}{a}..{b}{')' if hi_open else ']'}"
        return text, lambda v: (v > a if lo_open else v >= a) and (v < b if hi_open else v <= b)
    values = sorted(set(draw(st.lists(st.integers(-3, 3), min_size=1, max_size=3))))
    text = ", ".join(str(v) for v in values)
    if kind == "list":
        return text, lambda v: v in values
    return f"not({text})", lambda v: v not in values


@settings(max_examples=150, deadline=None)
@given(
    rules=st.lists(st.tuples(int_tests(), int_tests()), min_size=1, max_size=6),
    inputs=st.lists(st.tuples(st.integers(-4, 5), st.integers(-4, 5)), min_size=1, max_size=5),
)
def test_property__first_is_the_first_rule_whose_tests_all_match(
    rules: list[tuple[tuple[str, Any], tuple[str, Any]]], inputs: list[tuple[int, int]]
) -> None:
    t = table(
        "FIRST",
        [([a[0], b[0]], [index]) for index, (a, b) in enumerate(rules)],
        inputs=("a", "b"),
    )
    for x, y in inputs:
        expected = next((index for index, (a, b) in enumerate(rules) if a[1](x) and b[1](y)), None)
        got = evaluate(t, {"a": x, "b": y}).output
        assert got == (None if expected is None else {"out": expected})


@settings(max_examples=200, deadline=None)
@given(first=int_tests(), second=int_tests())
def test_property__static_overlap_never_misses_a_shared_value(
    first: tuple[str, Any], second: tuple[str, Any]
) -> None:
    a, b = from_cell(first[0]), from_cell(second[0])
    shared = [v for v in range(-6, 8) if a.matches(v) and b.matches(v)]
    sets = a.value_set(), b.value_set()
    assert sets[0] is not None and sets[1] is not None
    if shared:
        assert sets[0].overlaps(sets[1]), (first[0], second[0], shared)
    for v in range(-6, 8):
        # A test accepts exactly the values of its set (points are checked through overlap).
        from opsloom.model.valueset import ValueSet

        assert sets[0].overlaps(ValueSet.point(v)) == a.matches(v), (first[0], v)


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
def test_evaluate__nan_and_infinity_are_not_json(number: float) -> None:
    t = table("FIRST", [(["-"], [1])])
    with pytest.raises(DecisionError) as caught:
        evaluate(t, {"a": number})
    assert str(caught.value) == (
        "decision table t:1: the input is not a JSON document: "
        "Out of range float values are not JSON compliant"
    )


def test_violation__a_long_input_is_cut_to_300_characters_in_the_message() -> None:
    t = table("UNIQUE", [(["${ . > 1 }"], ["x"]), (["${ . > 2 }"], ["y"])])
    long = {"a": 5, "note": "n" * 400}
    with pytest.raises(DecisionError) as caught:
        evaluate(t, long)
    shown = str(caught.value).split("input: ", 1)[1]
    assert len(shown) == 300
    assert shown == ('{"a": 5, "note": "' + "n" * 400)[:299] + "…"
    assert caught.value.input == long


def refusal(t: DecisionTable, input: Any) -> DecisionError:
    with pytest.raises(DecisionError) as caught:
        evaluate(t, input)
    return caught.value


def test_errors__name_the_table_policy_rules_and_input_in_full() -> None:
    # Whoever reads the error has only it to find the table, the rules and the input.
    unique = refusal(table("UNIQUE", [(["${ . > 0 }"], [1]), (["${ . > 1 }"], [2])]), {"a": 5})
    assert str(unique) == (
        "decision table t:1 (UNIQUE): matched several rules; UNIQUE allows at most one: "
        "rules 'r1', 'r2'; input: {\"a\": 5}"
    )
    assert (unique.table, unique.rules, unique.input) == ("t", ("r1", "r2"), {"a": 5})
    disagree = refusal(table("ANY", [(["-"], ["${ .x }"]), (["-"], ["yes"])]), {"x": "no", "a": 1})
    assert str(disagree) == (
        'decision table t:1 (ANY): matched rules with different outputs ({"out": "no"} and '
        "{\"out\": \"yes\"}); ANY allows several matches only when they agree: rules 'r1', 'r2'; "
        'input: {"a": 1, "x": "no"}'
    )
    assert (disagree.table, disagree.rules) == ("t", ("r1", "r2"))
    boolean = refusal(
        table("COLLECT", [(["-"], [1]), (["-"], ["${ .label }"])], aggregation="MIN"),
        {"a": 0, "label": True},
    )
    assert str(boolean) == (
        "decision table t:1 (COLLECT): gave out = true, which MIN cannot aggregate "
        '(it needs numbers): rule \'r2\'; input: {"a": 0, "label": true}'
    )
    assert (boolean.table, boolean.rules, boolean.input) == ("t", ("r2",), {"a": 0, "label": True})
    outside = refusal(
        table(
            "PRIORITY",
            [(["-"], ["${ .level }"])],
            outputs=[{"name": "level", "values": ["page", "ticket"]}],
        ),
        {"a": 0, "level": "sms"},
    )
    assert str(outside) == (
        'decision table t:1 (PRIORITY): gave level = "sms", which is not one of its values '
        '["page", "ticket"]: rule \'r1\'; input: {"a": 0, "level": "sms"}'
    )
    assert (outside.table, outside.rules) == ("t", ("r1",))


def test_errors__a_failing_expression_names_its_rule_column_and_text() -> None:
    test = refusal(table("FIRST", [(['${ test("^db") }'], ["db"])]), {"a": 5})
    assert str(test) == (
        "decision table t:1: the test '${ test(\"^db\") }' of rule 'r1' on input 'a' = 5 failed: "
        'number (5) cannot be matched, as it is not a string; input: {"a": 5}'
    )
    assert (test.table, test.rules, test.input) == ("t", ("r1",), {"a": 5})
    output = refusal(table("FIRST", [(["-"], ["${ .x.y }"])]), {"a": 5, "x": "s"})
    assert str(output) == (
        "decision table t:1: output 'out' of rule 'r1' (${ .x.y }) failed: "
        'Cannot index string with string ("y"); input: {"a": 5, "x": "s"}'
    )
    assert (output.table, output.rules, output.input) == ("t", ("r1",), {"a": 5, "x": "s"})
    column = table_from_data(
        {
            "name": "t",
            "version": "1",
            "inputs": [{"name": "a", "expression": ".a.b"}],
            "outputs": [{"name": "out"}],
            "rules": [{"when": ["-"], "then": [1]}],
        }
    )
    source = refusal(column, {"a": "text"})
    assert str(source) == (
        "decision table t:1: input 'a' (.a.b) failed: Cannot index string with string (\"b\"); "
        'input: {"a": "text"}'
    )
    assert (source.table, source.input) == ("t", {"a": "text"})
    not_json = refusal(table("FIRST", [(["-"], [1])]), {"a": {1, 2}})
    assert str(not_json) == (
        "decision table t:1: the input is not a JSON document: "
        "Object of type set is not JSON serializable"
    )
    assert not_json.table == "t"


def test_evaluate__the_decision_names_its_table_version_and_policy() -> None:
    t = table_from_data(
        {
            "name": "route",
            "version": "3",
            "hitPolicy": "FIRST",
            "inputs": [{"name": "a", "expression": "$input.a + 1"}],
            "outputs": [{"name": "out"}],
            "rules": [{"id": "big", "when": ["> 2"], "then": [1]}, {"when": ["-"], "then": [0]}],
        }
    )
    # An input column's expression sees the input as `.` and as `$input` alike.
    assert evaluate(t, {"a": 2}) == Decision(
        "route", "3", HitPolicy.FIRST, ("big",), ("big",), {"out": 1}
    )


def test_violation__an_input_of_exactly_300_characters_is_shown_whole() -> None:
    t = table("UNIQUE", [(["${ . > 0 }"], [1]), (["${ . > 1 }"], [2])])
    filler = 300 - len('{"a": 5, "note": ""}')
    exact = {"a": 5, "note": "n" * filler}
    shown = str(refusal(t, exact)).split("; input: ", 1)[1]
    assert len(shown) == 300
    assert shown == '{"a": 5, "note": "' + "n" * filler + '"}'

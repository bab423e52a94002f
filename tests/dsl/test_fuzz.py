"""Whatever text or data it is given, loading ends in a Document or in Problems, never a crash."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsloom.dsl.document import (
    Document,
    DocumentError,
    Problem,
    RuntimeFeatures,
    load_document,
    validate_document,
)

EXAMPLES = Path(__file__).parent / "spec_examples"
#: A spread of task kinds: calls, loops, listen, try/catch, switch, run, auth, schedules.
BASES = [
    "call-http-query-headers-expressions.yaml",
    "for.yaml",
    "fork.yaml",
    "listen-to-any-until-condition.yaml",
    "try-catch-retry-reusable.yaml",
    "switch-then-string.yaml",
    "run-container.yaml",
    "run-script-with-stdin-and-arguments.yaml",
    "authentication-reusable.yaml",
    "schedule-event-driven.yaml",
    "call-asyncapi-subscribe-consume-forever-foreach.yaml",
    "raise-reusable.yaml",
    "mock-service-extension.yaml",
]
TEXTS = [(EXAMPLES / name).read_text() for name in BASES]
DATAS = [load_document(text).data for text in TEXTS]

RUNTIMES = st.sampled_from(
    [None, RuntimeFeatures(), RuntimeFeatures(True, frozenset({"python", "js"}))]
)
CATALOGS = st.sampled_from([None, lambda name, version: name == "log"])

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True)
    | st.text(max_size=12)
    | st.sampled_from(["${ .a }", "${", "http", "end", "PT1S", "x:1.0.0@default"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
JQ_TEXT = st.text(
    alphabet=st.sampled_from(list('.[]{}()|$:,;"\\ abxy012=<>+-*/?@#\n')), max_size=30
)


def fuzz(examples: int) -> settings:
    """Hypothesis settings for these tests: a fixed budget, no per-example deadline."""
    return settings(
        max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )


def outcome(text: str, **options: Any) -> list[Problem]:
    """Load ``text``; the problems if it is invalid, ``[]`` if it loads."""
    try:
        load_document(text, "fuzz.yaml", **options)
    except DocumentError as exc:
        assert exc.problems, "a DocumentError always lists at least one problem"
        for problem in exc.problems:
            assert problem.line >= 1 and problem.column >= 1
            assert problem.path == "" or problem.path.startswith("/")
        return exc.problems
    return []


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*path, index))
    return found


def _mutate(data: dict[str, Any], path: tuple[Any, ...], op: str, value: Any, name: str) -> Any:
    root: Any = copy.deepcopy(data)
    if not path:
        return value if op == "swap" else root
    parent = root
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if op == "delete":
        del parent[last]
    elif op == "swap":
        parent[last] = value
    elif op == "rename" and isinstance(parent, dict):
        parent[name] = parent.pop(last)
    elif op == "duplicate" and isinstance(parent, list):
        parent.insert(last, copy.deepcopy(parent[last]))
    elif op == "duplicate" and isinstance(parent, dict):
        parent[name] = copy.deepcopy(parent[last])
    return root


@fuzz(100)
@given(
    base=st.integers(0, len(DATAS) - 1),
    pick=st.integers(0, 10_000),
    op=st.sampled_from(["delete", "swap", "rename", "duplicate"]),
    value=JSON_VALUES,
    name=st.sampled_from(["do", "call", "then", "with", "for", "x", "catch", "use", ""]),
    runtime=RUNTIMES,
    catalog=CATALOGS,
)
def test_fuzz__mutated_data_gives_problems_not_crashes(
    base: int, pick: int, op: str, value: Any, name: str, runtime: Any, catalog: Any
) -> None:
    data = DATAS[base]
    paths = _paths(data)
    mutated = _mutate(data, paths[pick % len(paths)], op, value, name)
    doc = Document(data=mutated, source="fuzz")
    problems = validate_document(doc, runtime=runtime, catalog_has=catalog)
    assert all(isinstance(problem, Problem) for problem in problems)
    # The same data as JSON text goes through the reader too.
    outcome(json.dumps(mutated), runtime=runtime)


@fuzz(150)
@given(
    base=st.integers(0, len(TEXTS) - 1),
    at=st.integers(0, 10_000),
    length=st.integers(0, 40),
    garbage=st.text(max_size=8) | st.sampled_from(["\t", ":", "- ", "&a", "*a", "{", "'", "\x00"]),
    op=st.sampled_from(["insert", "replace", "truncate", "duplicate-line", "delete"]),
)
def test_fuzz__damaged_text_gives_problems_not_crashes(
    base: int, at: int, length: int, garbage: str, op: str
) -> None:
    text = TEXTS[base]
    where = at % (len(text) + 1)
    if op == "insert":
        text = text[:where] + garbage + text[where:]
    elif op == "replace":
        text = text[:where] + garbage + text[where + length :]
    elif op == "truncate":
        text = text[:where]
    elif op == "delete":
        text = text[:where] + text[where + length :]
    else:
        lines = text.splitlines(keepends=True)
        index = where % max(1, len(lines))
        text = "".join(lines[: index + 1] + lines[index:])
    outcome(text, runtime=RuntimeFeatures())


@fuzz(100)
@given(source=JQ_TEXT, place=st.sampled_from(["if", "set", "for", "switch", "output"]))
def test_fuzz__random_jq_is_checked_not_crashing(source: str, place: str) -> None:
    header = "document: {dsl: '1.0.3', namespace: t, name: n, version: '0.1.0'}\ndo:\n"
    quoted = json.dumps(source)
    tasks = {
        "if": f"  - a: {{if: {quoted}, set: {{x: 1}}}}\n",
        "set": f"  - a: {{set: {{x: {json.dumps('${' + source + '}')}}}}}\n",
        "for": f"  - a: {{for: {{in: {quoted}}}, do: [{{b: {{set: {{x: 1}}}}}}]}}\n",
        "switch": f"  - a: {{switch: [{{c: {{when: {quoted}, then: end}}}}]}}\n",
        "output": f"  - a: {{set: {{x: 1}}, output: {{as: {quoted}}}}}\n",
    }
    for problem in outcome(header + tasks[place]):
        assert problem.path.startswith("/do/0/a")


@fuzz(300)
@given(st.text(max_size=200) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_fuzz__random_text_gives_problems_not_crashes(text: str) -> None:
    outcome(text)

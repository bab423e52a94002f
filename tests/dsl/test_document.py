"""Loading workflow documents: positions, schema errors, semantic checks, runtime features."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from opsloom.dsl import feature
from opsloom.dsl.document import (
    Document,
    DocumentError,
    Problem,
    RuntimeFeatures,
    load_document,
    load_document_file,
    parse_document,
    validate_document,
)
from opsloom.dsl.validation import workflow_validator
from opsloom.errors import OpsloomError

BAD = Path(__file__).parent / "bad"

HEADER = """\
document:
  dsl: '1.0.3'
  namespace: test
  name: sample
  version: '0.1.0'
"""


def problems_of(text: str, **options: object) -> list[Problem]:
    """The problems ``load_document`` raises for ``text`` (fails the test if it loads)."""
    with pytest.raises(DocumentError) as caught:
        load_document(text, "doc.yaml", **options)  # type: ignore[arg-type]
    return caught.value.problems


def messages(text: str, **options: object) -> list[str]:
    return [f"{p.path}: {p.message}" for p in problems_of(text, **options)]


# --- bad fixtures: every expected problem at its line, column and pointer --------------------


def _expectations(path: Path) -> list[tuple[int, int, str, str]]:
    sidecar = path.with_name(path.name + ".expect")
    text = sidecar.read_text() if sidecar.exists() else path.read_text()
    out = []
    for line in text.splitlines():
        if not line.startswith("# expect: "):
            continue
        where, pointer, message = line.removeprefix("# expect: ").split(" ", 2)
        row, col = where.split(":")
        out.append((int(row), int(col), "" if pointer == '""' else pointer, message))
    return out


@pytest.mark.parametrize(
    "fixture",
    sorted(p.name for p in BAD.iterdir() if p.suffix in (".yaml", ".json")),
)
def test_bad_fixture__reports_each_problem_where_it_is(fixture: str) -> None:
    path = BAD / fixture
    expected = _expectations(path)
    assert expected, f"{fixture} states no expectation"
    with pytest.raises(DocumentError) as caught:
        load_document_file(path)
    got = caught.value.problems
    assert len(got) == len(expected), "\n".join(map(str, got))
    for problem, (line, column, pointer, message) in zip(got, expected, strict=True):
        assert problem.source == str(path)
        assert (problem.line, problem.column, problem.path) == (line, column, pointer), problem
        assert problem.message.startswith(message), problem


# --- the Problem / DocumentError / Document API ---------------------------------------------


def test_problem__str_is_file_line_column_pointer_message() -> None:
    problem = Problem("flow.yaml", 12, 7, "/do/1/checkup/call", "unknown function 'x'")
    assert str(problem) == "flow.yaml:12:7: /do/1/checkup/call: unknown function 'x'"
    assert str(Problem("f", 1, 1, "", "empty")) == "f:1:1: /: empty"


def test_document_error__is_an_opsloom_error_listing_all_problems() -> None:
    error = DocumentError([Problem("a", 1, 2, "/x", "one"), Problem("a", 3, 4, "/y", "two")])
    assert isinstance(error, OpsloomError)
    assert error.code == "invalid_document"
    assert "a:1:2: /x: one" in str(error)
    assert "a:3:4: /y: two" in str(error)


def test_document__header_properties_and_plain_data() -> None:
    doc = load_document(HEADER + "do:\n  - a:\n      set: {x: [1, 2.5, true, null]}\n")
    assert (doc.name, doc.namespace, doc.version) == ("sample", "test", "0.1.0")
    assert type(doc.data) is dict
    assert type(doc.data["do"]) is list
    assert doc.data["do"][0] == {"a": {"set": {"x": [1, 2.5, True, None]}}}
    assert doc.source == "<string>"


def test_document__position_of_a_missing_node_is_its_nearest_ancestor() -> None:
    doc = parse_document(HEADER + "do:\n  - first:\n      set:\n        x: 1\n")
    assert doc.position("") == (1, 1)
    assert doc.position("/document/name") == (4, 3)
    assert doc.position("/do/0") == (7, 5)
    assert doc.position("/do/0/first/set/x") == (9, 9)
    assert doc.position("/do/0/first/set/nothing/deeper") == (8, 7)
    assert doc.position("/do/7") == (6, 1)


def test_document__built_without_positions_answers_line_one() -> None:
    doc = Document(data={"do": []}, source="x")
    assert doc.position("/do/0") == (1, 1)


def test_parse__json_gets_positions_too() -> None:
    text = '{\n  "document": {"dsl": "1.0.3"},\n  "do": [\n    {"a": {"set": {"k": 1}}}\n  ]\n}\n'
    doc = parse_document(text, "flow.json")
    assert doc.position("/do/0/a/set/k") == (4, 20)


def test_parse__invalid_json_reports_the_json_position() -> None:
    with pytest.raises(DocumentError) as caught:
        parse_document('{\n  "document": {"dsl": "1.0.3",,}\n}', "flow.json")
    (problem,) = caught.value.problems
    assert (problem.line, problem.column) == (2, 31)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("- a\n- b\n", "top level is a list"),
        ("just text", "top level is a string"),
        ("a: &x [*x]\n", "refers to its own ancestor"),
        ("a: [1, 2\nb: 3\n", "invalid YAML"),
        ("a: \x07\n", "invalid character"),
        ("[" * 200 + "]" * 200, "nesting deeper than"),
        ("[" * 5000 + "]" * 5000, "nesting deeper than"),
    ],
)
def test_parse__unreadable_text_is_a_document_error(text: str, fragment: str) -> None:
    with pytest.raises(DocumentError) as caught:
        parse_document(text)
    assert fragment in str(caught.value)


def test_parse__alias_bombs_are_refused() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 8)]
    with pytest.raises(DocumentError, match="more than"):
        parse_document("\n".join(lines))


def test_parse__merge_keys_and_non_string_keys_become_plain_data() -> None:
    doc = parse_document("base: &b {x: 1, y: 2}\nuse: {<<: *b, y: 3}\ncodes: {200: ok}\n")
    assert doc.data["use"] == {"x": 1, "y": 3}
    assert doc.data["codes"] == {"200": "ok"}


def test_parse__yaml_only_scalars_become_json_values() -> None:
    doc = parse_document("when: 2024-01-01\nhex: 0x1f\nbig: 1_000\ninf: .inf\nraw: !!binary aGk=\n")
    assert doc.data == {
        "when": "2024-01-01",
        "hex": 31,
        "big": 1000,
        "inf": float("inf"),
        "raw": "aGk=",
    }


# --- schema --------------------------------------------------------------------------------


def test_schema__validator_is_built_once() -> None:
    assert workflow_validator() is workflow_validator()


def test_schema__the_error_comes_from_the_branch_the_task_means() -> None:
    text = HEADER + (
        "do:\n"
        "  - fetch:\n"
        "      call: http\n"
        "      with:\n"
        "        method: get\n"
        "        endpoint:\n"
        "          uri: https://example.com\n"
        "          authentication:\n"
        "            bearer: {tokn: abc}\n"
    )
    assert messages(text) == [
        "/do/0/fetch/with/endpoint/authentication/bearer: missing required property 'token'",
        "/do/0/fetch/with/endpoint/authentication/bearer/tokn: unknown property 'tokn' "
        "(expected one of: token, use)",
    ]


def test_schema__a_mapping_that_is_no_task_says_which_keys_make_one() -> None:
    (message,) = messages(HEADER + "do:\n  - a:\n      frobnicate: 1\n")
    assert message.startswith("/do/0/a: not a task: it has 'frobnicate' but needs exactly one")


def test_schema__an_event_source_may_be_a_relative_uri_reference() -> None:
    # The webhook sources emit CloudEvents with relative sources such as /hooks/alertmanager.
    listen = (
        "do:\n"
        "  - wait:\n"
        "      listen:\n"
        "        to:\n"
        "          one:\n"
        "            with:\n"
        "              source: {source}\n"
        "              type: io.opsloom.alert.firing.v1\n"
    )
    for source in ("/hooks/alertmanager", "https://alerts.example.com/hooks", "${ .from }"):
        load_document(HEADER + listen.format(source=source), "doc.yaml")
    (message,) = messages(HEADER + listen.format(source="hooks alertmanager"))
    assert message.startswith("/do/0/wait/listen/to/one/with/source:")


def test_schema__missing_sections_and_bad_header() -> None:
    text = "document:\n  dsl: '1.0.3'\n  namespace: test\n  name: Not Valid\n  version: '1'\n"
    found = problems_of(text)
    assert [(p.line, p.path) for p in found] == [
        (1, ""),
        (4, "/document/name"),
        (5, "/document/version"),
    ]
    assert found[0].message == "missing required property 'do'"


# --- semantics -------------------------------------------------------------------------------


def test_semantic__variables_are_in_scope_only_where_declared() -> None:
    text = HEADER + (
        "do:\n"
        "  - loop:\n"
        "      for: {in: .items}\n"
        "      while: $index < 10\n"
        "      do:\n"
        "        - use: {set: {v: '${ [$item, $index, $workflow, $runtime, $task] }'}}\n"
        "  - guard:\n"
        "      try:\n"
        "        - boom: {raise: {error: {type: 'https://example.com/e', status: 500}}}\n"
        "      catch:\n"
        "        as: failure\n"
        "        when: $failure.status == 500\n"
        "        do:\n"
        "          - note: {set: {e: '${ $failure }'}}\n"
        "  - after: {set: {v: '${ $item }', w: '${ $failure }'}}\n"
    )
    assert messages(text) == [
        "/do/2/after/set/v: invalid jq expression: $item is not defined "
        "(at line 1, column 2 of the expression)",
        "/do/2/after/set/w: invalid jq expression: $failure is not defined "
        "(at line 1, column 2 of the expression)",
    ]


def test_semantic__listen_foreach_declares_its_item() -> None:
    text = HEADER + (
        "do:\n"
        "  - wait:\n"
        "      listen:\n"
        "        to: {any: [], until: '. | length > $limit'}\n"
        "      foreach:\n"
        "        item: event\n"
        "        do:\n"
        "          - keep: {set: {e: '${ [$event, $index] }'}}\n"
    )
    assert messages(text) == [
        "/do/0/wait/listen/to/until: invalid jq expression: $limit is not defined "
        "(at line 1, column 14 of the expression)"
    ]


def test_semantic__catalog_functions_are_checked_when_a_catalog_is_given() -> None:
    text = HEADER + (
        "do:\n  - a: {call: 'log:1.0.0@default'}\n  - b: {call: 'slack-post:2.0.0@default'}\n"
    )
    known = {("log", "1.0.0")}
    assert load_document(text)  # no catalog: not checked
    assert messages(text, catalog_has=lambda name, version: (name, version) in known) == [
        "/do/1/b/call: unknown function 'slack-post' version 2.0.0 in the default catalog"
    ]


def test_semantic__declared_catalogs_are_unsupported_not_unknown() -> None:
    text = HEADER + (
        "use:\n  catalogs:\n    vendor: {endpoint: 'https://example.com/catalog'}\n"
        "do:\n  - a: {call: 'x:1.0.0@vendor'}\n"
    )
    assert load_document(text)
    assert messages(text, runtime=RuntimeFeatures(container=True)) == [
        "/do/0/a/call: unsupported by this runtime: functions of catalogs other than 'default' "
        "(catalog 'vendor')"
    ]


GRPC = HEADER + (
    "do:\n"
    "  - greet:\n"
    "      call: grpc\n"
    "      with:\n"
    "        proto: {endpoint: 'file://app/greet.proto'}\n"
    "        service: {name: GreeterApi.Greeter, host: localhost, port: 5011}\n"
    "        method: SayHello\n"
)


def test_runtime__unsupported_calls_load_but_are_reported_with_a_runtime() -> None:
    assert load_document(GRPC).name == "sample"
    (problem,) = problems_of(GRPC, runtime=RuntimeFeatures(container=True))
    assert (problem.line, problem.column, problem.path) == (8, 7, "/do/0/greet/call")
    assert problem.message == "unsupported by this runtime: gRPC calls (call: grpc)"


def test_runtime__the_unsupported_set_is_adjustable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(feature.UNSUPPORTED_FEATURES, "call:grpc")
    assert load_document(GRPC, runtime=RuntimeFeatures(container=True))


RUNS = HEADER + (
    "do:\n"
    "  - box: {run: {container: {image: alpine:3}}}\n"
    "  - js: {run: {script: {language: js, code: 'console.log(`${x}`)'}}}\n"
    "  - py: {run: {script: {language: python, code: 'print(1)'}}}\n"
)


def test_runtime__containers_and_script_languages_depend_on_the_machine() -> None:
    assert load_document(RUNS)
    assert load_document(RUNS, runtime=RuntimeFeatures(True, frozenset({"python", "js"})))
    assert messages(RUNS, runtime=RuntimeFeatures(False, frozenset({"python"}))) == [
        "/do/0/box/run/container: unsupported on this machine: run.container needs docker or "
        "podman on the PATH",
        "/do/1/js/run/script/language: unsupported on this machine: run.script in language "
        "'js' (available: python)",
    ]


def _fake_tool(folder: Path, name: str) -> None:
    tool = folder / name
    tool.write_text("#!/bin/sh\nexit 0\n")
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)


def test_runtime__detect_looks_at_the_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert RuntimeFeatures.detect() == RuntimeFeatures(False, frozenset({"python"}))
    _fake_tool(tmp_path, "node")
    _fake_tool(tmp_path, "podman")
    assert RuntimeFeatures.detect() == RuntimeFeatures(True, frozenset({"python", "js"}))
    assert os.environ["PATH"] == str(tmp_path)


def test_validate__reports_schema_and_semantic_problems_together_in_document_order() -> None:
    doc = parse_document(
        HEADER + "do:\n  - a:\n      set: {x: '${ .x | }'}\n      then: b\n  - b: {wait: 5}\n"
    )
    found = validate_document(doc)
    assert [(p.line, p.path) for p in found] == [
        (8, "/do/0/a/set/x"),
        (10, "/do/1/b/wait"),
    ]


def test_load_file__unreadable_file_is_a_document_error(tmp_path: Path) -> None:
    with pytest.raises(DocumentError) as caught:
        load_document_file(tmp_path / "missing.yaml")
    (problem,) = caught.value.problems
    assert problem.message.startswith("cannot read the file")


def test_semantic__reusable_definitions_are_checked_too() -> None:
    text = HEADER + (
        "use:\n"
        "  authentications:\n"
        "    vault:\n"
        "      bearer:\n"
        "        token: ${ .token | }\n"
        "    secretive:\n"
        "      basic:\n"
        "        use: undeclared\n"
        "  retries:\n"
        "    patient:\n"
        "      when: .status ==\n"
        "  functions:\n"
        "    page:\n"
        "      call: http\n"
        "      with: {method: post, endpoint: 'https://example.com', body: '${ $nope }'}\n"
        "do:\n"
        "  - a: {call: page}\n"
    )
    assert [p.path for p in problems_of(text)] == [
        "/use/authentications/vault/bearer/token",
        "/use/authentications/secretive/basic/use",
        "/use/retries/patient/when",
        "/use/functions/page/with/body",
    ]

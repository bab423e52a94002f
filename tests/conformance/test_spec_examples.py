"""The specification's examples that need nothing outside this machine run as they should.

Petstore is served by the local fake; examples calling other hosts (swapi, fake-hospital,
keycloak …), needing a container daemon, a deployed subflow or a schedule trigger are left out,
each with its reason. Timers run on a fake clock that the test advances.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from opsloom import App, FakeClock, WorkerOptions
from opsloom.dsl.runtime import DslOptions, DslRuntime
from opsloom.errors import RunFailedError
from opsloom.expr.problem import type_matches

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "dsl"))
from fakes import Fakes, fake_http_client

EXAMPLES = Path(__file__).resolve().parent.parent / "dsl" / "spec_examples"

#: file -> (input, expected): ``{"output": …}`` or ``{"error": {…}}`` (fields to match).
RUNNABLE: dict[str, tuple[Any, dict[str, Any]]] = {
    "call-openapi.yaml": ({"status": "available"}, {"output_type": list}),
    "call-openapi-redirect.yaml": ({"status": "available"}, {"output_type": list}),
    "call-http-endpoint-interpolation-shorthand.yaml": ({"petId": 1}, {"output_keys": ["id"]}),
    "call-http-endpoint-interpolation.yaml": ({"petId": 1}, {"output_keys": ["id"]}),
    "do-single.yaml": ({"petId": 1}, {"output_keys": ["id", "name"]}),
    "call-custom-function-inline.yaml": (
        {},
        {
            "error": {
                "type": "communication",
                "status": 404,
                "instance": "/use/functions/getPetById",
            }
        },
    ),
    "try-catch.yaml": ({"petId": 424242}, {"output": {"petId": 424242}}),
    "try-catch-retry-inline.yaml": ({"petId": 1}, {"output_keys": ["id"]}),
    "try-catch-retry-reusable.yaml": ({"petId": 1}, {"output_keys": ["id"]}),
    "conditional-task.yaml": (
        {"customer": {"age": 17}},
        {"error": {"status": 400, "title": "Access Forbidden"}},
    ),
    "emit.yaml": ({}, {"output_keys": ["id", "source", "type", "data", "time"]}),
    "raise-inline.yaml": ({}, {"error": {"status": 500, "title": "Not Implemented"}}),
    "raise-reusable.yaml": ({}, {"error": {"status": 500, "title": "Not Implemented"}}),
    "run-shell-stdin-and-arguments.yaml": (
        {},
        {"output": "STDIN was: Hello World\nARGS are Foo Bar\n"},
    ),
    "set.yaml": (
        [{"type": "trigger", "id": "e1"}],
        {"output": {"startEvent": {"type": "trigger", "id": "e1"}}},
    ),
    "set-expression.yaml": ([{"type": "trigger"}], {"output": {"type": "trigger"}}),
    "switch-then-string.yaml": (
        {"orderType": "electronic"},
        {"output": {"validate": True, "status": "fulfilled"}},
    ),
    "wait-duration-inline.yaml": ({"x": 1}, {"output": {"x": 1}}),
    "wait-duration-iso8601.yaml": ({"x": 1}, {"output": {"x": 1}}),
}

if shutil.which("node"):
    RUNNABLE["run-script-with-stdin-and-arguments.yaml"] = (
        {},
        {"output": "stdin >  Hello Workflow\narg >  hello\nenv >  bar\n"},
    )


async def run_example(tmp_path: Path, name: str, value: Any) -> tuple[str, Any]:
    clock = FakeClock()
    fakes = Fakes()
    app = App(
        f"sqlite:///{tmp_path / 'opsloom.db'}",
        worker=WorkerOptions(poll_seconds=0.02, reap_seconds=None),
        clock=clock,
        sqlite_synchronous="OFF",
    )
    runtime = DslRuntime(app, DslOptions(http_client=lambda: fake_http_client(fakes)))
    text = (EXAMPLES / name).read_text(encoding="utf-8")
    document = runtime.load(text, name)
    workflow = runtime.register(document, text)
    async with app:
        try:
            handle = await app.start(workflow, value, version=document.version)
            for _ in range(100):
                try:
                    return "completed", await handle.result(timeout=0.2)
                except TimeoutError:
                    clock.advance(30)  # waits and retry delays of the examples
                except RunFailedError:
                    return "failed", await runtime.fault_of(handle.run_id)
            raise AssertionError(f"{name} did not finish")
        finally:
            await runtime.close()


@pytest.mark.parametrize("name", sorted(RUNNABLE))
async def test_spec_example__runs(tmp_path: Path, name: str) -> None:
    value, expected = RUNNABLE[name]
    status, result = await asyncio.wait_for(run_example(tmp_path, name, value), 30)
    if "error" in expected:
        assert status == "failed", result
        for key, want in expected["error"].items():
            if key == "type":
                assert type_matches(want, result["type"]), result
            else:
                assert result.get(key) == want, result
        return
    assert status == "completed", result
    if "output" in expected:
        assert result == expected["output"]
    if "output_type" in expected:
        assert isinstance(result, expected["output_type"]) and result
    for key in expected.get("output_keys", []):
        assert key in result, result

"""The interpreter on the engine: data flow, variables, flow directives, durability, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from opsloom import App, FakeClock, WorkerOptions
from opsloom.dsl.catalog import FunctionCall
from opsloom.dsl.runtime import DocumentVersionExistsError, DslOptions, DslRuntime
from opsloom.errors import RunFailedError
from opsloom.expr.problem import TaskError, type_matches
from opsloom.model import StepKind

HEADER = """
document:
  dsl: '1.0.3'
  namespace: test
  name: {name}
  version: '1.0.0'
"""


@dataclass
class Harness:
    app: App
    runtime: DslRuntime
    clock: FakeClock

    async def run(self, body: str, value: Any = None, name: str = "doc") -> tuple[str, Any, str]:
        """Register ``HEADER + body``, run it; ("completed", output) or ("failed", error)."""
        text = HEADER.format(name=name) + body
        workflow = self.runtime.register(self.runtime.load(text, f"{name}.yaml"), text)
        handle = await self.app.start(workflow, value)
        try:
            return "completed", await handle.result(timeout=20), handle.run_id
        except RunFailedError:
            return "failed", await self.runtime.fault_of(handle.run_id), handle.run_id


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    clock = FakeClock()
    app = App(
        f"sqlite:///{tmp_path / 'dsl.db'}",
        worker=WorkerOptions(poll_seconds=0.02, reap_seconds=None),
        clock=clock,
        sqlite_synchronous="OFF",
    )
    runtime = DslRuntime(app, DslOptions(secrets={"token": "s3cr3t"}, metadata={"site": "eu"}))
    async with app:
        yield Harness(app, runtime, clock)
    await runtime.close()


async def test_data_flow__input_from_output_as_export_as(harness: Harness) -> None:
    status, output, _ = await harness.run(
        """
input:
  from: ${ .payload }
do:
  - first:
      input:
        from: '${ { n: .n } }'
      set:
        n: ${ .n + 1 }
      export:
        as: '${ $context + { seen: .n } }'
  - second:
      set:
        n: ${ .n * 10 }
        seen: ${ $context.seen }
        original: ${ $workflow.input.payload.n }
      output:
        as: '${ . + { input_n: $input.n } }'
output:
  as: '${ { result: . } }'
""",
        {"payload": {"n": 1, "noise": True}},
    )
    assert status == "completed"
    assert output == {"result": {"n": 20, "seen": 2, "original": 1, "input_n": 2}}


async def test_secrets__only_declared_ones_are_visible(harness: Harness) -> None:
    harness.runtime.secrets["other"] = "not for this document"
    status, output, _ = await harness.run(
        """
use:
  secrets: [token]
do:
  - peek:
      set:
        names: ${ $secrets | keys }
""",
        name="declared",
    )
    assert (status, output) == ("completed", {"names": ["token"]})


async def test_secrets__masked_in_outputs_errors_and_history(harness: Harness) -> None:
    status, output, run_id = await harness.run(
        """
use:
  secrets: [token]
do:
  - echo:
      set:
        header: ${ "Bearer " + $secrets.token }
      export:
        as: "${ {seen: $secrets.token} }"
  - keep:
      set:
        from_context: ${ $context.seen }
        previous: ${ .header }
""",
        name="masked",
    )
    assert (status, output) == ("completed", {"from_context": "***", "previous": "Bearer ***"})
    failed, fault, failed_id = await harness.run(
        """
use:
  secrets: [token]
do:
  - boom:
      raise:
        error:
          type: https://example.com/errors/boom
          status: 500
          title: ${ "failed with " + $secrets.token }
          detail: ${ "the token was " + $secrets.token }
""",
        name="raising",
    )
    assert failed == "failed"
    assert fault["detail"] == "the token was ***"
    for rid in (run_id, failed_id):
        run = await harness.app.get_run(rid)
        assert "s3cr3t" not in str(run.to_dict())


async def test_variables__runtime_task_workflow_and_secrets(harness: Harness) -> None:
    status, output, run_id = await harness.run(
        """
use:
  secrets: [token]
do:
  - inspect:
      set:
        runtime: ${ $runtime.name }
        site: ${ $runtime.metadata.site }
        task: ${ $task.name }
        reference: ${ $task.reference }
        workflow: ${ $workflow.id }
        definition: ${ $workflow.definition.document.name }
        secret: ${ $secrets.token }
""",
        name="vars",
    )
    assert status == "completed"
    assert output == {
        "runtime": "opsloom",
        "site": "eu",
        "task": "inspect",
        "reference": "/do/0/inspect",
        "workflow": run_id,
        "definition": "vars",
        "secret": "***",  # secrets never reach run data
    }


async def test_flow__exit_leaves_only_the_enclosing_list(harness: Harness) -> None:
    status, output, _ = await harness.run(
        """
do:
  - outer:
      do:
        - a:
            set:
              trail: [a]
            then: exit
        - skipped:
            set:
              trail: [skipped]
  - b:
      set:
        trail: ${ .trail + ["b"] }
"""
    )
    assert (status, output) == ("completed", {"trail": ["a", "b"]})


async def test_flow__if_skips_a_task(harness: Harness) -> None:
    status, output, _ = await harness.run(
        """
do:
  - maybe:
      if: ${ .enabled }
      set:
        touched: true
""",
        {"enabled": False},
    )
    assert (status, output) == ("completed", {"enabled": False})


async def test_for__while_stops_the_loop(harness: Harness) -> None:
    status, output, _ = await harness.run(
        """
do:
  - loop:
      for:
        each: n
        in: ${ .numbers }
      while: ${ (.total // 0) < 5 }
      do:
        - add:
            set:
              total: ${ (.total // 0) + $n }
              last: ${ $index }
""",
        {"numbers": [1, 2, 3, 4, 5]},
    )
    assert (status, output) == ("completed", {"total": 6, "last": 2})


async def test_input_schema__invalid_input_faults_with_a_validation_error(
    harness: Harness,
) -> None:
    status, error, _ = await harness.run(
        """
input:
  schema:
    document:
      type: object
      required: [service]
do:
  - noop:
      set:
        ok: true
""",
        {"other": 1},
    )
    assert status == "failed"
    assert type_matches("validation", error["type"]) and error["status"] == 400


async def test_tasks_are_steps_named_after_their_pointers(harness: Harness) -> None:
    _, _, run_id = await harness.run(
        """
do:
  - one:
      set:
        a: 1
  - group:
      do:
        - two:
            set:
              b: 2
"""
    )
    run = await harness.app.get_run(run_id)
    names = [s.name for s in run.steps if s.kind is StepKind.STEP]
    assert names == ["/do/0/one", "/do/1/group/do/0/two"]


async def test_catalog_function__runs_in_the_workflow_with_its_arguments(
    harness: Harness,
) -> None:
    seen: list[Any] = []

    async def remember(call: FunctionCall) -> Any:
        seen.append((call.arguments, call.task, call.input))
        return await call.ctx.step(lambda: {"stored": call.arguments["value"]})

    assert harness.runtime.catalog is not None
    harness.runtime.catalog.register("remember", "1.0.0", remember)
    status, output, _ = await harness.run(
        """
do:
  - keep:
      call: remember:1.0.0@default
      with:
        value: ${ .x * 2 }
""",
        {"x": 21},
    )
    assert (status, output) == ("completed", {"stored": 42})
    assert seen == [({"value": 42}, "/do/0/keep", {"x": 21})]


async def test_unknown_catalog_function__is_a_configuration_error(harness: Harness) -> None:
    text = HEADER.format(name="unknown") + "do:\n  - x:\n      call: nothing:1.0.0@default\n"
    # The loader refuses it before it runs (the catalog has no such function).
    with pytest.raises(Exception, match="nothing"):
        harness.runtime.load(text)


async def test_register__same_version_with_another_text_is_refused(harness: Harness) -> None:
    text = HEADER.format(name="pinned") + "do:\n  - a:\n      set:\n        v: 1\n"
    harness.runtime.register(harness.runtime.load(text), text)
    harness.runtime.register(harness.runtime.load(text), text)  # same text: no-op
    other = text.replace("v: 1", "v: 2")
    with pytest.raises(DocumentVersionExistsError):
        harness.runtime.register(harness.runtime.load(other), other)


async def test_raise__error_fields_may_be_expressions(harness: Harness) -> None:
    status, error, _ = await harness.run(
        """
do:
  - refuse:
      raise:
        error:
          type: https://example.com/errors/quota
          status: 429
          title: ${ "Quota exceeded for " + .who }
          detail: ${ "used \\(.used)%" }
""",
        {"who": "api", "used": 120},
    )
    assert status == "failed"
    assert error == {
        "type": "https://example.com/errors/quota",
        "status": 429,
        "title": "Quota exceeded for api",
        "detail": "used 120%",
        "instance": "/do/0/refuse",
    }
    assert TaskError.from_dict(error).status == 429

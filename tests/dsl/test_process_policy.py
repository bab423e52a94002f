"""Who may run processes: deployed documents are refused by default, an allow-list of programs,
and a child environment that never carries the worker's secrets."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from opsloom import App, FakeClock, WorkerOptions
from opsloom.dsl.process import ProcessPolicy
from opsloom.dsl.runtime import DslOptions, DslRuntime
from opsloom.errors import RunFailedError
from opsloom.settings import Settings

SHELL = """\
document: {{dsl: '1.0.3', namespace: test, name: {name}, version: '1.0.0'}}
do:
  - sh:
      run:
        shell:
          command: {command}
"""

Runner = Callable[..., Any]


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[App]:
    app = App(
        f"sqlite:///{tmp_path / 'p.db'}",
        worker=WorkerOptions(poll_seconds=0.02, reap_seconds=None),
        clock=FakeClock(),
    )
    async with app:
        yield app


async def _outcome(app: App, runtime: DslRuntime, name: str) -> tuple[str, Any]:
    handle = await app.start(name)
    try:
        return "completed", await handle.result(timeout=20)
    except RunFailedError:
        return "failed", await runtime.fault_of(handle.run_id)


async def test_processes__deployed_documents_are_refused_by_default(app: App) -> None:
    runtime = DslRuntime(app, DslOptions.of(Settings()))
    try:
        record, _ = await runtime.deploy(SHELL.format(name="deployed", command="echo hi"))
        status, fault = await _outcome(app, runtime, record.workflow)
        assert status == "failed"
        assert fault is not None and fault["title"] == "Processes disabled"
        assert "OPSLOOM_RUN_PROCESSES=registered" in fault["detail"]
        text = SHELL.format(name="local", command="echo hi")
        name = runtime.register(runtime.load(text, "local.yaml"), text)
        assert await _outcome(app, runtime, name) == ("completed", "hi\n")
    finally:
        await runtime.close()


async def test_processes__none_refuses_and_all_allows_deployed(app: App) -> None:
    off = DslRuntime(app, DslOptions.of(Settings(run_processes="none")))
    on = DslRuntime(app, DslOptions.of(Settings(run_processes="all")))
    try:
        text = SHELL.format(name="off", command="echo hi")
        name = off.register(off.load(text, "off.yaml"), text)
        status, fault = await _outcome(app, off, name)
        assert (status, fault["title"]) == ("failed", "Processes disabled")
        record, _ = await on.deploy(SHELL.format(name="on", command="echo hi"))
        assert await _outcome(app, on, record.workflow) == ("completed", "hi\n")
    finally:
        await off.close()
        await on.close()


async def test_processes__allow_list_of_programs(app: App) -> None:
    policy = ProcessPolicy.of("all", ["echo"], None)
    runtime = DslRuntime(app, DslOptions(processes=policy))
    try:
        for doc, command, expected in (
            ("ok", "echo fine", ("completed", "fine\n")),
            ("other", "id -u", ("failed", "Program not allowed")),
            ("chained", "'echo a; id -u'", ("failed", "Program not allowed")),
        ):
            text = SHELL.format(name=doc, command=command)
            name = runtime.register(runtime.load(text, f"{doc}.yaml"), text)
            status, result = await _outcome(app, runtime, name)
            assert (status, result if status == "completed" else result["title"]) == expected
    finally:
        await runtime.close()


async def test_processes__never_see_the_worker_secrets(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSLOOM_API_TOKEN", "admin-token-value")
    monkeypatch.setenv("OPSLOOM_SLACK_SIGNING_SECRET", "slack-secret-value")
    monkeypatch.setenv("DATABASE_PASSWORD", "undeclared-value")
    runtime = DslRuntime(app, DslOptions(processes=ProcessPolicy("all")))
    try:
        text = SHELL.format(name="env", command="env")
        name = runtime.register(runtime.load(text, "env.yaml"), text)
        status, output = await _outcome(app, runtime, name)
    finally:
        await runtime.close()
    assert status == "completed"
    for value in ("admin-token-value", "slack-secret-value", "undeclared-value", "OPSLOOM_"):
        assert value not in output


async def test_processes__run_as_another_uid(app: App) -> None:
    if os.geteuid() != 0:
        # Switching uid needs root; CI runs as root, so there the test always runs.
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("switching uid needs root, and CI runs as root")
        pytest.skip("switching uid needs root")
    runtime = DslRuntime(app, DslOptions(processes=ProcessPolicy("all", user=65534)))
    try:
        text = SHELL.format(name="uid", command="id -u")
        name = runtime.register(runtime.load(text, "uid.yaml"), text)
        assert await _outcome(app, runtime, name) == ("completed", "65534\n")
    finally:
        await runtime.close()

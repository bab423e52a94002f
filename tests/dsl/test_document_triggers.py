"""Deployed documents start by themselves: ``schedule.on`` (alerts, with their lifecycle) and
``schedule.every``, also in a worker that has not loaded the document yet."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from opsloom import App, FakeClock, WorkerOptions
from opsloom.dsl.runtime import DslRuntime
from opsloom.errors import InputError
from opsloom.store import RunFilter
from opsloom.triggers.sources.alertmanager import AlertmanagerSource
from opsloom.triggers.sources.base import WebhookRequest

ON_ALERT = """
document:
  dsl: '1.0.3'
  namespace: ops
  name: follow-alert
  version: '{version}'
  metadata:
    opsloom:
      window: PT1M
schedule:
  on:
    one:
      with:
        type: io.opsloom.alert.firing.v1
do:
  - remember:
      set:
        fingerprint: ${{ .subject }}
  - untilResolved:
      listen:
        to:
          one:
            with:
              type: io.opsloom.alert.resolved.v1
              subject: ${{ .fingerprint }}
      output:
        as: '${{ {{status: .[0].status, fingerprint: .[0].fingerprint}} }}'
"""

EVERY = """
document:
  dsl: '1.0.3'
  namespace: ops
  name: heartbeat
  version: '1.0.0'
schedule:
  every:
    minutes: 5
do:
  - beat:
      set:
        beat: true
"""


def alert(status: str, starts_at: str) -> list[Any]:
    body = {
        "version": "4",
        "status": status,
        "alerts": [
            {
                "status": status,
                "labels": {"alertname": "DiskFull", "instance": "db-1"},
                "annotations": {},
                "startsAt": starts_at,
                "endsAt": "2026-01-01T01:00:00Z",
                "fingerprint": "fp-disk",
            }
        ],
    }
    return AlertmanagerSource().normalise(WebhookRequest.build(json.dumps(body).encode()))


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    """Wait until ``check()`` is true, polling; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


@pytest.fixture
async def deployer(db_url: str) -> AsyncIterator[DslRuntime]:
    """Another process's runtime: it only deploys (no worker, no scheduler)."""
    app = App(db_url, worker=None)
    runtime = DslRuntime(app)
    async with app:
        yield runtime
    await runtime.close()


@pytest.fixture
def worker_app(db_url: str) -> Callable[[FakeClock], App]:
    def make(clock: FakeClock) -> App:
        return App(
            db_url,
            clock=clock,
            worker=WorkerOptions(poll_seconds=0.02, reap_seconds=None, grace_seconds=5),
        )

    return make


async def test_schedule_on__an_alert_starts_the_document_which_listens_for_its_resolution(
    deployer: DslRuntime, worker_app: Callable[[FakeClock], App]
) -> None:
    await deployer.deploy(ON_ALERT.format(version="1.0.0"))
    [trigger] = await deployer.app.store.list_triggers()
    assert (trigger.id, trigger.workflow, trigger.version, trigger.window) == (
        "doc:ops/follow-alert",
        "ops/follow-alert",
        "1.0.0",
        60.0,
    )
    assert trigger.filters == [{"type": "io.opsloom.alert.firing.v1"}]
    assert trigger.follow == [{"type": "io.opsloom.alert.resolved.v1"}]
    app = worker_app(FakeClock())
    runtime = DslRuntime(app)
    async with app:
        await runtime.load_deployed()
        await app.emit_events(alert("firing", "2026-01-01T00:00:00Z"))
        [run] = await app.store.list_runs(RunFilter(workflow="ops/follow-alert"))
        assert run.input["data"]["labels"] == {"alertname": "DiskFull", "instance": "db-1"}
        assert run.event_source == "/hooks/alertmanager"
        # A repeat notification with a new startsAt goes to the open run; then it resolves.
        await app.emit_events(alert("firing", "2026-01-01T00:10:00Z"))
        await app.emit_events(alert("resolved", "2026-01-01T00:10:00Z"))
        output = await app.handle(run.id).result(timeout=20)
        assert output == {"status": "resolved", "fingerprint": "fp-disk"}
        assert len(await app.store.list_runs(RunFilter(workflow="ops/follow-alert"))) == 1
        [opened] = await app.store.trigger_runs("doc:ops/follow-alert")
        assert opened.closed_at is not None
    await runtime.close()


async def test_schedule_on__a_new_version_is_the_target_and_dropping_it_removes_the_trigger(
    deployer: DslRuntime,
) -> None:
    await deployer.deploy(ON_ALERT.format(version="1.0.0"))
    await deployer.deploy(ON_ALERT.format(version="1.1.0"))
    [trigger] = await deployer.app.store.list_triggers()
    assert trigger.version == "1.1.0"
    plain = EVERY.replace("heartbeat", "follow-alert").replace("'1.0.0'", "'2.0.0'")
    plain = plain.replace("schedule:\n  every:\n    minutes: 5\n", "")
    await deployer.deploy(plain)
    assert await deployer.app.store.list_triggers() == []


async def test_schedule_on__a_filter_without_a_literal_type_is_refused_before_storing(
    deployer: DslRuntime,
) -> None:
    text = ON_ALERT.format(version="1.0.0").replace(
        "type: io.opsloom.alert.firing.v1", "type: ${ .x }"
    )
    with pytest.raises(InputError, match="literal event type"):
        await deployer.deploy(text)
    assert await deployer.app.store.list_documents() == []


async def test_schedule_every__the_scheduler_starts_a_document_it_has_not_loaded_yet(
    deployer: DslRuntime, worker_app: Callable[[FakeClock], App]
) -> None:
    clock = FakeClock()
    app = worker_app(clock)
    runtime = DslRuntime(app)
    async with app:
        # Deployed by another process after this worker started: its scheduler fires the
        # tick before the worker reloads documents, and the run waits for it.
        deployer.app.clock = clock
        await deployer.deploy(EVERY)
        [schedule] = await app.store.list_schedules()
        assert (schedule.id, schedule.kind, schedule.spec, schedule.version) == (
            "doc:ops/heartbeat",
            "every",
            "300.0",
            "1.0.0",
        )
        clock.advance(300)

        async def started() -> bool:
            return bool(await app.store.list_runs(RunFilter(workflow="ops/heartbeat")))

        await eventually(started)
        await runtime.load_deployed()
        [run] = await app.store.list_runs(RunFilter(workflow="ops/heartbeat"))
        assert await app.handle(run.id).result(timeout=20) == {"beat": True}
    await runtime.close()


async def test_schedule_on__data_in_a_filter_is_contained_in_the_event_data(
    deployer: DslRuntime,
) -> None:
    text = ON_ALERT.format(version="1.0.0").replace(
        "        type: io.opsloom.alert.firing.v1\n",
        "        type: io.opsloom.alert.firing.v1\n"
        "        data:\n"
        "          labels:\n"
        "            alertname: DiskFull\n",
    )
    await deployer.deploy(text)
    app = deployer.app
    other = alert("firing", "2026-01-01T00:00:00Z")[0].to_dict()
    other["id"] = "other"
    other["data"]["labels"] = {"alertname": "CpuHigh", "instance": "db-1"}
    await app.emit(other)
    assert await app.store.list_runs(RunFilter(workflow="ops/follow-alert")) == []
    # The alert's labels hold more than the filter names (instance): it matches.
    await app.emit_events(alert("firing", "2026-01-01T00:00:00Z"))
    [run] = await app.store.list_runs(RunFilter(workflow="ops/follow-alert"))
    assert run.input["data"]["labels"]["instance"] == "db-1"


async def test_schedule_on__debounce_and_rate_limit_come_from_the_metadata(
    deployer: DslRuntime,
) -> None:
    options = (
        "      window: PT1M\n      debounce: PT30S\n      debounceMax: 120\n"
        "      rateLimit:\n        limit: 2\n        period: PT1M\n"
        "        key: .data.labels.instance\n"
    )
    await deployer.deploy(ON_ALERT.format(version="1.0.0").replace("      window: PT1M\n", options))
    [trigger] = await deployer.app.store.list_triggers()
    assert (trigger.debounce, trigger.debounce_max) == (30.0, 120.0)
    [limit] = await deployer.app.store.rate_limits()
    assert (limit.workflow, limit.rate, limit.limit.key, limit.declared) == (
        "ops/follow-alert",
        2 / 60,
        ".data.labels.instance",
        True,
    )


async def test_schedule_on__a_bad_rate_limit_is_refused_before_storing(
    deployer: DslRuntime,
) -> None:
    text = ON_ALERT.format(version="1.0.0").replace(
        "      window: PT1M\n", "      rateLimit: 5 per minute\n"
    )
    with pytest.raises(InputError, match=r"document\.metadata\.opsloom\.rateLimit"):
        await deployer.deploy(text)
    assert await deployer.app.store.list_documents() == []

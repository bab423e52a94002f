"""The example workflows in ``examples/workflows.py`` run as documented (with a fake clock)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from opsloom import App, FakeClock, RunFailedError, RunRecord
from opsloom.api import create_api
from opsloom.api.routes.hooks import HookReceiver
from opsloom.model.schedule import Schedule
from opsloom.settings import Settings
from opsloom.triggers.sources import load_hooks_config

ROOT = Path(__file__).resolve().parents[2]
NOON = datetime(2025, 3, 14, 12, 0, tzinfo=UTC).timestamp()


@pytest.fixture
def workflows(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(ROOT))
    import examples.workflows

    return examples.workflows


@pytest.fixture
async def running(
    workflows: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[App, FakeClock]]:
    app: App = workflows.app
    clock = FakeClock(NOON)
    monkeypatch.setattr(app, "clock", clock)
    # App() reads its store URL from the settings when it opens.
    monkeypatch.setenv("OPSLOOM_DATABASE_URL", f"sqlite:///{tmp_path / 'examples.db'}")
    async with app:
        yield app, clock


async def run_reaches(app: App, run_id: str, check: Callable[[RunRecord], bool]) -> RunRecord:
    """Await a condition on the stored run (a few milliseconds per poll, never a timer)."""
    async with asyncio.timeout(10):
        while True:
            run = await app.get_run(run_id)
            if check(run):
                return run
            await asyncio.sleep(0.01)


def waiting_on(name: str) -> Callable[[RunRecord], bool]:
    return lambda run: any(s.name == name and s.status == "waiting" for s in run.steps)


async def test_examples__app_has_the_documented_workflows(workflows: ModuleType) -> None:
    names = {spec.name for spec in workflows.app.registry.workflows()}
    assert names == {"remediate", "chain", "fanout", "nightly_report"}
    # One example schedule ships with the app: the nightly report starts at 01:00 UTC.
    assert workflows.app.schedules == {"nightly_report": Schedule.parse("0 1 * * *")}


async def test_chain__adds_three(running: tuple[App, FakeClock]) -> None:
    app, _ = running
    assert await (await app.start("chain", 5)).result(timeout=10) == 8
    assert await (await app.start("chain")).result(timeout=10) == 3


async def test_fanout__measures_every_path(running: tuple[App, FakeClock], tmp_path: Path) -> None:
    app, _ = running
    missing = str(tmp_path / "missing")
    handle = await app.start(
        "fanout", {"paths": [str(tmp_path), "/", missing], "min_free_percent": 101}
    )
    result = await handle.result(timeout=10)
    assert [entry["path"] for entry in result["paths"]] == [str(tmp_path), "/", missing]
    assert "error" in result["paths"][2]
    assert result["below_threshold"] == [str(tmp_path), "/"]
    assert result["fullest"] in (str(tmp_path), "/")


async def test_remediate__approved_restarts(running: tuple[App, FakeClock]) -> None:
    app, _ = running
    handle = await app.start("remediate", {"service": "web", "severity": "critical"})
    await run_reaches(app, handle.run_id, waiting_on("approval"))
    await app.signal(handle.run_id, "approval", {"approved": True, "by": "alice"})
    result: dict[str, Any] = await handle.result(timeout=10)
    assert result["restarted"] is True
    assert result["by"] == "alice"
    assert result["action"]["idempotency_key"].startswith(f"{handle.run_id}:")
    assert result["alert"]["severity"] == "critical"


async def test_remediate__declined_expires_the_silence(running: tuple[App, FakeClock]) -> None:
    app, _ = running
    handle = await app.start("remediate", {"service": "db"})
    await app.signal(handle.run_id, "approval", {"approved": False, "reason": "peak hours"})
    result = await handle.result(timeout=10)
    assert result["restarted"] is False
    assert result["reason"] == "peak hours"
    steps = [step.name for step in (await app.get_run(handle.run_id)).steps]
    assert steps[-1] == "expire_silence"


async def test_remediate__no_approval_in_time_declines(running: tuple[App, FakeClock]) -> None:
    app, clock = running
    handle = await app.start("remediate", {"service": "queue", "approval_timeout": 600})
    await run_reaches(app, handle.run_id, waiting_on("approval"))
    clock.advance(601)
    result = await handle.result(timeout=10)
    assert result["restarted"] is False
    assert result["reason"] == "no approval in time"


async def test_remediate__cancel_compensates(running: tuple[App, FakeClock]) -> None:
    app, _ = running
    handle = await app.start("remediate", {"service": "cache"})
    await run_reaches(app, handle.run_id, waiting_on("approval"))
    await app.cancel(handle.run_id)
    with pytest.raises(RunFailedError):
        await handle.result(timeout=10)
    run = await app.get_run(handle.run_id)
    assert run.status == "cancelled"
    undo = [step for step in run.steps if step.kind == "compensation"]
    assert [step.name for step in undo] == ["expire_silence"]
    assert undo[0].status == "completed"


async def test_remediate__one_run_per_service(running: tuple[App, FakeClock]) -> None:
    app, _ = running
    first = await app.start("remediate", {"service": "api"})
    second = await app.start("remediate", {"service": "api"})
    await run_reaches(app, first.run_id, waiting_on("approval"))
    assert (await app.get_run(second.run_id)).status == "pending"
    await app.signal(first.run_id, "approval", {"approved": False})
    await first.result(timeout=10)
    await run_reaches(app, second.run_id, waiting_on("approval"))


def alertmanager_post(*alerts: tuple[str, dict[str, str]]) -> dict[str, Any]:
    """What Alertmanager posts for firing alerts, given as (fingerprint, labels)."""
    return {
        "version": "4",
        "status": "firing",
        "receiver": "opsloom",
        "groupKey": "{}:{}",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": [
            {
                "status": "firing",
                "fingerprint": fingerprint,
                "labels": labels,
                "annotations": {"summary": f"{labels['alertname']} on {labels.get('instance')}"},
                "startsAt": "2025-03-14T11:59:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus:9090/graph",
            }
            for fingerprint, labels in alerts
        ],
    }


async def test_example_trigger__an_alertmanager_alert_starts_remediate(
    running: tuple[App, FakeClock],
) -> None:
    app, _ = running
    api = create_api(app, Settings(api_token="api-token"))
    config = load_hooks_config(environ={"OPSLOOM_HOOKS_ALERTMANAGER_TOKEN": "am-secret"})
    api.state.hooks = HookReceiver(config, app.sources)
    body = alertmanager_post(
        ("fp-web-1", {"alertname": "HighLatency", "service": "web", "severity": "critical"}),
        ("fp-web-2", {"alertname": "ErrorRate", "service": "web", "severity": "warning"}),
        ("fp-db", {"alertname": "DiskFull", "instance": "db1", "severity": "critical"}),
    )
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://opsloom.test") as client:
        answer = await client.post(
            "/hooks/alertmanager", json=body, headers={"Authorization": "Bearer am-secret"}
        )
        assert answer.status_code == 202, answer.text
        again = await client.post(
            "/hooks/alertmanager", json=body, headers={"Authorization": "Bearer am-secret"}
        )
        assert len(again.json()["duplicates"]) == 3
    runs = {}
    async with asyncio.timeout(10):
        while len(runs) < 3:
            runs = {
                run.input["summary"]: run
                for run in await app.list_runs(workflow="remediate")
                if run.started_by == "trigger:code:remediate"
            }
            await asyncio.sleep(0.01)
    assert {summary: run.input for summary, run in runs.items()} == {
        "HighLatency on None": {
            "service": "web",
            "severity": "critical",
            "summary": "HighLatency on None",
        },
        "ErrorRate on None": {
            "service": "web",
            "severity": "warning",
            "summary": "ErrorRate on None",
        },
        "DiskFull on db1": {"service": "db1", "severity": "critical", "summary": "DiskFull on db1"},
    }
    # One run per service: the db1 run and one of the two web runs wait for approval, the
    # other web run queues behind its service's key until that one ends.
    first_web, second_web = sorted(
        (runs["HighLatency on None"], runs["ErrorRate on None"]), key=lambda run: run.created_at
    )
    await run_reaches(app, runs["DiskFull on db1"].id, waiting_on("approval"))
    await run_reaches(app, first_web.id, waiting_on("approval"))
    assert (await app.get_run(second_web.id)).status == "pending"
    await app.signal(first_web.id, "approval", {"approved": False})
    await run_reaches(app, second_web.id, waiting_on("approval"))


async def test_nightly_report__sleeps_until_the_time_of_day(running: tuple[App, FakeClock]) -> None:
    app, clock = running
    handle = await app.start("nightly_report", {"at": "02:30"})
    run = await run_reaches(app, handle.run_id, waiting_on("sleep"))
    sleep = next(step for step in run.steps if step.name == "sleep")
    assert sleep.wake_at == datetime(2025, 3, 15, 2, 30, tzinfo=UTC).timestamp()
    clock.advance(14.5 * 3600)
    report = await handle.result(timeout=10)
    assert report["for"] == "2025-03-15"
    assert report["generated_at"].startswith("2025-03-15T02:30")
    assert report["disks"][0]["path"] == "/"

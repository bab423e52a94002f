"""The watchdog reports stuck, overdue and quarantined runs once each: event, audit, count."""

from __future__ import annotations

from collections.abc import Callable

from opsloom import App, FakeClock
from opsloom.analytics.watchdog import QUARANTINED_TYPE, SOURCE, STUCK_TYPE, Watchdog
from opsloom.model import RunStatus
from opsloom.model.observer import Observer
from opsloom.model.run import Fence, NewRun


class Heard(Observer):
    def __init__(self) -> None:
        self.found: list[tuple[str, str]] = []

    def watchdog_found(self, kind: str, workflow: str) -> None:
        self.found.append((kind, workflow))


def new_run(run_id: str, workflow: str) -> NewRun:
    return NewRun(id=run_id, workflow=workflow, version="1", input=b"null")


async def test_watchdog__stuck_overdue_and_quarantined_runs_are_reported_once(
    make_app: Callable[..., App], clock: FakeClock
) -> None:
    app = make_app(clock=clock, client=True)
    async with app:
        store = app.store
        store.quarantine_after = 1
        start = clock.now()
        # A week of "backup" runs taking about a second: its usual p99.
        for i in range(20):
            at = start - 86400 + i * 60
            await store.create_run(new_run(f"ok{i}", "backup"), at, lease=("w", at + 60))
            await store.finish_run(
                Fence(f"ok{i}", "w", 1), RunStatus.COMPLETED, None, None, at + 1.0
            )
        # Held by a worker that stopped making progress, one of a workflow with no history,
        # one queued that nobody takes, and one whose worker crashed on it.
        await store.create_run(new_run("hung", "backup"), start, lease=("w", start + 1e6))
        await store.create_run(new_run("slow", "report"), start, lease=("w", start + 1e6))
        await store.create_run(new_run("queued", "backup"), start)
        await store.create_run(new_run("poison", "report"), start, lease=("gone", start + 5))
        assert await store.reap_expired(start + 10) == ["poison"]
        clock.advance(700)
        heard = Heard()
        dog = Watchdog(store, clock, "me", app.emit_events, heard)
        found = {f.run_id: f for f in await dog.run_once()}
        assert set(found) == {"hung", "queued", "poison"}, "report has no history: 1 h"
        assert found["hung"].kind == "stuck" and found["hung"].detail["limit_s"] == 600.0
        assert found["queued"].kind == "overdue"
        assert found["poison"].kind == "quarantined" and found["poison"].detail["recovered"] == 1
        assert sorted(heard.found) == [
            ("overdue", "backup"),
            ("quarantined", "report"),
            ("stuck", "backup"),
        ]
        assert await dog.run_once() == [], "each finding is reported once"
        stuck = await store.get_event(SOURCE, found["hung"].event().id)
        quarantined = await store.get_event(SOURCE, found["poison"].event().id)
        entries = await store.audit_entries()
        clock.advance(3000)
        later = {f.run_id: f.kind for f in await dog.run_once()}
    assert stuck is not None and stuck.event.type == STUCK_TYPE
    assert stuck.event.data["kind"] == "stuck" and stuck.event.subject == "hung"
    assert quarantined is not None and quarantined.event.type == QUARANTINED_TYPE
    actions = sorted((e.action, e.subject, e.actor) for e in entries)
    assert actions == [
        ("run.overdue", "run:queued", "system:watchdog"),
        ("run.quarantined", "run:poison", "system:watchdog"),
        ("run.stuck", "run:hung", "system:watchdog"),
    ]
    assert later == {"slow": "stuck"}, "without history a run is stuck after an hour"

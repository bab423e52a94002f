"""Golden histories: recorded runs of the example workflows, replayed against today's code.

A change to a workflow that would make a run in flight take another path shows up here as a
``NonDeterminismError`` before it reaches users. After an intended change to an example
workflow (a new version), re-record with ``python tests/engine/test_golden.py``.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from engine_waits import eventually

from opsloom import App, FakeClock, RunHandle
from opsloom.model import RunStatus
from opsloom.store.dialects.sqlite import SqliteStore

GOLDEN = Path(__file__).parent / "golden"
ROOT = Path(__file__).resolve().parents[2]

# (file name, workflow, input, signals to send once parked, seconds to advance once parked)
CASES: list[tuple[str, str, Any, list[tuple[str, Any]], float]] = [
    ("chain", "chain", 1, [], 0),
    ("fanout", "fanout", {"paths": ["/", "/tmp"]}, [], 0),
    (
        "remediate_approved",
        "remediate",
        {"service": "web", "severity": "critical"},
        [("approval", {"approved": True, "by": "alice"})],
        0,
    ),
    ("remediate_timeout", "remediate", {"service": "db", "approval_timeout": 60}, [], 61),
    ("nightly_report", "nightly_report", {"at": "02:00"}, [], 24 * 3600),
]


def examples_app(url: str, clock: FakeClock) -> App:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from examples.workflows import app

    app.configure(database_url=url)
    app.clock = clock
    return app


async def record(
    name: str, workflow: str, value: Any, signals: list[tuple[str, Any]], advance: float
) -> dict[str, Any]:
    clock = FakeClock()
    with tempfile.TemporaryDirectory() as folder:
        app = examples_app(f"sqlite:///{folder}/g.db", clock)
        async with app:
            handle = await app.start(workflow, value, run_id=f"golden-{name}")
            await eventually(lambda: _settled(handle))
            for signal, data in signals:
                await app.signal(handle.run_id, signal, data)
            if advance:
                clock.advance(advance)
            await handle.result(timeout=30)
            run = await app.get_run(handle.run_id)
    return {
        "workflow": workflow,
        "version": run.version,
        "input": run.input,
        "output": run.output,
        "created_at": run.created_at,
        "steps": [
            {
                "seq": s.seq,
                "kind": str(s.kind),
                "name": s.name,
                "status": str(s.status),
                "output": s.output,
                "error": s.error,
                "attempts": s.attempts,
                "wake_at": s.wake_at,
            }
            for s in run.steps
        ],
    }


async def _settled(handle: RunHandle) -> bool:
    return await handle.status() in (RunStatus.WAITING, RunStatus.COMPLETED)


async def replay(golden: dict[str, Any], folder: str) -> tuple[Any, list[tuple[int, str]]]:
    """Load a recorded run as if it had been interrupted, and let today's code finish it."""
    path = f"{folder}/replay.db"
    store = SqliteStore(f"sqlite:///{path}")
    await store.open()
    await store.close()
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(
            "INSERT INTO runs (id, workflow, version, status, input, created_at, started_at, "
            "updated_at) VALUES ('golden', ?, ?, 'pending', ?, ?, ?, ?)",
            (
                golden["workflow"],
                golden["version"],
                json.dumps(golden["input"]),
                golden["created_at"],
                golden["created_at"],
                golden["created_at"],
            ),
        )
        conn.execute(
            "INSERT INTO jobs (run_id, kind, available_at) VALUES ('golden', ?, 0)",
            (f"{golden['workflow']}@{golden['version']}",),
        )
        for step in golden["steps"]:
            conn.execute(
                "INSERT INTO steps (run_id, seq, kind, name, status, output, error, attempts, "
                "wake_at) VALUES ('golden', ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    step["seq"],
                    step["kind"],
                    step["name"],
                    step["status"],
                    json.dumps(step["output"]),
                    json.dumps(step["error"]),
                    step["attempts"],
                    step["wake_at"],
                ),
            )
    conn.close()
    app = examples_app(f"sqlite:///{path}", FakeClock(start=golden["created_at"] + 10**7))
    async with app:
        output = await app.result("golden", timeout=30)
        run = await app.get_run("golden")
    return output, [(s.seq, s.name) for s in run.steps]


@pytest.mark.parametrize("name", [case[0] for case in CASES])
async def test_golden__recorded_history_replays_to_the_same_output(
    name: str, tmp_path: Path
) -> None:
    golden = json.loads((GOLDEN / f"{name}.json").read_text())
    output, steps = await replay(golden, str(tmp_path))
    assert output == golden["output"]
    assert steps == [(s["seq"], s["name"]) for s in golden["steps"]], (
        "the replay recorded new steps: the workflow code no longer matches its history"
    )


async def _record_all() -> None:
    GOLDEN.mkdir(exist_ok=True)
    for case in CASES:
        data = await record(*case)
        (GOLDEN / f"{case[0]}.json").write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        print(f"recorded {case[0]}: {len(data['steps'])} steps")


if __name__ == "__main__":
    asyncio.run(_record_all())

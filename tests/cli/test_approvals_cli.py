"""``opsloom approvals …`` (Typer's runner, a temporary SQLite file)."""

from __future__ import annotations

import asyncio
import getpass
import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from opsloom.approvals.flow import new_state
from opsloom.approvals.spec import Stage
from opsloom.cli.approvals import approvals_cli
from opsloom.clock import SystemClock
from opsloom.identity.access import Identity
from opsloom.identity.audit import AuditLog
from opsloom.store import open_store

runner = CliRunner()
HEADER = {"title": "Drain node 7", "requester": "rita", "risk": "low"}


def make_db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'approvals.db'}"

    async def go() -> None:
        store, clock = open_store(url), SystemClock()
        await store.open()
        try:
            identity = Identity(store, clock)
            for user in ("rita", "alice", "bob", "gina"):
                await identity.add_user(user, roles=("approver",), actor="test")
            await identity.add_to_group("alice", "oncall", actor="test")
            await identity.add_to_group("bob", "oncall", actor="test")
            for request_id, stage in (
                ("req-1", Stage("oncall", groups=("oncall",), sla=600)),
                ("req-2", Stage("owner", users=("bob",))),
            ):
                state = new_state(request_id, None, HEADER, (stage,), clock.now())
                await store.create_approval(state, clock.now())
        finally:
            await store.close()

    asyncio.run(go())
    return url


def invoke(db: str, *args: str) -> Any:
    result = runner.invoke(approvals_cli, [*args, "--db", db, "--json"])
    return result


def audit_actors(db: str) -> list[tuple[str, str]]:
    async def go() -> list[tuple[str, str]]:
        store = open_store(db)
        await store.open()
        try:
            entries = await AuditLog(store, SystemClock()).entries()
            return [(e.actor, e.action) for e in entries if e.action.startswith("approval.")]
        finally:
            await store.close()

    return asyncio.run(go())


def test_approvals_cli__inbox_decisions_questions_delegation_stats(tmp_path: Path) -> None:
    db = make_db(tmp_path)
    mine = invoke(db, "list", "--mine", "alice")
    assert mine.exit_code == 0, mine.output
    assert [t["task"] for t in json.loads(mine.stdout)] == ["req-1.0"]

    own = invoke(db, "approve", "req-1.0", "--as", "rita")
    assert own.exit_code == 1 and "separation of duties" in own.output
    unknown = invoke(db, "approve", "req-9.0", "--as", "alice")
    assert unknown.exit_code == 2

    asked = invoke(db, "ask", "req-1.0", "Which pods?", "--as", "alice")
    assert json.loads(asked.stdout)["stages"][0]["status"] == "clarifying"
    questions = json.loads(invoke(db, "list", "--mine", "rita").stdout)
    assert [q["question"] for q in questions] == ["Which pods?"]
    answered = invoke(db, "answer", "req-1", "The batch ones.", "--as", "rita")
    assert answered.exit_code == 0, answered.output

    approved = invoke(db, "approve", "req-1.0", "--as", "alice", "--comment", "go")
    view = json.loads(approved.stdout)
    assert view["status"] == "approved" and view["decided_by"] == "alice"

    delegated = invoke(db, "delegate", "req-2.0", "--to", "gina", "--as", "bob")
    assert delegated.exit_code == 0, delegated.output
    denied = invoke(db, "deny", "req-2.0", "--as", "gina", "--comment", "node is busy")
    assert json.loads(denied.stdout)["reason"] == "node is busy"

    shown = invoke(db, "show", "req-2")
    assert json.loads(shown.stdout)["stages"][0]["votes"][0]["as"] == "user:bob"
    table = runner.invoke(approvals_cli, ["show", "req-2", "--db", db], env={"COLUMNS": "200"})
    assert "denied by gina: node is busy" in table.stdout

    stats = json.loads(invoke(db, "stats").stdout)
    assert [(s["stage"], s["decided"], s["escalations"]) for s in stats] == [
        ("oncall", 1, 0),
        ("owner", 1, 0),
    ]
    who = f"cli:{getpass.getuser()}"
    assert audit_actors(db) == [
        (f"{who} as alice", "approval.clarification_asked"),
        (f"{who} as rita", "approval.clarification_answered"),
        (f"{who} as alice", "approval.approved"),
        (f"{who} as bob", "approval.delegated"),
        (f"{who} as gina", "approval.denied"),
    ]

"""The hash-chained audit log, on every store dialect: appends, concurrent appenders, and
tampering (an edited, re-sealed or removed row) found and named by ``verify``."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from rawsql import execute

from opsloom import App, FakeClock
from opsloom.connectors.secret import SecretBox
from opsloom.errors import InputError
from opsloom.identity.audit import GENESIS, AuditEntry, AuditLog
from opsloom.store.audit import entry_hash, seal_of


@pytest.fixture
async def app(db_url: str) -> AsyncIterator[App]:
    app = App(db_url, worker=None, clock=FakeClock())
    async with app:
        yield app


@pytest.fixture
def log(app: App) -> AuditLog:
    return AuditLog(app.store, app.clock)


async def fill(app: App, log: AuditLog, count: int) -> None:
    assert isinstance(app.clock, FakeClock)
    for i in range(1, count + 1):
        await log.append(f"user{i}", "approval.decide", f"task:{i}", {"approved": i % 2 == 0})
        app.clock.advance(10)


async def test_append__chains_each_entry_to_the_one_before(app: App, log: AuditLog) -> None:
    first = await log.append("alice", "approval.decide", "task:1", {"approved": True, "n": 1.5})
    second = await log.append("bob", "approval.delegate", "task:1", {"to": "carol"})
    assert (first.seq, first.prev_hash) == (1, GENESIS)
    assert (second.seq, second.prev_hash) == (2, first.hash)
    assert first.hash == entry_hash(
        1, first.at, "alice", "approval.decide", "task:1", {"approved": True, "n": 1.5}, GENESIS
    )
    assert await log.entries() == [first, second]
    assert first.data == {"approved": True, "n": 1.5}
    assert await app.store.audit_head() == (2, second.hash)
    assert (await log.verify()).ok


async def test_append__refuses_what_cannot_be_hashed(log: AuditLog) -> None:
    with pytest.raises(InputError):
        await log.append("alice", "x.y", "task:1", {"value": math.nan})
    with pytest.raises(InputError):
        await log.append("alice", "x.y", "task:1", {"value": object()})
    with pytest.raises(InputError):
        await log.append("", "x.y", "task:1")
    assert await log.entries() == []


async def test_verify__an_empty_and_an_intact_log_are_ok(app: App, log: AuditLog) -> None:
    assert (await log.verify()).ok
    await fill(app, log, 5)
    result = await log.verify()
    assert (result.ok, result.checked, result.first_bad) == (True, 5, None)


async def test_entries__since_and_limit(app: App, log: AuditLog) -> None:
    start = app.clock.now()
    await fill(app, log, 5)
    assert [e.seq for e in await log.entries(since=start + 20)] == [3, 4, 5]
    assert [e.seq for e in await log.entries(limit=2)] == [1, 2]
    assert [e.seq async for e in log.walk(since=start + 40)] == [5]


async def test_concurrent_appenders__make_one_unbroken_chain(db_url: str) -> None:
    # Two stores on one database: two writers, as two processes would have.
    apps = [App(db_url, worker=None, clock=FakeClock()) for _ in range(2)]
    for app in apps:
        await app.open()
    try:
        logs = [AuditLog(app.store, app.clock) for app in apps]

        async def append_many(index: int) -> None:
            for i in range(25):
                await asyncio.gather(
                    *(
                        logs[index].append(f"p{index}", "test.append", f"n:{i}", {"k": k})
                        for k in range(2)
                    )
                )

        await asyncio.gather(append_many(0), append_many(1))
        entries = await logs[0].entries()
        assert [e.seq for e in entries] == list(range(1, 101))
        assert {e.actor for e in entries} == {"p0", "p1"}
        for before, after in itertools.pairwise(entries):
            assert after.prev_hash == before.hash
        result = await logs[1].verify()
        assert (result.ok, result.checked) == (True, 100)
    finally:
        for app in apps:
            await app.close()


async def test_tampering__an_edited_row_is_named(app: App, log: AuditLog, db_url: str) -> None:
    await fill(app, log, 5)
    execute(db_url, "UPDATE audit_log SET data = ? WHERE seq = 3", ('{"approved":true}',))
    result = await log.verify()
    assert not result.ok
    assert result.first_bad is not None
    seq, reason = result.first_bad
    assert seq == 3
    assert "does not match its hash" in reason
    assert result.entry is not None
    assert (result.entry.actor, result.entry.action) == ("user3", "approval.decide")
    assert result.checked == 2
    assert result.to_dict()["first_bad"]["actor"] == "user3"


@pytest.mark.parametrize(
    ("column", "value"),
    [("actor", "mallory"), ("action", "approval.deny"), ("subject", "task:9"), ("at", 1.0)],
)
async def test_tampering__any_edited_column_is_found(
    app: App, log: AuditLog, db_url: str, column: str, value: object
) -> None:
    await fill(app, log, 3)
    execute(db_url, f"UPDATE audit_log SET {column} = ? WHERE seq = 2", (value,))
    result = await log.verify()
    assert result.first_bad is not None and result.first_bad[0] == 2


async def test_tampering__data_that_is_no_longer_json_is_named(
    app: App, log: AuditLog, db_url: str
) -> None:
    await fill(app, log, 2)
    execute(db_url, "UPDATE audit_log SET data = ? WHERE seq = 1", ("{oops",))
    result = await log.verify()
    assert result.first_bad == (1, "its data is not valid JSON any more")


async def test_tampering__a_resealed_row_breaks_the_next_link(
    app: App, log: AuditLog, db_url: str
) -> None:
    await fill(app, log, 4)
    entry = (await log.entries())[1]
    forged = {"approved": False}
    digest = entry_hash(
        entry.seq, entry.at, entry.actor, entry.action, entry.subject, forged, entry.prev_hash
    )
    execute(
        db_url,
        "UPDATE audit_log SET data = ?, hash = ? WHERE seq = 2",
        (json.dumps(forged), digest),
    )
    result = await log.verify()
    # The forged entry's seal gives it away; without the key, the next link would.
    assert result.first_bad is not None
    assert result.first_bad[0] == 2
    assert "seal does not match" in result.first_bad[1]
    execute(db_url, "UPDATE audit_log SET mac = NULL")
    result = await log.verify()
    assert result.first_bad is not None
    assert result.first_bad[0] == 3
    assert "prev_hash" in result.first_bad[1]


async def test_tampering__a_resealed_last_row_differs_from_the_head(
    app: App, log: AuditLog, db_url: str
) -> None:
    await fill(app, log, 3)
    entry = (await log.entries())[-1]
    digest = entry_hash(
        entry.seq, entry.at, "mallory", entry.action, entry.subject, {}, entry.prev_hash
    )
    execute(
        db_url,
        "UPDATE audit_log SET actor = 'mallory', data = '{}', hash = ? WHERE seq = 3",
        (digest,),
    )
    result = await log.verify()
    assert result.first_bad is not None and result.first_bad[0] == 3
    assert result.entry is not None and result.entry.actor == "mallory"


@pytest.mark.parametrize(("seq", "named"), [(1, 1), (3, 3), (5, 5)])
async def test_tampering__a_deleted_row_is_found(
    app: App, log: AuditLog, db_url: str, seq: int, named: int
) -> None:
    await fill(app, log, 5)
    execute(db_url, "DELETE FROM audit_log WHERE seq = ?", (seq,))
    result = await log.verify()
    assert not result.ok
    assert result.first_bad is not None
    assert result.first_bad[0] == named
    assert "missing" in result.first_bad[1]
    assert result.checked == seq - 1


def forge_from(entries: list[AuditEntry], seq: int, data: dict[str, object]) -> list[tuple]:
    """What someone with write access to the database but not the key does: change one entry
    and hash it and every entry after it again, so the plain chain fits."""
    rows = []
    prev = entries[seq - 2].hash if seq > 1 else GENESIS
    for entry in entries[seq - 1 :]:
        content = data if entry.seq == seq else entry.data
        digest = entry_hash(
            entry.seq, entry.at, entry.actor, entry.action, entry.subject, content, prev
        )
        rows.append((json.dumps(content), prev, digest, entry.seq))
        prev = digest
    return rows


async def test_seal__every_entry_is_sealed_with_the_key_kept_outside_the_database(
    app: App, log: AuditLog, secret_key: str
) -> None:
    await fill(app, log, 3)
    key = SecretBox(secret_key).derive("opsloom audit seal v1")
    entries = await log.entries()
    assert [entry.mac for entry in entries] == [seal_of(key, entry.hash) for entry in entries]
    result = await log.verify()
    assert result.to_dict() == {
        "ok": True,
        "checked": 3,
        "sealed": 3,
        "seals_checked": True,
        "first_bad": None,
    }


async def test_tampering__a_chain_hashed_again_without_the_key_is_found(
    app: App, log: AuditLog, db_url: str
) -> None:
    await fill(app, log, 4)
    rows = forge_from(await log.entries(), 2, {"approved": True, "forged": 1})
    for data, prev, digest, seq in rows:
        execute(
            db_url,
            "UPDATE audit_log SET data = ?, prev_hash = ?, hash = ? WHERE seq = ?",
            (data, prev, digest, seq),
        )
    execute(db_url, "UPDATE audit_head SET hash = ? WHERE id = 1", (rows[-1][2],))
    result = await log.verify()
    assert not result.ok
    assert result.first_bad is not None and result.first_bad[0] == 2
    assert "seal does not match the audit key" in result.first_bad[1]
    assert (result.checked, result.sealed) == (1, 2)


async def test_tampering__an_entry_without_a_seal_after_sealed_ones_is_found(
    app: App, log: AuditLog, db_url: str
) -> None:
    await fill(app, log, 3)
    execute(db_url, "UPDATE audit_log SET mac = NULL WHERE seq = 3")
    result = await log.verify()
    assert result.first_bad is not None and result.first_bad[0] == 3
    assert "no seal although entries before it are sealed" in result.first_bad[1]


async def test_seal__entries_from_before_the_key_are_vouched_for_by_the_first_sealed_one(
    app: App, log: AuditLog, db_url: str
) -> None:
    key = app.store.audit_key
    app.store.audit_key = None  # a log written before opsloom sealed its entries
    await fill(app, log, 3)
    app.store.audit_key = key
    await fill(app, log, 2)
    assert [entry.mac is None for entry in await log.entries()] == [True] * 3 + [False] * 2
    assert (await log.verify()).to_dict()["sealed"] == 2
    assert (await log.verify()).ok
    # Hashing the unsealed entries again breaks the link to the first sealed one.
    rows = forge_from((await log.entries())[:3], 2, {"approved": "forged"})
    for data, prev, digest, seq in rows:
        execute(
            db_url,
            "UPDATE audit_log SET data = ?, prev_hash = ?, hash = ? WHERE seq = ?",
            (data, prev, digest, seq),
        )
    result = await log.verify()
    assert result.first_bad is not None and result.first_bad[0] == 4
    assert "prev_hash" in result.first_bad[1]


async def test_verify__without_the_key_checks_the_chain_and_says_seals_were_not_checked(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with App(db_url, worker=None, clock=FakeClock()) as writer:
        await fill(writer, writer.audit, 2)
    monkeypatch.delenv("OPSLOOM_SECRET_KEY")
    monkeypatch.chdir(tmp_path)  # no key file here, and verifying must not make one
    async with App(db_url, worker=None, clock=FakeClock()) as reader:
        result = await reader.audit.verify()
    assert (result.ok, result.checked, result.sealed, result.seals_checked) == (True, 2, 2, False)
    assert not (tmp_path / "opsloom.key").exists()


async def test_open__warns_when_this_process_would_seal_with_another_key(
    db_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async with App(db_url, worker=None, clock=FakeClock()) as first:
        await fill(first, first.audit, 1)
    async with App(db_url, worker=None, clock=FakeClock()):
        assert "audit_key_mismatch" not in [getattr(r, "event", None) for r in caplog.records]
    monkeypatch.setenv("OPSLOOM_SECRET_KEY", SecretBox.generate_key().decode())
    async with App(db_url, worker=None, clock=FakeClock()):
        pass
    [warning] = [r for r in caplog.records if getattr(r, "event", None) == "audit_key_mismatch"]
    assert "not the one that sealed it" in warning.getMessage()

"""``opsloom audit``: check the audit log's hash chain and export it as JSON lines.

``audit verify`` exits 1 naming the first entry that does not fit the chain (its seq, actor,
action and what is wrong). ``audit export`` writes one JSON object per line, in chain order,
with everything needed to check the chain elsewhere (``at`` is the exact time that is hashed);
an entry beyond the log head (not appended by the log itself) carries ``"beyond_head": true``.
"""

from __future__ import annotations

import json
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, TextIO

import typer

from opsloom.app import App
from opsloom.cli.console import DbOption, JsonOption, client, fail, out, print_json
from opsloom.identity.audit import AuditLog, VerifyResult

audit_cli = typer.Typer(help="Check and export the tamper-evident audit log.", no_args_is_help=True)

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str, now: float) -> float:
    """Epoch seconds from ``--since``: an ISO 8601 time (UTC unless it says otherwise), epoch
    seconds, or a duration back from ``now`` (``90s``, ``15m``, ``12h``, ``7d``).

    Raises:
        ValueError: none of these.
    """
    value = text.strip()
    duration = _DURATION.match(value)
    if duration:
        return now - float(duration.group(1)) * _UNIT_SECONDS[duration.group(2)]
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"--since {text!r} is not an ISO 8601 time, epoch seconds or a duration like 12h"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def describe(result: VerifyResult) -> str:
    """One line saying what ``verify`` found."""
    if result.first_bad is None:
        line = f"audit log intact: {result.checked} entries checked"
        if not result.seals_checked:
            return (
                line + "; their seals were not checked: the audit key is not here "
                "(set OPSLOOM_SECRET_KEY or run where its key file is)"
            )
        if result.sealed < result.checked:
            unsealed = result.checked - result.sealed
            return line + f", {unsealed} from before the log had a key vouched for by the rest"
        return line + ", every seal matches"
    seq, reason = result.first_bad
    who = ""
    if result.entry is not None:
        who = f" (actor {result.entry.actor!r}, action {result.entry.action!r})"
    return (
        f"audit log tampered: entry {seq}{who}: {reason}; "
        f"{result.checked} entries before it are intact"
    )


@audit_cli.command("verify")
def audit_verify(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Recompute the hash chain; exit 1 naming the first entry that was tampered with."""
    result = client(db, lambda app: app.audit.verify())
    if as_json:
        print_json(result.to_dict())
        if not result.ok:
            raise typer.Exit(1)
        return
    if not result.ok:
        fail(describe(result))
    out.print(describe(result), highlight=False)


@audit_cli.command("export")
def audit_export(
    since: Annotated[
        str | None,
        typer.Option(
            help="Only entries at or after this time: ISO 8601, epoch seconds, or a duration "
            "back from now (15m, 12h, 7d)."
        ),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file, not stdout.")
    ] = None,
    db: DbOption = None,
) -> None:
    """Write audit entries as JSON lines, in chain order."""

    async def export(app: App) -> int:
        start = None
        if since is not None:
            try:
                start = parse_since(since, app.clock.now())
            except ValueError as exc:
                fail(str(exc), 2)
        log = app.audit
        if output is None:
            return await _write(log, start, sys.stdout)
        try:
            with output.open("w", encoding="utf-8") as handle:
                return await _write(log, start, handle)
        except OSError as exc:
            fail(f"cannot write {output}: {exc}", 2)

    count = client(db, export)
    if output is not None:
        out.print(f"{count} audit entries written to {output}", highlight=False)


async def _write(log: AuditLog, since: float | None, handle: TextIO) -> int:
    count = 0
    head = await log.head()
    async for entry in log.walk(since=since):
        row = entry.to_dict()
        if entry.seq > head:
            head = await log.head()  # appended while exporting, or not by the log
            if entry.seq > head:
                row["beyond_head"] = True
        handle.write(json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n")
        count += 1
    handle.flush()
    return count

"""Dead letters: events a trigger matched but could not turn into a run, kept with the reason.

The intake (:mod:`opsloom.store.trigger`) writes one in its own transaction when a trigger's
dedup-key or input expression fails on an event, or the input it builds cannot be stored. The
event itself is stored as every event is. Replaying a dead letter runs that trigger, as it is
defined now (fixed, presumably), on the stored event again: a run starts (or the event reaches
the open run of its key) and the letter is marked replayed; if it fails again nothing changes
and the error says why.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from opsloom.codec import decode
from opsloom.errors import DeadLetterNotFoundError, DeadLetterStateError
from opsloom.model.trigger import _Failed, choose
from opsloom.store.event import EVENT_COLUMNS, event_from_row
from opsloom.store.job import nudge
from opsloom.store.trigger import SELECT_ONE, fire, trigger_from_row
from opsloom.store.tx import WORK, Row, Transactions, Tx

_COLUMNS = (
    "id, trigger_id, workflow, event_source, event_id, reason, detail, created_at, "
    "replayed_at, run_id"
)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One event a trigger could not start a run for."""

    id: int
    trigger_id: str
    workflow: str
    event_source: str
    event_id: str
    #: ``key`` (the dedup-key expression failed) or ``input`` (building the input failed).
    reason: str
    detail: str
    created_at: float
    replayed_at: float | None = None
    run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of the API and of ``--json``."""
        return asdict(self)


def _letter(row: Row) -> DeadLetter:
    return DeadLetter(*row)


class DeadLetterOps(Transactions):
    """Listing and replaying dead letters; mixed into both stores."""

    async def list_dead_letters(self, *, limit: int = 50, pending: bool = True) -> list[DeadLetter]:
        """The newest dead letters (``pending``: only those not replayed yet)."""
        where = "WHERE replayed_at IS NULL " if pending else ""
        rows = await self.read(
            lambda tx: tx.all(
                f"SELECT {_COLUMNS} FROM dead_letters {where}ORDER BY id DESC LIMIT ?", (limit,)
            )
        )
        return [_letter(row) for row in rows]

    async def replay_dead_letter(self, letter_id: int, now: float) -> DeadLetter:
        """Run the letter's trigger on its event again (``DeadLetterNotFoundError``,
        ``DeadLetterStateError`` when replayed already or when it fails again)."""

        async def replay(tx: Tx) -> DeadLetter:
            row = await tx.one(f"SELECT {_COLUMNS} FROM dead_letters WHERE id = ?", (letter_id,))
            if row is None:
                raise DeadLetterNotFoundError(f"no dead letter {letter_id}")
            letter = _letter(row)
            if letter.replayed_at is not None:
                raise DeadLetterStateError(f"dead letter {letter_id} was replayed already")
            stored = await tx.one(
                f"SELECT {EVENT_COLUMNS} FROM events WHERE source = ? AND id = ?",
                (letter.event_source, letter.event_id),
            )
            trigger_row = await tx.one(SELECT_ONE, (letter.trigger_id,))
            if stored is None or trigger_row is None:
                gone = "event" if stored is None else f"trigger {letter.trigger_id!r}"
                raise DeadLetterStateError(f"dead letter {letter_id}: its {gone} is gone")
            event = event_from_row(stored).event
            trigger = trigger_from_row(trigger_row)
            shape = event.to_dict()
            filters = await tx.all(
                "SELECT position, filter FROM trigger_filters WHERE trigger_id = ?", (trigger.id,)
            )
            chosen = choose([(trigger.id, int(p), decode(f)) for p, f in filters], shape)
            if not chosen:
                raise DeadLetterStateError(
                    f"dead letter {letter_id}: the event no longer matches trigger {trigger.id!r}"
                )
            position = chosen[0][1]
            # Checked before anything is written, so that a refusal leaves no trace.
            for built in (trigger.key_of(position, shape), trigger.run_input(shape)):
                if isinstance(built, _Failed) and built.reason:
                    raise DeadLetterStateError(
                        f"dead letter {letter_id} fails again: {built.reason}"
                    )
            woken = await fire(tx, trigger, position, event, shape, set(), now)
            await nudge(tx, woken, now)
            run = await tx.one(
                "SELECT id FROM runs WHERE event_source = ? AND event_id = ? AND started_by = ?",
                (event.source, event.id, f"trigger:{trigger.id}"),
            )
            run_id = woken[0] if run is None and woken else (None if run is None else run[0])
            await tx.execute(
                "UPDATE dead_letters SET replayed_at = ?, run_id = ? WHERE id = ?",
                (now, run_id, letter_id),
            )
            return DeadLetter(**{**asdict(letter), "replayed_at": now, "run_id": run_id})

        return await self.write(replay, WORK)

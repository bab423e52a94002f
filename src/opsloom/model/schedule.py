"""Schedules: when a workflow starts by itself. Pure types and tick arithmetic, no I/O.

A schedule is one of:

- ``cron``: a cron expression (five fields, or six with seconds) evaluated in a time zone, so
  ``0 3 * * *`` in ``Europe/Berlin`` is 03:00 local time on both sides of a DST change (a tick
  that falls into the hour skipped in spring moves to the first valid minute after it);
- ``every``: a fixed period in seconds, counted from when the schedule was created;
- ``after``: a delay after the previous run of the schedule has ended (the DSL's
  ``schedule.after``), so runs never overlap.

Every tick has one run id, ``<schedule id>@<tick in UTC>``: several schedulers that fire the
same tick create one run, because the store creates a run id once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from opsloom.codec import encode
from opsloom.errors import ConfigurationError

Misfire = Literal["skip", "run_once"]
ScheduleKind = Literal["cron", "every", "after"]

#: A tick this late is still run normally; later ones are "missed" and follow the misfire
#: policy (the scheduler was down, or the machine slept).
DEFAULT_MISFIRE_GRACE = 60.0


@dataclass(frozen=True, slots=True)
class Schedule:
    """When a workflow should start on its own.

    Args:
        cron: a cron expression (``"*/5 * * * *"``); or
        every: a period in seconds; or
        after: seconds to wait after the previous run ended before starting the next.
        timezone: the IANA zone a cron expression is read in (default UTC).
        misfire: ticks missed while no scheduler ran: ``"skip"`` them, or ``"run_once"``
            (one run for the most recent missed tick).
        input: the input of every scheduled run.
    """

    cron: str | None = None
    every: float | None = None
    after: float | None = None
    timezone: str = "UTC"
    misfire: Misfire = "skip"
    input: Any = None
    misfire_grace: float = DEFAULT_MISFIRE_GRACE

    def __post_init__(self) -> None:
        given = [k for k in ("cron", "every", "after") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ConfigurationError(
                f"a schedule needs exactly one of cron, every, after (got {given or 'none'})"
            )
        if self.cron is not None and not croniter.is_valid(self.cron):
            raise ConfigurationError(f"invalid cron expression {self.cron!r}")
        for name in ("every", "after"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigurationError(f"schedule {name} must be a positive number of seconds")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigurationError(f"unknown time zone {self.timezone!r}") from exc
        if self.misfire not in ("skip", "run_once"):
            raise ConfigurationError(f"misfire must be 'skip' or 'run_once', not {self.misfire!r}")

    @classmethod
    def parse(cls, value: str | Schedule) -> Schedule:
        """A schedule from a cron string (``"*/5 * * * *"``) or an existing schedule."""
        return value if isinstance(value, Schedule) else cls(cron=value)

    @property
    def kind(self) -> ScheduleKind:
        if self.cron is not None:
            return "cron"
        return "every" if self.every is not None else "after"

    @property
    def spec(self) -> str:
        """What the schedule says, as text (stored, and compared to notice a change)."""
        if self.cron is not None:
            return self.cron
        return repr(float(self.every if self.every is not None else self.after or 0))

    def next_tick(self, after: float, anchor: float) -> float:
        """The first tick strictly later than ``after`` (``anchor``: when ``every`` counts from)."""
        if self.cron is not None:
            zone = ZoneInfo(self.timezone)
            start = datetime.fromtimestamp(after, tz=zone)
            nxt: datetime = croniter(self.cron, start).get_next(datetime)
            return nxt.timestamp()
        if self.every is not None:
            return anchor + (self._periods(after, anchor) + 1) * self.every
        raise ValueError("an 'after' schedule has no ticks of its own")

    def _periods(self, at: float, anchor: float) -> int:
        """``n`` of the latest tick ``anchor + n * every`` at or before ``at`` (0: the anchor
        or earlier), judged on those very values: ``(at - anchor) // every`` alone is one
        short for some ticks when ``every`` is no binary fraction (7.7 s), and the tick after
        such a tick would be the tick itself."""
        assert self.every is not None
        n = max(int((at - anchor) // self.every), 0)
        while anchor + (n + 1) * self.every <= at:
            n += 1
        while n > 0 and anchor + n * self.every > at:
            n -= 1
        return n

    def latest_ticks(self, since: float, until: float, anchor: float, limit: int) -> list[float]:
        """The latest ``limit`` ticks in ``[since, until]``, oldest first."""
        ticks: list[float] = []
        if self.cron is not None:
            zone = ZoneInfo(self.timezone)
            back = croniter(self.cron, datetime.fromtimestamp(until + 1e-3, tz=zone))
            while len(ticks) < limit:
                tick = back.get_prev(datetime).timestamp()
                if tick < since:
                    break
                ticks.append(tick)
        elif self.every is not None:
            # Each tick as the scheduler computes it, anchor + n * every: stepping back by
            # ``every`` drifts from it when ``every`` is no binary fraction (7.7 s), and the
            # run ids name the tick to the microsecond.
            n = self._periods(until, anchor)
            while n > 0 and len(ticks) < limit:
                tick = anchor + n * self.every
                if tick < since:
                    break
                ticks.append(tick)
                n -= 1
        return ticks[::-1]

    def last_tick(self, now: float, anchor: float) -> float:
        """The latest tick at or before ``now`` (what ``run_once`` runs after downtime)."""
        if self.cron is not None:
            zone = ZoneInfo(self.timezone)
            # get_prev is strictly before its start: start just after now to include now.
            start = datetime.fromtimestamp(now + 1e-3, tz=zone)
            prev: datetime = croniter(self.cron, start).get_prev(datetime)
            return prev.timestamp()
        if self.every is not None:
            return anchor + self._periods(now, anchor) * self.every
        raise ValueError("an 'after' schedule has no ticks of its own")

    def first_tick(self, now: float) -> float | None:
        """When a new schedule first fires (``after``: at once, with nothing to wait for)."""
        if self.kind == "after":
            return now
        return self.next_tick(now, anchor=now)


@dataclass(slots=True)
class ScheduleRecord:
    """A schedule as stored: its definition and where it stands."""

    id: str
    workflow: str
    version: str | None
    kind: ScheduleKind
    spec: str
    timezone: str
    misfire: Misfire
    input: bytes | None
    anchor: float
    next_at: float | None
    paused: bool = False
    last_at: float | None = None
    last_run_id: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0

    def schedule(self, input: Any = None) -> Schedule:
        """The :class:`Schedule` this record stores."""
        spec: dict[str, Any] = {}
        if self.kind == "cron":
            spec["cron"] = self.spec
        else:
            spec[self.kind] = float(self.spec)
        return Schedule(timezone=self.timezone, misfire=self.misfire, input=input, **spec)


def tick_run_id(schedule_id: str, tick: float) -> str:
    """The run id of one tick of one schedule: the same for every scheduler."""
    stamp = datetime.fromtimestamp(tick, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"{schedule_id}@{stamp}"


def schedule_record(
    schedule_id: str, workflow: str, version: str | None, schedule: Schedule, now: float
) -> ScheduleRecord:
    """A new stored schedule (its first tick counted from ``now``)."""
    return ScheduleRecord(
        id=schedule_id,
        workflow=workflow,
        version=version,
        kind=schedule.kind,
        spec=schedule.spec,
        timezone=schedule.timezone,
        misfire=schedule.misfire,
        input=None if schedule.input is None else encode(schedule.input, what="schedule input"),
        anchor=now,
        next_at=schedule.first_tick(now),
    )

"""Tick arithmetic of schedules: cron in time zones (DST), intervals, the latest missed tick."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from opsloom.errors import ConfigurationError
from opsloom.model.schedule import Schedule, tick_run_id

BERLIN = ZoneInfo("Europe/Berlin")


def ts(*args: int, tz: ZoneInfo = BERLIN) -> float:
    return datetime(*args, tzinfo=tz).timestamp()  # type: ignore[misc]


def test_cron__every_five_minutes_in_utc() -> None:
    s = Schedule(cron="*/5 * * * *")
    t0 = ts(2026, 11, 29, 10, 2, tz=ZoneInfo("UTC"))
    first = s.next_tick(t0, anchor=t0)
    assert first == ts(2026, 11, 29, 10, 5, tz=ZoneInfo("UTC"))
    assert s.next_tick(first, anchor=t0) == first + 300  # strictly after


def test_cron__local_time_across_daylight_saving_changes() -> None:
    s = Schedule(cron="0 3 * * *", timezone="Europe/Berlin")
    before = ts(2026, 3, 28, 12, 0)
    spring = s.next_tick(before, anchor=before)
    assert spring == ts(2026, 3, 29, 3, 0)  # 03:00 CEST, the day the clocks jump
    assert s.next_tick(spring, anchor=before) - spring == 24 * 3600
    autumn_eve = ts(2026, 10, 24, 12, 0)
    sunday = s.next_tick(autumn_eve, anchor=autumn_eve)
    assert sunday == ts(2026, 10, 25, 3, 0)
    assert sunday - s.last_tick(sunday - 1, anchor=autumn_eve) == 25 * 3600  # a 25-hour day


def test_cron__a_tick_in_the_skipped_hour_moves_to_the_next_valid_time() -> None:
    s = Schedule(cron="30 2 * * *", timezone="Europe/Berlin")
    before = ts(2026, 3, 28, 12, 0)
    tick = s.next_tick(before, anchor=before)
    assert datetime.fromtimestamp(tick, tz=BERLIN).strftime("%m-%d %H:%M") == "03-29 03:00"


def test_every__counts_from_the_anchor() -> None:
    s = Schedule(every=60)
    assert s.next_tick(1000.0, anchor=1000.0) == 1060.0
    assert s.next_tick(1059.9, anchor=1000.0) == 1060.0
    assert s.next_tick(1060.0, anchor=1000.0) == 1120.0
    assert s.last_tick(1175.0, anchor=1000.0) == 1120.0


def test_latest_ticks__are_named_as_the_scheduler_names_them() -> None:
    # A period that is no binary fraction: the scheduler's ticks are anchor + n * 7.7.
    anchor, every = 1_800_000_000.123, 7.7
    fired = [anchor + n * every for n in range(1, 301)]
    ticks = Schedule(every=every).latest_ticks(anchor, fired[-1] + every / 2, anchor, 500)
    assert [tick_run_id("s", t) for t in ticks] == [tick_run_id("s", t) for t in fired]


def test_last_tick__includes_a_tick_exactly_now() -> None:
    s = Schedule(cron="0 * * * *")
    hour = ts(2026, 11, 29, 10, 0, tz=ZoneInfo("UTC"))
    assert s.last_tick(hour, anchor=0) == hour
    assert s.last_tick(hour + 59, anchor=0) == hour


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one of cron, every, after"),
        ({"cron": "* * *", "every": 5}, "exactly one"),
        ({"cron": "61 * * * *"}, "invalid cron expression"),
        ({"every": 0}, "positive"),
        ({"after": -1}, "positive"),
        ({"cron": "* * * * *", "timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"every": 5, "misfire": "maybe"}, "misfire"),
    ],
)
def test_schedule__invalid_definitions_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Schedule(**kwargs)  # type: ignore[arg-type]


def test_tick_run_id__one_id_per_schedule_and_tick() -> None:
    a = tick_run_id("code:report", 1_700_000_000.0)
    assert a == "code:report@2023-11-14T22:13:20.000000Z"
    assert tick_run_id("code:report", 1_700_000_060.0) != a

"""Injectable clock: production reads the system clock, tests advance a fake one.

Time inside opsloom is a float of seconds since the Unix epoch (UTC) for storage and arithmetic;
``utcnow()`` gives the timezone-aware datetime for anything shown to people.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """Source of the current time."""

    def now(self) -> float:
        """Seconds since the epoch, UTC."""
        ...

    def subscribe(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever time jumps (fake clocks only); real clocks ignore it."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait until ``seconds`` have passed on this clock."""
        ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> float:
        return time.time()

    def subscribe(self, callback: Callable[[], None]) -> None:
        return None

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class FakeClock:
    """A clock that only moves when told to, so tests never sleep for timers."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._subscribers: list[Callable[[], None]] = []

    def now(self) -> float:
        return self._now

    def subscribe(self, callback: Callable[[], None]) -> None:
        self._subscribers.append(callback)

    def advance(self, seconds: float) -> None:
        """Move time forward and wake everything that waits on it."""
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        self._now += seconds
        for callback in list(self._subscribers):
            callback()

    async def sleep(self, seconds: float) -> None:
        """Return once the clock has been advanced past ``seconds`` from now."""
        target = self._now + seconds
        while self._now < target:
            moved = asyncio.Event()
            self._subscribers.append(moved.set)
            try:
                await moved.wait()
            finally:
                self._subscribers.remove(moved.set)


def to_datetime(ts: float | None) -> datetime | None:
    """Convert stored epoch seconds into an aware UTC datetime."""
    return None if ts is None else datetime.fromtimestamp(ts, tz=UTC)

"""Waiting for a condition in runbook tests: poll it (bounded), never sleep for time to pass."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any


async def until(check: Callable[[], Any], what: str, timeout: float = 45.0) -> Any:
    """The first truthy value of ``check()`` (plain or a coroutine); fails after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if asyncio.iscoroutine(found):
            found = await found
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)

"""Identifier generation.

Run ids are time-ordered (48-bit millisecond timestamp, then 80 random bits, as 32 hex digits)
so that new rows land at the end of the primary-key index instead of scattering across it.
"""

from __future__ import annotations

import os
import time


def new_id() -> str:
    """A new, time-ordered, random 128-bit identifier in hex."""
    ms = time.time_ns() // 1_000_000
    return f"{ms:012x}{os.urandom(10).hex()}"


def new_token() -> str:
    """A random identifier for a worker process."""
    return os.urandom(8).hex()

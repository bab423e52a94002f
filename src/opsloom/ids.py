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


#: The characters a caller-chosen run id may use: printable ASCII without spaces (``!`` to
#: ``~``), so an id fits in a URL path segment once percent-encoded, in a header and in a log line.
RUN_ID_PATTERN = r"^[!-~]{1,200}$"
#: The range of run priorities: what a 64-bit database integer holds.
MIN_PRIORITY = -(2**63)
MAX_PRIORITY = 2**63 - 1
#: The longest caller-chosen run id.
MAX_RUN_ID_LENGTH = 200


def run_id_problem(run_id: str) -> str | None:
    """Why ``run_id`` cannot name a new run, or ``None`` when it can."""
    if not 0 < len(run_id) <= MAX_RUN_ID_LENGTH:
        return f"run_id must be 1 to {MAX_RUN_ID_LENGTH} characters"
    bad = next((c for c in run_id if not "!" <= c <= "~"), None)
    if bad is not None:
        return (
            f"run_id may use printable ASCII characters without spaces (! to ~) only, "
            f"not {bad!r} (at {run_id.index(bad)})"
        )
    return None

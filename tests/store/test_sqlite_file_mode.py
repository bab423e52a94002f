"""A new SQLite database, and its WAL and shared-memory files, are readable by the owner only."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from opsloom import App, FakeClock


async def test_sqlite__new_database_files_are_0600(tmp_path: Path) -> None:
    old = os.umask(0o022)  # the usual umask, under which files would be 0644
    try:
        path = tmp_path / "private.db"
        async with App(f"sqlite:///{path}", worker=None, clock=FakeClock()) as app:
            await app.audit.append("test", "test.write", "x:1", {})
            modes = {
                suffix: stat.S_IMODE(os.stat(f"{path}{suffix}").st_mode)
                for suffix in ("", "-wal", "-shm")
                if os.path.exists(f"{path}{suffix}")
            }
    finally:
        os.umask(old)
    assert "-wal" in modes
    assert modes == dict.fromkeys(modes, 0o600)

"""More than one process serving the HTTP API: ``opsloom up --api-processes N``.

One Python process parses, checks and stores a few thousand webhooks a second at most: its
event loop is one core. ``opsloom up --api-processes N`` binds ``N`` sockets on one address
(``SO_REUSEPORT``: the kernel spreads connections over them) and starts ``N - 1`` more API
processes beside itself, each with its own socket and its own store connections. They serve
every route, as the first process does, but run no worker, no scheduler and no other
singleton: those stay in ``opsloom up`` itself. On SQLite they write the one file in turns
(see :mod:`opsloom.store.dialects.sqlite_writer`), each committing all the requests it has
at hand in one transaction; an event is acknowledged only once its transaction is committed,
whichever process took it, and a repeated event is a duplicate whichever process stored the
first one (the store's unique key decides, inside the transaction).

Runs are executed by the worker of ``opsloom up`` alone. SQLite cannot tell one process about
another's commits, so each API process relays the wake-ups of its commits (a run started, a
signal or an event for a waiting run, a pause) to ``opsloom up`` through a pipe: one byte per
kind of wake-up, written right after the commit. ``opsloom up`` hands them to its store's
listeners, and its worker claims the new run at once instead of at its next poll. The pipe
is only a hint, as every wake-up is: when it is full the reader has bytes to read anyway.

An API process ends with ``opsloom up``: on its SIGTERM, or by itself when the pipe it holds
from ``opsloom up`` closes (when ``opsloom up`` dies, however it dies).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable

from opsloom.store.base import Store
from opsloom.store.dialects.sqlite import SqliteStore

log = logging.getLogger("opsloom.cli")

#: One byte per kind of wake-up on the relay pipe.
_WAKE_BYTES = {"work": b"w", "done": b"d", "control": b"c"}
_WAKE_TOPICS = {byte[0]: topic for topic, byte in _WAKE_BYTES.items()}


def relay_wakes(store: Store, fd: int) -> None:
    """In an API process: write the wake-ups of ``store``'s commits to pipe ``fd``.

    Stores that wake other processes themselves (PostgreSQL) need no relay.
    """
    if not isinstance(store, SqliteStore):
        return
    os.set_blocking(fd, False)

    def send(topics: frozenset[str]) -> None:
        # Full: unread wake-ups are waiting there already. Closed: `opsloom up` is gone.
        with contextlib.suppress(BlockingIOError, BrokenPipeError):
            os.write(fd, b"".join(_WAKE_BYTES[topic] for topic in topics if topic in _WAKE_BYTES))

    store.relay_wakes(send)


def hear_wakes(store: Store, fd: int) -> Callable[[], None]:
    """In ``opsloom up``: hand the wake-ups read from pipe ``fd`` to ``store``'s listeners,
    on the running loop, until the pipe's writers are gone; returns what stops listening."""
    loop = asyncio.get_running_loop()
    if not isinstance(store, SqliteStore):
        return lambda: None

    def readable() -> None:
        try:
            data = os.read(fd, 4096)
        except BlockingIOError:
            return
        if not data:  # every writer closed its end
            loop.remove_reader(fd)
            return
        store.hear({_WAKE_TOPICS[byte] for byte in data if byte in _WAKE_TOPICS})

    def deaf() -> None:
        loop.remove_reader(fd)

    os.set_blocking(fd, False)
    loop.add_reader(fd, readable)
    return deaf


class ApiProcesses:
    """The extra API processes of one ``opsloom up``."""

    def __init__(
        self, sockets: list[socket.socket], app: str | None, db: str, log_format: str | None
    ) -> None:
        self._sockets = sockets
        self._argv = [sys.executable, "-m", "opsloom.cli.main", "api-process", "--db", db]
        if app is not None:
            self._argv += ["--app", app]
        if log_format is not None:
            self._argv += ["--log-format", log_format]
        self._processes: list[subprocess.Popen[bytes]] = []
        self._lifelines: list[int] = []  # write ends: their children see EOF when we end
        self._ready: list[int] = []  # read ends: a byte when a child serves, EOF if it died
        self._wakes: int | None = None  # read end of the pipe every child relays wake-ups to

    def start(self) -> None:
        """Start one process per socket; this process keeps none of those sockets."""
        if not self._sockets:
            return
        self._wakes, wakes_end = os.pipe()
        try:
            for sock in self._sockets:
                self._start_one(sock, wakes_end)
        finally:
            os.close(wakes_end)  # the children hold it now: EOF once they are all gone
        self._sockets = []

    def _start_one(self, sock: socket.socket, wakes_end: int) -> None:
        lifeline, lifeline_end = os.pipe()
        ready, ready_end = os.pipe()
        fds = (sock.fileno(), lifeline, ready_end, wakes_end)
        argv = [*self._argv, "--socket-fd", str(fds[0]), "--parent-fd", str(fds[1])]
        argv += ["--ready-fd", str(fds[2]), "--wake-fd", str(fds[3])]
        try:
            process = subprocess.Popen(argv, pass_fds=fds, stdin=subprocess.DEVNULL)
        finally:
            os.close(lifeline)
            os.close(ready_end)
            # Only the child accepts on its socket: one left open here would take its
            # share of connections and never answer them once the child is gone.
            sock.close()
        self._processes.append(process)
        self._lifelines.append(lifeline_end)
        self._ready.append(ready)

    def hear(self, store: Store) -> Callable[[], None]:
        """Hand the wake-ups the processes relay to ``store``'s listeners (see
        :func:`hear_wakes`); returns what stops listening."""
        if self._wakes is None:
            return lambda: None
        return hear_wakes(store, self._wakes)

    async def ready(self, timeout: float) -> None:
        """Wait until every process serves (or ended, or ``timeout`` passed: logged)."""
        if not self._ready:
            return
        loop = asyncio.get_running_loop()

        async def one(fd: int) -> bool:
            readable: asyncio.Future[None] = loop.create_future()

            def ready() -> None:
                if not readable.done():
                    readable.set_result(None)

            loop.add_reader(fd, ready)
            try:
                await readable
            finally:
                loop.remove_reader(fd)
            return os.read(fd, 1) == b"1"

        waits = [asyncio.ensure_future(one(fd)) for fd in self._ready]
        done, late = await asyncio.wait(waits, timeout=timeout)
        for task in late:
            task.cancel()
        failed = len(late) + sum(1 for task in done if not task.result())
        for fd in self._ready:
            os.close(fd)
        self._ready = []
        if failed:
            log.error(
                "%d of %d extra API processes did not start serving",
                failed,
                len(self._processes),
                extra={"event": "api_process_failed"},
            )

    async def stop(self, timeout: float) -> None:
        """SIGTERM every process, wait ``timeout`` seconds for them to finish, then kill."""
        for process in self._processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self._processes:
            try:
                await asyncio.to_thread(process.wait, timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                await asyncio.to_thread(process.wait)
        wakes = [] if self._wakes is None else [self._wakes]
        for fd in self._lifelines + self._ready + wakes:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._lifelines = self._ready = []
        self._wakes = None
        self._processes = []

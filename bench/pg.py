"""Instruments for the benchmark on PostgreSQL: fresh schemas, run counts, and the CPU split.

Nothing here knows a workload; ``pg_workloads.py`` composes these with the worker processes of
``workers.py`` into W1-W4 and the idle pickup latency.
"""

from __future__ import annotations

import asyncio
import collections
import os
import re
import threading
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlparse, urlunparse

import psutil
import psycopg
from measure import Figures, log, percentile_ms
from psycopg import sql


def is_postgres(url: str | None) -> bool:
    return bool(url) and urlparse(url).scheme in ("postgresql", "postgres")


def libpq_url(url: str) -> str:
    """The URL without opsloom's ``schema`` parameter, which libpq would not understand."""
    parsed = urlparse(url)
    rest = [(k, v) for k, v in parse_qsl(parsed.query, keep_blank_values=True) if k != "schema"]
    return urlunparse(parsed._replace(query=urlencode(rest)))


def with_schema(url: str, schema: str) -> str:
    """The store URL that puts opsloom's tables into ``schema``."""
    parsed = urlparse(libpq_url(url))
    params = [*parse_qsl(parsed.query, keep_blank_values=True), ("schema", schema)]
    return urlunparse(parsed._replace(query=urlencode(params)))


def with_database(url: str, database: str) -> str:
    """The same server and user, another database (DBOS gets one of its own)."""
    return urlunparse(urlparse(libpq_url(url))._replace(path=f"/{database}"))


def drop_schema(url: str, schema: str) -> None:
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute("SET lock_timeout = '20s'")
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


#: What the benchmark names its schemas and DBOS's databases: the pid says whose they are.
_LEFTOVER = re.compile(r"^(?:bench_(?:w[1-4]|pickup)|dbos_bench)_(\d+)(?:_w[1-4])?$")


def sweep_leftovers(url: str) -> list[str]:
    """Drop the schemas and databases of benchmark processes that no longer exist.

    A workload killed by its backstop cannot drop its schema; the next run does, once the
    process named in it is gone (a concurrent benchmark's are left alone).
    """
    dropped = []
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        schemas = [row[0] for row in conn.execute("SELECT nspname FROM pg_namespace").fetchall()]
        databases = [row[0] for row in conn.execute("SELECT datname FROM pg_database").fetchall()]
        for kind, names in (("SCHEMA", schemas), ("DATABASE", databases)):
            for name in names:
                match = _LEFTOVER.match(name)
                if match is None or psutil.pid_exists(int(match.group(1))):
                    continue
                if kind == "SCHEMA":
                    query = sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE")
                else:
                    query = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                conn.execute(query.format(sql.Identifier(name)))
                dropped.append(name)
    return dropped


def server_facts(url: str) -> dict[str, Any]:
    """The server settings that bound the figures: durability, version, connections."""
    names = ("server_version", "synchronous_commit", "fsync", "shared_buffers", "max_connections")
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        facts = {f"pg_{name}": conn.execute(f"SHOW {name}").fetchone()[0] for name in names}  # type: ignore[index]
    return facts


def commit_probe_ms(url: str, schema: str, n: int = 100) -> float:
    """The p50 of a bare one-row commit on this server (it waits for its WAL flush).

    Context for the throughput and latency figures, like the SQLite commit probe: a chain of
    k commits one after another cannot finish faster than k times this.
    """
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        conn.execute("CREATE TABLE commit_probe (n integer)")
        samples = []
        for i in range(n):
            t = time.perf_counter()
            conn.execute("INSERT INTO commit_probe VALUES (%s)", (i,))
            samples.append(time.perf_counter() - t)
        conn.execute("DROP TABLE commit_probe")
    return percentile_ms(samples, 50)


class PgStatusCounter:
    """Counts runs by status in the benchmark's schema, beside the engine (own connection).

    Only runs whose id starts with ``prefix`` count: the warm-up runs share the schema.
    """

    def __init__(self, url: str, schema: str, prefix: str = "") -> None:
        self._link = Link(url, schema)
        self._like = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"

    def counts_now(self) -> dict[str, int]:
        rows = self.query(
            "SELECT status, count(*) FROM runs WHERE id LIKE %s GROUP BY status", (self._like,)
        )
        return {str(status): int(count) for status, count in rows}

    async def counts(self) -> dict[str, int]:
        return await asyncio.to_thread(self.counts_now)

    def count_now(self, status: str) -> int:
        rows = self.query(
            "SELECT count(*) FROM runs WHERE status = %s AND id LIKE %s", (status, self._like)
        )
        return int(rows[0][0])

    def query(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self._link.query(query, params)

    async def until(
        self,
        status: str,
        n: int,
        deadline: float,
        what: str,
        figures: Figures | None = None,
        field: str = "",
    ) -> bool:
        """Poll until ``n`` runs have ``status``; False when ``deadline`` passes first."""
        last_log = time.monotonic()
        while True:
            count = await asyncio.to_thread(self.count_now, status)
            if figures is not None and field:
                figures.update(**{field: count})
            if count >= n:
                return True
            now = time.monotonic()
            if now >= deadline:
                log(f"{what}: gave up with {count}/{n} {status}")
                return False
            if now - last_log >= 5:
                log(f"{what}: {count}/{n} {status}")
                last_log = now
            await asyncio.sleep(0.05 if n <= 10_000 else 0.2)

    def close(self) -> None:
        self._link.close()


class Link:
    """One autocommit connection that reconnects when the server has dropped it.

    The benchmark's own instruments must outlive a server restart (other programs on a shared
    machine restart PostgreSQL); the statements they run are reads, safe to run again.
    """

    def __init__(self, url: str, schema: str | None = None) -> None:
        self._url = libpq_url(url)
        self._schema = schema
        self._lock = threading.Lock()
        self.conn = self._connect()
        self.backends = {int(self.conn.info.backend_pid)}
        self.reconnects = 0

    def _connect(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(self._url, autocommit=True)
        if self._schema is not None:
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self._schema)))
        return conn

    def query(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            for attempt in (1, 2, 3):
                try:
                    cur = self.conn.execute(query.encode(), params or None)
                    return cur.fetchall() if cur.description is not None else []
                except psycopg.OperationalError:
                    if attempt == 3 or not (self.conn.closed or self.conn.broken):
                        raise
                    time.sleep(1.0 * attempt)  # a restarting server refuses for a moment
                    self.conn.close()
                    try:
                        self.conn = self._connect()
                    except psycopg.OperationalError:
                        continue
                    self.backends.add(int(self.conn.info.backend_pid))
                    self.reconnects += 1
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.conn.close()


def _cpu(pid: int) -> float | None:
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return None
    return float(times.user + times.system)


class CpuSplit:
    """Where the CPU went over one phase: client, worker processes, PostgreSQL.

    A thread samples the user+system CPU time of every process of each group twice a second
    and keeps each process's first and last reading, so a process that appears during the
    phase counts from zero and one that exits keeps what it had used at its last sample.
    The PostgreSQL group is the postmaster and all its children (backends of every client,
    including other programs using the same server, plus the WAL writer, checkpointer and so
    on); ``postgres_ours`` is the part spent by the backends connected to this benchmark's
    processes, found through ``pg_stat_activity.client_port`` when the phase ends.
    ``pg_write_xacts`` is the advance of the server's transaction id over the phase: one per
    transaction that writes, plus one per savepoint (subtransaction) that writes, in every
    database of the server (other programs' writes count too); WAL is the advance of its WAL
    position; ``pg_commits`` is ``xact_commit`` of the database in ``pg_stat_database``
    (read-only autocommit statements included; backends report it with a delay, up to ten
    seconds when many report at once, so it can come out short).

    A second thread samples ``pg_stat_activity`` ten times a second: what each backend of
    the benchmark was doing (idle, waiting for its client, running, waiting for the WAL to
    reach the disk, waiting for a lock…), as the average number of backends in each state.
    """

    def __init__(
        self, url: str, workers: list[int], interval: float = 0.5, state_interval: float = 0.1
    ) -> None:
        self._link = Link(url)
        self._state_link = Link(url)
        self._state_interval = state_interval
        self._states: list[tuple[int, str]] = []
        self._state_ticks = 0
        self._state_thread: threading.Thread | None = None
        self._port = urlparse(url).port or 5432
        self._workers = list(workers)
        self._interval = interval
        self._postmaster = self._find_postmaster()
        self._first: dict[str, dict[int, float]] = {}
        self._last: dict[str, dict[int, float]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0
        self._commits0 = 0
        self._machine0: Any = None
        self._server_start = 0.0
        self._position0 = (0, 0)

    def _find_postmaster(self) -> int | None:
        """The server's main process, when it runs on this machine and can be inspected."""
        backend = self._link.query("SELECT pg_backend_pid()")
        try:
            proc = psutil.Process(int(backend[0][0]))
            parent = proc.parent()
            if parent is None or "postgres" not in parent.name():
                return None
            parent.cpu_times()
            return int(parent.pid)
        except psutil.Error:
            return None

    def _groups(self) -> dict[str, list[int]]:
        groups = {"client": [os.getpid()], "workers": self._workers}
        if self._postmaster is not None:
            try:
                children = psutil.Process(self._postmaster).children()
            except psutil.Error:
                children = []
            groups["postgres"] = [self._postmaster, *(c.pid for c in children)]
        return groups

    def _sample(self, first: bool) -> None:
        for group, pids in self._groups().items():
            firsts = self._first.setdefault(group, {})
            lasts = self._last.setdefault(group, {})
            for pid in pids:
                value = _cpu(pid)
                if value is None:
                    continue
                # A process first seen after the start was born during the phase.
                firsts.setdefault(pid, value if first else 0.0)
                lasts[pid] = value

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample(first=False)

    def _run_states(self) -> None:
        query = (
            "SELECT pid, state, wait_event_type, wait_event FROM pg_stat_activity "
            "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
        )
        while not self._stop.wait(self._state_interval):
            try:
                rows = self._state_link.query(query)
            except psycopg.Error:
                return
            self._state_ticks += 1
            for pid, state, wait_type, wait_event in rows:
                self._states.append((int(pid), backend_state(state, wait_type, wait_event)))

    def _commits(self) -> int:
        self._link.query("SELECT pg_stat_clear_snapshot()")
        rows = self._link.query(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        )
        return int(rows[0][0]) if rows else 0

    def _position(self) -> tuple[int, int]:
        """The next transaction id and the WAL position: both exact the moment they are read.

        The transaction id advances once per transaction or savepoint that writes (in every
        database of the server), so its delta counts writes without the reporting delay of
        ``pg_stat_database``.
        """
        rows = self._link.query(
            "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint, "
            "pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint"
        )
        return int(rows[0][0]), int(rows[0][1])

    def _server_started(self) -> float:
        rows = self._link.query("SELECT extract(epoch FROM pg_postmaster_start_time())")
        return float(rows[0][0])

    def start(self, *, settle: float = 1.1) -> None:
        """Begin the phase, ``settle`` seconds from now (see :meth:`stop`)."""
        if settle > 0:
            time.sleep(settle)
        self._server_start = self._server_started()
        self._commits0 = self._commits()
        self._sample(first=True)
        self._machine0 = psutil.cpu_times()
        self._position0 = self._position()
        self._t0 = time.perf_counter()
        self._thread = threading.Thread(target=self._run, name="cpu-split", daemon=True)
        self._thread.start()
        self._state_thread = threading.Thread(
            target=self._run_states, name="backend-states", daemon=True
        )
        self._state_thread.start()

    def _ours(self) -> set[int]:
        """Backends whose client is this process or one of the workers."""
        ports: list[int] = []
        for pid in [os.getpid(), *self._workers]:
            try:
                conns = psutil.Process(pid).net_connections(kind="tcp")
            except psutil.Error:
                continue
            ports += [c.laddr.port for c in conns if c.raddr and c.raddr.port == self._port]
        if not ports:
            return set()
        rows = self._link.query(
            "SELECT pid FROM pg_stat_activity WHERE client_port = ANY(%s)", (ports,)
        )
        # The instrument's own backends are not the benchmark's.
        return {int(row[0]) for row in rows} - self._link.backends - self._state_link.backends

    def stop(self, *, settle: float = 1.1) -> dict[str, Any]:
        """End the phase and return its split.

        Backends report their transaction counts at most once a second, so the counts are read
        ``settle`` seconds before the phase starts and after it ends, while the workers idle.
        Blocking: call both from a thread.
        """
        wall = time.perf_counter() - self._t0
        position = self._position()
        machine = psutil.cpu_times()
        self._stop.set()
        for thread in (self._thread, self._state_thread):
            if thread is not None:
                thread.join()
        self._sample(first=False)
        ours = self._ours() if self._postmaster is not None else set()
        if settle > 0:
            time.sleep(settle)
        commits = self._commits() - self._commits0
        restarted = self._server_started() != self._server_start
        cores = os.cpu_count() or 1

        def used(group: str, only: set[int] | None = None) -> float:
            firsts, lasts = self._first.get(group, {}), self._last.get(group, {})
            return sum(lasts[pid] - firsts[pid] for pid in lasts if only is None or pid in only)

        split: dict[str, Any] = {"wall_s": round(wall, 3), "cores": cores}
        parts = {"client": used("client"), "workers": used("workers")}
        if self._postmaster is not None:
            parts["postgres"] = used("postgres")
            parts["postgres_ours"] = used("postgres", ours)
        # The whole machine: what other programs (other tests, other servers) took meanwhile.
        busy = machine_busy(machine) - machine_busy(self._machine0)
        measured = parts["client"] + parts["workers"] + parts.get("postgres", 0.0)
        parts["machine"] = busy
        parts["others"] = max(0.0, busy - measured)
        for name, seconds in parts.items():
            split[f"{name}_s"] = round(seconds, 2)
            split[f"{name}_pct"] = round(100 * seconds / (wall * cores), 1) if wall else None
        if restarted:
            # The phase lived through an outage; the server's counters may have started over.
            split["pg_server_restarted"] = True
            commits = max(0, commits)
        split["pg_commits"] = commits
        split["pg_commits_per_s"] = round(commits / wall, 1) if wall else None
        xacts = position[0] - self._position0[0]
        split["pg_write_xacts"] = xacts
        split["pg_write_xacts_per_s"] = round(xacts / wall, 1) if wall else None
        split["pg_wal_mb"] = round((position[1] - self._position0[1]) / 2**20, 2)
        states = collections.Counter(state for pid, state in self._states if pid in ours)
        if self._state_ticks:
            # Average number of the benchmark's backends in each state at any moment.
            split["backend_states"] = {
                state: round(count / self._state_ticks, 2) for state, count in states.most_common()
            }
            split["backends"] = len({pid for pid, _ in self._states if pid in ours})
        return split

    def close(self) -> None:
        self._stop.set()
        self._link.close()
        self._state_link.close()


def machine_busy(times: Any) -> float:
    """CPU seconds the machine spent running anything (user, nice, system, interrupts)."""
    names = ("user", "nice", "system", "irq", "softirq")
    return sum(float(getattr(times, name, 0.0)) for name in names)


def backend_state(state: str | None, wait_type: str | None, wait_event: str | None) -> str:
    """One phrase for what a backend was doing: idle, running, or what it waited for.

    "in transaction, waiting for client" is a transaction held open between two statements
    of its client: round trips, not server work.
    """
    if state == "idle":
        return "idle"
    if state is not None and state.startswith("idle in transaction"):
        return "in transaction, waiting for client"
    if state != "active":
        return state or "unknown"
    if wait_type is None:
        return "running"
    return f"waiting {wait_type}:{wait_event}"

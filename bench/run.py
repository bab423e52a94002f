"""Run the opsloom benchmark suite and print its figures (``make bench``, ``make bench-peers``).

    .venv/bin/python bench/run.py [--workload W1,W3] [--scale 0.1] [--synchronous NORMAL]
                                  [--peers] [--json-only]
    .venv/bin/python bench/run.py --store postgresql://postgres@127.0.0.1:5432/test
                                  [--workers 1,2,4] [--workload W1,PICKUP] [--peers]

Each workload runs in its own process (``bench/workloads.py``) on a fresh SQLite database, so
memory and imports never leak from one workload into the next. The suite prints a table of the
figures next to their targets, then one JSON line per measured workload. With ``--peers`` the
same workloads also run on DBOS (``bench/peers/``, in its own virtual environment) and a second
table shows the opsloom/DBOS ratios.

With ``--store postgresql://…`` each workload runs in a fresh schema of that database, executed
by ``opsloom worker`` processes (1, 2 and 4 of them; W4 with two), and ``PICKUP`` adds the idle
pickup latency; with ``--peers`` DBOS runs on the same server, in a fresh database of its own.

The exit status is 1 when a workload failed or ran out of time, else 0: a target that is not
met is a finding to read in the table, not a failure of the suite.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pg
import psycopg
from pg_report import (
    backend_table,
    cpu_table,
    pg_peers_tables,
    pg_results_tables,
    scaling_line,
    scaling_table,
)
from psycopg import sql
from report import Record, peers_table, results_table
from rich.console import Console
from rich.markup import escape

HERE = Path(__file__).resolve().parent
PEERS = HERE / "peers"
WORKLOADS = ("W1", "W2", "W3", "W4")
PG_WORKLOADS = ("W1", "W2", "W3", "PICKUP", "W4")
LEVELS = ("FULL", "NORMAL")
WORKER_COUNTS = (1, 2, 4)
#: W4 on PostgreSQL: two workers share the runs, one is killed, the other recovers.
PG_W4_WORKERS = 2

#: Backstops (seconds) on top of each workload's own hard cap: only a wedged process meets them.
BACKSTOP = {"W1": 360.0, "W2": 360.0, "W3": 1_300.0, "W4": 360.0, "PICKUP": 660.0}
PEER_BACKSTOP = 400.0
#: DBOS cannot park 100,000 runs on SQLite in its time budget (see bench/peers/): W3 runs at
#: this scale at most on DBOS, and the comparison uses per-run rates.
DBOS_W3_MAX_SCALE = 0.05
#: On PostgreSQL, W3 runs at this scale at most (5,000 runs, DBOS's cap too) unless
#: --pg-w3-max-scale says otherwise: starts and signals went at 160 to 1,000 per second there
#: on a 2-core machine, so 100,000 runs take several minutes per worker count.
PG_W3_MAX_SCALE = 0.05


# --- running the workloads -----------------------------------------------------------------


def status(console: Console, message: str) -> None:
    console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {message}", highlight=False)


def run_json_process(
    command: Sequence[str],
    backstop: float,
    *,
    env: dict[str, str] | None = None,
) -> tuple[list[Record], str | None]:
    """Run a benchmark process; return the JSON lines it printed and an error, if any.

    The child gets its own session so that the backstop also reaches its own children (the W4
    workers, DBOS's workers).
    """
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
        text=True,
    )
    try:
        out, _ = proc.communicate(timeout=backstop)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        error: str | None = f"killed by the {backstop:g}s backstop"
    else:
        error = None if proc.returncode == 0 else f"exit status {proc.returncode}"
    records = []
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records, error


def run_opsloom(
    workload: str, scale: float, level: str, store: str | None = None, workers: int = 1
) -> Record:
    command = [
        sys.executable,
        str(HERE / "workloads.py"),
        "--workload",
        workload,
        "--scale",
        f"{scale:g}",
        "--synchronous",
        level,
    ]
    if store:
        command += ["--store", store, "--workers", str(workers)]
    records, error = run_json_process(command, BACKSTOP[workload])
    fallback: Record = {"engine": "opsloom", "workload": workload, "scale": scale}
    fallback.update({"workers": workers} if store else {"synchronous": level})
    record = records[-1] if records else fallback
    if error and "error" not in record:
        record["error"] = error
    return record


def dbos_scale(workload: str, scale: float | None) -> float | None:
    if workload == "W3":
        return DBOS_W3_MAX_SCALE if scale is None else min(scale, DBOS_W3_MAX_SCALE)
    return scale


def run_dbos(workload: str, scale: float | None, system_database_url: str | None = None) -> Record:
    """One DBOS workload through the peer's runner (it creates its virtual env on first use)."""
    runner = PEERS / "run_dbos.sh"
    if not runner.exists():
        return {"engine": "dbos", "workload": workload, "error": f"{runner} is missing"}
    command = [str(runner)]
    peer_scale = dbos_scale(workload, scale)
    if peer_scale is not None:
        command += ["--scale", f"{peer_scale:g}"]
    if system_database_url is not None:
        command += ["--system-database-url", system_database_url]
    env = {**os.environ, "WORKLOADS": workload}
    records, error = run_json_process(command, PEER_BACKSTOP, env=env)
    found = [r for r in records if r.get("engine") == "dbos" and r.get("workload") == workload]
    record = found[-1] if found else {"engine": "dbos", "workload": workload}
    if error and "error" not in record:
        record["error"] = error
    return record


def server_position(url: str) -> tuple[int, int]:
    """The server's next transaction id and WAL position (see ``pg.CpuSplit``)."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint, "
            "pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def run_dbos_on_postgres(workload: str, scale: float | None, store: str) -> Record:
    """DBOS on the same server as opsloom, in a database of its own, dropped afterwards.

    Write transactions and WAL are counted over the whole DBOS process (setup included, and
    whatever else wrote to the server meanwhile); the database's ``xact_commit`` after the run
    (every backend has exited and reported) counts its transactions, reads included.
    """
    database = f"dbos_bench_{os.getpid()}_{workload.lower()}"
    admin = pg.libpq_url(store)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(database)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    try:
        xid0, wal0 = server_position(admin)
        record = run_dbos(workload, scale, pg.with_database(store, database))
        xid1, wal1 = server_position(admin)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("SELECT pg_stat_clear_snapshot()")
            row = conn.execute(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = %s", (database,)
            ).fetchone()
        commits = int(row[0]) if row else None
        record.update(
            pg_commits_whole_run=commits,
            pg_write_xacts_whole_run=xid1 - xid0,
            pg_wal_mb_whole_run=round((wal1 - wal0) / 2**20, 2),
            system_database="postgresql",
        )
        if workload == "W1" and record.get("n"):
            runs = int(record["n"]) + int(record.get("latency_n") or 0)
            record["pg_write_xacts_per_workflow"] = round((xid1 - xid0) / runs, 2)
            record["pg_wal_kb_per_workflow"] = round((wal1 - wal0) / 1024 / runs, 2)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
            )
    return record


def one_line_summary(record: Record) -> str:
    if record.get("error"):
        return f"[red]failed[/red]: {escape(str(record['error']))}"
    keys = {
        "W1": "steps_per_s",
        "W2": "steps_per_s",
        "W3": "seconds_to_all_complete",
        "W4": "recovery_seconds",
        "PICKUP": "pickup_p50_ms",
    }
    key = keys.get(str(record.get("workload")), "")
    suffix = " [yellow](timed out)[/yellow]" if record.get("timed_out") else ""
    return f"done: {key} = {record.get(key)}{suffix}"


# --- entry point -------------------------------------------------------------------------


def parse_list(text: str, allowed: Sequence[str], what: str) -> list[str]:
    items = [item.strip().upper() for item in text.split(",") if item.strip()]
    unknown = [item for item in items if item not in allowed]
    if unknown or not items:
        raise argparse.ArgumentTypeError(
            f"{what} must be a comma-separated list of {', '.join(allowed)}"
        )
    return list(dict.fromkeys(items))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--workload",
        default=None,
        type=lambda text: parse_list(text, PG_WORKLOADS, "--workload"),
        help="which workloads, e.g. W1,W3 (default: all; PICKUP only with --store)",
    )
    parser.add_argument(
        "--store",
        default=None,
        help="postgresql://user@host:port/db to run on PostgreSQL with worker processes "
        "(default: SQLite with an embedded worker)",
    )
    parser.add_argument(
        "--pg-w3-max-scale",
        type=float,
        default=PG_W3_MAX_SCALE,
        help=f"largest W3 scale on PostgreSQL (default {PG_W3_MAX_SCALE:g}: 5,000 runs)",
    )
    parser.add_argument(
        "--workers",
        default=",".join(map(str, WORKER_COUNTS)),
        type=parse_counts,
        help="worker process counts to measure on PostgreSQL (default 1,2,4; W4 always uses 2)",
    )
    parser.add_argument(
        "--scale",
        type=float,
        default=None,
        help="shrink (or grow) every count by this factor (default 1.0)",
    )
    parser.add_argument(
        "--synchronous",
        default="FULL",
        type=lambda text: parse_list(text, LEVELS, "--synchronous"),
        help="SQLite synchronous levels to measure besides the durable default FULL, e.g. NORMAL",
    )
    parser.add_argument(
        "--peers",
        action="store_true",
        help="also run the workloads on DBOS and print opsloom/DBOS ratios",
    )
    parser.add_argument(
        "--json-only", action="store_true", help="print only the JSON lines (one per workload run)"
    )
    args = parser.parse_args(argv)
    if args.scale is not None and args.scale <= 0:
        parser.error("--scale must be positive")
    if args.store and not pg.is_postgres(args.store):
        parser.error("--store must be a postgresql:// URL (SQLite is the default)")
    if args.workload is None:
        args.workload = list(PG_WORKLOADS if args.store else WORKLOADS)
    if "PICKUP" in args.workload and not args.store:
        parser.error("PICKUP measures worker processes on PostgreSQL: pass --store")
    if args.store and "NORMAL" in args.synchronous:
        parser.error("--synchronous is a SQLite setting; PostgreSQL keeps its own")
    args.levels = list(dict.fromkeys(["FULL", *args.synchronous]))
    return args


def parse_counts(text: str) -> list[int]:
    try:
        counts = [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        counts = []
    if not counts or any(c < 1 for c in counts):
        raise argparse.ArgumentTypeError("--workers must be a comma-separated list like 1,2,4")
    return sorted(set(counts))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.store:
        return main_postgres(args)
    scale = 1.0 if args.scale is None else args.scale
    out = Console(width=None if sys.stdout.isatty() else 130)
    progress = Console(stderr=True)
    load = " ".join(f"{value:.1f}" for value in os.getloadavg())
    records: list[Record] = []
    pairs: list[tuple[Record, Record]] = []
    for workload in args.workload:
        full: Record | None = None
        for level in args.levels:
            status(progress, f"opsloom {workload} (synchronous={level}, scale {scale:g}) …")
            record = run_opsloom(workload, scale, level)
            status(progress, f"opsloom {workload} {one_line_summary(record)}")
            records.append(record)
            if args.json_only:
                print(json.dumps(record), flush=True)
            if level == "FULL":
                full = record
        if args.peers:
            status(progress, f"DBOS {workload} …")
            peer = run_dbos(workload, args.scale)
            status(progress, f"DBOS {workload} {one_line_summary(peer)}")
            if args.json_only:
                print(json.dumps(peer), flush=True)
            records.append(peer)
            if full is not None:
                pairs.append((full, peer))
    if not args.json_only:
        ours = [r for r in records if r.get("engine") == "opsloom"]
        out.print(results_table(ours, scale, load))
        if pairs:
            out.print(peers_table(pairs))
        for record in records:
            print(json.dumps(record), flush=True)
    failed = [r for r in records if r.get("error") or r.get("timed_out")]
    return 1 if failed else 0


#: How a workload reports that the PostgreSQL server went away under it (a restart).
OUTAGE_MARKS = (
    "AdminShutdown",
    "terminating connection",
    "server closed the connection",
    "Connection refused",
)


def server_outage(record: Record) -> bool:
    error = str(record.get("error") or "")
    return any(mark in error for mark in OUTAGE_MARKS)


def main_postgres(args: argparse.Namespace) -> int:
    """Every workload at every worker count on PostgreSQL; DBOS on the same server."""
    scale = 1.0 if args.scale is None else args.scale
    out = Console(width=None if sys.stdout.isatty() else 150)
    progress = Console(stderr=True)
    load = " ".join(f"{value:.1f}" for value in os.getloadavg())
    records: list[Record] = []
    swept = pg.sweep_leftovers(args.store)
    if swept:
        status(progress, f"dropped leftovers of earlier runs: {', '.join(swept)}")

    def keep(record: Record) -> None:
        records.append(record)
        if args.json_only:
            print(json.dumps(record), flush=True)

    for workload in args.workload:
        counts = [PG_W4_WORKERS] if workload == "W4" else args.workers
        size = min(scale, args.pg_w3_max_scale) if workload == "W3" else scale
        for count in counts:
            what = f"{workload} on PostgreSQL, {count} worker(s), scale {size:g}"
            status(progress, f"opsloom {what} …")
            record = run_opsloom(workload, size, "FULL", args.store, count)
            if server_outage(record):
                # Another program restarted the server under this workload: measure again.
                status(progress, f"opsloom {workload}: the server went away; running it again")
                first = record
                record = run_opsloom(workload, size, "FULL", args.store, count)
                record["retried_after"] = str(first.get("error"))
            status(progress, f"opsloom {workload} {one_line_summary(record)}")
            keep(record)
        if args.peers and workload != "PICKUP":
            status(progress, f"DBOS {workload} on PostgreSQL …")
            try:
                peer = run_dbos_on_postgres(workload, args.scale, args.store)
            except psycopg.Error as exc:
                peer = {"engine": "dbos", "workload": workload, "error": repr(exc)}
            status(progress, f"DBOS {workload} {one_line_summary(peer)}")
            keep(peer)
    if not args.json_only:
        for table in pg_results_tables(records, scale, load):
            out.print(table)
        line = scaling_line(records)
        if line:
            out.print(line, highlight=False)
        for extra in (scaling_table(records), cpu_table(records), backend_table(records)):
            if extra is not None:
                out.print(extra)
        for table in pg_peers_tables(records):
            out.print(table)
        end_load = " ".join(f"{value:.1f}" for value in os.getloadavg())
        out.print(f"load average at the end: {end_load}", highlight=False)
        for record in records:
            print(json.dumps(record), flush=True)
    failed = [r for r in records if r.get("error") or r.get("timed_out")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

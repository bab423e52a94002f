"""What the suite prints for PostgreSQL: one table per worker count, scaling, the CPU split.

``run.py --store postgresql://…`` gathers one record per workload and worker count; the
opsloom-versus-DBOS tables reuse :func:`report.peers_table` with the PostgreSQL target.
"""

from __future__ import annotations

import os
from typing import Any

from report import (
    COMPARISONS,
    ZERO,
    Comparison,
    Figure,
    Record,
    Target,
    at_most,
    field,
    figures_table,
    fmt,
    peers_table,
)
from rich.table import Table

#: --peers target on PostgreSQL: opsloom W1 workflows/s at least this many times DBOS's.
PG_PEER_W1_FACTOR = 10.0

PG_FIGURES: dict[str, list[Figure]] = {
    "W1": [
        Figure("n", "workflows (3 steps each), started at once", "{:,}"),
        Figure("workflows_per_s", "workflows/s"),
        Figure("steps_per_s", "steps/s"),
        Figure("ops_per_batch", "writes per commit of the starting process"),
        Figure(
            "pg_write_xacts_per_workflow",
            "PostgreSQL transaction ids per workflow (writes, savepoints included)",
            "{:.2f}",
        ),
        Figure("pg_wal_kb_per_workflow", "WAL KB per workflow", "{:.2f}"),
        Figure("latency_p50_ms", "latency p50 ms (start → result, one at a time)", "{:.2f}"),
        Figure("latency_p99_ms", "latency p99 ms", "{:.2f}"),
        Figure("pg_commit_p50_ms", "one bare one-row PostgreSQL commit, p50 ms", "{:.2f}"),
        Figure("wrong_results", "wrong results", "{:,}", ZERO),
        Figure("peak_rss_mb", "peak RSS MB (largest worker)"),
    ],
    "W2": [
        Figure("n", "workflows (gather of 20 steps each)", "{:,}"),
        Figure("seconds", "seconds", "{:.3f}"),
        Figure("workflows_per_s", "workflows/s"),
        Figure("steps_per_s", "steps/s"),
        Figure("wrong_results", "wrong results", "{:,}", ZERO),
    ],
    "W3": [
        Figure("n", "runs parked in wait_for('go')", "{:,}"),
        Figure("park_seconds", "seconds until all are waiting", "{:.2f}"),
        Figure("park_per_s", "runs parked per s"),
        Figure("peak_rss_mb", "peak RSS MB (largest worker)", target=at_most(500, "≤ 500 MB")),
        Figure("client_peak_rss_mb", "peak RSS MB (starting process)"),
        Figure("signal_seconds", "seconds to send all signals", "{:.2f}"),
        Figure("complete_per_s", "runs completed per s after signalling"),
        Figure(
            "seconds_to_all_complete",
            "seconds from first signal to all complete",
            "{:.2f}",
            at_most(30, "≤ 30 s"),
        ),
        Figure("wrong_results", "runs that got another run's signal", "{:,}", ZERO),
    ],
    "PICKUP": [
        Figure("samples", "samples (workers idle ≥ 1 s before each)", "{:,}"),
        Figure(
            "pickup_p50_ms",
            "idle pickup p50 ms (start returned → step began)",
            "{:.2f}",
            at_most(5, "≤ 5 ms"),
        ),
        Figure("pickup_p99_ms", "idle pickup p99 ms", "{:.2f}"),
        Figure("pickup_min_ms", "idle pickup min ms", "{:.2f}"),
        Figure("pickup_max_ms", "idle pickup max ms", "{:.2f}"),
        Figure("start_call_p50_ms", "app.start() call p50 ms", "{:.2f}"),
    ],
    "W4": [
        Figure("n", "runs (2nd of 3 steps sleeps 2 s)", "{:,}"),
        Figure("in_flight_at_kill", "runs the killed worker held", "{:,}"),
        Figure("runs_recovered", "runs recovered by the other worker", "{:,}"),
        Figure("runs_missing", "runs missing at the end", "{:,}", ZERO),
        Figure("step_bodies_run_twice", "step bodies run twice (interrupted ones rerun)", "{:,}"),
        Figure("completed_steps_rerun", "completed steps run again", "{:,}", ZERO),
        Figure(
            "recovery_seconds",
            "recovery seconds (SIGKILL → all complete)",
            "{:.2f}",
            Target(
                lambda a, b: a <= b, "≤ 1 s + the 2 s step", bound_field="target_recovery_seconds"
            ),
        ),
        Figure("takeover_seconds", "  of which: SIGKILL → its runs requeued", "{:.2f}"),
    ],
}

#: The rows of the opsloom-versus-DBOS tables on PostgreSQL: the SQLite ones, plus how many
#: transactions each engine spends per workflow.
PG_COMPARISONS: dict[str, list[Comparison]] = {
    **COMPARISONS,
    "W1": [
        *COMPARISONS["W1"],
        Comparison(
            "PostgreSQL transaction ids per workflow",
            field("pg_write_xacts_per_workflow"),
            field("pg_write_xacts_per_workflow"),
            False,
            "{:.2f}",
        ),
        Comparison(
            "WAL KB per workflow",
            field("pg_wal_kb_per_workflow"),
            field("pg_wal_kb_per_workflow"),
            False,
            "{:.2f}",
        ),
    ],
}


def worker_counts(records: list[Record]) -> list[int]:
    return sorted({int(r.get("workers") or 0) for r in records if r.get("engine") == "opsloom"})


def pg_results_tables(records: list[Record], scale: float, load: str) -> list[Table]:
    """One table per worker count (W4 appears where it ran: two workers)."""
    ours = [r for r in records if r.get("engine") == "opsloom"]
    tables = []
    for count in worker_counts(ours):
        title = (
            f"opsloom on PostgreSQL, {count} worker process{'es' if count > 1 else ''} "
            f"({os.cpu_count()} CPUs; load average {load} at the start)"
        )
        rows = [r for r in ours if int(r.get("workers") or 0) == count]
        table = figures_table(title, rows, PG_FIGURES, scale=scale)
        shrunk = [r for r in rows if r.get("workload") == "W3" and r.get("scale") != scale]
        if shrunk:
            note = (
                f"W3 ran at scale {shrunk[0].get('scale'):g} ({shrunk[0].get('n', 0):,} runs, "
                "--pg-w3-max-scale): its seconds are not those of 100,000 runs; "
                "compare runs per second."
            )
            table.caption = f"{table.caption}\n{note}" if table.caption else note
        tables.append(table)
    return tables


def _per_s(n_field: str, seconds_field: str) -> Any:
    def read(record: Record) -> float | None:
        n, seconds = record.get(n_field), record.get(seconds_field)
        return None if not n or not seconds else float(n) / float(seconds)

    return read


SCALING_ROWS: list[tuple[str, str, Any, str]] = [
    ("W1", "workflows/s", field("workflows_per_s"), "{:,.1f}"),
    ("W2", "steps/s", field("steps_per_s"), "{:,.1f}"),
    ("W3", "runs parked per s", _per_s("n", "park_seconds"), "{:,.1f}"),
    (
        "W3",
        "runs completed per s after signalling",
        _per_s("n", "seconds_to_all_complete"),
        "{:,.1f}",
    ),
    ("PICKUP", "idle pickup p50 ms", field("pickup_p50_ms"), "{:.2f}"),
]


def scaling_table(records: list[Record]) -> Table | None:
    """Each figure at 1, 2, 4 … workers, and its ratio to one worker."""
    # W4 runs at one worker count only: it says nothing about scaling.
    ours = [
        r
        for r in records
        if r.get("engine") == "opsloom" and not r.get("error") and r.get("workload") != "W4"
    ]
    counts = [c for c in worker_counts(ours) if c > 0]
    if len(counts) < 2:
        return None
    table = Table(title="scaling with worker processes", title_justify="left")
    table.add_column("workload")
    table.add_column("figure")
    for count in counts:
        table.add_column(f"{count} worker{'s' if count > 1 else ''}", justify="right")
    for count in counts[1:]:
        table.add_column(f"{count} / {counts[0]}", justify="right")
    for workload, label, read, template in SCALING_ROWS:
        values: list[float | None] = []
        for count in counts:
            found = [
                r
                for r in ours
                if r.get("workload") == workload and int(r.get("workers") or 0) == count
            ]
            values.append(read(found[-1]) if found else None)
        if all(v is None for v in values):
            continue
        base = values[0]
        ratios = [f"{v / base:.2f}x" if v is not None and base else "—" for v in values[1:]]
        table.add_row(workload, label, *(fmt(template, v) for v in values), *ratios)
    return table


def scaling_line(records: list[Record]) -> str | None:
    """W1 workflows/s at each worker count and the ratio to one worker, on one line."""
    ours = {
        int(r.get("workers") or 0): r
        for r in records
        if r.get("engine") == "opsloom" and r.get("workload") == "W1" and not r.get("error")
    }
    if 1 not in ours or not ours[1].get("workflows_per_s"):
        return None
    base = float(ours[1]["workflows_per_s"])
    parts = [
        f"{count} worker{'s' if count > 1 else ''} {float(r['workflows_per_s']):,.0f} wf/s "
        f"({float(r['workflows_per_s']) / base:.2f}x)"
        for count, r in sorted(ours.items())
        if r.get("workflows_per_s")
    ]
    return "scaling, W1 workflows/s: " + " · ".join(parts)


def cpu_table(records: list[Record]) -> Table | None:
    """Where the CPU went in each throughput phase: client, workers, PostgreSQL."""
    rows = [
        (r, phase, split)
        for r in records
        if r.get("engine") == "opsloom"
        for phase, split in (r.get("cpu") or {}).items()
    ]
    if not rows:
        return None
    cores = rows[0][2].get("cores", os.cpu_count())
    table = Table(
        title=f"where the time goes: CPU seconds (% of wall x {cores} cores) per phase",
        title_justify="left",
    )
    for name in (
        "workload",
        "workers",
        "phase",
        "wall s",
        "workers",
        "PostgreSQL",
        "of it this bench",
        "starting process",
        "other programs",
        "idle",
        "PG xids/s",
        "WAL MB",
    ):
        table.add_column(name, justify="left" if name in {"workload", "phase"} else "right")

    def part(split: dict[str, Any], name: str) -> str:
        seconds, pct = split.get(f"{name}_s"), split.get(f"{name}_pct")
        return "—" if seconds is None else f"{seconds:.2f} ({pct:.0f} %)"

    for record, phase, split in rows:
        if split.get("machine_pct") is not None:
            used = float(split["machine_pct"])
        else:
            used = sum(
                float(split.get(f"{name}_pct") or 0) for name in ("workers", "postgres", "client")
            )
        table.add_row(
            str(record.get("workload")),
            str(record.get("workers")),
            phase,
            fmt("{:.2f}", split.get("wall_s")),
            part(split, "workers"),
            part(split, "postgres"),
            part(split, "postgres_ours"),
            part(split, "client"),
            part(split, "others"),
            f"{max(0.0, 100 - used):.0f} %",
            fmt("{:,.0f}", split.get("pg_write_xacts_per_s")),
            fmt("{:,.1f}", split.get("pg_wal_mb")),
        )
    table.caption = (
        "PostgreSQL = the postmaster and all its children (every client's backends, WAL writer, "
        "checkpointer); 'of it this bench' = the backends connected to this benchmark's "
        "processes; other programs = the rest of the machine's busy time (other tests, other "
        "servers); idle = no process on the CPUs. PG xids = transaction ids assigned (one per "
        "transaction or savepoint that writes); xids and WAL are the whole server's."
    )
    return table


def backend_table(records: list[Record]) -> Table | None:
    """What the benchmark's PostgreSQL backends were doing, sampled ten times a second."""
    rows = [
        (r, phase, split)
        for r in records
        if r.get("engine") == "opsloom"
        for phase, split in (r.get("cpu") or {}).items()
        if split.get("backend_states")
    ]
    if not rows:
        return None
    table = Table(
        title="PostgreSQL backends of this bench: how many were in each state, on average "
        "(sampled 10 times a second)",
        title_justify="left",
    )
    for name in ("workload", "workers", "phase", "backends", "busy states", "idle"):
        table.add_column(name, justify="left" if name in {"workload", "phase"} else "right")
    for record, phase, split in rows:
        states = dict(split["backend_states"])
        idle = states.pop("idle", 0.0)
        shown = [f"{state} {avg:.2f}" for state, avg in list(states.items())[:4] if avg >= 0.01]
        table.add_row(
            str(record.get("workload")),
            str(record.get("workers")),
            phase,
            str(split.get("backends", "")),
            " · ".join(shown) or "—",
            f"{idle:.1f}",
        )
    table.caption = (
        "'in transaction, waiting for client' = a transaction kept open between two "
        "statements of its client (round trips); 'running' = executing; 'waiting X:Y' = "
        "PostgreSQL wait events (IO:WALSync = flushing the WAL at commit, Lock:… = row locks)."
    )
    return table


def pg_peers_tables(records: list[Record]) -> list[Table]:
    """opsloom (each worker count) versus DBOS, both on the same PostgreSQL server."""
    theirs = {str(r.get("workload")): r for r in records if r.get("engine") == "dbos"}
    ours = [r for r in records if r.get("engine") == "opsloom"]
    tables = []
    for count in worker_counts(ours):
        pairs = [
            (r, theirs[str(r.get("workload"))])
            for r in ours
            if int(r.get("workers") or 0) == count and str(r.get("workload")) in theirs
        ]
        if not pairs:
            continue
        title = (
            f"opsloom ({count} worker process{'es' if count > 1 else ''}) versus DBOS "
            "(one process), both on the same PostgreSQL"
        )
        tables.append(
            peers_table(pairs, title=title, w1_factor=PG_PEER_W1_FACTOR, comparisons=PG_COMPARISONS)
        )
    return tables

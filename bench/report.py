"""What the suite prints: the figures, their targets and the opsloom-versus-DBOS comparison.

``run.py`` gathers one record (the JSON line of a workload process) per workload run; this
module turns records into rich tables.
"""

from __future__ import annotations

import operator
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.markup import escape
from rich.table import Table

Record = dict[str, Any]

#: --peers target: opsloom W1 workflows/s at least this many times DBOS's.
PEER_W1_FACTOR = 50.0


# --- targets and the figures shown -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """A bound on one figure: ``value <op> bound``; the bound may come from the record."""

    op: Callable[[float, float], bool]
    text: str
    bound: float | None = None
    bound_field: str | None = None

    def bound_of(self, record: Record) -> float | None:
        if self.bound_field is not None:
            value = record.get(self.bound_field)
            return None if value is None else float(value)
        return self.bound

    def met(self, record: Record, value: float | None) -> bool | None:
        bound = self.bound_of(record)
        if value is None or bound is None:
            return None
        return bool(self.op(value, bound))


@dataclass(frozen=True, slots=True)
class Figure:
    """One row of the results table."""

    field: str
    label: str
    fmt: str = "{:,.1f}"
    target: Target | None = None


def at_least(bound: float, text: str) -> Target:
    return Target(operator.ge, text, bound)


def at_most(bound: float, text: str) -> Target:
    return Target(operator.le, text, bound)


ZERO = Target(operator.eq, "= 0", 0.0)

FIGURES: dict[str, list[Figure]] = {
    "W1": [
        Figure("n", "workflows (3 steps each), started at once", "{:,}"),
        Figure("workflows_per_s", "workflows/s"),
        Figure("steps_per_s", "steps/s", target=at_least(20_000, "≥ 20,000")),
        Figure("ops_per_batch", "writes per SQLite commit (group commit)"),
        Figure(
            "latency_p50_ms",
            "latency p50 ms (start → result, one at a time)",
            "{:.2f}",
            at_most(2, "≤ 2 ms"),
        ),
        Figure("latency_p99_ms", "latency p99 ms", "{:.2f}", at_most(10, "≤ 10 ms")),
        Figure("commits_per_latency_run", "SQLite commits per run (latency phase)", "{:.2f}"),
        Figure(
            "durable_commits_per_latency_run",
            "of which wrote (an fsync each with FULL)",
            "{:.2f}",
        ),
        Figure("sqlite_commit_p50_ms", "one bare SQLite commit on this disk, p50 ms", "{:.2f}"),
        Figure("wrong_results", "wrong results", "{:,}", ZERO),
        Figure("peak_rss_mb", "peak RSS MB"),
    ],
    "W2": [
        Figure("n", "workflows (gather of 20 steps each)", "{:,}"),
        Figure("seconds", "seconds", "{:.3f}"),
        Figure("workflows_per_s", "workflows/s"),
        Figure("steps_per_s", "steps/s"),
        Figure("ops_per_batch", "writes per SQLite commit"),
        Figure("wrong_results", "wrong results", "{:,}", ZERO),
    ],
    "W3": [
        Figure("n", "runs parked in wait_for('go')", "{:,}"),
        Figure("park_seconds", "seconds until all are waiting", "{:.2f}"),
        Figure("rss_parked_mb", "RSS MB with all parked (benchmark process + worker)"),
        Figure("peak_rss_mb", "peak RSS MB", target=at_most(500, "≤ 500 MB")),
        Figure("signal_seconds", "seconds to send all signals", "{:.2f}"),
        Figure(
            "seconds_to_all_complete",
            "seconds from first signal to all complete",
            "{:.2f}",
            at_most(30, "≤ 30 s"),
        ),
        Figure("wrong_results", "runs that got another run's signal", "{:,}", ZERO),
    ],
    "W4": [
        Figure("n", "runs (2nd of 3 steps sleeps 2 s)", "{:,}"),
        Figure("in_flight_at_kill", "runs in flight at SIGKILL", "{:,}"),
        Figure("runs_missing", "runs missing at the end", "{:,}", ZERO),
        Figure("step_bodies_run_twice", "step bodies run twice (interrupted ones rerun)", "{:,}"),
        Figure("completed_steps_rerun", "completed steps run again", "{:,}", ZERO),
        Figure(
            "recovery_seconds",
            "recovery seconds (restart → all complete)",
            "{:.2f}",
            Target(operator.le, "≤ 1 s + the 2 s step", bound_field="target_recovery_seconds"),
        ),
        Figure("restart_ready_seconds", "  of which: new worker starting, to its slot", "{:.2f}"),
        Figure(
            "recovery_after_ready_seconds",
            "  of which: slot held → all complete",
            "{:.2f}",
            Target(operator.le, "≤ 1 s + the 2 s step", bound_field="target_recovery_seconds"),
        ),
    ],
}


@dataclass(frozen=True, slots=True)
class Comparison:
    """One opsloom-versus-DBOS row: how to read the figure from each engine's record."""

    label: str
    opsloom: Callable[[Record], float | None]
    dbos: Callable[[Record], float | None]
    higher_is_better: bool | None  # None: context only, no ratio
    fmt: str = "{:,.1f}"


def field(name: str) -> Callable[[Record], float | None]:
    def read(record: Record) -> float | None:
        value = record.get(name)
        return None if value is None else float(value)

    return read


def per_run_rate(seconds_field: str) -> Callable[[Record], float | None]:
    """Runs per second over a phase: comparable when the two engines ran different counts."""

    def read(record: Record) -> float | None:
        n, seconds = record.get("n"), record.get(seconds_field)
        return None if not n or not seconds else float(n) / float(seconds)

    return read


COMPARISONS: dict[str, list[Comparison]] = {
    "W1": [
        Comparison("workflows/s", field("workflows_per_s"), field("workflows_per_s"), True),
        Comparison("steps/s", field("steps_per_s"), field("steps_per_s"), True),
        Comparison(
            "latency p50 ms", field("latency_p50_ms"), field("latency_p50_ms"), False, "{:.2f}"
        ),
        Comparison(
            "latency p99 ms", field("latency_p99_ms"), field("latency_p99_ms"), False, "{:.2f}"
        ),
    ],
    "W2": [
        Comparison("workflows/s", field("workflows_per_s"), field("workflows_per_s"), True),
        Comparison("steps/s", field("steps_per_s"), field("steps_per_s"), True),
    ],
    "W3": [
        Comparison("runs parked", field("n"), field("n"), None, "{:,.0f}"),
        Comparison(
            "runs parked per s", per_run_rate("park_seconds"), per_run_rate("park_seconds"), True
        ),
        Comparison(
            "runs completed per s after signalling",
            per_run_rate("seconds_to_all_complete"),
            per_run_rate("seconds_to_all_complete"),
            True,
        ),
        Comparison("peak RSS MB", field("peak_rss_mb"), field("peak_rss_mb"), False),
    ],
    "W4": [
        Comparison("runs missing", field("runs_missing"), field("missing"), False, "{:,.0f}"),
        Comparison(
            "runs in flight at SIGKILL",
            field("in_flight_at_kill"),
            field("pending_at_kill"),
            None,
            "{:,.0f}",
        ),
        Comparison(
            "step bodies run twice",
            field("step_bodies_run_twice"),
            field("steps_run_twice"),
            None,
            "{:,.0f}",
        ),
        Comparison(
            "recovery seconds",
            field("recovery_seconds"),
            field("recovery_seconds"),
            False,
            "{:.2f}",
        ),
    ],
}


# --- tables ------------------------------------------------------------------------------


def fmt(template: str, value: Any) -> str:
    if value is None:
        return "—"
    try:
        return template.format(value)
    except (ValueError, TypeError):
        return str(value)


def verdict(met: bool | None) -> str:
    if met is None:
        return ""
    return "[green]met[/green]" if met else "[bold red]NOT met[/bold red]"


def figures_table(
    title: str,
    records: list[Record],
    figures: dict[str, list[Figure]],
    *,
    column: tuple[str, str] | None = None,
    scale: float = 1.0,
) -> Table:
    """One section per record: its figures, their targets and verdicts.

    ``column`` (header, record field) adds a column that tells records of one workload apart.
    """
    table = Table(title=title, title_justify="left")
    names = ["workload", *([column[0]] if column else []), "figure", "value", "target", "verdict"]
    for name in names:
        table.add_column(name, justify="right" if name == "value" else "left")
    for record in records:
        workload = str(record.get("workload"))
        rows: list[tuple[str, str, str, str]] = []
        if record.get("error"):
            rows.append(("[red]error[/red]", "", "", escape(str(record["error"])[:80])))
        if record.get("timed_out"):
            rows.append(("[yellow]timed out[/yellow]", "", "", "partial figures"))
        for figure in figures.get(workload, []):
            value = record.get(figure.field)
            target_text, mark = "", ""
            if figure.target is not None:
                bound = figure.target.bound_of(record)
                target_text = figure.target.text
                if figure.target.bound_field is not None and bound is not None:
                    target_text += f" = {bound:g} s"
                mark = verdict(figure.target.met(record, None if value is None else float(value)))
            rows.append((figure.label, fmt(figure.fmt, value), target_text, mark))
        for index, row in enumerate(rows):
            head = [workload, *([str(record.get(column[1], ""))] if column else [])]
            table.add_row(*(head if index == 0 else [""] * len(head)), *row)
        table.add_section()
    if scale != 1.0:
        table.caption = (
            f"scale {scale:g}: counts are shrunk, while targets are set for full "
            "size; read these verdicts as indicative only"
        )
    return table


def results_table(records: list[Record], scale: float, load: str) -> Table:
    title = f"opsloom on SQLite ({os.cpu_count()} CPUs; load average {load} at the start)"
    return figures_table(title, records, FIGURES, column=("sync", "synchronous"), scale=scale)


def advantage(ours: float, theirs: float, higher_is_better: bool) -> str:
    if ours == theirs:
        return "same"
    if ours == 0 or theirs == 0:
        better = (ours > theirs) == higher_is_better
        return "[green]better[/green]" if better else "[red]worse[/red]"
    factor = ours / theirs if higher_is_better else theirs / ours
    if factor >= 1:
        return f"[green]{factor:,.1f}x better[/green]"
    return f"[red]{1 / factor:,.1f}x worse[/red]"


def peers_table(
    pairs: list[tuple[Record, Record]],
    *,
    title: str = "opsloom versus DBOS (both on SQLite, durable settings)",
    w1_factor: float = PEER_W1_FACTOR,
    comparisons: dict[str, list[Comparison]] | None = None,
) -> Table:
    table = Table(title=title, title_justify="left")
    for name in (
        "workload",
        "figure",
        "opsloom",
        "DBOS",
        "opsloom/DBOS",
        "opsloom is",
        "target",
        "verdict",
    ):
        table.add_column(
            name, justify="right" if name in {"opsloom", "DBOS", "opsloom/DBOS"} else "left"
        )
    for ours, theirs in pairs:
        workload = str(ours.get("workload"))
        first = True
        if theirs.get("error") or theirs.get("timed_out"):
            note = theirs.get("error") or "DBOS timed out: partial figures"
            table.add_row(
                workload, "[yellow]DBOS[/yellow]", "", "", "", escape(str(note)[:60]), "", ""
            )
            first = False
        for row in (comparisons or COMPARISONS).get(workload, []):
            a, b = row.opsloom(ours), row.dbos(theirs)
            known = a is not None and b is not None and row.higher_is_better is not None
            ratio = f"{a / b:,.2f}" if known and b else "—"
            better = advantage(a, b, row.higher_is_better) if known else ""
            target, mark = "", ""
            if workload == "W1" and row.label == "workflows/s":
                target = f"≥ {w1_factor:g}x DBOS"
                mark = verdict(None if a is None or b is None else a >= w1_factor * b)
            table.add_row(
                workload if first else "",
                row.label,
                fmt(row.fmt, a),
                fmt(row.fmt, b),
                ratio,
                better,
                target,
                mark,
            )
            first = False
        table.add_section()
    notes: list[str] = []
    if any(
        str(ours.get("workload")) == "W3" and ours.get("n") != theirs.get("n")
        for ours, theirs in pairs
    ):
        notes.append(
            "W3 ran fewer runs on DBOS (it cannot park 100,000 in its "
            "time budget): compare the per-run rates, not the seconds."
        )
    if any(str(ours.get("workload")) == "W4" for ours, _ in pairs):
        notes.append(
            "W4: step bodies run twice follow the runs in flight at the kill on both engines "
            "(an interrupted step runs again); DBOS's kill may land later in its runs."
        )
    table.caption = "\n".join(notes) or None
    return table

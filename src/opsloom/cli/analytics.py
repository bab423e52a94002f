"""``opsloom analytics``: how workflows and steps did over a window (see
:mod:`opsloom.analytics.report`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.table import Table

from opsloom.analytics.report import parse_span, report
from opsloom.cli.console import DbOption, JsonOption, client, fail, out, print_json
from opsloom.clock import to_datetime
from opsloom.errors import InputError

analytics_cli = typer.Typer(
    help="Success rates, durations, failures and trends of runs.", no_args_is_help=True
)

SinceOption = Annotated[
    str, typer.Option("--since", help="How far back: 30m, 12h, 7d, 2w (default 7d).")
]
BucketOption = Annotated[
    str, typer.Option("--bucket", help="Bucket of trends and anomalies: 15m, 1h, 1d.")
]


def _fetch(what: str, since: str, db: str | None, bucket: str = "1h") -> Any:
    try:
        window, width = parse_span(since), parse_span(bucket, "--bucket")
    except InputError as exc:
        fail(str(exc), 2)
    return client(
        db,
        lambda app: report(
            app.store, what, app.clock.now(), window, width, app.registry.workflows()
        ),
    )


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _table(
    rows: list[dict[str, Any]],
    heads: tuple[str, ...],
    cells: Callable[[dict[str, Any]], list[str]],
) -> None:
    """Rows with their own cells, then the duration percentiles."""
    table = Table(*heads, "p50", "p95", "p99")
    for row in rows:
        d = row["duration_s"]
        table.add_row(*cells(row), _ms(d["p50"]), _ms(d["p95"]), _ms(d["p99"]))
    out.print(table)


def _summary(data: dict[str, Any]) -> None:
    duration = data["duration_s"]
    out.print(
        f"{data['runs']} runs finished, success {_rate(data['success_rate'])}, "
        f"{data['throughput_per_hour']} per hour; duration p50 {_ms(duration['p50'])}, "
        f"p95 {_ms(duration['p95'])}, p99 {_ms(duration['p99'])}; "
        f"retry rate {_rate(data['retry_rate'])}"
    )
    if data["failure_reasons"]:
        table = Table("failures", "type", "message")
        for reason in data["failure_reasons"]:
            table.add_row(str(reason["count"]), reason["type"], reason["message"])
        out.print(table)
    if data["slowest_steps"]:
        table = Table("workflow", "slowest steps", "p95", "failed")
        for step in data["slowest_steps"]:
            table.add_row(
                step["workflow"], step["step"], _ms(step["duration_s"]["p95"]), str(step["failed"])
            )
        out.print(table)


def _workflows(rows: list[dict[str, Any]]) -> None:
    _table(
        rows,
        ("workflow", "version", "runs", "success"),
        lambda row: [row["workflow"], row["version"], str(row["runs"]), _rate(row["success_rate"])],
    )


def _steps(rows: list[dict[str, Any]]) -> None:
    _table(
        rows,
        ("workflow", "step", "count", "failed", "retried"),
        lambda row: [
            row["workflow"],
            row["step"],
            str(row["count"]),
            str(row["failed"]),
            _rate(row["retry_rate"]),
        ],
    )


def _trends(rows: list[dict[str, Any]]) -> None:
    table = Table("from", "finished", "success", "p95")
    for row in rows:
        when = to_datetime(row["start"])
        table.add_row(
            "-" if when is None else when.isoformat(timespec="minutes"),
            str(row["finished"]),
            _rate(row["success_rate"]),
            _ms(row["duration_p95_s"]),
        )
    out.print(table)


def _anomalies(rows: list[dict[str, Any]]) -> None:
    if not rows:
        out.print("no anomalies")
        return
    table = Table("workflow", "anomaly", "value", "baseline", "score")
    for row in rows:
        table.add_row(
            row["workflow"],
            row["kind"],
            f"{row['value']:g}",
            f"{row['baseline']:g}",
            f"{row['score']:g}",
        )
    out.print(table)


def _register(what: str, summary: str, render: Callable[[Any], None]) -> None:
    """One ``opsloom analytics WHAT`` command: the report as JSON or rendered by ``render``."""

    def command(
        since: SinceOption = "7d",
        bucket: BucketOption = "1h",
        db: DbOption = None,
        as_json: JsonOption = False,
    ) -> None:
        data = _fetch(what, since, db, bucket)
        if as_json:
            print_json(data)
        else:
            render(data)

    command.__doc__ = summary
    command.__name__ = f"{what}_command"
    analytics_cli.command(what)(command)


_register(
    "summary",
    "Success rate, throughput, durations, retries, failure reasons and bottleneck steps.",
    _summary,
)
_register(
    "workflows",
    "Per workflow and version: runs, success rate and duration percentiles.",
    _workflows,
)
_register(
    "steps", "Per workflow and step: count, failures, retry rate and duration percentiles.", _steps
)
_register("trends", "Finished runs, success rate and p95 duration per time bucket.", _trends)


def _recommend(rows: list[dict[str, Any]]) -> None:
    if not rows:
        out.print("no recommendations: nothing in the window calls for a change")
        return
    for row in rows:
        out.print(f"[bold]{row['kind']}[/bold]  {row['message']}")
        evidence = ", ".join(f"{k}={v}" for k, v in row["evidence"].items() if v is not None)
        out.print(f"    evidence: {evidence}")


_register(
    "recommend",
    "Concrete changes (retries, timeouts, concurrency, bottleneck steps, overlapping "
    "schedules) with the numbers behind each.",
    _recommend,
)
_register(
    "anomalies",
    "Workflows whose newest bucket breaks from their own baseline (duration, failures, runs).",
    _anomalies,
)

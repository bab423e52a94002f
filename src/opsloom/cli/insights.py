"""``opsloom insights``: analyse conversations offline, store results as events, show trends.

``analyze FILE`` reads JSON Lines (or one JSON document; ``-`` is standard input) in any
supported format and prints one result per conversation: JSON Lines with ``--json``, else a
short line each. ``--store`` also stores the results as CloudEvents in the database so
triggers start follow-up workflows.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Annotated, Any

import orjson
import typer
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from opsloom.app import App
from opsloom.cli.console import (
    DbOption,
    JsonOption,
    cli_app,
    client,
    err,
    execute,
    fail,
    out,
    print_json,
)
from opsloom.insights.adapters import FORMATS, read_stream
from opsloom.insights.analysis import INACTIVITY_SECONDS, Analysis
from opsloom.insights.analyzers.judge import JudgeAnalyzer, JudgeOptions
from opsloom.insights.conversation import Conversation, ConversationFormatError
from opsloom.insights.event import anomaly_event
from opsloom.insights.topic import TopicsUnavailable, topic_clusters
from opsloom.insights.trend import DIMENSIONS, Trends
from opsloom.services.conversation import analyze_into, stored_results
from opsloom.worker import WorkerOptions

insights_cli = typer.Typer(help="Analyse LLM and chat conversations.", no_args_is_help=True)

#: Conversations stored per transaction with ``--store``.
_STORE_BATCH = 200

FormatOption = Annotated[
    str,
    typer.Option("--format", help=f"Input format: {', '.join(FORMATS)} (auto detects per record)."),
]


def _open(path: str) -> IO[bytes]:
    if path == "-":
        return sys.stdin.buffer
    file = Path(path)
    if not file.is_file():
        fail(f"{path}: no such file", 2)
    return file.open("rb")


def _summary(result: dict[str, Any]) -> str:
    attention = result["attention"]
    scores = " ".join(f"{k}={v['value']:.2f}" for k, v in result["scores"].items())
    flags = ",".join(sorted({f["code"] for f in result["flags"]})) or "-"
    mark = f"[red]ATTENTION {attention['priority']}[/red] " if attention["needed"] else ""
    return f"{mark}{result['conversation']['id']}  {scores}  flags: {flags}"


def _chunks(items: Iterator[Conversation], size: int) -> Iterator[list[Conversation]]:
    chunk: list[Conversation] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@insights_cli.command("analyze")
def analyze(
    file: Annotated[str, typer.Argument(help="JSON Lines or JSON file; '-' for stdin.")],
    format: FormatOption = "auto",
    as_json: JsonOption = False,
    store: Annotated[
        bool, typer.Option("--store", help="Also store results as CloudEvents (see --db).")
    ] = False,
    db: DbOption = None,
    only: Annotated[
        list[str] | None, typer.Option("--only", help="Run only these analyzers (repeatable).")
    ] = None,
    judge_url: Annotated[
        str | None,
        typer.Option("--judge-url", help="OpenAI-compatible API (…/v1) for the LLM judge."),
    ] = None,
    judge_model: Annotated[
        str, typer.Option("--judge-model", help="Model the judge asks.")
    ] = "gpt-4o-mini",
    judge_key: Annotated[
        str | None,
        typer.Option("--judge-key", envvar="OPSLOOM_JUDGE_API_KEY", help="The judge's API key."),
    ] = None,
    inactivity: Annotated[
        float,
        typer.Option("--inactivity", help="Seconds idle after which a conversation is closed."),
    ] = INACTIVITY_SECONDS,
) -> None:
    """Analyse every conversation in FILE; one result per conversation."""
    if format not in FORMATS:
        fail(f"--format must be one of {', '.join(FORMATS)}, not {format!r}", 2)
    extra = (
        [JudgeAnalyzer(JudgeOptions(url=judge_url, model=judge_model, api_key=judge_key))]
        if judge_url
        else []
    )
    analysis = Analysis.discover(
        only=set(only) if only else None, extra=extra, inactivity=inactivity
    )
    now = datetime.now(UTC)
    for skipped in analysis.skipped:
        err.print(f"[yellow]skipped analyzer {skipped.name}:[/yellow] {escape(skipped.reason)}")
    stream = _open(file)
    name = "stdin" if file == "-" else file
    # A progress line only where it cannot mix with results: stderr a terminal, stdout not.
    show_progress = err.is_terminal and not out.is_terminal

    def emit(result: dict[str, Any]) -> None:
        if as_json:
            sys.stdout.buffer.write(orjson.dumps(result) + b"\n")
        else:
            out.print(_summary(result), highlight=False, soft_wrap=True)

    try:
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.completed} conversations"),
            TimeElapsedColumn(),
            console=err,
            disable=not show_progress,
            transient=True,
        ) as progress:
            task = progress.add_task("analyze", total=None)
            chunks = _chunks(read_stream(stream, format, name=name), _STORE_BATCH)
            if store:
                client(
                    db, lambda app: _store(app, analysis, chunks, emit, progress, task), create=True
                )
            else:
                for chunk in chunks:
                    for conversation in chunk:
                        emit(analysis.run(conversation, now))
                    progress.advance(task, len(chunk))
    except ConversationFormatError as exc:
        fail(str(exc), 2)
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()


async def _store(
    app: App,
    analysis: Analysis,
    chunks: Iterator[list[Conversation]],
    emit: Callable[[dict[str, Any]], None],
    progress: Progress,
    task: TaskID,
) -> None:
    for chunk in chunks:
        for stored in await analyze_into(app, analysis, chunk):
            emit(stored.result)
        progress.advance(task, len(chunk))


@insights_cli.command("batch")
def batch(
    file: Annotated[str, typer.Argument(help="JSON Lines file.")],
    format: FormatOption = "auto",
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Analyse FILE as a durable run and store the results as events.

    The run id derives from the file's path, size and modification time: after a crash, the
    same command resumes the same run where it stopped, and nothing is stored twice.
    """
    from opsloom.services.conversation import BATCH_WORKFLOW, register_batch

    if format not in FORMATS:
        fail(f"--format must be one of {', '.join(FORMATS)}, not {format!r}", 2)
    path = Path(file).resolve()
    if not path.is_file():
        fail(f"{file}: no such file", 2)
    stat = path.stat()
    digest = hashlib.sha256(f"{path}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()
    app = cli_app(db, worker=WorkerOptions())
    register_batch(app)

    async def go() -> Any:
        async with app:
            handle = await app.start(
                BATCH_WORKFLOW,
                {"path": str(path), "format": format},
                run_id=f"insights-{digest[:24]}",
            )
            return handle.run_id, await handle.result()

    run_id, totals = execute(go)
    if as_json:
        print_json({"run_id": run_id, **totals})
    else:
        out.print(
            f"run {run_id}: {totals['conversations']} conversations in {totals['chunks']} "
            f"chunks, {totals['attention']} need attention, {totals['events']} new events"
        )


@insights_cli.command("topics")
def topics(
    file: Annotated[str, typer.Argument(help="JSON Lines or JSON file; '-' for stdin.")],
    format: FormatOption = "auto",
    clusters: Annotated[
        int | None,
        typer.Option("--clusters", min=1, help="How many clusters (default: about sqrt(n/2))."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Group the conversations in FILE by what their users wrote (needs opsloom[embeddings])."""
    if format not in FORMATS:
        fail(f"--format must be one of {', '.join(FORMATS)}, not {format!r}", 2)
    stream = _open(file)
    name = "stdin" if file == "-" else file
    try:
        found = topic_clusters(read_stream(stream, format, name=name), clusters)
    except ConversationFormatError as exc:
        fail(str(exc), 2)
    except TopicsUnavailable as exc:
        fail(str(exc), 1)
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    if as_json:
        print_json(found)
        return
    grid = Table("cluster", "conversations", "words", "examples")
    for cluster in found["clusters"]:
        grid.add_row(
            str(cluster["id"]),
            str(cluster["size"]),
            ", ".join(cluster["words"]),
            ", ".join(cluster["examples"][:3]),
        )
    out.print(grid)
    if found["unclustered"]:
        out.print(f"{found['unclustered']} conversation(s) had no words shared with others")


@insights_cli.command("trends")
def trends(
    results: Annotated[
        str | None,
        typer.Option("--results", help="Results of `analyze --json` (JSON Lines); else the store."),
    ] = None,
    window: Annotated[str, typer.Option("--window", help="hour or day.")] = "day",
    by: Annotated[str, typer.Option("--by", help=f"Dimension: {', '.join(DIMENSIONS)}.")] = "model",
    store_anomalies: Annotated[
        bool, typer.Option("--store-anomalies", help="Store anomalies as CloudEvents.")
    ] = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Counts, score quantiles and flag rates per window and dimension; rate anomalies."""
    if window not in ("hour", "day"):
        fail(f"--window must be hour or day, not {window!r}", 2)
    if by not in DIMENSIONS:
        fail(f"--by must be one of {', '.join(DIMENSIONS)}, not {by!r}", 2)
    table = Trends(window, by)  # type: ignore[arg-type]
    if results is not None:
        stream = _open(results)
        with stream:
            for number, line in enumerate(stream, start=1):
                if line.strip():
                    try:
                        table.add(orjson.loads(line))
                    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
                        fail(f"{results}:{number}: not an analysis result ({exc})", 2)
    if results is None or store_anomalies:

        async def from_store(app: App) -> None:
            if results is None:
                async for result, moment in stored_results(app):
                    table.add(result, moment)
            if store_anomalies:
                await app.emit_events([anomaly_event(a) for a in table.anomalies()])

        client(db, from_store, create=store_anomalies)
    rows = list(table.rows())
    anomalies = table.anomalies()
    if as_json:
        print_json({"rows": rows, "anomalies": anomalies})
        return
    grid = Table("window", by, "conversations", "attention", "top flags")
    for row in rows:
        top = sorted(row["flags"].items(), key=lambda kv: -kv[1]["count"])[:3]
        grid.add_row(
            row["window"][:16],
            row["value"],
            str(row["conversations"]),
            f"{row['attention']['rate']:.0%}",
            ", ".join(f"{code} {v['rate']:.0%}" for code, v in top) or "-",
        )
    out.print(grid)
    for anomaly in anomalies:
        out.print(
            f"[red]anomaly[/red] {anomaly['value']}: {anomaly['flag']} at "
            f"{anomaly['rate']['rate']:.0%} (baseline {anomaly['baseline']['rate']:.0%})"
        )

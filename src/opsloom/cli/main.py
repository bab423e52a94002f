"""``opsloom``: run workers, start and inspect runs, manage the database.

Commands are thin: they parse options, open an :class:`~opsloom.app.App` and call it.
``--json`` output is a stable format meant for scripts.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.table import Table

from opsloom.analytics.logformat import FORMATS, setup_logging
from opsloom.analytics.report import parse_span
from opsloom.analytics.retention import prune_all
from opsloom.analytics.runlog import RunLog
from opsloom.app import App
from opsloom.cli.console import (
    AppOption,
    DbOption,
    JsonOption,
    client,
    command_app,
    execute,
    fail,
    out,
    parse_json,
    print_json,
    report,
    run_call,
    settings,
)
from opsloom.cli.identity import cli_actor
from opsloom.cli.remote import Server, choose_server, chosen_server
from opsloom.errors import InputError, OpsloomError, RunFailedError, WorkflowNotFoundError
from opsloom.model import RunRecord, RunStatus
from opsloom.model.label import parse_label
from opsloom.services import run as runs
from opsloom.settings import Settings
from opsloom.worker import WorkerOptions

T = TypeVar("T")

cli = typer.Typer(
    name="opsloom",
    help="Durable workflow automation for operations teams.",
    no_args_is_help=True,
    add_completion=False,
)
runs_cli = typer.Typer(help="Inspect and manage runs.", no_args_is_help=True)
db_cli = typer.Typer(help="Manage the database schema.", no_args_is_help=True)
cli.add_typer(runs_cli, name="runs")
cli.add_typer(db_cli, name="db")

_app = command_app


LogFormatOption = Annotated[
    str | None,
    typer.Option(
        "--log-format",
        help="Log lines as text or json, one object a line (default: $OPSLOOM_LOG_FORMAT or text).",
    ),
]


def _setup_logging(config: Settings, log_format: str | None = None) -> None:
    chosen = log_format or config.log_format
    if chosen not in FORMATS:
        fail(f"--log-format must be text or json, not {chosen!r}", 2)
    setup_logging(config.log_level, chosen)


def _watch(app: App, config: Settings) -> None:
    """What a serving process reports: log lines per run change, traces when configured."""
    app.observe(RunLog())
    if config.otlp_endpoint:
        from opsloom.analytics.tracing import otlp_tracing

        app.observe(otlp_tracing(config.otlp_endpoint))


# --- serving -------------------------------------------------------------------------------


async def _serve_until_signalled(
    app: App,
    extra: Callable[[asyncio.Event], Awaitable[None]] | None = None,
    grace: float | None = None,
) -> None:
    """Open ``app`` (starting its worker) and run ``extra`` until SIGTERM or SIGINT.

    ``extra`` receives the stop event and must return soon after it is set; then the app closes:
    its worker drains within ``grace`` seconds and releases its leases.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await app.open()
        try:
            if extra is None:
                await stop.wait()
            else:
                await extra(stop)
        finally:
            await app.close(grace)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


@cli.command()
def worker(
    app: AppOption = None,
    db: DbOption = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            help="Runs executed at once (default: $OPSLOOM_WORKER_CONCURRENCY or 256).", min=1
        ),
    ] = None,
    lease: Annotated[
        float | None,
        typer.Option(help="Lease length in seconds (default: $OPSLOOM_LEASE_SECONDS or 30)."),
    ] = None,
    grace: Annotated[float, typer.Option(help="Seconds running steps get on SIGTERM.")] = 30.0,
    log_format: LogFormatOption = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            help="Serve /metrics, /healthz and /readyz on this port (0: any free one; "
            "default: none).",
            min=0,
            max=65535,
        ),
    ] = None,
) -> None:
    """Run a worker until SIGTERM/SIGINT (then stop gracefully)."""
    config = settings()
    _setup_logging(config, log_format)
    options = WorkerOptions(
        concurrency=concurrency or config.worker_concurrency,
        lease_seconds=lease or config.lease_seconds,
        poll_seconds=config.worker_poll_seconds,
        keep_parked=config.worker_keep_parked,
        grace_seconds=grace,
    )
    target = _app(app, db, worker=options, config=config)
    # Deployed workflow documents are served too (reloaded as they are deployed), so a worker
    # without --app runs documents only.
    from opsloom.cli.documents import serve_documents

    _watch(target, config)
    if metrics_port is None:
        execute(
            lambda: _serve_until_signalled(
                target, lambda stop: serve_documents(target.documents, stop.wait()), grace=grace
            )
        )
        return
    from opsloom.api.factory import create_probe_api
    from opsloom.api.server import listen, serve, url_of

    probes = create_probe_api(target)
    try:
        sock = listen(config.api_host, metrics_port)
    except OSError as exc:
        fail(f"cannot listen on {config.api_host}:{metrics_port}: {exc}")
    sys.stdout.write(f"opsloom worker metrics on {url_of(sock)}/metrics\n")
    sys.stdout.flush()
    try:
        execute(
            lambda: _serve_until_signalled(
                target,
                lambda stop: serve_documents(target.documents, serve(probes, sock, stop)),
                grace=grace,
            )
        )
    finally:
        sock.close()


#: What ``opsloom up`` serves without ``--app`` in a source checkout: the example workflows.
EXAMPLES_APP = "examples.workflows:app"
EXAMPLES_DIR = Path("examples")


def _default_app() -> str | None:
    """The example app when the current directory is a source checkout, else none at all."""
    return EXAMPLES_APP if (EXAMPLES_DIR / "workflows.py").is_file() else None


def _version_callback(value: bool) -> None:
    if value:
        from opsloom.api.factory import package_version

        out.print(f"opsloom {package_version()}", highlight=False)
        raise typer.Exit()


@cli.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the version and exit.",
            callback=_version_callback,
            is_eager=True,
        ),
    ] = False,
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            help="URL of a running opsloom: start, signal and runs use its API, not the "
            "database (default: $OPSLOOM_SERVER).",
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option("--token", help="API token for --server (default: $OPSLOOM_TOKEN)."),
    ] = None,
) -> None:
    """Durable workflow automation for operations teams."""
    if server is None and token is None:
        config = settings()
        server = config.server
        token = None if config.token is None else config.token.get_secret_value()
    choose_server(server, token)


@cli.command()
def up(
    app: Annotated[
        str | None,
        typer.Option(
            "--app",
            help="Python workflows to serve, as module:attribute (default: in a source "
            f"checkout the examples, {EXAMPLES_APP}; elsewhere none: deployed documents only).",
        ),
    ] = None,
    db: DbOption = None,
    host: Annotated[
        str | None,
        typer.Option(help="Address to listen on (default: $OPSLOOM_API_HOST or 127.0.0.1)."),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            help="Port to listen on, 0 for any free one (default: $OPSLOOM_API_PORT or 8080).",
            min=0,
            max=65535,
        ),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            help="Runs executed at once (default: $OPSLOOM_WORKER_CONCURRENCY or 256).", min=1
        ),
    ] = None,
    examples: Annotated[
        bool | None,
        typer.Option(
            "--examples/--no-examples",
            help="Deploy the documents of ./examples (default: $OPSLOOM_EXAMPLES, or yes with "
            "the example app).",
        ),
    ] = None,
    grace: Annotated[float, typer.Option(help="Seconds running steps get on SIGTERM.")] = 30.0,
    log_format: LogFormatOption = None,
    api_processes: Annotated[
        int,
        typer.Option(
            "--api-processes",
            help="Processes serving the HTTP API on the one address (default 1). This one also "
            "runs the worker and the scheduler; the others only answer requests, on the same "
            "store. For webhook intake beyond what one core parses.",
            min=1,
            max=64,
        ),
    ] = 1,
) -> None:
    """Serve the HTTP API and run a worker, in one process, until SIGTERM/SIGINT."""
    # Imported here: the web stack is only needed by this command, not by every CLI call.
    from opsloom.api import create_api
    from opsloom.api.server import listen_shared, serve, url_of
    from opsloom.cli.apiprocess import ApiProcesses
    from opsloom.cli.documents import deploy_examples, serve_documents
    from opsloom.cli.identity import announce_first_admin

    config = settings()
    _setup_logging(config, log_format)
    options = WorkerOptions(
        concurrency=concurrency or config.worker_concurrency,
        lease_seconds=config.lease_seconds,
        poll_seconds=config.worker_poll_seconds,
        keep_parked=config.worker_keep_parked,
        grace_seconds=grace,
    )
    chosen = app or _default_app()
    target = _app(chosen, db, worker=options, config=config)
    if examples is None:
        examples = config.examples or chosen == EXAMPLES_APP
    for error in _load_extensions(target):
        sys.stderr.write(f"warning: {error} (skipped)\n")
    _watch(target, config)
    api = create_api(target, config)
    from opsloom.web import attach_ui

    attach_ui(api, target, config)
    bind_host = host or config.api_host
    bind_port = config.api_port if port is None else port
    try:
        sock, *others = listen_shared(bind_host, bind_port, api_processes)
    except OSError as exc:
        fail(f"cannot listen on {bind_host}:{bind_port}: {exc}")
    url = url_of(sock)

    async def serve_all(stop: asyncio.Event) -> None:
        # Started once the store is open (and migrated): they only open it.
        helpers = ApiProcesses(others, chosen, target.database_url, log_format)
        helpers.start()
        deaf = helpers.hear(target.store)
        try:
            await helpers.ready(timeout=120)
            await serve_up(stop)
        finally:
            deaf()
            await helpers.stop(timeout=grace)

    async def serve_up(stop: asyncio.Event) -> None:
        if examples:
            await deploy_examples(target, EXAMPLES_DIR)
        await target.documents.load_deployed()
        names = ", ".join(sorted({spec.name for spec in target.registry.workflows()})) or "none"
        # Plain writes, flushed: scripts and tests read these lines from a pipe.
        sys.stdout.write(
            f"opsloom listening on {url} (API {url}/api/v1, OpenAPI "
            f"{url}/openapi.json, API docs {url}/docs); workflows: {names}\n"
            f"database: {target.database_url}\n"
        )
        if chosen is None:
            sys.stdout.write(
                "no --app: serving deployed documents only (opsloom deploy FILE); pass "
                "--app module:attribute to serve Python workflows\n"
            )
        if config.api_token:
            sys.stdout.write("OPSLOOM_API_TOKEN is accepted as an admin token (for automation)\n")
        sys.stdout.flush()
        # A new database gets its first admin, whose token is printed here, once.
        token = await announce_first_admin(target)
        if token is not None:
            sys.stdout.write(
                f"export OPSLOOM_TOKEN={token}\n"
                f'  (then: curl -H "Authorization: Bearer $OPSLOOM_TOKEN" {url}/api/v1/runs;'
                f" API docs at {url}/docs)\n"
            )
            sys.stdout.flush()
        await serve_documents(target.documents, serve(api, sock, stop))

    try:
        execute(lambda: _serve_until_signalled(target, serve_all, grace=grace))
    finally:
        for listening in (sock, *others):
            listening.close()


@cli.command("api-process", hidden=True)
def api_process(
    socket_fd: Annotated[int, typer.Option("--socket-fd")],
    parent_fd: Annotated[int, typer.Option("--parent-fd")],
    ready_fd: Annotated[int, typer.Option("--ready-fd")],
    wake_fd: Annotated[int | None, typer.Option("--wake-fd")] = None,
    app: Annotated[str | None, typer.Option("--app")] = None,
    db: DbOption = None,
    log_format: LogFormatOption = None,
) -> None:
    """One more process serving the API of an ``opsloom up`` (started by it; see
    :mod:`opsloom.cli.apiprocess`): no worker, no scheduler, its listening socket inherited."""
    import os
    import socket

    from opsloom.api import create_api
    from opsloom.api.server import serve
    from opsloom.cli.apiprocess import relay_wakes
    from opsloom.cli.documents import serve_documents
    from opsloom.web import attach_ui

    config = settings()
    _setup_logging(config, log_format)
    target = _app(app, db, worker=None, config=config)
    _load_extensions(target)
    _watch(target, config)
    api = create_api(target, config)
    attach_ui(api, target, config)
    sock = socket.socket(fileno=socket_fd)

    async def serve_api(stop: asyncio.Event) -> None:
        # Nothing is ever written to this pipe: readable means its writer, `opsloom up`, ended.
        asyncio.get_running_loop().add_reader(parent_fd, stop.set)
        if wake_fd is not None:
            relay_wakes(target.store, wake_fd)
        await target.documents.load_deployed()
        os.write(ready_fd, b"1")
        os.close(ready_fd)
        await serve_documents(target.documents, serve(api, sock, stop))

    try:
        execute(lambda: _serve_until_signalled(target, serve_api))
    finally:
        sock.close()


def _load_extensions(app: App) -> list[OpsloomError]:
    """Load the App's entry points now: their errors are reported before serving, not later."""
    try:
        app.catalog, app.sources, app.connectors  # noqa: B018 - loading is the point
        app.hooks_config  # noqa: B018
    except OpsloomError as exc:
        fail(str(exc), 2)
    return list(app.extension_errors)


# --- runs ----------------------------------------------------------------------------------


@cli.command()
def start(
    name: Annotated[str, typer.Argument(help="Workflow name.")],
    input: Annotated[str | None, typer.Option("--input", help="Input as JSON.")] = None,
    run_id: Annotated[str | None, typer.Option("--run-id", help="Idempotent run id.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the result.")] = False,
    timeout: Annotated[float | None, typer.Option(help="With --wait: give up after N s.")] = None,
    label: Annotated[
        list[str] | None, typer.Option("--label", help="A label key=value (repeatable).")
    ] = None,
    app: AppOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Start a run of a workflow (with --wait, print its output)."""
    value = parse_json(input, "--input")
    try:
        labels = dict(parse_label(text) for text in label or [])
    except InputError as exc:
        fail(str(exc), 2)
    remote = chosen_server()
    if remote is not None:
        _print_start(
            execute(lambda: _start_remote(remote, name, value, run_id, wait, timeout, labels)),
            wait,
            as_json,
        )
        return
    target = _app(app, db, worker=WorkerOptions() if wait else None)

    async def go() -> dict[str, Any]:
        async with target:
            try:
                run, created = await runs.start_run(
                    target, name, value, run_id=run_id, actor=cli_actor(), labels=labels
                )
            except WorkflowNotFoundError as exc:
                if app:
                    raise
                fail(
                    f"{exc}; pass --app module:attribute to load Python workflows, or "
                    "start a deployed document as NAMESPACE/NAME",
                    2,
                )
            result: dict[str, Any] = {"run_id": run.id, "created": created}
            if wait:
                try:
                    result["output"] = await target.result(run.id, timeout=timeout)
                    result["status"] = "completed"
                except RunFailedError as exc:
                    result["status"] = exc.status
                    result["error"] = exc.error
                except TimeoutError:
                    fail(
                        f"run {run.id} did not end within {timeout:g}s; it goes on "
                        f"(opsloom runs show {run.id})",
                        1,
                    )
            return result

    _print_start(execute(go), wait, as_json)


async def _start_remote(
    server: Server,
    name: str,
    value: Any,
    run_id: str | None,
    wait: bool,
    timeout: float | None,
    labels: dict[str, str],
) -> dict[str, Any]:
    run, created = await server.start(name, value, run_id=run_id, labels=labels)
    result: dict[str, Any] = {"run_id": run.id, "created": created}
    if wait:
        try:
            ended = await server.wait(run.id, timeout)
        except TimeoutError:
            fail(f"run {run.id} did not end within {timeout:g}s; it goes on", 1)
        result["status"] = str(ended.status)
        if ended.status is RunStatus.COMPLETED:
            result["output"] = ended.output
        else:
            result["error"] = ended.error
    return result


def _print_start(result: dict[str, Any], wait: bool, as_json: bool) -> None:
    if as_json:
        print_json(result)
    elif wait:
        print_json(result.get("output") if result.get("status") == "completed" else result)
    else:
        out.print(result["run_id"])
    if wait and result.get("status") != "completed":
        raise typer.Exit(1)


@cli.command("signal")
def send_signal(
    run_id: Annotated[str, typer.Argument(help="Run to signal.")],
    name: Annotated[str, typer.Argument(help="Signal name.")],
    data: Annotated[str | None, typer.Option("--data", help="Payload as JSON.")] = None,
    db: DbOption = None,
) -> None:
    """Send a signal to a run (a wait_for in it receives the data)."""
    payload = parse_json(data, "--data")
    run_call(
        db,
        lambda app: runs.signal_run(app, run_id, name, payload, actor=cli_actor()),
        lambda server: server.signal(run_id, name, payload),
    )
    out.print(f"signal {name!r} sent to {run_id}")


def _with_code(
    target: str | None, db: str | None, call: Callable[[App], Awaitable[T]]
) -> Callable[[], Awaitable[T]]:
    """Open the ``--app`` workflows (a query replays their code) on the store, without a
    worker, and make one call."""

    async def go() -> T:
        async with command_app(target, db, worker=None) as app:
            return await call(app)

    return go


@cli.command("query")
def query_run(
    run_id: Annotated[str, typer.Argument(help="Run to ask.")],
    name: Annotated[str, typer.Argument(help="Query name (ctx.on_query, @workflow.query).")],
    data: Annotated[str | None, typer.Option("--data", help="Argument as JSON.")] = None,
    app: AppOption = None,
    db: DbOption = None,
) -> None:
    """Ask a run's query handler and print its answer; the run is not changed.

    The run is replayed here, so --app must load its workflow (or --server ask a server).
    """
    payload = parse_json(data, "--data")
    server = chosen_server()
    if server is not None:
        answer = execute(lambda: server.query(run_id, name, payload))
    else:
        answer = execute(_with_code(app, db, lambda a: runs.query_run(a, run_id, name, payload)))
    print_json(answer)


@cli.command("update")
def update_run(
    run_id: Annotated[str, typer.Argument(help="Run to update.")],
    name: Annotated[str, typer.Argument(help="Update name (ctx.on_update, @workflow.update).")],
    data: Annotated[str | None, typer.Option("--data", help="Argument as JSON.")] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for the result.")
    ] = 30.0,
    app: AppOption = None,
    db: DbOption = None,
) -> None:
    """Send an update to a run (its validator may refuse it) and print the handler's result.

    A worker must be serving the run for the update to be handled.
    """
    payload = parse_json(data, "--data")
    server = chosen_server()
    if server is not None:
        result = execute(lambda: server.update(run_id, name, payload))
    else:
        result = execute(
            _with_code(
                app,
                db,
                lambda a: runs.update_run(
                    a, run_id, name, payload, actor=cli_actor(), timeout=timeout
                ),
            )
        )
    print_json(result)


def _runs_table(runs: list[RunRecord]) -> Table:
    table = Table("id", "workflow", "status", "created", "completed")
    for run in runs:
        table.add_row(
            run.id,
            f"{run.workflow}@{run.version}",
            f"{run.status} (quarantined)" if run.quarantined_at is not None else str(run.status),
            run.to_dict()["created_at"] or "",
            run.to_dict()["completed_at"] or "",
        )
    return table


@runs_cli.command("list")
def runs_list(
    status: Annotated[
        str | None,
        typer.Option(
            help="Only runs with this status; `quarantined`: runs set aside for crashing "
            "their workers."
        ),
    ] = None,
    workflow: Annotated[str | None, typer.Option(help="Only runs of this workflow.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many runs.")] = 50,
    label: Annotated[
        list[str] | None,
        typer.Option("--label", help="Only runs with this label, key=value (repeatable)."),
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """List runs, newest first."""
    try:
        labels = dict(parse_label(text) for text in label or [])
        found = run_call(
            db,
            lambda app: runs.list_runs(
                app, status=status, workflow=workflow, limit=limit, labels=labels
            ),
            lambda server: server.list_runs(
                status=status, workflow=workflow, limit=limit, labels=labels
            ),
        )
    except InputError as exc:
        fail(str(exc), 2)
    except ValueError as exc:
        fail(str(exc), 2)
        return
    if as_json:
        print_json([run.to_dict() for run in found])
    else:
        out.print(_runs_table(found))


@runs_cli.command("show")
def runs_show(run_id: str, db: DbOption = None, as_json: JsonOption = False) -> None:
    """Show one run with its step history."""
    run = run_call(db, lambda app: runs.show_run(app, run_id), lambda s: s.get_run(run_id))
    if as_json:
        print_json(run.to_dict())
        return
    data = run.to_dict()
    out.print(f"[bold]{run.id}[/bold]  {run.workflow}@{run.version}  {run.status}")
    out.print(
        f"created {data['created_at']}  completed {data['completed_at'] or '-'}"
        + (f"  recovered {run.recovered}x" if run.recovered else "")
    )
    if run.event_id is not None:
        out.print(f"event:  {run.event_source} {run.event_id}")
    if run.reset_of is not None:
        out.print(f"reset of {run.reset_of} from step {run.reset_to}")
    if run.paused is not None:
        out.print(f"paused ({run.paused}) since {data['paused_at']}")
    if run.quarantined_at is not None:
        out.print(
            f"[red]quarantined[/red] since {data['quarantined_at']}: its worker vanished "
            f"{run.recovered} times; `opsloom runs requeue {run.id}` once fixed"
        )
    out.print(f"input:  {json.dumps(run.input)}")
    if run.output is not None:
        out.print(f"output: {json.dumps(run.output)}")
    if run.error:
        out.print(f"[red]error:[/red] {run.error.get('type')}: {run.error.get('message')}")
    table = Table("#", "kind", "name", "status", "attempts", "completed")
    for step in run.steps:
        table.add_row(
            str(step.seq),
            str(step.kind),
            step.name,
            str(step.status),
            str(step.attempts),
            step.to_dict()["completed_at"] or "",
        )
    out.print(table)


@runs_cli.command("cancel")
def runs_cancel(run_id: str, db: DbOption = None, as_json: JsonOption = False) -> None:
    """Cancel a run and its open child runs (their compensation runs)."""
    ids = run_call(
        db,
        lambda app: runs.cancel_run(app, run_id, actor=cli_actor()),
        lambda server: server.cancel(run_id),
    )
    if as_json:
        print_json({"cancelled": ids})
    else:
        out.print(f"cancel requested for {len(ids)} run(s): {', '.join(ids)}")


@runs_cli.command("pause")
def runs_pause(run_id: str, db: DbOption = None, as_json: JsonOption = False) -> None:
    """Pause a run: its running step finishes, then it waits (no worker slot) for resume."""
    report(
        db,
        as_json,
        lambda app: runs.pause_run(app, run_id, actor=cli_actor()),
        lambda server: server.pause(run_id),
        RunRecord.to_dict,
        lambda run: f"run {run.id} paused ({run.status}); resume it with `opsloom runs resume`",
    )


@runs_cli.command("resume")
def runs_resume(run_id: str, db: DbOption = None, as_json: JsonOption = False) -> None:
    """Resume a paused run; timers that fired meanwhile and signals are taken at once."""
    report(
        db,
        as_json,
        lambda app: runs.resume_run(app, run_id, actor=cli_actor()),
        lambda server: server.resume(run_id),
        RunRecord.to_dict,
        lambda run: f"run {run.id} resumed ({run.status})",
    )


@runs_cli.command("requeue")
def runs_requeue(run_id: str, db: DbOption = None, as_json: JsonOption = False) -> None:
    """Release a quarantined run: workers claim it again, with a fresh crash budget."""
    run = run_call(
        db,
        lambda app: runs.requeue_run(app, run_id, actor=cli_actor()),
        lambda server: server.requeue(run_id),
    )
    if as_json:
        print_json(run.to_dict())
    else:
        out.print(f"run {run.id} requeued ({run.status})")


@runs_cli.command("reset")
def runs_reset(
    run_id: str,
    to_step: Annotated[
        int, typer.Option("--to-step", help="The step (# in `runs show`) to re-execute from.")
    ],
    version: Annotated[
        str | None, typer.Option(help="Workflow version of the new run (default: the run's).")
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Start a new run from a finished run's history before a step, and run on from there.

    The recorded results before the step are reused (their side effects are not repeated),
    so a run that failed on a bug can go on with the fixed code.
    """
    run = client(
        db, lambda app: runs.reset_run(app, run_id, to_step, actor=cli_actor(), version=version)
    )
    if as_json:
        print_json(run.to_dict())
    else:
        out.print(f"run {run.id} started from {run_id} at step {to_step} ({run.status})")


@runs_cli.command("retry")
def runs_retry(run_id: str, db: DbOption = None, as_json: JsonOption = False) -> None:
    """Re-queue a failed or timed-out run; completed steps are not run again."""
    run = run_call(
        db,
        lambda app: runs.retry_run(app, run_id, actor=cli_actor()),
        lambda server: server.retry(run_id),
    )
    if as_json:
        print_json(run.to_dict())
    else:
        out.print(f"run {run.id} is {run.status} again")


# --- database ------------------------------------------------------------------------------


@db_cli.command("upgrade")
def db_upgrade(db: DbOption = None) -> None:
    """Create or migrate the database schema to this version of opsloom."""
    version = client(db, lambda app: app.store.schema_version(), create=True)
    out.print(f"database schema is at version {version}")


@db_cli.command("prune")
def db_prune(
    older_than: Annotated[
        str, typer.Option("--older-than", help="Prune what ended before this long ago: 30d, 8w.")
    ],
    db: DbOption = None,
) -> None:
    """Remove finished runs (with their history) and events older than a duration, in small
    batches; analytics keep their rollups."""
    try:
        age = parse_span(older_than, "--older-than")
    except InputError as exc:
        fail(str(exc), 2)
    pruned = client(db, lambda app: prune_all(app.store, app.clock.now() - age))
    out.print(f"pruned {pruned} runs and events")


# --- commands defined in their own modules --------------------------------------------------

from opsloom.cli.validate import validate_command  # noqa: E402 - registered after `cli` exists

cli.command("validate")(validate_command)

from opsloom.cli.documents import deploy_command, run_command  # noqa: E402

cli.command("run")(run_command)
cli.command("deploy")(deploy_command)

from opsloom.cli.events import events_cli  # noqa: E402 - registered after `cli` exists

cli.add_typer(events_cli, name="events")

from opsloom.cli.decisions import decisions_cli  # noqa: E402 - registered after `cli` exists

cli.add_typer(decisions_cli, name="decisions")

from opsloom.cli.schedules import schedules_cli  # noqa: E402 - registered after `cli` exists

cli.add_typer(schedules_cli, name="schedules")

from opsloom.cli.identity import groups_cli, tokens_cli, users_cli  # noqa: E402

cli.add_typer(users_cli, name="users")
cli.add_typer(groups_cli, name="groups")
cli.add_typer(tokens_cli, name="tokens")

from opsloom.cli.audit import audit_cli  # noqa: E402

cli.add_typer(audit_cli, name="audit")

from opsloom.cli.approvals import approvals_cli  # noqa: E402

cli.add_typer(approvals_cli, name="approvals")

from opsloom.cli.triggers import triggers_cli  # noqa: E402

cli.add_typer(triggers_cli, name="triggers")

from opsloom.cli.connectors import connections_cli, connectors_cli  # noqa: E402

cli.add_typer(connections_cli, name="connections")
cli.add_typer(connectors_cli, name="connectors")

from opsloom.cli.replay import replay_command  # noqa: E402

cli.command("replay")(replay_command)

from opsloom.cli.workflows import workflows_cli  # noqa: E402

cli.add_typer(workflows_cli, name="workflows")

from opsloom.cli.analytics import analytics_cli  # noqa: E402

cli.add_typer(analytics_cli, name="analytics")

from opsloom.cli.insights import insights_cli  # noqa: E402

cli.add_typer(insights_cli, name="insights")


@cli.command("demo")
def demo(
    approve_after: Annotated[
        float,
        typer.Option(
            "--approve-after",
            help="Seconds to wait for someone to approve the remediation before the demo "
            "approves it from the CLI.",
            min=0,
        ),
    ] = 20.0,
) -> None:
    """The incident-response runbook end to end on this machine, no accounts: real Prometheus
    and Alertmanager (Debian's prometheus and prometheus-alertmanager), local stand-ins of
    Slack, PagerDuty, GitHub, Jira and Kubernetes; stops everything it started."""
    from opsloom.demo.run import main as run_demo

    raise typer.Exit(run_demo(approve_after))


def main() -> None:
    """Entry point of the ``opsloom`` script."""
    cli()


if __name__ == "__main__":
    main()

"""One run in the browser: its timeline, tree of runs, events, document path, live updates."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response

from opsloom.app import App
from opsloom.dsl.document import parse_document
from opsloom.model import RunRecord, RunStatus, StepKind
from opsloom.services import run as runs
from opsloom.store import RunFilter
from opsloom.web.graph import Node, document_graph, mark_path
from opsloom.web.live import Message, event_stream
from opsloom.web.page import AppDep, Pages, PagesDep, SessionDep, pretty

router = APIRouter()

#: A longer history shows its first and last this many steps unless all are asked for.
STEP_WINDOW = 100
#: Up to this many steps, a run page carries every step's output; beyond, each loads on demand.
INLINE_OUTPUTS = 100
#: The tree of runs below a run shows at most this many runs (and says when there are more).
TREE_LIMIT = 200
#: Ancestors shown above a run, nearest first.
ANCESTOR_LIMIT = 20


def timeline(run: RunRecord, window: int | None = None) -> tuple[list[dict[str, Any]], int]:
    """Bars of the step Gantt chart: each step's offset and width in percent of the run's span.

    With ``window``, a longer history keeps its first and last ``window`` steps; the second
    value says how many were left out (the bar between them stands for those).
    """
    steps = [s for s in run.steps if s.kind is not StepKind.VALUE]
    start = run.started_at or run.created_at
    ends = [s.completed_at or s.started_at or start for s in steps]
    end = max([run.completed_at or run.updated_at or start, *ends])
    span = max(end - start, 1e-6)
    bars = []
    for step in steps:
        begin = step.started_at if step.started_at is not None else start
        finish = step.completed_at if step.completed_at is not None else end
        bars.append(
            {
                "step": step,
                "left": round(100 * (begin - start) / span, 2),
                "width": max(round(100 * (finish - begin) / span, 2), 0.5),
                "duration": None if step.completed_at is None else finish - begin,
            }
        )
    if window is None or len(bars) <= 2 * window:
        return bars, 0
    return bars[:window] + bars[-window:], len(bars) - 2 * window


@dataclass
class Branch:
    """A run in the tree of runs and the runs it started (in the order they were created)."""

    run: RunRecord
    children: list[Branch] = field(default_factory=list)


async def run_tree(app: App, root: RunRecord, limit: int = TREE_LIMIT) -> tuple[Branch, bool]:
    """The runs below ``root``, breadth first, at most ``limit``; True when some were left out.

    One store query per run that has children (the parent index); a run's children come in
    one query.
    """
    top = Branch(root)
    frontier = [top]
    shown = 0
    while frontier:
        branch = frontier.pop(0)
        children = await app.store.list_runs(
            RunFilter(parent_id=branch.run.id, limit=limit - shown + 1)
        )
        if len(children) > limit - shown:
            branch.children = [Branch(c) for c in _oldest_first(children)[: limit - shown]]
            return top, True
        branch.children = [Branch(c) for c in _oldest_first(children)]
        shown += len(children)
        frontier.extend(branch.children)
    return top, False


def _oldest_first(records: list[RunRecord]) -> list[RunRecord]:
    return sorted(records, key=lambda r: (r.created_at, r.id))


async def ancestors(app: App, run: RunRecord) -> list[RunRecord]:
    """The runs above ``run``, its parent first."""
    found: list[RunRecord] = []
    parent_id = run.parent_id
    while parent_id and len(found) < ANCESTOR_LIMIT:
        parent = await app.store.get_run(parent_id)
        if parent is None:
            break
        found.append(parent)
        parent_id = parent.parent_id
    return found


def received(run: RunRecord) -> list[dict[str, Any]]:
    """The signals a run took in, each with the event it carried when an event was delivered."""
    taken = []
    for step in run.steps:
        if step.kind is not StepKind.SIGNAL:
            continue
        output = step.output
        event = output.get("event") if isinstance(output, dict) else None
        taken.append(
            {
                "step": step,
                "event": event if isinstance(event, dict) and "source" in event else None,
            }
        )
    return taken


async def detail_context(app: App, run_id: str, all_steps: bool) -> dict[str, Any]:
    """What the run page shows of ``run_id`` (also what its live updates render)."""
    run = await runs.show_run(app, run_id)
    tree, cut = await run_tree(app, run)
    bars, hidden = timeline(run, None if all_steps else STEP_WINDOW)
    starter = None
    if run.event_source and run.event_id:
        starter = await app.store.get_event(run.event_source, run.event_id)
    return {
        "run": run,
        "bars": bars,
        "hidden": hidden,
        "window": STEP_WINDOW,
        "all_steps": all_steps,
        "tree": tree,
        "tree_cut": cut,
        "tree_limit": TREE_LIMIT,
        "ancestors": await ancestors(app, run),
        "starter": starter,
        "received": received(run),
        "subscriptions": await app.store.subscriptions_of(run.id),
        "compensations": [s for s in run.steps if s.kind is StepKind.COMPENSATION],
        "terminal": run.status.terminal,
        "retryable": run.status in (RunStatus.FAILED, RunStatus.TIMED_OUT),
        "graph": await _document_path(app, run),
        # Long histories load each step's output when it is opened, to keep the page light.
        "lazy_outputs": len(run.steps) > INLINE_OUTPUTS,
    }


# The live stream and the step outputs are routed before the page: a run id may hold "/".
@router.get("/live/runs/{run_id:path}", summary="One run, live (server-sent events)")
async def run_live(
    request: Request, run_id: str, app: AppDep, pages: PagesDep, session: SessionDep
) -> Response:
    """Event ``run``: the live part of the run page when it changes; ``ended`` when it ends."""
    await runs.show_run(app, run_id)  # an unknown run is a 404 now, not an empty stream
    all_steps = request.query_params.get("steps") == "all"

    async def render() -> list[Message]:
        return live_messages(pages, await detail_context(app, run_id, all_steps))

    return event_stream(request.app.state.hub, ("run", run_id, all_steps), render)


def live_messages(pages: Pages, context: dict[str, Any]) -> list[Message]:
    messages = [("run", pages.fragment("run_live.html", **context))]
    if context["terminal"]:
        messages.append(("ended", context["run"].status))
    return messages


@router.get("/runs/{run_id:path}/steps/{seq:int}", response_class=PlainTextResponse)
async def step_output(run_id: str, seq: int, app: AppDep, session: SessionDep) -> Response:
    """One step's output as indented JSON (what the run page's step output shows)."""
    run = await app.get_run(run_id)
    found = next((s for s in run.steps if s.seq == seq), None)
    if found is None:
        raise HTTPException(404, f"run {run_id!r} has no step {seq}")
    return PlainTextResponse(pretty(found.output))


@router.get("/runs/{run_id:path}", response_class=HTMLResponse, summary="One run")
async def run_page(
    request: Request, run_id: str, app: AppDep, pages: PagesDep, session: SessionDep
) -> Response:
    context = await detail_context(app, run_id, request.query_params.get("steps") == "all")
    context["notice"] = request.query_params.get("notice", "")
    # The page's live part asks once more when the stream says the run ended: its actions
    # (which depend on the viewer's roles) come with it, out of band.
    partial = request.headers.get("hx-request") == "true" and bool(request.query_params.get("live"))
    context["live_update"] = partial
    return pages.render(request, "run_live.html" if partial else "run.html", session, **context)


async def _document_path(app: App, run: RunRecord) -> list[Node] | None:
    """The graph of a deployed document's run with the path it took marked; None otherwise."""
    namespace, slash, name = run.workflow.partition("/")
    if not slash:
        return None
    record = await app.store.get_document(namespace, name, run.version)
    if record is None:
        return None
    graph = document_graph(parse_document(record.text, record.workflow))
    mark_path(graph, {s.name: str(s.status) for s in run.steps if s.kind is StepKind.STEP})
    return graph

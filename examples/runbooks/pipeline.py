"""API integration pipeline: fetch pages from an API, transform the records, fan them out to
several targets, each behind its own circuit breaker and rate limit, with dead letters and
their replay.

Install it with your pipeline's settings::

    from examples.runbooks.pipeline import PipelineSettings, Target, install
    install(app, PipelineSettings(
        name="orders", source="shop-api", path="/v1/orders",
        transform=lambda order: {"id": order["id"], "total": order["amount"] / 100},
        targets=(Target("warehouse"), Target("crm", path="/hooks/orders")),
    ))

The source and every target are ``webhook`` (HTTP) connections: each connection's
``rate_limit`` (calls a second, burst) and ``breaker`` (when it opens, its cooldown) are its
own, so a slow or dead target neither speeds past its limit nor drags the others.

A run of ``api-pipeline`` (scheduled by ``every``, or started by hand):

1. reads the cursor where the last run stopped (a checkpoint event) and fetches the next page
   (``limit`` and ``cursor`` query parameters; the page's ``items`` and ``next_cursor``);
2. transforms the page's records in a recorded step: a record the transform drops (returns
   ``None``) is skipped, one it fails on goes to the dead letters (stage ``transform``);
3. delivers every record to every target, at most ``in_flight`` at once per target; each
   delivery is a step retried ``attempts`` times (an open breaker makes the step wait its
   cooldown, a 429 its ``Retry-After``) and carries the idempotency key
   ``<pipeline>:<target>:<record id>`` (as ``Idempotency-Key`` and ``webhook-id``), so a
   receiver drops a delivery it already has, whether it comes from a retry, a replay or a run
   that read the page again;
4. a delivery that still fails is a dead letter for that target only (an
   ``io.opsloom.pipeline.dead_letter.v1`` event holding the transformed record and the error);
5. stores the page's cursor (``io.opsloom.pipeline.checkpoint.v1``) and fetches the next page
   only then: the slowest target sets the pace (**backpressure**), and a run that crashes
   resumes at the page it was on.

``api-pipeline-replay`` delivers the dead letters again (all, or one target's), with their
original idempotency keys; each that gets through is marked replayed (an
``io.opsloom.pipeline.replayed.v1`` event), so a second replay does not send it again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opsloom import App, Context, RetryPolicy
from opsloom.connectors.builtin import webhook
from opsloom.engine.registry import StepSpec, make_step_spec
from opsloom.errors import StepFailedError
from opsloom.store.event import EventQuery

WORKFLOW = "api-pipeline"
REPLAY = "api-pipeline-replay"
CHECKPOINT = "io.opsloom.pipeline.checkpoint.v1"
DEAD_LETTER = "io.opsloom.pipeline.dead_letter.v1"
REPLAYED = "io.opsloom.pipeline.replayed.v1"
SOURCE = "/opsloom/pipelines"


@dataclass(frozen=True)
class Target:
    """Where records go: a ``webhook`` connection and the path records are POSTed to."""

    connection: str
    path: str = ""
    #: The record's shape for this target (after the pipeline's transform); None: as is.
    shape: Callable[[dict[str, Any]], dict[str, Any]] | None = None


def _same(record: dict[str, Any]) -> dict[str, Any] | None:
    return record


@dataclass(frozen=True)
class PipelineSettings:
    """What a team changes: the source, the transform, the targets, the pace."""

    targets: tuple[Target, ...]
    name: str = "records"
    source: str = "source"
    path: str = ""
    items: str = "items"
    next_cursor: str = "next_cursor"
    page_size: int = 100
    #: Field of a source record that identifies it (the idempotency keys use it).
    key: str = "id"
    transform: Callable[[dict[str, Any]], dict[str, Any] | None] = _same
    #: Deliveries at once per target.
    in_flight: int = 4
    #: Tries per delivery before it becomes a dead letter.
    attempts: int = 5
    retry_delay: float = 1.0
    #: Pages per run at most (the next run goes on from the checkpoint).
    max_pages: int = 100
    #: Seconds between the end of a run and the next (None: no schedule).
    every: float | None = 60.0

    def __post_init__(self) -> None:
        if not self.targets:
            raise ValueError("targets: a pipeline needs at least one target")
        names = [t.connection for t in self.targets]
        if len(set(names)) != len(names):
            raise ValueError(f"targets: each connection once, not {names}")
        if self.in_flight < 1 or self.attempts < 1:
            raise ValueError("in_flight and attempts: at least 1")


class Pipeline:
    """The runbook bound to one pipeline's settings (the workflows are its methods)."""

    def __init__(self, app: App, settings: PipelineSettings) -> None:
        self.app = app
        self.s = settings
        retry = RetryPolicy(
            attempts=settings.attempts,
            initial_delay=settings.retry_delay,
            backoff=2.0,
            max_delay=max(60.0, settings.retry_delay),
        )
        self.delivery: StepSpec = make_step_spec(
            self.deliver, f"pipeline.{settings.name}.deliver", retry, None
        )

    # --- steps -------------------------------------------------------------------------------

    async def checkpoint(self) -> str | None:
        """The cursor the last page stored (None: from the start)."""
        found = await self.app.store.list_events(
            EventQuery(type=CHECKPOINT, subject=self.s.name, limit=1)
        )
        return found[0].event.data.get("cursor") if found else None

    def transform_page(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """The page transformed: ``records`` kept (by id), ``failed`` ones with the error."""
        kept, failed = [], []
        for record in records:
            key = str(record.get(self.s.key))
            try:
                shaped = self.s.transform(record)
            except Exception as exc:  # the user's transform: any failure is a dead letter
                failed.append(
                    {"id": key, "record": record, "error": f"{type(exc).__name__}: {exc}"}
                )
                continue
            if shaped is not None:
                kept.append({"id": key, "record": shaped})
        return {"kept": kept, "failed": failed}

    async def deliver(self, target: str, key: str, body: dict[str, Any]) -> int:
        """POST one record to one target, with the record's idempotency key."""
        spec = next(t for t in self.s.targets if t.connection == target)
        answer = await self.app.connections.call(
            webhook.send,
            target,
            {"method": "POST", "path": spec.path, "body": body},
            idempotency_key=f"{self.s.name}:{target}:{key}",
        )
        status: int = answer["status"]
        return status

    async def replayable(self, target: str | None) -> list[dict[str, Any]]:
        """Dead letters of this pipeline (of ``target``) not replayed yet, oldest first."""
        done = {
            e.event.subject
            for e in await self.app.store.list_events(
                EventQuery(type=REPLAYED, source=SOURCE, limit=100_000)
            )
        }
        letters = await self.app.store.list_events(
            EventQuery(type=DEAD_LETTER, source=SOURCE, limit=100_000)
        )
        found = []
        for stored in reversed(letters):
            data = stored.event.data
            if data["pipeline"] != self.s.name or stored.event.id in done:
                continue
            if data["stage"] != "deliver" or (target and data["target"] != target):
                continue
            found.append({"letter": stored.event.id, **data})
        return found

    # --- the workflows -----------------------------------------------------------------------

    async def run(self, ctx: Context, input: Any = None) -> dict[str, Any]:
        """Pages from the checkpoint on, each delivered to every target before the next."""
        s = self.s
        cursor = await ctx.step(self.checkpoint)
        totals: dict[str, Any] = {
            "pages": 0,
            "records": 0,
            "dropped": 0,
            "transform_failed": 0,
            "delivered": {t.connection: 0 for t in s.targets},
            "dead": {t.connection: 0 for t in s.targets},
        }
        for _ in range(s.max_pages):
            query = {"limit": str(s.page_size), **({"cursor": cursor} if cursor else {})}
            page = await ctx.step(
                webhook.send, connection=s.source, method="GET", path=s.path, query=query
            )
            body = page["body"] if isinstance(page["body"], dict) else {}
            records = body.get(s.items) or []
            shaped = await ctx.step(self.transform_page, records)
            totals["pages"] += 1
            totals["records"] += len(records)
            totals["dropped"] += len(records) - len(shaped["kept"]) - len(shaped["failed"])
            for failed in shaped["failed"]:
                totals["transform_failed"] += 1
                await self._dead(
                    ctx, "transform", None, failed["id"], failed["record"], failed["error"]
                )
            for target, (delivered, dead) in (await self._fan_out(ctx, shaped["kept"])).items():
                totals["delivered"][target] += delivered
                totals["dead"][target] += dead
            following = body.get(s.next_cursor)
            if following:
                await ctx.emit(
                    {
                        "type": CHECKPOINT,
                        "source": SOURCE,
                        "subject": s.name,
                        "data": {"cursor": following, "records": len(records)},
                    }
                )
                cursor = following
            if not following or not records:
                break
        return totals

    async def _fan_out(
        self, ctx: Context, records: list[dict[str, Any]]
    ) -> dict[str, tuple[int, int]]:
        """Deliver ``records`` to every target, ``in_flight`` records at a time (all targets
        at once); per target (delivered, dead)."""
        counts = {t.connection: (0, 0) for t in self.s.targets}
        for start in range(0, len(records), self.s.in_flight):
            chunk = records[start : start + self.s.in_flight]
            pairs = [(t, r) for t in self.s.targets for r in chunk]
            # Every delivery of the chunk is called before any ends, in this order, so a
            # replay meets them in the order they were recorded; dead letters come after.
            errors = await ctx.gather(*(self._one(ctx, t, r) for t, r in pairs))
            for (target, item), error in zip(pairs, errors, strict=True):
                delivered, dead = counts[target.connection]
                if error is None:
                    counts[target.connection] = (delivered + 1, dead)
                    continue
                counts[target.connection] = (delivered, dead + 1)
                body = self._body(target, item)
                await self._dead(ctx, "deliver", target.connection, item["id"], body, error)
        return counts

    def _body(self, target: Target, item: dict[str, Any]) -> dict[str, Any]:
        return target.shape(item["record"]) if target.shape else item["record"]

    async def _one(self, ctx: Context, target: Target, item: dict[str, Any]) -> str | None:
        """Deliver one record; the error when it still fails after its attempts."""
        try:
            await ctx.step_with(
                self.delivery, target.connection, item["id"], self._body(target, item)
            )
        except StepFailedError as exc:
            return f"{exc.error_type}: {exc.message}"
        return None

    async def _dead(
        self,
        ctx: Context,
        stage: str,
        target: str | None,
        key: str,
        record: dict[str, Any],
        error: str,
    ) -> None:
        await ctx.emit(
            {
                "type": DEAD_LETTER,
                "source": SOURCE,
                "subject": f"{self.s.name}/{target or stage}/{key}",
                "data": {
                    "pipeline": self.s.name,
                    "stage": stage,
                    "target": target,
                    "id": key,
                    "record": record,
                    "error": error[:2000],
                    "run": ctx.run_id,
                },
            }
        )

    async def replay(self, ctx: Context, input: Any = None) -> dict[str, Any]:
        """Deliver the dead letters again (``{"target": name}``: one target's only)."""
        target = (input or {}).get("target") if isinstance(input, dict) else None
        letters = await ctx.step(self.replayable, target)
        replayed, failed = [], []
        for letter in letters:
            try:
                await ctx.step_with(self.delivery, letter["target"], letter["id"], letter["record"])
            except StepFailedError as exc:
                failed.append({"letter": letter["letter"], "error": exc.message})
                continue
            await ctx.emit(
                {
                    "type": REPLAYED,
                    "source": SOURCE,
                    "subject": letter["letter"],
                    "data": {
                        "pipeline": self.s.name,
                        "target": letter["target"],
                        "id": letter["id"],
                    },
                }
            )
            replayed.append(letter["letter"])
        return {"replayed": replayed, "failed": failed}


def install(app: App, settings: PipelineSettings) -> Pipeline:
    """Register the pipeline and its replay on ``app`` (one run of either at a time)."""
    from opsloom.model.schedule import Schedule

    pipeline = Pipeline(app, settings)
    one = f"pipeline:{settings.name}"
    every = None if settings.every is None else Schedule(after=settings.every)
    app.workflow(name=WORKFLOW, concurrency=1, concurrency_key=lambda _: one, schedule=every)(
        pipeline.run
    )
    app.workflow(name=REPLAY, concurrency=1, concurrency_key=lambda _: one)(pipeline.replay)
    return pipeline

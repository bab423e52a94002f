"""The API pipeline runbook against loopback HTTP servers: a paged source and two targets.

The targets are plain receivers (the pipeline's targets are any HTTP endpoint): one keeps
what it gets and counts deliveries in flight, the other can be taken down. Each connection's
own breaker and rate limit are the connector runtime's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from examples.runbooks.pipeline import (
    CHECKPOINT,
    DEAD_LETTER,
    REPLAY,
    SOURCE,
    WORKFLOW,
    PipelineSettings,
    Target,
    install,
)

from opsloom import App, WorkerOptions
from opsloom.connectors.testing import FakeRequest, FakeResponse, FakeVendor
from opsloom.store.event import EventQuery

pytestmark = [pytest.mark.timeout(120)]

ORDERS = [
    {"id": "o-1", "amount": 1250, "status": "paid"},
    {"id": "o-2", "amount": 990, "status": "paid"},
    {"id": "o-3", "amount": 100, "status": "test"},  # dropped by the transform
    {"id": "o-4", "status": "paid"},  # no amount: the transform fails on it
    {"id": "o-5", "amount": 5000, "status": "paid"},
]


def shop(orders: list[dict[str, Any]]) -> FakeVendor:
    """A paged API: ``?limit=&cursor=``, answering ``items`` and the ``next_cursor``."""

    def page(request: FakeRequest) -> FakeResponse:
        limit = int(request.query["limit"][0])
        start = int(request.query.get("cursor", ["0"])[0])
        items = orders[start : start + limit]
        return FakeResponse(200, {"items": items, "next_cursor": str(start + len(items))})

    return FakeVendor(None, {("GET", "/v1/orders"): page})


class Receiver:
    """A target: keeps each delivery, counts deliveries in flight, can be down."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.down = False
        self.refused = 0
        self.got: list[FakeRequest] = []
        self.in_flight = 0
        self.most = 0
        self.lock = threading.Lock()
        self.vendor = FakeVendor(None, {("POST", "/hooks/orders"): self.receive})

    def receive(self, request: FakeRequest) -> FakeResponse:
        with self.lock:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        try:
            if self.delay:
                time.sleep(self.delay)
            if self.down:
                with self.lock:
                    self.refused += 1
                return FakeResponse(503, {"error": "maintenance"})
            with self.lock:
                self.got.append(request)
            return FakeResponse(202, {"accepted": True})
        finally:
            with self.lock:
                self.in_flight -= 1

    def keys(self) -> list[str]:
        return [r.headers["idempotency-key"] for r in self.got]


@pytest.fixture
def peers() -> Iterator[tuple[FakeVendor, Receiver, Receiver]]:
    source = shop(ORDERS)
    warehouse, crm = Receiver(delay=0.05), Receiver()
    with source, warehouse.vendor, crm.vendor:
        yield source, warehouse, crm


def euros(order: dict[str, Any]) -> dict[str, Any] | None:
    if order["status"] == "test":
        return None
    return {"id": order["id"], "total": order["amount"] / 100}


def pipeline_app(db_url: str, **changes: Any) -> App:
    app = App(db_url, worker=WorkerOptions(poll_seconds=0.05, grace_seconds=5))
    settings: dict[str, Any] = {
        "name": "orders",
        "source": "shop",
        "path": "/v1/orders",
        "page_size": 2,
        "transform": euros,
        "targets": (
            Target("warehouse", path="/hooks/orders"),
            Target("crm", path="/hooks/orders", shape=lambda r: {"order": r["id"], **r}),
        ),
        "in_flight": 2,
        "attempts": 2,
        "retry_delay": 0.05,
        "every": None,
    }
    install(app, PipelineSettings(**{**settings, **changes}))
    return app


async def connect(
    app: App, source: FakeVendor, warehouse: Receiver, crm: Receiver, crm_rate: float = 10.0
) -> None:
    add = app.connections.add_connection
    await add("shop", "webhook", {"url": source.url})
    await add(
        "warehouse",
        "webhook",
        {"url": warehouse.vendor.url, "signing_secret": "whsec_" + "a2V5" * 8},
    )
    breaker = {"failures": 2, "cooldown": 0.3, "successes": 1}
    await add(
        "crm",
        "webhook",
        {"url": crm.vendor.url, "rate_limit": {"rate": crm_rate, "burst": 1}, "breaker": breaker},
    )


async def run(app: App, workflow: str = WORKFLOW, input: Any = None) -> dict[str, Any]:
    result: dict[str, Any] = await (await app.start(workflow, input)).result(timeout=60)
    return result


async def letters(app: App) -> list[dict[str, Any]]:
    found = await app.store.list_events(EventQuery(type=DEAD_LETTER, source=SOURCE, limit=100))
    return [e.event.data for e in found]


async def test_pipeline__pages_transformed_fanned_out_once_per_target_at_each_pace(
    db_url: str, peers: tuple[FakeVendor, Receiver, Receiver]
) -> None:
    source, warehouse, crm = peers
    app = pipeline_app(db_url, page_size=10)  # one page: the bound is in_flight's alone
    async with app:
        await connect(app, source, warehouse, crm)
        totals = await run(app)
        again = await run(app)  # from the checkpoint: nothing new
        dead = await letters(app)
        [checkpoint] = await app.store.list_events(EventQuery(type=CHECKPOINT, limit=1))
    assert totals["records"] == 5 and totals["dropped"] == 1 and totals["transform_failed"] == 1
    assert totals["delivered"] == {"warehouse": 3, "crm": 3} and totals["dead"] == {
        "warehouse": 0,
        "crm": 0,
    }
    assert again["records"] == 0 and again["pages"] == 1
    assert checkpoint.event.data["cursor"] == "5"
    assert sorted(warehouse.keys()) == [
        "orders:warehouse:o-1",
        "orders:warehouse:o-2",
        "orders:warehouse:o-5",
    ]
    assert sorted(r.json["order"] for r in crm.got) == ["o-1", "o-2", "o-5"]  # the crm's shape
    assert crm.got[0].json["total"] == 12.5 or crm.got[1].json["total"] == 12.5
    assert all(r.headers["webhook-signature"].startswith("v1,") for r in warehouse.got)
    # At most in_flight (2) of the page's 3 deliveries at once reach the slow warehouse.
    assert 1 <= warehouse.most <= 2
    [failed] = dead
    assert (
        failed["stage"] == "transform" and failed["id"] == "o-4" and "KeyError" in failed["error"]
    )


async def test_pipeline__a_dead_target_gets_dead_letters_then_a_replay_delivers_them_once(
    db_url: str, peers: tuple[FakeVendor, Receiver, Receiver]
) -> None:
    source, warehouse, crm = peers
    crm.down = True
    app = pipeline_app(db_url)
    async with app:
        await connect(app, source, warehouse, crm)
        totals = await run(app)
        breaker = app.connections.breaker("crm")
        dead = [d for d in await letters(app) if d["stage"] == "deliver"]
        crm.down = False
        replayed = await run(app, REPLAY, {"target": "crm"})
        again = await run(app, REPLAY)
    # The warehouse got everything; the crm's records wait as dead letters, not lost.
    assert totals["delivered"] == {"warehouse": 3, "crm": 0} and totals["dead"]["crm"] == 3
    assert breaker["state"] in ("open", "half_open")  # the breaker stopped hammering it
    assert sorted(d["id"] for d in dead) == ["o-1", "o-2", "o-5"]
    # Each failed on the 503 or, once the breaker opened, without reaching the crm at all.
    assert all(d["target"] == "crm" for d in dead)
    assert all("503" in d["error"] or "circuit breaker" in d["error"] for d in dead)
    assert crm.refused >= 2  # it was tried (and answered 503) before the breaker opened
    assert dead[0]["record"]["order"] == dead[0]["id"]  # the shaped record is kept
    assert len(replayed["replayed"]) == 3 and replayed["failed"] == []
    assert again == {"replayed": [], "failed": []}
    assert sorted(crm.keys()) == ["orders:crm:o-1", "orders:crm:o-2", "orders:crm:o-5"]
    assert len(warehouse.got) == 3


async def test_pipeline__a_targets_rate_limit_paces_only_that_target(
    db_url: str, peers: tuple[FakeVendor, Receiver, Receiver]
) -> None:
    source, warehouse, crm = peers
    warehouse.delay = 0.0
    app = pipeline_app(db_url, in_flight=4, page_size=10)
    async with app:
        await connect(app, source, warehouse, crm, crm_rate=4.0)
        started = time.monotonic()
        await run(app)
        took = time.monotonic() - started
    assert len(crm.got) == 3 and len(warehouse.got) == 3
    assert took >= 0.45  # three crm calls at 4 a second, one at a time: two waits of 0.25 s


def test_settings__refused_with_the_setting_named() -> None:
    with pytest.raises(ValueError, match="targets: a pipeline needs at least one target"):
        PipelineSettings(targets=())
    with pytest.raises(ValueError, match="each connection once"):
        PipelineSettings(targets=(Target("a"), Target("a")))

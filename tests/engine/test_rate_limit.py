"""Rate limits: runs started faster than a workflow's rate queue and start at the rate, per
key when the limit has one, or are refused when it drops; shared by every store process."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from engine_waits import eventually, status_is

from opsloom import App, Context, FakeClock, RateLimit, RunStatus
from opsloom.codec import encode
from opsloom.errors import ConfigurationError, InputError, RateLimitExceededError
from opsloom.model.run import NewRun
from opsloom.store import open_store
from opsloom.store.event import EventQuery


async def test_rate_limit__a_storm_of_starts_drains_at_the_rate(
    make_app: Callable[..., App],
) -> None:
    clock = FakeClock()
    app = make_app(clock=clock)
    done: list[int] = []

    @app.workflow(name="page")
    async def page(ctx: Context, n: int) -> None:
        done.append(n)

    async with app:
        await app.limit_rate("page", 1.0, burst=2)
        assert [(r.workflow, r.rate, r.burst) for r in await app.store.rate_limits()] == [
            ("page", 1.0, 2)
        ]
        handles = [await app.start("page", n) for n in range(5)]
        await handles[1].result(timeout=10)
        await handles[0].result(timeout=10)
        for handle in handles[2:]:
            assert await handle.status() is RunStatus.PENDING
        for second in (1, 2, 3):
            clock.advance(1)
            await handles[1 + second].result(timeout=10)
            assert sorted(done) == list(range(2 + second))
        await app.limit_rate("page", None)
        assert await app.store.rate_limits() == []
        free = [await app.start("page", n) for n in range(5, 8)]
        for handle in free:
            await handle.result(timeout=10)


async def test_rate_limit__queued_run_is_cancelled_at_once(make_app: Callable[..., App]) -> None:
    app = make_app(clock=FakeClock())

    @app.workflow(name="wf")
    async def wf(ctx: Context) -> None:
        return None

    async with app:
        await app.limit_rate("wf", 0.01)
        first = await app.start("wf")
        queued = await app.start("wf")
        await first.result(timeout=10)
        await app.cancel(queued.run_id)
        await status_is(app, queued.run_id, RunStatus.CANCELLED)
        with pytest.raises(InputError, match="positive"):
            await app.limit_rate("wf", 0)
        await eventually(lambda: _pending_none(app))


async def test_rate_limit__a_signal_to_a_queued_run_does_not_start_it_early(
    make_app: Callable[..., App],
) -> None:
    clock = FakeClock()
    app = make_app(clock=clock)

    @app.workflow(name="wf")
    async def wf(ctx: Context) -> Any:
        return await ctx.wait_for("go")

    async with app:
        await app.limit_rate("wf", 0.1)
        first = await app.start("wf")
        queued = await app.start("wf")
        await status_is(app, first.run_id, RunStatus.WAITING)
        # The signal waits in the queued run's inbox; it must not move the run's start slot.
        await app.signal(queued.run_id, "go", 2)
        await app.signal(first.run_id, "go", 1)
        assert await first.result(timeout=10) == 1
        await asyncio.sleep(0.3)
        assert await queued.status() is RunStatus.PENDING
        clock.advance(10)
        assert await queued.result(timeout=10) == 2


async def _pending_none(app: App) -> bool:
    return not await app.list_runs(status=RunStatus.PENDING)


async def test_rate_limit__declared_per_key_each_service_has_its_own_rate(
    make_app: Callable[..., App],
) -> None:
    clock = FakeClock()
    app = make_app(clock=clock)

    @app.workflow(name="restart", rate_limit={"limit": 1, "period": "10s", "key": ".service"})
    async def restart(ctx: Context, alert: dict[str, str]) -> str:
        return alert["service"]

    async with app:
        (declared,) = await app.store.rate_limits()
        assert (declared.workflow, declared.rate, declared.limit.key, declared.declared) == (
            "restart",
            0.1,
            ".service",
            True,
        )
        api1 = await app.start("restart", {"service": "api"})
        db1 = await app.start("restart", {"service": "db"})
        api2 = await app.start("restart", {"service": "api"})
        assert await api1.result(timeout=10) == "api"
        assert await db1.result(timeout=10) == "db"
        assert await api2.status() is RunStatus.PENDING
        clock.advance(9)
        assert await api2.status() is RunStatus.PENDING
        clock.advance(1)
        assert await api2.result(timeout=10) == "api"


async def test_rate_limit__overflow_drop_refuses_the_start(make_app: Callable[..., App]) -> None:
    app = make_app(clock=FakeClock())

    @app.workflow(name="notify", rate_limit=RateLimit(rate=1 / 60, burst=2, overflow="drop"))
    async def notify(ctx: Context) -> None:
        return None

    async with app:
        first, second = await app.start("notify"), await app.start("notify")
        with pytest.raises(RateLimitExceededError, match="notify"):
            await app.start("notify")
        await first.result(timeout=10)
        await second.result(timeout=10)
        assert len(await app.list_runs()) == 2


async def test_rate_limit__a_triggers_limit_per_key_drops_the_events_past_it(
    make_app: Callable[..., App],
) -> None:
    clock = FakeClock()
    app = make_app(clock=clock)

    @app.workflow(name="ticket")
    async def ticket(ctx: Context, alert: dict[str, Any]) -> str:
        return str(alert["subject"])

    app.trigger(
        "ticket",
        on={"type": "alert"},
        key=None,
        rate_limit={"limit": 1, "period": 60, "key": ".data.team", "overflow": "drop"},
    )
    async with app:
        for n, team in enumerate(["a", "a", "b", "a"]):
            await app.emit(
                {
                    "specversion": "1.0",
                    "id": f"e{n}",
                    "type": "alert",
                    "source": "t",
                    "subject": f"s{n}",
                    "data": {"team": team},
                }
            )
        runs = await app.list_runs()
        assert sorted(r.input["subject"] for r in runs) == ["s0", "s2"]
        assert len(await app.store.list_events(EventQuery())) == 4, "every event is kept"


async def test_rate_limit__starts_from_two_stores_share_one_schedule(db_url: str) -> None:
    stores = [open_store(db_url), open_store(db_url)]
    for store in stores:
        await store.open()
    try:
        await stores[0].set_rate_limit("wf", RateLimit(rate=2.0, burst=1, key=".k"))

        async def start(n: int) -> None:
            new = NewRun(id=f"r{n}", workflow="wf", version="1", input=encode({"k": n % 2}))
            await stores[n % 2].create_run(new, 100.0)

        await asyncio.gather(*(start(n) for n in range(10)))
        rows = await stores[0].read(
            lambda tx: tx.all("SELECT run_id, available_at FROM jobs ORDER BY available_at")
        )
        for parity in (0, 1):
            times = sorted(at for run_id, at in rows if int(run_id[1:]) % 2 == parity)
            assert times == [100.0 + 0.5 * i for i in range(5)], times
    finally:
        for store in stores:
            await store.close()


def test_rate_limit__parse_and_refuse_bad_limits() -> None:
    assert RateLimit.parse("10/minute").rate == pytest.approx(10 / 60)
    assert RateLimit.parse("3/30").rate == 0.1
    parsed = RateLimit.parse({"limit": 5, "period": "1m", "burst": 5, "key": ".service"})
    assert (parsed.rate, parsed.burst, parsed.key) == (5 / 60, 5, ".service")
    assert RateLimit.from_dict(parsed.to_dict()) == parsed
    for bad, problem in [
        ("ten/minute", "not a number"),
        ("1/fortnight", "the unit is"),
        ({"limit": 1, "every": 2}, "unknown member 'every'"),
        ({"limit": 0}, "positive"),
        ({"limit": 1, "overflow": "later"}, "queue or drop"),
        ({"limit": 1, "key": ".["}, "not a jq expression"),
        (5, "'N/unit'"),
    ]:
        with pytest.raises(InputError, match=problem):
            RateLimit.parse(bad, "here")
    app = App("sqlite:///:memory:")
    with pytest.raises(ConfigurationError, match="rate_limit"):
        app.workflow(name="x", rate_limit="fast")

"""Web UI figures: server time of the runs list over 100,000 runs and of a 1,000-step run page.

    .venv/bin/python bench/web.py [--runs 100000] [--steps 1000] [--pages 200]
                                  [--store postgresql://postgres@127.0.0.1:5432/test]

The store gets ``--runs`` runs of three workflows (pending: no worker takes them), created over
a day of fake time, plus a few hundred completed runs and one run of ``--steps`` steps executed
by a real worker. Then the pages are requested in-process through the ASGI interface (no
network, so the time is the server's: routing, session check, store queries, rendering):

- ``runs_list``: the newest page, then older pages by keyset cursor, unfiltered;
- ``runs_filtered``: by status, by workflow, by a time range and by text in id or input;
- ``run_detail``: the page of the run with ``--steps`` steps (its first and last 100 steps);
- ``run_all_steps``: the same page with every step (``?steps=all``);
- ``counts(store)``: the store's counts per status alone, uncached (the page reuses the counts
  of one filter for two seconds, so paging and live refreshes do not count again);
- ``live``: ``--watchers`` subscribers of the live runs list for ``--ticks`` ticks, through the
  UI's hub and the page's own render: how many renders (store queries) that took in all.

It prints one line per page kind with p50/p95/max in milliseconds next to the target
(runs list ≤ 150 ms p95, run detail ≤ 250 ms p95), then the page weight of the runs list.
Figures, not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from opsloom import App, Context
from opsloom.api import create_api
from opsloom.codec import encode
from opsloom.model.run import NewRun
from opsloom.settings import Settings
from opsloom.store import RunFilter
from opsloom.web import attach_ui
from opsloom.web.live import Hub, Message
from opsloom.web.page import Pages
from opsloom.web.runs import Listing, StatusCounts, listing_context

TOKEN = "bench-web-token"
DAY = 86_400.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def build_app(url: str, steps: int) -> App:
    app = App(url)

    @app.step()
    def bump(n: int) -> int:
        return n + 1

    @app.workflow(name="long")
    async def long(ctx: Context, count: int) -> int:
        value = 0
        for _ in range(count):
            value = await ctx.step(bump, value)
        return value

    @app.workflow(name="quick")
    async def quick(ctx: Context, n: int) -> int:
        return await ctx.step(bump, n)

    return app


async def fill(app: App, runs: int) -> float:
    """Create ``runs`` pending runs over the last day; the time it took."""
    began = time.perf_counter()
    now = app.clock.now()
    batch = 2_000
    for start in range(0, runs, batch):
        news = [
            (
                NewRun(
                    id=f"bench-{n:07d}",
                    workflow=("restart", "cleanup", "triage")[n % 3],
                    version="1",
                    input=encode({"service": f"svc-{n % 500}", "n": n}),
                ),
                now - DAY + DAY * n / runs,
            )
            for n in range(start, min(start + batch, runs))
        ]
        await asyncio.gather(*(app.store.create_run(new, at) for new, at in news))
    return time.perf_counter() - began


async def timed(client: httpx.AsyncClient, path: str) -> tuple[float, httpx.Response]:
    began = time.perf_counter()
    answer = await client.get(path)
    elapsed = (time.perf_counter() - began) * 1000
    if answer.status_code != 200:
        raise SystemExit(f"{path}: {answer.status_code} {answer.text[:300]}")
    return elapsed, answer


async def sign_in(client: httpx.AsyncClient) -> None:
    form = await client.get("/signin")
    csrf = form.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    answer = await client.post("/signin", data={"csrf": csrf, "token": TOKEN})
    if answer.status_code != 303:
        raise SystemExit(f"sign-in failed: {answer.status_code}")


def report(name: str, samples: list[float], target: float) -> None:
    p95 = percentile(samples, 0.95)
    verdict = "meets" if p95 <= target else "MISSES"
    print(
        f"{name:<14} n={len(samples):<4} p50={statistics.median(samples):7.1f} ms  "
        f"p95={p95:7.1f} ms  max={max(samples):7.1f} ms  target p95<={target:.0f} ms: {verdict}"
    )


async def live(app: App, watchers: int, ticks: int) -> None:
    """``watchers`` subscribers of the newest runs page, each taking ``ticks`` changes."""
    hub, pages, counts = Hub(tick=0.2), Pages(), StatusCounts(ttl=0.0)
    listing = Listing(status="", workflow="", since="", until="", q="", before="")
    flt = listing.store_filter()
    produced = 0

    async def render() -> list[Message]:
        nonlocal produced
        produced += 1  # a new fragment each time, so that every tick reaches every watcher
        context = await listing_context(app, counts, listing, flt)
        return [("runs", pages.fragment("runs_live.html", **context) + f"<!-- {produced} -->")]

    async def watch() -> int:
        taken = 0
        async for chunk in hub.stream(("runs", ""), render):
            if not chunk.startswith(b":"):
                taken += 1
                if taken == ticks:
                    break
        return taken

    began = time.perf_counter()
    delivered = sum(await asyncio.gather(*(watch() for _ in range(watchers))))
    elapsed = time.perf_counter() - began
    hub.close()
    await hub.wait_closed()
    print(
        f"live: {watchers} watchers x {ticks} updates = {delivered} deliveries from "
        f"{hub.renders} renders of the runs list in {elapsed:.1f} s "
        f"(one render per tick shared by all; per-client polling would be {watchers * ticks})"
    )


async def bench(url: str, runs: int, steps: int, pages: int, watchers: int, ticks: int) -> None:
    app = build_app(url, steps)
    async with app:
        print(f"store: {url.split('?')[0]}", file=sys.stderr)
        seconds = await fill(app, runs)
        print(f"created {runs} runs in {seconds:.1f} s", file=sys.stderr)
        quick = [await app.start("quick", n) for n in range(300)]
        for handle in quick:
            await handle.result(timeout=60)
        long = await app.start("long", steps)
        await long.result(timeout=600)
        settings = Settings(api_token=TOKEN)
        api = create_api(app, settings)
        attach_ui(api, app, settings)
        transport = httpx.ASGITransport(app=api)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            await sign_in(client)
            listing: list[float] = []
            cursor = ""
            first: httpx.Response | None = None
            for _ in range(pages):
                elapsed, answer = await timed(client, f"/runs{cursor}")
                first = first or answer
                listing.append(elapsed)
                older = answer.text.split('rel="next"', 1)[0].rsplit('href="', 1)[-1]
                cursor = older.split('"', 1)[0].replace("&amp;", "&")[len("/runs") :]
                if not cursor.startswith("?"):
                    cursor = ""
            since = time.strftime("%Y-%m-%dT%H:%M", time.gmtime(app.clock.now() - DAY / 2))
            until = time.strftime("%Y-%m-%dT%H:%M", time.gmtime(app.clock.now() - DAY / 4))
            filters = [
                "/runs?status=completed",
                "/runs?status=pending",
                "/runs?workflow=cleanup",
                f"/runs?since={since}&until={until}",
                "/runs?q=svc-42",
                "/runs?q=bench-00123",
                "/runs?workflow=triage&q=svc-7",
            ]
            filtered = [(await timed(client, filters[n % len(filters)]))[0] for n in range(pages)]
            detail = [(await timed(client, f"/runs/{long.run_id}"))[0] for _ in range(50)]
            every = [(await timed(client, f"/runs/{long.run_id}?steps=all"))[0] for _ in range(20)]
            # Counts per status as the store gives them, without the page's short-lived reuse.
            counts = []
            for n in range(50):
                began = time.perf_counter()
                await app.store.count_runs(RunFilter(workflow=("restart", None)[n % 2]))
                counts.append((time.perf_counter() - began) * 1000)
            report("runs_list", listing, 150)
            report("runs_filtered", filtered, 150)
            report(f"run_detail({steps})", detail, 250)
            report("run_all_steps", every, 250)
            report("counts(store)", counts, 150)
            assert first is not None
            weight = len(first.content)
            for asset in (
                "/static/app.css",
                "/static/app.js",
                "/static/favicon.svg",
                "/static/vendor/htmx.org/htmx.min.js",
                "/static/vendor/htmx-ext-sse/sse.min.js",
            ):
                weight += len((await client.get(asset)).content)
            print(
                f"runs list page weight (HTML+JS+CSS+icon): {weight / 1024:.1f} KiB "
                "(target <= 300 KB)"
            )
        await live(app, watchers, ticks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=1_000)
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--watchers", type=int, default=100)
    parser.add_argument("--ticks", type=int, default=10)
    parser.add_argument("--store", default=None, help="a PostgreSQL URL (default: SQLite file)")
    args = parser.parse_args()
    if args.store:
        schema = f"bench_web_{uuid.uuid4().hex[:8]}"
        separator = "&" if "?" in args.store else "?"
        url = f"{args.store}{separator}schema={schema}"  # the store creates it
        import psycopg

        try:
            asyncio.run(bench(url, args.runs, args.steps, args.pages, args.watchers, args.ticks))
        finally:
            with psycopg.connect(args.store, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        return
    with tempfile.TemporaryDirectory(prefix="opsloom-bench-web-") as folder:
        url = f"sqlite:///{Path(folder) / 'web.db'}"
        asyncio.run(bench(url, args.runs, args.steps, args.pages, args.watchers, args.ticks))


if __name__ == "__main__":
    main()

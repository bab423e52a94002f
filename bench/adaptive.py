"""Adaptive retries against a flaky local dependency: static policy vs adaptive, side by side.

Two apps, each on its own SQLite file, run the same workload: every item calls a local
dependency that fails each attempt with probability ``--fail`` (the same attempts fail on both
sides: the outcome of an item's k-th attempt is drawn from a generator seeded by the item and
k). The step's own policy allows ``--attempts`` tries. A client starts a run per item and, when
the run fails, starts another one for the item ``--rerun`` seconds later (what an operator's
or a redrive job's re-run does, never at once), until it succeeds. After ``--warmup`` items
on both sides (the history), the measured items alternate in batches between the static side
and the adaptive side, whose :class:`Adaptive` loop looks at the history before each batch.
Prints one JSON line per side: the share of runs that succeed (``success_rate``), runs per
item, and the time from an item's first start to its success (``time_to_success_ms`` mean and
p95)::

    .venv/bin/python bench/adaptive.py
    .venv/bin/python bench/adaptive.py --items 400 --fail 0.6
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

from opsloom import App, Context, RetryPolicy, RunFailedError
from opsloom.analytics.adaptive import Adaptive
from opsloom.worker import WorkerOptions


class Dependency:
    """A flaky service: attempt k of item n fails with probability ``fail``, the same on every
    side."""

    def __init__(self, fail: float) -> None:
        self.fail = fail
        self.tries: dict[int, int] = {}

    async def call(self, item: int) -> int:
        attempt = self.tries[item] = self.tries.get(item, 0) + 1
        await asyncio.sleep(0.002)
        if random.Random(f"{item}:{attempt}").random() < self.fail:
            raise ConnectionError(f"dependency busy (item {item})")
        return item


def build(path: Path, dependency: Dependency, attempts: int) -> App:
    app = App(
        f"sqlite:///{path}",
        worker=WorkerOptions(concurrency=64, poll_seconds=0.02, grace_seconds=2),
    )
    policy = RetryPolicy(attempts=attempts, initial_delay=0.05, backoff=2.0, jitter=0.0)

    @app.step(name="call-dependency", retry=policy)
    async def call_dependency(item: int) -> int:
        return await dependency.call(item)

    @app.workflow(name="sync")
    async def sync(ctx: Context, item: int) -> int:
        result: int = await ctx.step(call_dependency, item)
        return result

    return app


async def serve(app: App, item: int, tally: dict[str, list[float]], rerun: float) -> None:
    """Start runs for ``item`` until one succeeds, ``rerun`` seconds after each failure; count
    runs and the time to success."""
    began = time.perf_counter()
    for _ in range(50):
        tally["runs"].append(1.0)
        try:
            await (await app.start("sync", item)).result(timeout=60)
        except RunFailedError:
            tally["failed"].append(1.0)
            await asyncio.sleep(rerun)
            continue
        tally["time_ms"].append((time.perf_counter() - began) * 1000)
        return
    raise RuntimeError(f"item {item} never succeeded")


def summary(side: str, tally: dict[str, list[float]], items: int, args: argparse.Namespace) -> dict:
    runs = len(tally["runs"])
    times = sorted(tally["time_ms"])
    return {
        "side": side,
        "items": items,
        "fail_per_attempt": args.fail,
        "policy_attempts": args.attempts,
        "runs": runs,
        "success_rate": round(1 - len(tally["failed"]) / runs, 4),
        "runs_per_item": round(runs / items, 3),
        "time_to_success_ms_mean": round(statistics.fmean(times), 1),
        "time_to_success_ms_p95": round(times[max(0, int(0.95 * len(times)) - 1)], 1),
    }


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="opsloom-adaptive-") as folder:
        static = build(Path(folder) / "static.db", Dependency(args.fail), args.attempts)
        adaptive = build(Path(folder) / "adaptive.db", Dependency(args.fail), args.attempts)
        async with static, adaptive:
            assert adaptive.worker is not None
            loop = Adaptive(
                adaptive.store, adaptive.clock, adaptive.worker.owner, adaptive.registry
            )
            warm: dict[str, list[float]] = {"runs": [], "failed": [], "time_ms": []}
            for app in (static, adaptive):
                await asyncio.gather(*(serve(app, n, warm, args.rerun) for n in range(args.warmup)))
            tallies = {
                name: {"runs": [], "failed": [], "time_ms": []} for name in ("static", "adaptive")
            }
            measured = list(range(args.warmup, args.warmup + args.items))
            for first in range(0, len(measured), args.batch):
                batch = measured[first : first + args.batch]
                changes = await loop.run_once()
                if changes:
                    adapted = {f"{k} {w}/{s}": a for (k, w, s), a in changes.items()}
                    print(json.dumps({"adapted": adapted}))
                for name, app in (("static", static), ("adaptive", adaptive)):
                    await asyncio.gather(*(serve(app, n, tallies[name], args.rerun) for n in batch))
            for name, tally in tallies.items():
                print(json.dumps(summary(name, tally, args.items, args)), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=300, help="measured items per side (300)")
    parser.add_argument("--warmup", type=int, default=100, help="items of history (100)")
    parser.add_argument("--batch", type=int, default=25, help="items per batch (25)")
    parser.add_argument("--fail", type=float, default=0.5, help="failure chance per attempt")
    parser.add_argument("--attempts", type=int, default=2, help="the step's own attempts (2)")
    parser.add_argument(
        "--rerun", type=float, default=1.0, help="seconds before a failed item is run again (1)"
    )
    asyncio.run(main(parser.parse_args()))

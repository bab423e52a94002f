"""One long run: N sequential steps in one Python workflow, time per step as the history grows.

    .venv/bin/python bench/longrun.py [--steps 100000]
    .venv/bin/python bench/longrun.py --store postgresql://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/longrun.py --steps 100000 --crash-at 50000
    .venv/bin/python bench/longrun.py --signals --steps 100000

The run is executed by the embedded worker of this process on a fresh database (a temporary
SQLite file, or a fresh schema of ``--store``, dropped afterwards). Every step body stamps the
wall clock and this process's CPU time into arrays allocated before the run starts, so the
measurement itself does not grow; the figures are time per step over windows of steps (the
first 100, around 1,000, 10,000 and the middle, the last 1,000), with the resident memory and
the number of objects the garbage collector tracks taken at the end of each window. A worker
that keeps the run's live state between steps shows the same time per step in every window
and a flat memory line; one that replays the history on every step shows time per step
growing with the step number.

With ``--crash-at K`` the run is executed by a child process that kills itself with SIGKILL in
the body of step K+1; this process then opens the same store, and the figures are how long the
recovering worker took from opening the store to running step K+1 again (claim, history read
and replay of K recorded steps), then time per step after the recovery.

With ``--signals`` each of the N iterations waits for a signal (``ctx.wait_for``) instead of
running a step: this process sends the next signal once the run took the previous one, so the
run parks and is claimed again N times. A worker that replays the run on every claim shows CPU
time per wait growing with the number of waits behind it; one that keeps the parked run's live
execution shows a flat line. The JSON line has ``cpu_us_first`` and ``cpu_us_last``: CPU µs per
wait over the first 100 waits and over the last 1,000 (or the last window).

Prints lines for people on stderr and, last, one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import gc
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from opsloom import App, Context, WorkerOptions
from opsloom.dsl.catalog import FunctionCall, default_catalog
from opsloom.dsl.runtime import DslRuntime

HERE = Path(__file__).resolve().parent
RUN_ID = "longrun-1"
#: Whole-benchmark cap (seconds): a run that gets slower per step stops here with its figures.
HARD_CAP = 3_600.0
#: ``WorkerOptions.hold_seconds`` of the worker (``--hold-seconds``).
HOLD_SECONDS = WorkerOptions().hold_seconds


class Probe:
    """Stamps written by the step bodies: wall and CPU time per step, memory at window ends."""

    def __init__(self, steps: int, crash_at: int | None = None) -> None:
        self.wall = array.array("d", bytes(8 * (steps + 1)))
        self.cpu = array.array("d", bytes(8 * (steps + 1)))
        self.samples: dict[int, tuple[int, int]] = {}
        self.sample_at: set[int] = set()
        self.crash_at = crash_at
        self.first_new: int | None = None  # the first step body this process ran
        self.proc = psutil.Process()
        #: Set at each wait the run gets past (``--signals``).
        self.passed = asyncio.Event()
        #: How often the workflow was entered: once, plus once per replay (``--signals``).
        self.entered = 0

    def tick(self, number: int) -> int:
        """The body of step ``number`` (1-based)."""
        self.wall[number] = time.perf_counter()
        self.cpu[number] = time.process_time()
        if self.first_new is None:
            self.first_new = number
        if self.crash_at is not None and number == self.crash_at + 1:
            sys.stderr.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        if number in self.sample_at:
            self.samples[number] = (self.proc.memory_info().rss, len(gc.get_objects()))
        return number


PROBE = Probe(0)


async def tick(number: int) -> int:
    return PROBE.tick(number)


async def longrun(ctx: Context, plan: dict[str, Any]) -> int:
    """``steps`` sequential steps, with a durable timer of ``sleep`` seconds after every
    ``sleep_every`` steps (0: none), as a polling loop would."""
    steps, every, pause = int(plan["steps"]), int(plan["sleep_every"]), float(plan["sleep"])
    last = 0
    for number in range(1, steps + 1):
        last = await ctx.step(tick, number)
        if every and number % every == 0 and number < steps:
            await ctx.sleep(pause)
    return last


async def signalled(ctx: Context, plan: dict[str, Any]) -> int:
    """``steps`` waits for a signal ``go`` in a row (``--signals``). The stamp of a wait is
    taken when the run first gets past it (a replay gets past it again: not stamped again)."""
    PROBE.entered += 1
    total = 0
    for number in range(1, int(plan["steps"]) + 1):
        total += await ctx.wait_for("go")
        if PROBE.wall[number] == 0.0:
            PROBE.tick(number)
            PROBE.passed.set()
    return total


#: The same loop as a Serverless Workflow document (``--dsl``): a ``for`` task over the step
#: numbers, each iteration one catalog function call that runs one step.
DOCUMENT = """
document:
  dsl: '1.0.3'
  namespace: bench
  name: longrun
  version: '1.0.0'
do:
  - loop:
      for:
        each: number
        in: ${ [range(1; .steps + 1)] }
      do:
        - tick:
            call: longrun-tick:1.0.0@default
            with:
              number: ${ $number }
"""


async def tick_function(call: FunctionCall) -> Any:
    return await call.ctx.step(tick, int(call.arguments["number"]))


class Bench:
    """The app with the long workflow registered, as Python code or as a document."""

    def __init__(self, url: str, dsl: bool) -> None:
        self.app = App(url, worker=WorkerOptions(hold_seconds=HOLD_SECONDS))
        self.app.step(name="tick")(tick)
        self.app.workflow(name="longrun")(longrun)
        self.app.workflow(name="signalled")(signalled)
        self.workflow, self.version = "longrun", None
        self.runtime: DslRuntime | None = None
        if dsl:
            catalog = default_catalog()
            catalog.register("longrun-tick", "1.0.0", tick_function)
            self.runtime = DslRuntime(self.app, catalog=catalog)
            document = self.runtime.load(DOCUMENT, "longrun.yaml")
            self.workflow = self.runtime.register(document, DOCUMENT)
            self.version = "1.0.0"

    async def close(self) -> None:
        if self.runtime is not None:
            await self.runtime.close()


def windows(steps: int) -> list[tuple[int, int]]:
    """(first, last) step of each measured window, in order, without repeats."""
    wanted = [(1, 100), (901, 1_000), (9_901, 10_000)]
    if steps >= 20_000:
        wanted.append((steps // 2 - 999, steps // 2))
    wanted.append((steps - 999, steps))
    out: list[tuple[int, int]] = []
    for first, last in wanted:
        first = max(first, 1)
        if last <= steps and last - first >= 1 and (first, last) not in out:
            out.append((first, last))
    return sorted(out, key=lambda w: w[1])


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def mb(size: int) -> float:
    return round(size / 2**20, 1)


def per_step(stamps: array.array[float], first: int, last: int) -> float:
    """µs per step between step ``first``'s body and step ``last``'s (first > 1: from the
    previous step's body, so that the window holds ``last - first + 1`` steps)."""
    start = first - 1 if first > 1 else first
    count = last - start
    return round((stamps[last] - stamps[start]) / count * 1e6, 1)


# --- the store -----------------------------------------------------------------------------


class Fresh:
    """A fresh database: a SQLite file in a temporary folder, or a schema of ``--store``."""

    def __init__(self, store: str | None, folder: Path) -> None:
        self.pg = store is not None and store.startswith(("postgresql://", "postgres://"))
        self.schema = f"bench_longrun_{os.getpid()}"
        if store is not None and self.pg:
            sys.path.insert(0, str(HERE))
            import pg

            self.url = pg.with_schema(store, self.schema)
            self._base = store
        else:
            self.url = f"sqlite:///{folder / 'longrun.db'}"

    def drop(self) -> None:
        if self.pg:
            import pg

            pg.drop_schema(self._base, self.schema)


# --- phases --------------------------------------------------------------------------------


async def run_all(url: str, plan: dict[str, Any], dsl: bool, cap: float) -> dict[str, Any]:
    """Start the run and wait for it here (the embedded worker executes it)."""
    bench = Bench(url, dsl)
    async with bench.app as app:
        started = time.perf_counter()
        cpu0 = time.process_time()
        handle = await app.start(bench.workflow, plan, run_id=RUN_ID, version=bench.version)
        result = await handle.result(timeout=cap)
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu0
    await bench.close()
    return {"result": result, "seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3)}


async def run_signalled(url: str, plan: dict[str, Any], cap: float) -> dict[str, Any]:
    """Start the waiting loop and send its signals one after the other."""
    bench = Bench(url, False)
    steps = int(plan["steps"])
    async with bench.app as app:
        started = time.perf_counter()
        cpu0 = time.process_time()
        handle = await app.start("signalled", plan, run_id=RUN_ID)
        for number in range(1, steps + 1):
            PROBE.passed.clear()
            await app.signal(RUN_ID, "go", 1)
            if PROBE.wall[number] == 0.0:
                await asyncio.wait_for(PROBE.passed.wait(), cap)
        result = await handle.result(timeout=cap)
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu0
    log(f"the workflow was entered {PROBE.entered:,} times (1 + one per replay)")
    return {
        "result": result,
        "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu, 3),
        "entered": PROBE.entered,
    }


async def resume(url: str, dsl: bool, cap: float) -> dict[str, Any]:
    """Open the store a crashed process left and wait for its run to complete."""
    bench = Bench(url, dsl)
    opened = time.perf_counter()
    cpu0 = time.process_time()
    async with bench.app as app:
        result = await app.result(RUN_ID, timeout=cap)
        seconds = time.perf_counter() - opened
        cpu = time.process_time() - cpu0
    await bench.close()
    return {"result": result, "seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3)} | {
        "opened_at": opened,
        "cpu_at_open": cpu0,
    }


def report_windows(steps: int, first_step: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for first, last in windows(steps):
        if first <= first_step:
            continue
        wall = per_step(PROBE.wall, first, last)
        cpu = per_step(PROBE.cpu, first, last)
        rss, objects = PROBE.samples.get(last, (0, 0))
        log(
            f"steps {first:>7,}-{last:<7,}: {wall:8.1f} µs/step wall, {cpu:8.1f} µs/step CPU, "
            f"RSS {mb(rss):6.1f} MB, {objects:,} gc objects"
        )
        out[f"{first}-{last}"] = {
            "us_per_step": wall,
            "cpu_us_per_step": cpu,
            "rss_mb": mb(rss),
            "gc_objects": objects,
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--store", help="postgresql://… (default: a fresh SQLite file)")
    parser.add_argument("--crash-at", type=int, help="kill the executing process after K steps")
    parser.add_argument(
        "--sleep-every", type=int, default=0, help="a durable timer after every K steps"
    )
    parser.add_argument("--sleep", type=float, default=0.001, help="that timer's seconds")
    parser.add_argument("--dsl", action="store_true", help="the loop as a workflow document")
    parser.add_argument(
        "--signals", action="store_true", help="each iteration waits for a signal this sends"
    )
    parser.add_argument(
        "--hold-seconds",
        type=float,
        default=WorkerOptions().hold_seconds,
        help="timers due within this are waited for in memory (0: park on every timer)",
    )
    parser.add_argument("--phase", choices=("crash",), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    steps: int = args.steps
    plan = {"steps": steps, "sleep_every": args.sleep_every, "sleep": args.sleep}
    global PROBE, HOLD_SECONDS
    HOLD_SECONDS = args.hold_seconds
    PROBE = Probe(steps, args.crash_at if args.phase == "crash" else None)
    PROBE.sample_at = {last for _, last in windows(steps)}

    if args.phase == "crash":  # the child that is killed half-way
        asyncio.run(run_all(args.url, plan, args.dsl, HARD_CAP))
        return 1  # pragma: no cover - it kills itself first

    load = os.getloadavg()
    timers = (
        f", a {args.sleep:g} s timer every {args.sleep_every:,} (hold {HOLD_SECONDS:g} s)"
        if args.sleep_every
        else ""
    )
    kind = "a workflow document's" if args.dsl else "Python"
    what = "signal waits" if args.signals else "steps"
    log(f"longrun: {steps:,} sequential {what} ({kind}){timers}, load average {load[0]:.2f}")
    figures: dict[str, Any] = {"bench": "longrun", **plan, "dsl": args.dsl}
    figures["signals"] = args.signals
    figures.update(hold_seconds=HOLD_SECONDS, loadavg=load)
    with tempfile.TemporaryDirectory(prefix="opsloom-longrun-") as folder:
        fresh = Fresh(args.store, Path(folder))
        figures["store"] = "postgresql" if fresh.pg else "sqlite"
        try:
            if args.signals:
                outcome = asyncio.run(run_signalled(fresh.url, plan, HARD_CAP))
                first_step = 0
            elif args.crash_at is None:
                outcome = asyncio.run(run_all(fresh.url, plan, args.dsl, HARD_CAP))
                first_step = 0
            else:
                figures["crash_at"] = args.crash_at
                outcome = crash_and_resume(fresh.url, plan, args.dsl, args.crash_at)
                first_step = args.crash_at
        finally:
            fresh.drop()
    figures.update({k: v for k, v in outcome.items() if not k.endswith("_at_open")})
    figures.pop("opened_at", None)
    if "opened_at" in outcome and PROBE.first_new is not None:
        replay = PROBE.wall[PROBE.first_new] - outcome["opened_at"]
        replay_cpu = PROBE.cpu[PROBE.first_new] - outcome["cpu_at_open"]
        figures.update(
            resumed_at_step=PROBE.first_new,
            recovery_seconds=round(replay, 3),
            recovery_cpu_seconds=round(replay_cpu, 3),
        )
        log(
            f"recovery: store opened -> step {PROBE.first_new:,} running again in {replay:.3f} s "
            f"({replay_cpu:.3f} s CPU), replaying {PROBE.first_new - 1:,} recorded steps"
        )
    figures["windows"] = report_windows(steps, first_step)
    spans = list(figures["windows"].values())
    if spans:
        figures["cpu_us_first"] = spans[0]["cpu_us_per_step"]
        figures["cpu_us_last"] = spans[-1]["cpu_us_per_step"]
    done = steps - first_step
    log(
        f"total: {done:,} steps in {outcome['seconds']:.2f} s "
        f"({outcome['seconds'] / done * 1e6:.1f} µs/step wall, "
        f"{outcome['cpu_seconds'] / done * 1e6:.1f} µs/step CPU), "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    figures["loadavg_end"] = os.getloadavg()
    print(json.dumps(figures), flush=True)
    return 0 if outcome["result"] == steps else 1


def crash_and_resume(url: str, plan: dict[str, Any], dsl: bool, crash_at: int) -> dict[str, Any]:
    """Run the first ``crash_at`` steps in a child that dies in the next one, then recover."""
    command = [sys.executable, __file__, "--phase", "crash", "--url", url]
    command += ["--steps", str(plan["steps"]), "--crash-at", str(crash_at)]
    command += ["--sleep-every", str(plan["sleep_every"]), "--sleep", str(plan["sleep"])]
    command += ["--dsl"] if dsl else []
    command += ["--hold-seconds", str(HOLD_SECONDS)]
    started = time.perf_counter()
    child = subprocess.run(command, timeout=HARD_CAP, check=False)
    log(
        f"crash: the child ran {crash_at:,} steps and died (exit {child.returncode}) "
        f"after {time.perf_counter() - started:.1f} s"
    )
    return asyncio.run(resume(url, dsl, HARD_CAP))


if __name__ == "__main__":
    sys.exit(main())

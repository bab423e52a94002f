"""DSL workload: what interpreting a Serverless Workflow document costs over code-first steps.

    .venv/bin/python bench/dsl.py [--runs 2000] [--synchronous FULL] [--profile-runs 300]

Runs ``--runs`` runs of a 10-task document (``set``, ``switch`` and ``call`` of a catalog
function; every task is one durable step) and the same number of runs of a code-first workflow
of 10 steps, on the same embedded SQLite store, all started at once. Prints runs/s, tasks/s and
µs per task of each, their ratio (the target: the document within 3x of the code-first steps),
then a profile of a smaller document run showing where the time goes, by area.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from opsloom import App, Context, WorkerOptions
from opsloom.dsl.catalog import FunctionCall, default_catalog
from opsloom.dsl.runtime import DslRuntime

TASKS = 10
TARGET_RATIO = 3.0

DOCUMENT = """
document:
  dsl: '1.0.3'
  namespace: bench
  name: ten-tasks
  version: '1.0.0'
do:
  - start:
      set:
        service: ${ .service }
        count: 0
  - enrich:
      call: bench-add:1.0.0@default
      with:
        value: ${ .count }
  - classify:
      switch:
        - high:
            when: ${ .count > 100 }
            then: escalate
        - normal:
            then: continue
  - note:
      set:
        service: ${ .service }
        count: ${ .count + 1 }
  - check:
      call: bench-add:1.0.0@default
      with:
        value: ${ .count }
  - route:
      switch:
        - odd:
            when: ${ .count % 2 == 1 }
            then: continue
        - even:
            then: continue
  - record:
      set:
        service: svc
        count: ${ .count + 1 }
  - finish:
      call: bench-add:1.0.0@default
      with:
        value: ${ .count }
  - escalate:
      set:
        count: ${ .count }
        escalated: ${ .count > 100 }
  - done:
      set:
        count: ${ .count }
        ok: true
"""


def add_one(value: int) -> dict[str, int]:
    return {"count": value + 1}


async def bench_add(call: FunctionCall) -> Any:
    return await call.ctx.step(add_one, int(call.arguments["value"]))


def step_one(value: int) -> int:
    return value + 1


async def code_first(ctx: Context, value: dict[str, Any]) -> int:
    count = 0
    for _ in range(TASKS):
        count = await ctx.step(step_one, count)
    return count


def build(url: str, synchronous: str) -> tuple[App, DslRuntime, str]:
    app = App(url, worker=WorkerOptions(concurrency=512), sqlite_synchronous=synchronous)
    app.workflow(name="code-first")(code_first)
    catalog = default_catalog()
    catalog.register("bench-add", "1.0.0", bench_add)
    runtime = DslRuntime(app, catalog=catalog)
    name = runtime.register(runtime.load(DOCUMENT, "ten-tasks.yaml"), DOCUMENT)
    return app, runtime, name


async def measure(app: App, workflow: str, runs: int, version: str | None) -> float:
    started = time.perf_counter()
    handles = [
        await app.start(workflow, {"service": f"svc-{i}"}, version=version) for i in range(runs)
    ]
    for handle in handles:
        await handle.result(timeout=600)
    return time.perf_counter() - started


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"runs": args.runs, "tasks_per_run": TASKS}
    with tempfile.TemporaryDirectory(prefix="opsloom-bench-dsl-") as folder:
        app, runtime, name = build(f"sqlite:///{folder}/bench.db", args.synchronous)
        async with app:
            # Warm up: compile expressions, import lazily loaded modules.
            await measure(app, name, 20, "1.0.0")
            await measure(app, "code-first", 20, None)
            code = await measure(app, "code-first", args.runs, None)
            doc = await measure(app, name, args.runs, "1.0.0")
            profile = cProfile.Profile()
            profile.enable()
            await measure(app, name, args.profile_runs, "1.0.0")
            profile.disable()
        await runtime.close()
    for label, seconds in (("code_first", code), ("document", doc)):
        results[label] = {
            "seconds": round(seconds, 3),
            "runs_per_s": round(args.runs / seconds, 1),
            "tasks_per_s": round(args.runs * TASKS / seconds, 1),
            "us_per_task": round(seconds / (args.runs * TASKS) * 1e6, 1),
        }
    results["ratio"] = round(doc / code, 2)
    results["target_ratio"] = TARGET_RATIO
    results["profile"] = summarize(profile)
    return results


def area(filename: str) -> str:
    """The part of the system a profiled function belongs to."""
    path = filename.replace("\\", "/")
    if "/opsloom/dsl/" in path:
        return "dsl:" + path.rsplit("/", 1)[-1]
    for part in ("engine", "store", "worker"):
        if f"/opsloom/{part}/" in path:
            return part
    if "/opsloom/" in path:
        return "opsloom (other)"
    if "sqlite3" in path or "_sqlite3" in path:
        return "sqlite"
    if "json" in path:
        return "json"
    if "asyncio" in path or "selectors" in path:
        return "asyncio"
    return "other"


def builtin_area(func: str) -> str:
    """The area of a C function (pstats names them by their method only)."""
    if "sqlite3" in func:
        return "sqlite (C)"
    if "SimpleQueue" in func:
        return "hand-off to the store's writer thread"
    if "epoll" in func or "select" in func:
        return "event loop: waiting (idle/commit)"
    if "jq" in func or "_Program" in func or "_ResultIterator" in func:
        return "jq (C)"
    if "json" in func:
        return "json"
    return "other builtins"


def summarize(profile: cProfile.Profile) -> dict[str, Any]:
    """Own time (tottime) by area, and the top functions, for the profiled document runs."""
    stats = pstats.Stats(profile)
    by_area: dict[str, float] = defaultdict(float)
    rows = []
    for (filename, line, func), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        name = builtin_area(func) if filename == "~" else area(filename)
        by_area[name] += tottime
        rows.append((tottime, f"{Path(filename).name}:{line} {func}"))
    total = sum(by_area.values()) or 1.0
    rows.sort(reverse=True)
    return {
        "own_time_by_area_pct": {
            k: round(v / total * 100, 1) for k, v in sorted(by_area.items(), key=lambda i: -i[1])
        },
        "top_functions": [f"{t:.3f}s {name}" for t, name in rows[:12]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--profile-runs", type=int, default=300)
    parser.add_argument("--synchronous", default="FULL", choices=["FULL", "NORMAL", "OFF"])
    parser.add_argument("--json-only", action="store_true")
    args = parser.parse_args()
    results = asyncio.run(main_async(args))
    if not args.json_only:
        code, doc = results["code_first"], results["document"]
        print(
            f"DSL workload: {args.runs} runs x {TASKS} tasks, SQLite synchronous={args.synchronous}"
        )
        print(f"{'':12} {'runs/s':>9} {'tasks/s':>10} {'µs/task':>9}")
        for label, row in (("code-first", code), ("document", doc)):
            print(
                f"{label:12} {row['runs_per_s']:>9} {row['tasks_per_s']:>10} "
                f"{row['us_per_task']:>9}"
            )
        verdict = "met" if results["ratio"] <= TARGET_RATIO else "NOT met"
        print(f"ratio document/code-first per task: {results['ratio']}x (target <= 3x: {verdict})")
        print("where the time goes (own time of the profiled document runs):")
        for name, pct in results["profile"]["own_time_by_area_pct"].items():
            print(f"  {pct:5.1f}%  {name}")
        print("top functions:")
        for line in results["profile"]["top_functions"]:
            print(f"  {line}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()

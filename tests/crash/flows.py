"""Workflows for the crash tests, loaded by real workers with ``--app flows:app``.

Every step body appends one line per event to the log file named in the run's input::

    <run_id> <seq> <event> <pid> <monotonic> <nonce>

The file is opened with ``O_APPEND`` for each line, so lines from several processes never
interleave and every execution of a step body is counted, including executions whose result
is thrown away (a body killed mid-flight writes ``start`` and no ``end``). ``<monotonic>`` is
``time.monotonic()`` (one clock for all processes on Linux), so the intervals of step bodies in
different workers can be compared; ``<nonce>`` tells apart two executions of one step in the
same process, and each body returns it so the test can see *which* execution was recorded.

Gates: ``hold`` blocks until ``<gate>/open``, ``<gate>/open-<pid>`` or ``<gate>/open-<nonce>``
exists, so a test can keep a step in flight until it has killed, stopped or backdated the worker
running it, and then let one chosen execution finish.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path
from typing import Any

from opsloom import App, Context, current_step

#: A held step gives up after this long, so a broken test fails instead of hanging a worker.
HOLD_LIMIT_SECONDS = 60.0

app = App()


def _record(log: str, event: str, nonce: str) -> None:
    info = current_step()
    line = f"{info.run_id} {info.seq} {event} {os.getpid()} {time.monotonic():.6f} {nonce}\n"
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def _gate_open(gate: str, nonce: str) -> bool:
    folder = Path(gate)
    return any(
        (folder / name).exists() for name in ("open", f"open-{os.getpid()}", f"open-{nonce}")
    )


@app.step(name="mark")
async def mark(log: str, seconds: float = 0.0) -> dict[str, Any]:
    """A short step (optionally taking ``seconds``)."""
    nonce = uuid.uuid4().hex[:12]
    _record(log, "start", nonce)
    if seconds:
        await asyncio.sleep(seconds)
    _record(log, "end", nonce)
    return {"pid": os.getpid(), "nonce": nonce}


@app.step(name="hold")
async def hold(log: str, gate: str | None = None, seconds: float = 0.0) -> dict[str, Any]:
    """A step that stays in flight until its gate opens (and then ``seconds`` more)."""
    nonce = uuid.uuid4().hex[:12]
    _record(log, "start", nonce)
    if gate is not None:
        give_up = time.monotonic() + HOLD_LIMIT_SECONDS
        while not _gate_open(gate, nonce):
            if time.monotonic() > give_up:
                raise TimeoutError(f"gate {gate} never opened")
            await asyncio.sleep(0.01)
    if seconds:
        await asyncio.sleep(seconds)
    _record(log, "end", nonce)
    return {"pid": os.getpid(), "nonce": nonce}


async def three_steps(ctx: Context, inp: dict[str, Any]) -> dict[str, Any]:
    """mark → hold (gated and/or slow) → mark."""
    first = await ctx.step(mark, inp["log"])
    second = await ctx.step(hold, inp["log"], inp.get("gate"), inp.get("seconds", 0.0))
    third = await ctx.step(mark, inp["log"])
    return {"pids": [first["pid"], second["pid"], third["pid"]]}


async def mark_then_hold(ctx: Context, inp: dict[str, Any]) -> dict[str, Any]:
    """mark → hold (gated): the last step's record and the run's completion share a commit."""
    first = await ctx.step(mark, inp["log"])
    last = await ctx.step(hold, inp["log"], inp.get("gate"))
    return {"pids": [first["pid"], last["pid"]]}


async def relay(ctx: Context, inp: dict[str, Any]) -> dict[str, Any]:
    """Three steps separated by durable timers: the run parks twice and may change workers."""
    first = await ctx.step(hold, inp["log"], inp.get("gate"), inp.get("seconds", 0.0))
    await ctx.sleep(inp["pause"])
    second = await ctx.step(mark, inp["log"], inp.get("seconds", 0.0))
    await ctx.sleep(inp["pause"])
    third = await ctx.step(mark, inp["log"], inp.get("seconds", 0.0))
    return {"pids": [first["pid"], second["pid"], third["pid"]]}


async def parked(ctx: Context, inp: dict[str, Any]) -> dict[str, Any]:
    """A step, then a wait on signal ``go`` (or a durable timer), then a step."""
    await ctx.step(mark, inp["log"])
    got = None
    if inp["mode"] == "signal":
        got = await ctx.wait_for("go", timeout=inp.get("timeout", 300.0))
    else:
        await ctx.sleep(inp["seconds"])
    await ctx.step(mark, inp["log"])
    return {"got": got}


async def fan_out(ctx: Context, inp: dict[str, Any]) -> dict[str, Any]:
    """Three steps at once (two held, one quick), then one more step."""
    log, gate = inp["log"], inp["gate"]
    branches = await ctx.gather(
        ctx.step(hold, log, gate), ctx.step(hold, log, gate), ctx.step(mark, log)
    )
    last = await ctx.step(mark, log)
    return {"pids": [branch["pid"] for branch in branches] + [last["pid"]]}


async def five_marks(ctx: Context, inp: dict[str, Any]) -> dict[str, Any]:
    """Five short steps one after another (the chaos scenarios run thousands of these)."""
    pids = [(await ctx.step(mark, inp["log"], inp.get("seconds", 0.0)))["pid"] for _ in range(5)]
    return {"pids": pids}


def register(target: App) -> App:
    """Register the crash-test workflows on ``target`` (the tests' client App uses this)."""
    target.workflow(name="three_steps")(three_steps)
    target.workflow(name="mark_then_hold")(mark_then_hold)
    target.workflow(name="relay")(relay)
    target.workflow(name="parked")(parked)
    target.workflow(name="fan_out")(fan_out)
    target.workflow(name="five_marks")(five_marks)
    return target


register(app)

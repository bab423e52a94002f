"""Workflows the browser tests drive through ``opsloom up --app web_workflows:app``.

- ``tick``: two steps around a short durable timer, so a page sees it running, then completed;
- ``breaks``: a step that fails on every attempt, so the run fails with that step's error;
- ``change``: asks ``alice`` for an approval, then reports the decision;
- ``family``: starts two child runs, each starting two of its own (a tree of runs).
"""

from __future__ import annotations

from typing import Any

from opsloom import App, Context, RetryPolicy
from opsloom.approvals.approval import approval
from opsloom.approvals.spec import ApprovalRequest, Stage

app = App()


@app.step()
def count(n: int) -> int:
    return n + 1


@app.step(retry=RetryPolicy(attempts=2, initial_delay=0.01))
def fill_disk(path: str) -> None:
    raise OSError(f"no space left on {path}")


@app.workflow(name="tick")
async def tick(ctx: Context, options: dict[str, int] | None = None) -> dict[str, Any]:
    first = await ctx.step(count, int((options or {}).get("start", 0)))
    await ctx.sleep(3)
    return {"count": await ctx.step(count, first)}


@app.workflow(name="breaks")
async def breaks(ctx: Context, path: str | None = None) -> None:
    await ctx.step(fill_disk, path or "/var")


@app.workflow(name="change")
async def change(ctx: Context, service: str | None = None) -> dict[str, Any]:
    request = ApprovalRequest(
        title=f"Restart {service or 'checkout'}",
        requester="rita",
        subject={"service": service or "checkout"},
        stages=(Stage("lead", users=("alice",), sla=3600),),
    )
    return (await approval(ctx, request)).to_dict()


@app.workflow(name="family")
async def family(ctx: Context, depth: int = 2) -> int:
    if depth <= 0:
        return 0
    counts = await ctx.gather(ctx.child("family", depth - 1), ctx.child("family", depth - 1))
    return 2 + sum(counts)

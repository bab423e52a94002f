"""Example operations workflows; copy them as a starting point.

Serve them with ``opsloom up --app examples.workflows:app`` (``make run`` does that). The store
comes from ``--db`` or ``OPSLOOM_DATABASE_URL``. Every step here only looks at the local machine;
the remediation actions are stand-ins that record what they would do, where a real workflow
would call a connector (systemd, Kubernetes, Alertmanager, Slack …).

Workflows:

- ``remediate``: enrich an alert, silence it, wait for an ``approval`` signal (with a timeout),
  then restart the service or not. The silence is expired again if the run fails or is
  cancelled (compensation). A trigger starts it for every firing alert that Alertmanager posts
  to ``/hooks/alertmanager``, one open run per alert and at most one per service.
- ``chain``: three steps that each add one to a number.
- ``fanout``: measure the free space of several paths at once (``ctx.gather``), then summarise.
- ``nightly_report``: sleep until a time of day (a durable timer), then report load and disks.
"""

from __future__ import annotations

import os
import shutil
import socket
from datetime import timedelta
from typing import Any

from opsloom import App, Context, RetryPolicy, WaitTimeoutError, current_step

app = App()

# --- steps -------------------------------------------------------------------------------------


@app.step()
def local_facts() -> dict[str, Any]:
    """Facts about this machine that help whoever decides on an alert."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    disk = shutil.disk_usage(os.path.abspath(os.sep))
    return {
        "host": socket.gethostname(),
        "cpus": os.cpu_count(),
        "load_1m": None if load is None else round(load[0], 2),
        "root_free_percent": round(100 * disk.free / disk.total, 1),
    }


@app.step()
def enrich(alert: dict[str, Any], facts: dict[str, Any]) -> dict[str, Any]:
    """Turn a raw alert into what an approver needs to read."""
    labels = alert.get("labels") or {}
    return {
        "service": alert["service"],
        "severity": alert.get("severity", labels.get("severity", "warning")),
        "summary": alert.get("summary") or f"{alert['service']} is unhealthy",
        "host": facts["host"],
        "load_1m": facts["load_1m"],
        "root_free_percent": facts["root_free_percent"],
    }


@app.step()
def silence_alert(service: str) -> dict[str, Any]:
    """Silence the alert while the remediation runs (stand-in: returns a silence id)."""
    return {"silence_id": f"silence-{current_step().idempotency_key}", "service": service}


@app.step()
def expire_silence(silence_id: str) -> dict[str, Any]:
    """Undo of ``silence_alert``: the alert may fire again."""
    return {"silence_id": silence_id, "expired": True}


@app.step(retry=RetryPolicy(attempts=5, initial_delay=1.0, backoff=2.0), timeout=30)
def restart(service: str) -> dict[str, Any]:
    """Restart a service (stand-in: records the action).

    A real implementation would call ``systemctl restart`` or a Kubernetes rollout and pass
    ``current_step().idempotency_key`` to APIs that deduplicate requests: a step may run more
    than once if the worker dies mid-step.
    """
    step = current_step()
    return {"service": service, "action": "restart", "idempotency_key": step.idempotency_key}


@app.step()
def add_one(x: int) -> int:
    return x + 1


@app.step()
def free_space(path: str) -> dict[str, Any]:
    """Free space of the file system holding ``path``."""
    try:
        usage = shutil.disk_usage(path)
    except OSError as exc:
        return {"path": path, "error": f"{type(exc).__name__}: {exc.strerror or exc}"}
    return {
        "path": path,
        "free_bytes": usage.free,
        "free_percent": round(100 * usage.free / usage.total, 1),
    }


@app.step()
def load_average() -> dict[str, Any]:
    """Load averages over 1, 5 and 15 minutes (``None`` where the OS has none)."""
    if not hasattr(os, "getloadavg"):
        return {"load": None}
    return {"load": [round(value, 2) for value in os.getloadavg()], "cpus": os.cpu_count()}


# --- workflows ---------------------------------------------------------------------------------


@app.workflow(name="remediate", concurrency=1, concurrency_key=".service")
async def remediate(ctx: Context, alert: dict[str, Any]) -> dict[str, Any]:
    """Remediate an alert after a human approves, at most one run per service at a time.

    Input: ``{"service": "web", "severity": "critical", "summary": "...",
    "approval_timeout": 3600}``. Approve with the signal ``approval`` and the data
    ``{"approved": true, "by": "alice"}``; anything else, or no answer in time, declines.
    """
    facts = await ctx.step(local_facts)
    info = await ctx.step(enrich, alert, facts)
    silence = await ctx.step(silence_alert, info["service"])
    ctx.compensate(expire_silence, silence["silence_id"])
    try:
        decision = await ctx.wait_for(
            "approval", timeout=float(alert.get("approval_timeout", 3600))
        )
    except WaitTimeoutError:
        decision = {"approved": False, "reason": "no approval in time"}
    if not isinstance(decision, dict):
        decision = {"approved": decision is True}
    if decision.get("approved") is not True:
        await ctx.step(expire_silence, silence["silence_id"])
        return {
            "service": info["service"],
            "restarted": False,
            "reason": decision.get("reason", "declined"),
            "by": decision.get("by"),
            "alert": info,
        }
    action = await ctx.step(restart, info["service"])
    return {
        "service": info["service"],
        "restarted": True,
        "by": decision.get("by"),
        "action": action,
        "alert": info,
    }


# Every firing alert posted to /hooks/alertmanager starts a remediation: its input is the service
# (the ``service`` label, else the instance, else the alert's name), severity and summary. While
# that run is open, repeats of the alert and its resolution reach the run instead of starting
# another (the dedup key is the alert's fingerprint), and the workflow's concurrency key keeps
# one run per service at a time.
app.trigger(
    "remediate",
    on={"type": "io.opsloom.alert.firing.v1", "source": "/hooks/alertmanager"},
    input=(
        "{service: (.data.labels.service // .data.labels.instance // .data.labels.alertname),"
        " severity: .data.severity, summary: .data.summary}"
    ),
)


@app.workflow(name="chain")
async def chain(ctx: Context, x: int | None = None) -> int:
    """Add one, three times, each addition a checkpointed step."""
    value = int(x or 0)
    for _ in range(3):
        value = await ctx.step(add_one, value)
    return value


@app.workflow(name="fanout")
async def fanout(ctx: Context, request: dict[str, Any] | None = None) -> dict[str, Any]:
    """Measure the free space of every path at once, then name the fullest.

    Input: ``{"paths": ["/", "/var", "/tmp"], "min_free_percent": 10}``.
    """
    request = request or {}
    paths = list(request.get("paths") or ["/", "/tmp", "/var"])
    threshold = float(request.get("min_free_percent", 10))
    results = await ctx.gather(*(ctx.step(free_space, path) for path in paths))
    measured = [r for r in results if "free_percent" in r]
    low = [r["path"] for r in measured if r["free_percent"] < threshold]
    fullest = min(measured, key=lambda r: r["free_percent"])["path"] if measured else None
    return {"paths": results, "fullest": fullest, "below_threshold": low}


# Every day at 01:00 UTC a run starts and sleeps until 02:00 (its default time) to report.
@app.workflow(name="nightly_report", timeout=2 * 24 * 3600, schedule="0 1 * * *")
async def nightly_report(ctx: Context, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Wait until a time of day (UTC, default 02:00), then report load and free space.

    The wait is a durable timer: the run holds no worker while it sleeps and survives restarts.
    Input: ``{"at": "02:00", "paths": ["/"]}``.
    """
    options = options or {}
    hour, minute = (int(part) for part in str(options.get("at", "02:00")).split(":"))
    now = ctx.now()
    when = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if when <= now:
        when += timedelta(days=1)
    await ctx.sleep_until(when)
    paths = list(options.get("paths") or ["/"])
    load, *disks = await ctx.gather(
        ctx.step(load_average), *(ctx.step(free_space, path) for path in paths)
    )
    return {
        "for": when.date().isoformat(),
        "generated_at": ctx.now().isoformat(),
        "load": load,
        "disks": disks,
    }

"""``opsloom worker --metrics-port``: a worker process serves its own metrics and probes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx

T = TypeVar("T")

FLOWS = """
from opsloom import App, Context

app = App()


@app.step(name="double")
def double(x: int) -> int:
    return 2 * x


@app.workflow(name="twice")
async def twice(ctx: Context, x: int) -> int:
    return await ctx.step(double, x)
"""


def test_worker__metrics_port_serves_its_counters_and_readiness(tmp_path: Path) -> None:
    (tmp_path / "flows.py").write_text(FLOWS)
    db = f"sqlite:///{tmp_path / 'worker.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSLOOM_")}
    stdout, stderr = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    command = [sys.executable, "-m", "opsloom.cli.main"]
    with stdout.open("w") as out, stderr.open("w") as err:
        process = subprocess.Popen(
            [*command, "worker", "--app", "flows:app", "--db", db, "--metrics-port", "0"],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=err,
        )
    try:
        url = _until(lambda: _announced(process, stdout, stderr), "the metrics line")
        started = subprocess.run(
            # Without --wait: the command only queues the run, the worker process runs it.
            [*command, "start", "twice", "--input", "21", "--app", "flows:app", "--db", db],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert started.returncode == 0, started.stderr
        base = url.removesuffix("/metrics")

        def counted() -> str | None:
            text = httpx.get(url, timeout=5).text
            done = 'opsloom_runs_finished_total{status="completed",version="1",workflow="twice"}'
            return text if f"{done} 1.0" in text else None

        text = _until(counted, "the completed run in /metrics")
        assert 'opsloom_runs{status="pending"} 0.0' in text
        ready = _until(lambda: _ok(f"{base}/readyz"), "a ready worker")
        assert ready["components"]["worker"]["ok"] is True
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _announced(process: subprocess.Popen[bytes], stdout: Path, stderr: Path) -> str | None:
    if process.poll() is not None:
        raise AssertionError(f"the worker exited early:\n{stderr.read_text()}")
    for line in stdout.read_text().splitlines():
        if line.startswith("opsloom worker metrics on "):
            return line.split()[-1]
    return None


def _ok(url: str) -> dict[str, object] | None:
    response = httpx.get(url, timeout=5)
    return response.json() if response.status_code == 200 else None


def _until(check: Callable[[], T | None], what: str, timeout: float = 30.0) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")

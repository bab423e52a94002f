"""Alertmanager and Prometheus connectors against the real programs (Debian packages).

Requests to Alertmanager pass through a loopback proxy that checks each one against
Alertmanager's published spec before forwarding it, so both the spec and the real program
have to agree with the connector.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from vendors import contract

from opsloom import App, WorkerOptions
from opsloom.connectors.builtin import alertmanager, prometheus
from opsloom.connectors.testing import FakeRequest, FakeResponse, FakeVendor, SwaggerContract
from opsloom.errors import ConnectorPermanentError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from peers import Gate, Peer, require_binaries, start_alertmanager, start_prometheus

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def peers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Peer, Peer, Gate]]:
    prometheus_bin, alertmanager_bin = require_binaries()
    folder = tmp_path_factory.mktemp("peers")
    gate = Gate(1.0)
    with gate.serving():
        am = start_alertmanager(alertmanager_bin, folder, "http://127.0.0.1:9/", "unused")
        try:
            prom = start_prometheus(prometheus_bin, folder, am, gate)
            try:
                yield am, prom, gate
            finally:
                prom.stop()
        finally:
            am.stop()


def spec_proxy(upstream: str) -> FakeVendor:
    """Checks requests against Alertmanager's spec, then forwards them to the real one."""
    checker = SwaggerContract(contract("alertmanager/openapi.yaml"))

    def forward(request: FakeRequest) -> FakeResponse:
        answer = httpx.request(
            request.method,
            upstream + request.path,
            params=[(k, v) for k, values in request.query.items() for v in values],
            content=request.body,
            headers={"content-type": request.headers.get("content-type", "application/json")},
        )
        return FakeResponse(
            answer.status_code,
            answer.content,
            {"Content-Type": answer.headers.get("content-type", "")},
        )

    return FakeVendor(
        checker,
        {
            ("POST", "/api/v2/silences"): forward,
            ("GET", "/api/v2/silences"): forward,
            ("DELETE", "/api/v2/silence/{id}"): forward,
            ("GET", "/api/v2/alerts"): forward,
            ("GET", "/api/v2/status"): forward,
        },
    )


@pytest.fixture
async def live(db_url: str) -> AsyncIterator[App]:
    """An app on the system clock: Alertmanager refuses silences that end in the past."""
    app = App(db_url, worker=WorkerOptions(poll_seconds=0.05, grace_seconds=5))
    async with app:
        yield app


async def test_alertmanager__silence_an_alert_then_expire_it(
    live: App, peers: tuple[Peer, Peer, Gate]
) -> None:
    am, _, _ = peers
    with spec_proxy(am.url) as proxy:
        await live.connections.add_connection("am", "alertmanager", {"url": proxy.url})
        assert (await live.connections.test_connection("am")).startswith("Alertmanager")
        # Prometheus fires OpsloomE2EDiskFull while the gate is 1: wait for it to arrive.
        wanted = {"filter": ['alertname="OpsloomE2EDiskFull"']}
        deadline = time.monotonic() + 60
        while True:
            found = await live.connections.call(alertmanager.list_alerts, "am", wanted)
            if found["alerts"] or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        [alert] = found["alerts"]
        assert alert["labels"]["service"] == "checkout" and alert["state"] == "active"
        silence = await live.connections.call(
            alertmanager.create_silence,
            "am",
            {
                "matchers": [{"name": "alertname", "value": "OpsloomE2EDiskFull"}],
                "minutes": 30,
                "comment": "maintenance",
            },
        )
        silences = await read_silence(am.url, silence["silence_id"])
        assert silences["status"]["state"] == "active" and silences["comment"] == "maintenance"
        expired = await live.connections.call(
            alertmanager.expire_silence, "am", {"silence_id": silence["silence_id"]}
        )
        assert expired["expired"] is True
        after = await read_silence(am.url, silence["silence_id"])
        assert after["status"]["state"] == "expired"
        assert proxy.problems == []


async def test_alertmanager__a_retried_step_does_not_create_a_second_silence(
    live: App, peers: tuple[Peer, Peer, Gate]
) -> None:
    am, _, _ = peers
    with spec_proxy(am.url) as proxy:
        await live.connections.add_connection("am-retry", "alertmanager", {"url": proxy.url})
        # The Alertmanager outlives this test (it serves every store's run of the module):
        # each run has keys of its own.
        run = uuid.uuid4().hex[:8]
        wanted = {
            "matchers": [{"name": "service", "value": f"retry-check-{run}"}],
            "minutes": 10,
            "comment": f"deploy window {run}",
        }
        # Two attempts of one step (the first one's answer lost on the way back), then
        # another step with the same input.
        first = await live.connections.call(
            alertmanager.create_silence, "am-retry", wanted, idempotency_key=f"{run}:3"
        )
        again = await live.connections.call(
            alertmanager.create_silence, "am-retry", wanted, idempotency_key=f"{run}:3"
        )
        other = await live.connections.call(
            alertmanager.create_silence, "am-retry", wanted, idempotency_key=f"{run}:4"
        )
        assert first["existing"] is False and again["existing"] is True
        assert again["silence_id"] == first["silence_id"] != other["silence_id"]
        async with httpx.AsyncClient() as client:
            listed = (await client.get(f"{am.url}/api/v2/silences")).json()
        ours = [s for s in listed if s["comment"].startswith(f"deploy window {run}")]
        assert sorted(s["id"] for s in ours) == sorted([first["silence_id"], other["silence_id"]])
        assert any(s["comment"] == f"deploy window {run} [opsloom {run}:3]" for s in ours)
        # Once the step's silence is expired, a new attempt makes a new one.
        await live.connections.call(
            alertmanager.expire_silence, "am-retry", {"silence_id": first["silence_id"]}
        )
        renewed = await live.connections.call(
            alertmanager.create_silence, "am-retry", wanted, idempotency_key=f"{run}:3"
        )
        assert renewed["existing"] is False and renewed["silence_id"] != first["silence_id"]
        assert proxy.problems == []


async def test_prometheus__instant_and_range_queries(
    live: App, peers: tuple[Peer, Peer, Gate]
) -> None:
    _, prom, _ = peers
    await live.connections.add_connection("prom", "prometheus", {"url": prom.url})
    assert (await live.connections.test_connection("prom")).startswith("Prometheus")
    deadline = time.monotonic() + 60
    while True:
        out = await live.connections.call(prometheus.query, "prom", {"query": "opsloom_e2e_gate"})
        if out["result"] or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert out["result_type"] == "vector" and out["result"][0]["value"][1] == "1"
    now = time.time()
    ranged = await live.connections.call(
        prometheus.query_range,
        "prom",
        {"query": "max(opsloom_e2e_gate)", "start": now - 30, "end": now, "step": 1},
    )
    assert ranged["result_type"] == "matrix" and ranged["result"][0]["values"]
    with pytest.raises(ConnectorPermanentError, match="bad_data"):
        await live.connections.call(prometheus.query, "prom", {"query": "sum(("})


async def read_silence(url: str, silence_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as client:
        body: dict[str, Any] = (await client.get(f"{url}/api/v2/silence/{silence_id}")).json()
        return body

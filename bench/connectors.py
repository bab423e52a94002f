"""Connector figures: per-action overhead, actions/s through one connection, breaker timings.

    .venv/bin/python bench/connectors.py [--calls 3000] [--concurrency 50]

All traffic goes to an HTTP server on 127.0.0.1 in this process (a minimal keep-alive
responder, so the server's own cost is small and the same for both sides). Prints:

- p50/p90 of a bare ``httpx`` POST and of the same POST as a connector action (input and
  output models, rate-limit and breaker checks, redaction), and the difference (target
  <= 0.3 ms at p50);
- actions/s through one connection with ``--concurrency`` calls in flight;
- time from a dead endpoint to the breaker opening (default policy: 5 consecutive failures),
  and from the endpoint's return to the breaker closing (cooldown 0.5 s here, then 2 trial
  successes), on the system clock.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from cryptography.fernet import Fernet
from pydantic import BaseModel, SecretStr

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from opsloom import App
from opsloom.connectors import ActionContext, ConnectionSettings, Connector, Endpoint
from opsloom.connectors.registry import ConnectorRegistry
from opsloom.connectors.runtime import ConnectorRuntime
from opsloom.connectors.secret import SecretBox
from opsloom.errors import CircuitOpenError, ConnectorRetryableError

TARGET_MS = 0.3
_ANSWER = b'{"ok":true,"ts":"1503435956.000247"}'
_RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
    + str(len(_ANSWER)).encode()
    + b"\r\n\r\n"
    + _ANSWER
)


class _Responder(asyncio.Protocol):
    """Answers every request on a keep-alive connection with one fixed JSON response."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end].lower()
            length = 0
            for line in head.split(b"\r\n"):
                if line.startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            total = head_end + 4 + length
            if len(self.buffer) < total:
                return
            self.buffer = self.buffer[total:]
            self.transport.write(_RESPONSE)


class BenchSettings(ConnectionSettings):
    url: str
    token: SecretStr


def _endpoint(settings: BenchSettings) -> Endpoint:
    return Endpoint(settings.url, {"Authorization": f"Bearer {settings.token.get_secret_value()}"})


bench = Connector("bench", BenchSettings, title="Bench", endpoint=_endpoint)


class Post(BaseModel):
    channel: str
    text: str


class Posted(BaseModel):
    ok: bool
    ts: str


@bench.action
async def post(ctx: ActionContext[BenchSettings], data: Post) -> Posted:
    """Post a message."""
    return Posted.model_validate(await ctx.client.json("POST", "/post", json=data.model_dump()))


def _ms(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] * 1000


async def overhead(runtime: ConnectorRuntime, url: str, calls: int) -> None:
    body = {"channel": "#bench", "text": "hello"}
    bare: list[float] = []
    action: list[float] = []
    # CPU time of this process per call as well: on a shared, busy machine the wall clock also
    # counts the time other processes held the CPU, which says nothing about the connector.
    bare_cpu: list[float] = []
    action_cpu: list[float] = []
    clock, cpu = time.perf_counter, time.process_time
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": "Bearer t"}) as client:
        for _ in range(200):  # warm both paths
            (await client.post("/post", json=body)).json()
            await runtime.call(post, "b1", body)
        for _ in range(calls):
            start, start_cpu = clock(), cpu()
            response = await client.post("/post", json=body)
            response.raise_for_status()
            Posted.model_validate(response.json())
            bare.append(clock() - start)
            bare_cpu.append(cpu() - start_cpu)
            start, start_cpu = clock(), cpu()
            await runtime.call(post, "b1", body)
            action.append(clock() - start)
            action_cpu.append(cpu() - start_cpu)
    extra = _ms(action, 50) - _ms(bare, 50)
    extra_cpu = _ms(action_cpu, 50) - _ms(bare_cpu, 50)
    print(f"bare httpx POST      p50 {_ms(bare, 50):.3f} ms  p90 {_ms(bare, 90):.3f} ms")
    print(f"connector action     p50 {_ms(action, 50):.3f} ms  p90 {_ms(action, 90):.3f} ms")
    verdict = "ok" if extra <= TARGET_MS else "over target"
    print(f"overhead per action  p50 {extra:.3f} ms (target <= {TARGET_MS} ms: {verdict})")
    print(
        f"CPU per call         bare p50 {_ms(bare_cpu, 50):.3f} ms, action p50 "
        f"{_ms(action_cpu, 50):.3f} ms, overhead {extra_cpu:.3f} ms"
    )


async def throughput(runtime: ConnectorRuntime, url: str, calls: int, concurrency: int) -> None:
    body = {"channel": "#bench", "text": "hello"}
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(base_url=url, limits=limits) as client:

        async def bare() -> None:
            (await client.post("/post", json=body)).json()

        async def action() -> None:
            await runtime.call(post, "b1", body)

        for name, call in (("bare httpx", bare), ("connector", action)):
            queue = iter(range(calls))

            async def worker(call=call, queue=queue) -> None:  # type: ignore[no-untyped-def]
                for _ in queue:
                    await call()

            start = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            rate = calls / (time.perf_counter() - start)
            print(
                f"{name:<11} calls/s through one connection: {rate:,.0f} ({concurrency} in flight)"
            )


async def breaker(app: App, runtime: ConnectorRuntime, port: int) -> None:
    loop = asyncio.get_running_loop()
    dead_url = f"http://127.0.0.1:{port}"
    policy = {"failures": 5, "cooldown": 0.5, "successes": 2}
    await runtime.add_connection("b2", "bench", {"url": dead_url, "token": "t", "breaker": policy})
    body = {"channel": "#bench", "text": "x"}
    start = time.perf_counter()
    calls = 0
    while True:
        calls += 1
        try:
            await runtime.call(post, "b2", body)
        except CircuitOpenError:
            break
        except ConnectorRetryableError:
            continue
    opened = time.perf_counter() - start
    print(f"dead endpoint -> breaker open: {opened * 1000:.1f} ms ({calls - 1} failed calls)")
    server = await loop.create_server(_Responder, "127.0.0.1", port)
    start = time.perf_counter()
    while runtime.breaker("b2")["state"] != "closed":
        try:
            await runtime.call(post, "b2", body)
        except CircuitOpenError as exc:
            await asyncio.sleep(min(exc.retry_after or 0.01, 0.01))
    closed = time.perf_counter() - start
    print(f"endpoint back -> breaker closed: {closed * 1000:.1f} ms (cooldown 500 ms, 2 trials)")
    await runtime.flush()
    events = [e.event.type for e in await app.store.list_events(_query())]
    print(f"breaker events stored: {sorted(events)}")
    server.close()


def _query() -> object:
    from opsloom.store.event import EventQuery

    return EventQuery(subject="b2")


async def main(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Responder, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as folder:
        app = App(f"sqlite:///{folder}/bench.db", worker=None)
        app.connections = ConnectorRuntime(
            ConnectorRegistry([bench]),
            clock=app.clock,
            secret_box=SecretBox(Fernet.generate_key()),
        )
        async with app:
            runtime = app.connections
            await runtime.add_connection("b1", "bench", {"url": url, "token": "t0k3n-secret"})
            await overhead(runtime, url, args.calls)
            for level in sorted({1, 8, args.concurrency}):
                await throughput(runtime, url, args.calls, level)
            server.close()
            await server.wait_closed()
            with_port = _free_port()
            await breaker(app, runtime, with_port)
    print(json.dumps({"calls": args.calls, "concurrency": args.concurrency}))


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=50)
    asyncio.run(main(parser.parse_args()))

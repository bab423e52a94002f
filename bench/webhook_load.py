"""Webhook load generator: Alertmanager notifications over loopback for a fixed time.

Run by ``bench/webhooks.py`` as a separate process (so the load's CPU is not the server's):

    .venv/bin/python bench/webhook_load.py --url http://127.0.0.1:PORT/hooks/alertmanager \
        --token TOKEN --seconds 30 --concurrency 64 --ids acknowledged.txt

``--concurrency`` connections each send one notification after another (HTTP/1.1 keep-alive,
plain asyncio streams), every alert with a fingerprint never sent before, so every accepted
alert is a new event. An answer 429 or 503 is counted and its ``Retry-After`` (capped at 1 s)
honoured by that connection. The ids the server acknowledged (``accepted`` of each 2xx answer)
are written to ``--ids``, one a line, so the caller can check that each one was stored. Prints
one JSON object.

Only loopback addresses are accepted as targets, and the run always ends after ``--seconds``
(plus the answers still in flight, each bounded by ``--timeout``).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson


@dataclass
class Tally:
    """What the connections saw, merged at the end."""

    statuses: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)  # seconds, 2xx answers only
    accepted: list[str] = field(default_factory=list)
    duplicates: int = 0
    transport_errors: int = 0
    per_second: dict[int, int] = field(default_factory=dict)  # accepted events by second
    retry_after_waits: int = 0


def alert_body(fingerprint: str, started: str, external: str) -> bytes:
    """One Alertmanager (payload version 4) notification holding one firing alert."""
    labels = {
        "alertname": "BenchDiskFull",
        "instance": f"node-{fingerprint[-4:]}:9100",
        "job": "node",
        "service": "checkout",
        "severity": "critical",
    }
    alert = {
        "status": "firing",
        "labels": labels,
        "annotations": {"summary": "Disk almost full", "description": "92% used on /var"},
        "startsAt": started,
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://127.0.0.1:9090/graph?g0.expr=disk_used%3E0.9",
        "fingerprint": fingerprint,
    }
    return orjson.dumps(
        {
            "version": "4",
            "status": "firing",
            "receiver": "opsloom",
            "groupKey": '{}:{alertname="BenchDiskFull"}',
            "truncatedAlerts": 0,
            "groupLabels": {"alertname": "BenchDiskFull"},
            "commonLabels": {k: v for k, v in labels.items() if k != "instance"},
            "commonAnnotations": alert["annotations"],
            "externalURL": external,
            "alerts": [alert],
        }
    )


class Connection:
    """One HTTP/1.1 keep-alive connection: a request written, its answer read, and again.

    The load is plain asyncio streams rather than an HTTP client library: httpx's connection
    pool spends about a millisecond of CPU per request here (it scans every pooled connection
    for each request), which would make the generator, not the server, the limit.
    """

    def __init__(self, host: str, port: int, path: str, token: str, timeout: float) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        ).encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
        """Send one request; the answer's status, headers (lower-case names) and body."""
        return await asyncio.wait_for(self._post(body), self.timeout)

    async def _post(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(self.head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        await self.writer.drain()
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("the server closed the connection")
        status = int(status_line.split(b" ", 2)[1])
        headers: dict[str, str] = {}
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        content = await self.reader.readexactly(length) if length else b""
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, headers, content

    def close(self) -> None:
        """Drop the connection; the next request opens a new one."""
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def connection(
    target: Connection, number: int, prefix: str, started: float, deadline: float, tally: Tally
) -> None:
    """Send notifications on one connection until ``deadline``."""
    sent = 0
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    try:
        while time.perf_counter() < deadline:
            fingerprint = f"{prefix}{number:03x}{sent:09x}"
            sent += 1
            body = alert_body(fingerprint, stamp, "http://127.0.0.1:9093")
            begin = time.perf_counter()
            try:
                status, headers, content = await target.post(body)
            except (TimeoutError, OSError, ValueError, IndexError, asyncio.IncompleteReadError):
                tally.transport_errors += 1
                target.close()
                continue
            took = time.perf_counter() - begin
            tally.statuses[status] = tally.statuses.get(status, 0) + 1
            if 200 <= status < 300:
                tally.latencies.append(took)
                answer = orjson.loads(content)
                accepted = answer.get("accepted", [])
                tally.accepted.extend(accepted)
                tally.duplicates += len(answer.get("duplicates", ()))
                second = int(time.perf_counter() - started)
                tally.per_second[second] = tally.per_second.get(second, 0) + len(accepted)
            elif status in (429, 503):
                tally.retry_after_waits += 1
                try:
                    wait = float(headers.get("retry-after", "0.1"))
                except ValueError:
                    wait = 0.1
                left = max(0.0, deadline - time.perf_counter())
                await asyncio.sleep(min(max(wait, 0.01), 1.0, left))
    finally:
        target.close()


def percentile(ordered: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an ascending list (``None`` when empty)."""
    if not ordered:
        return None
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def check_loopback(url: str) -> None:
    """Refuse any target but this machine's loopback range."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise SystemExit(f"refusing to send load to {host!r}: only loopback targets are allowed")


async def main(options: argparse.Namespace) -> dict[str, Any]:
    check_loopback(options.url)
    parts = urlsplit(options.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    tally = Tally()
    prefix = os.urandom(2).hex()
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    deadline = started + options.seconds
    await asyncio.gather(
        *(
            connection(
                Connection(host, port, parts.path, options.token, options.timeout),
                n,
                prefix,
                started,
                deadline,
                tally,
            )
            for n in range(options.concurrency)
        )
    )
    elapsed = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    if options.ids:
        Path(options.ids).write_text("".join(f"{i}\n" for i in tally.accepted))
    ordered = sorted(tally.latencies)
    ok = len(ordered)
    # The steady part: every whole second but the first (connections opening) and the last.
    seconds = sorted(s for s in tally.per_second if 0 < s < int(elapsed))
    steady = [tally.per_second[s] for s in seconds]
    return {
        "seconds": round(elapsed, 2),
        "concurrency": options.concurrency,
        "requests": sum(tally.statuses.values()) + tally.transport_errors,
        "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
        "answers_2xx": ok,
        "answers_429": tally.statuses.get(429, 0),
        "answers_503": tally.statuses.get(503, 0),
        "transport_errors": tally.transport_errors,
        "accepted_events": len(tally.accepted),
        "duplicates": tally.duplicates,
        "accepted_per_s": round(len(tally.accepted) / elapsed, 1),
        "steady_min_per_s": min(steady) if steady else None,
        "steady_median_per_s": sorted(steady)[len(steady) // 2] if steady else None,
        "latency_p50_ms": _ms(percentile(ordered, 50)),
        "latency_p90_ms": _ms(percentile(ordered, 90)),
        "latency_p99_ms": _ms(percentile(ordered, 99)),
        "latency_max_ms": _ms(ordered[-1] if ordered else None),
        "load_cpu_seconds": round(cpu, 2),
    }


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the /hooks/alertmanager URL (loopback)")
    parser.add_argument("--token", required=True, help="the Bearer credential")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--timeout", type=float, default=10.0, help="per request, seconds")
    parser.add_argument("--ids", help="file for the acknowledged event ids")
    return parser.parse_args(argv)


if __name__ == "__main__":
    result = asyncio.run(main(parse(sys.argv[1:])))
    sys.stdout.write(json.dumps(result) + "\n")

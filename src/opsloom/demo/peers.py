"""Real peers as processes: Prometheus, Alertmanager and ``opsloom up`` (the demo's, and the
end-to-end tests' through ``tests/e2e/peers.py``).

Everything listens on 127.0.0.1 (free ports) and keeps its data under a given folder.
Prometheus and Alertmanager come from Debian's ``prometheus`` and ``prometheus-alertmanager``
packages (:func:`binary` finds them).

The alert of ``peers/rules.yml`` is driven by a :class:`Gate`: a gauge this process serves and
Prometheus scrapes every second, so the caller decides when the alert fires and when it
resolves instead of waiting for the clock.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx

T = TypeVar("T")

CONFIGS = Path(__file__).resolve().parent / "peers"
LOOPBACK = "127.0.0.1"

#: Debian names first; upstream tarballs call Alertmanager ``alertmanager``.
PROMETHEUS = ("prometheus",)
ALERTMANAGER = ("prometheus-alertmanager", "alertmanager")


def binary(names: Sequence[str]) -> str | None:
    """The path of the first of ``names`` found on ``PATH``."""
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


def free_port() -> int:
    """A TCP port on the loopback address that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(
    check: Callable[[], T | None],
    what: str,
    timeout: float,
    explain: Callable[[], str] = lambda: "",
) -> T:
    """Poll ``check`` until it returns something other than ``None``/``False``.

    Raises:
        AssertionError: after ``timeout`` seconds, naming ``what`` and adding ``explain()``.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{explain()}")
        time.sleep(0.1)


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without OPSLOOM_* settings, plus ``extra``; the test's own
    secret key stays, so a server started in the work tree makes no key file there."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("OPSLOOM_") or k == "OPSLOOM_SECRET_KEY"
    }
    env.update(extra)
    return env


def render(template: str, target: Path, **values: str) -> Path:
    """Copy ``peers/<template>`` to ``target`` with each ``__NAME__`` replaced by its value."""
    text = (CONFIGS / template).read_text(encoding="utf-8")
    for name, value in values.items():
        text = text.replace(f"__{name}__", value)
    if re.search(r"__[A-Z]+__", text):
        raise AssertionError(f"{template}: a placeholder was left unfilled")
    target.write_text(text, encoding="utf-8")
    return target


@dataclass
class Peer:
    """A process started by a test, with its combined output in ``log``."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    url: str

    def tail(self, lines: int = 30) -> str:
        """The last lines of the process's output, for failure messages."""
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        # Access-log lines of the test's own polling would hide everything else.
        kept = [line for line in text.splitlines() if "uvicorn.access" not in line]
        return f"--- {self.name} ({self.log}) ---\n" + "\n".join(kept[-lines:])

    def alive(self) -> bool:
        """Whether the process still runs (an early exit fails with its output)."""
        if self.process.poll() is None:
            return True
        raise AssertionError(f"{self.name} exited with {self.process.returncode}\n{self.tail()}")

    def stop(self, timeout: float = 15) -> int:
        """SIGTERM, then SIGKILL if it has not exited after ``timeout`` seconds."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def launch(
    name: str,
    argv: Sequence[str],
    folder: Path,
    url: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Peer:
    """Start ``argv`` (in ``cwd``, default ``folder``) with its output in ``folder/<name>.log``."""
    log = folder / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            list(argv),
            cwd=cwd or folder,
            env=env if env is not None else clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Peer(name, process, log, url)


def wait_ready(peer: Peer, path: str = "/-/ready", timeout: float = 20) -> None:
    """Wait until ``GET <url><path>`` answers 200."""

    def ready() -> bool:
        peer.alive()
        try:
            return httpx.get(peer.url + path, timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(ready, f"{peer.name} to be ready", timeout, peer.tail)


def ready_or_stopped(peer: Peer, path: str = "/-/ready") -> Peer:
    """``peer`` once it answers ``path``; stopped when it does not (or the wait is cut short),
    since the caller never gets it to stop."""
    try:
        wait_ready(peer, path)
    except BaseException:
        peer.stop()
        raise
    return peer


def start_alertmanager(executable: str, folder: Path, webhook_url: str, token: str) -> Peer:
    """Alertmanager sending every notification to ``webhook_url`` with a Bearer ``token``."""
    port = free_port()
    url = f"http://{LOOPBACK}:{port}"
    config = render(
        "alertmanager.yml", folder / "alertmanager.yml", WEBHOOK_URL=webhook_url, TOKEN=token
    )
    argv = [
        executable,
        f"--config.file={config}",
        f"--storage.path={folder / 'alertmanager-data'}",
        f"--web.listen-address={LOOPBACK}:{port}",
        f"--web.external-url={url}/",
        # Empty: no cluster gossip, so nothing binds 0.0.0.0:9094.
        "--cluster.listen-address=",
    ]
    return ready_or_stopped(launch("alertmanager", argv, folder, url))


def start_prometheus(executable: str, folder: Path, alertmanager: Peer, gate: Gate) -> Peer:
    """Prometheus evaluating ``peers/rules.yml`` every second over the gate's gauge."""
    port = free_port()
    url = f"http://{LOOPBACK}:{port}"
    rules = render("rules.yml", folder / "rules.yml")
    config = render(
        "prometheus.yml",
        folder / "prometheus.yml",
        RULES=str(rules),
        ALERTMANAGER=alertmanager.url.removeprefix("http://"),
        GATE=gate.address,
    )
    argv = [
        executable,
        f"--config.file={config}",
        f"--storage.tsdb.path={folder / 'prometheus-data'}",
        f"--web.listen-address={LOOPBACK}:{port}",
        # Without it the machine's host name ends up in every alert's generatorURL.
        f"--web.external-url={url}/",
        # Prometheus evaluates before it has found Alertmanager and would otherwise resend
        # the dropped alert only after a minute.
        "--rules.alert.resend-delay=2s",
    ]
    return ready_or_stopped(launch("prometheus", argv, folder, url))


@dataclass
class Gate:
    """A Prometheus target serving one gauge, ``opsloom_e2e_gate``, that the test sets."""

    value: float = 0.0
    scrapes: int = 0
    _server: ThreadingHTTPServer | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        """``host:port`` to scrape."""
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

    def set(self, value: float) -> None:
        """The value served from the next scrape on."""
        self.value = value

    @contextmanager
    def serving(self) -> Iterator[Gate]:
        """Serve ``/metrics`` on a free loopback port until the block ends."""
        gate = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                gate.scrapes += 1
                body = (
                    "# HELP opsloom_e2e_gate 1 while the end-to-end alert should fire.\n"
                    "# TYPE opsloom_e2e_gate gauge\n"
                    f"opsloom_e2e_gate {gate.value}\n"
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # one line per scrape every second is noise in the test output

        self._server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        thread = threading.Thread(target=self._server.serve_forever, name="e2e-gate", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
            thread.join(5)


def start_opsloom(
    folder: Path,
    db: str,
    env: dict[str, str],
    app: str | None = None,
    cwd: Path | None = None,
    timeout: float = 30,
) -> Peer:
    """``opsloom up`` on any free loopback port, run in ``cwd`` (bundled examples, or the
    workflows of ``app``, ``module:attribute``), listening within ``timeout`` seconds."""
    argv = [sys.executable, "-m", "opsloom.cli.main", "up", "--db", db]
    argv += ["--host", LOOPBACK, "--port", "0"] + ([] if app is None else ["--app", app])
    peer = launch("opsloom", argv, folder, "", env, cwd)

    def listening() -> str | None:
        peer.alive()
        for line in peer.log.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("opsloom listening on "):
                return line.split()[3]
        return None

    try:
        peer.url = wait_until(listening, "opsloom up to listen", timeout, peer.tail)
    except BaseException:
        peer.stop()  # the caller never gets the peer to stop: a slow start must not outlive it
        raise
    return ready_or_stopped(peer, "/api/v1/health")


def opsloom(
    *args: str, env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run one ``opsloom`` command to completion (in ``cwd``, default the current folder)."""
    return subprocess.run(
        [sys.executable, "-m", "opsloom.cli.main", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

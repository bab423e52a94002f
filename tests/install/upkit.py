"""Fresh virtualenvs and ``opsloom up`` subprocesses, for the tests of installed packages.

The virtualenvs are made offline: no pip of their own, and a ``.pth`` that appends the
development environment's site-packages, so that opsloom's dependencies (and pip, and the
build backend) come from there while what a test installs into the new environment comes
first on the path.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without the developer's own OPSLOOM_* settings or PYTHONPATH."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("OPSLOOM_") and k not in ("PYTHONPATH", "VIRTUAL_ENV")
    }
    env.update(extra)
    return env


def make_venv(folder: Path) -> Path:
    """A new virtualenv in ``folder`` that can see the current one's packages; its python."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=120
    )
    python = folder / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
        env=clean_env(),
    ).stdout.strip()
    ours = sysconfig.get_paths()["purelib"]
    # An "import" line of a .pth runs at start-up; addsitedir also reads ours' own .pth files.
    Path(purelib, "zz_development.pth").write_text(
        f"import site; site.addsitedir({ours!r})\n", encoding="utf-8"
    )
    return python


def build_wheel(folder: Path) -> Path:
    """opsloom's wheel built from this tree into ``folder`` (offline); its path."""
    wheels = folder / "wheels"
    built = subprocess.run(
        [
            str(make_venv(folder / "build")),
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--quiet",
            "-w",
            str(wheels),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = wheels.glob("opsloom-*.whl")
    return wheel


def pip_install(python: Path, *args: str) -> None:
    """``pip install`` into the virtualenv of ``python``, offline."""
    offline = ["--no-deps", "--no-build-isolation", "--no-index", "--disable-pip-version-check"]
    result = subprocess.run(
        [str(python), "-m", "pip", "install", *offline, "--quiet", *args],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"pip install {args} failed:\n{result.stdout}\n{result.stderr}"


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    """Poll ``condition`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class Server:
    """A running ``opsloom up``: its URL and what it printed so far."""

    process: subprocess.Popen[bytes]
    url: str
    stdout: Path
    stderr: Path

    def output(self) -> str:
        return self.stdout.read_text(encoding="utf-8", errors="replace")

    def errors(self) -> str:
        return self.stderr.read_text(encoding="utf-8", errors="replace")


@contextmanager
def opsloom_up(argv: list[str], cwd: Path, env: dict[str, str]) -> Iterator[Server]:
    """Run ``argv`` (an ``opsloom up`` on port 0) until it answers ``/api/v1/health``.

    On leaving, SIGTERM stops it and it must exit with status 0.
    """
    stdout, stderr = cwd / "up.stdout", cwd / "up.stderr"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=err)
    try:

        def listening() -> str | None:
            if process.poll() is not None:
                raise AssertionError(f"opsloom up exited early:\n{stderr.read_text()}")
            for line in stdout.read_text().splitlines():
                if line.startswith("opsloom listening on "):
                    return line.split()[3]
            return None

        url = wait_until(listening, "the listening line")

        def healthy() -> bool:
            try:
                return httpx.get(f"{url}/api/v1/health", timeout=5).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(healthy, "a healthy /api/v1/health")
        yield Server(process, url, stdout, stderr)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, stderr.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

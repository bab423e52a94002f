"""Real peers for end-to-end tests: Prometheus, Alertmanager and ``opsloom up`` as processes.

The helpers live in :mod:`opsloom.demo.peers` (``opsloom demo`` starts the same peers); here
they run from the repository root, so ``--app tests.…`` and ``examples.…`` import. Without
Debian's ``prometheus`` and ``prometheus-alertmanager`` a test skips, except on CI
(``CI=true``), where it fails.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from opsloom.demo import peers as _peers
from opsloom.demo.peers import (  # noqa: F401 - the tests' names
    ALERTMANAGER,
    CONFIGS,
    LOOPBACK,
    PROMETHEUS,
    Gate,
    Peer,
    binary,
    clean_env,
    free_port,
    render,
    start_alertmanager,
    start_prometheus,
    wait_ready,
    wait_until,
)

ROOT = Path(__file__).resolve().parents[2]


def require_binaries() -> tuple[str, str]:
    """Paths of Prometheus and Alertmanager; skip without them, or fail on CI."""
    prometheus, alertmanager = binary(PROMETHEUS), binary(ALERTMANAGER)
    if prometheus and alertmanager:
        return prometheus, alertmanager
    reason = (
        "Prometheus and Alertmanager are not installed "
        "(apt-get install prometheus prometheus-alertmanager)"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason + "; .ci/run installs them")
    pytest.skip(reason)


def launch(
    name: str, argv: Sequence[str], folder: Path, url: str, env: dict[str, str] | None = None
) -> Peer:
    """Start ``argv`` from the repository root, its output in ``folder/<name>.log``."""
    return _peers.launch(name, argv, folder, url, env, ROOT)


def start_opsloom(folder: Path, db: str, env: dict[str, str], app: str | None = None) -> Peer:
    """``opsloom up`` on any free loopback port, from the repository root."""
    return _peers.start_opsloom(folder, db, env, app, ROOT)


def opsloom(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run one ``opsloom`` command to completion from the repository root."""
    return _peers.opsloom(*args, env=env, cwd=ROOT)


_SAMPLE = re.compile(
    r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)"
)
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels`` (text exposition)."""
    total = 0.0
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if not match or match["name"] != name:
            continue
        found = dict(_LABEL.findall(match["labels"] or ""))
        if all(found.get(key) == value for key, value in labels.items()):
            total += float(match["value"])
    return total

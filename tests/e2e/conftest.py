"""Fixtures of the end-to-end tests: one ``opsloom up`` shared by the web UI and CLI tests."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest
from peers import LOOPBACK, ROOT, clean_env, launch, opsloom, wait_ready, wait_until
from webserver import ADMIN_TOKEN, Server


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("web-ui")
    db = f"sqlite:///{folder / 'web.db'}"
    pythonpath = os.pathsep.join(filter(None, [str(ROOT / "tests" / "e2e"), str(ROOT / "src")]))
    env = clean_env(OPSLOOM_API_TOKEN=ADMIN_TOKEN, PYTHONPATH=pythonpath)
    tokens: dict[str, str] = {}
    for user, roles in {
        "alice": ["approver"],
        "olga": ["operator"],
        "vic": ["viewer"],
        "rita": ["viewer"],
    }.items():
        added = opsloom("users", "add", user, *(f"--role={r}" for r in roles), "--db", db, env=env)
        assert added.returncode == 0, added.stderr
        made = opsloom("tokens", "create", user, "--db", db, env=env)
        assert made.returncode == 0, made.stderr
        tokens[user] = made.stdout.strip()
    tokens["admin"] = ADMIN_TOKEN
    argv = [sys.executable, "-m", "opsloom.cli.main", "up", "--app", "web_workflows:app"]
    argv += ["--db", db, "--host", LOOPBACK, "--port", "0"]
    peer = launch("opsloom", argv, folder, "", env)
    try:

        def listening() -> str | None:
            peer.alive()
            for line in peer.log.read_text(encoding="utf-8", errors="replace").splitlines():
                if line.startswith("opsloom listening on "):
                    return line.split()[3]
            return None

        peer.url = wait_until(listening, "opsloom up to listen", 30, peer.tail)
        wait_ready(peer, "/api/v1/health")
        yield Server(peer, tokens)
    finally:
        peer.stop()

"""The ``opsloom up`` of the web UI and remote CLI tests, and what they know of it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from peers import Peer

ADMIN_TOKEN = "e2e-web-admin-token"


@dataclass
class Server:
    """The ``opsloom up`` under test and the tokens of its users."""

    peer: Peer
    tokens: dict[str, str]

    @property
    def url(self) -> str:
        return self.peer.url

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.url}/api/v1",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=10,
        )

    def start(self, workflow: str, input: Any = None, run_id: str | None = None) -> str:
        body = {"workflow": workflow, "input": input, "run_id": run_id}
        with self.api() as api:
            answer = api.post("/runs", json=body)
            answer.raise_for_status()
            run_id: str = answer.json()["id"]
            return run_id

    def status(self, run_id: str) -> str:
        with self.api() as api:
            status: str = api.get(f"/runs/{quote(run_id, safe='/')}").json()["status"]
            return status

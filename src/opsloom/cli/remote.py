"""Commands against a running server instead of the database: ``--server URL --token T``.

``opsloom --server https://ops.example --token T runs list`` (or ``OPSLOOM_SERVER`` and
``OPSLOOM_TOKEN``) sends the run commands (``start``, ``signal``, ``runs list|show|cancel|
retry``) to the server's HTTP API, so an operator needs neither the database nor the workflow
code on their laptop. The answers are the API's, with its roles: a viewer's token lists runs
but cannot cancel them. Commands that need the database itself say so.
"""

from __future__ import annotations

import asyncio
import contextvars
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from opsloom.errors import ConfigurationError, OpsloomError
from opsloom.model import RunRecord, RunStatus, StepKind, StepRecord, StepStatus
from opsloom.model.run import QUARANTINED_STATUS
from opsloom.store import Store

#: The server chosen by the root options for this invocation (None: use the database).
_chosen: contextvars.ContextVar[tuple[str, str | None] | None] = contextvars.ContextVar(
    "opsloom_server", default=None
)


class ServerError(OpsloomError):
    """The server refused a request; ``code`` is the API's error code."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def choose_server(url: str | None, token: str | None) -> None:
    """Send this invocation's run commands to ``url`` (None: work on the database)."""
    _chosen.set(None if not url else (url.rstrip("/"), token))


def chosen_server() -> Server | None:
    """A client of the chosen server, or None when commands use the database."""
    found = _chosen.get()
    return None if found is None else Server(*found)


def _time(value: str | None) -> float | None:
    return None if value is None else datetime.fromisoformat(value).timestamp()


def step_from_json(run_id: str, data: dict[str, Any]) -> StepRecord:
    return StepRecord(
        run_id=run_id,
        seq=int(data["seq"]),
        kind=StepKind(data["kind"]),
        name=str(data["name"]),
        status=StepStatus(data["status"]),
        output=data.get("output"),
        error=data.get("error"),
        attempts=int(data.get("attempts", 1)),
        wake_at=_time(data.get("wake_at")),
        started_at=_time(data.get("started_at")),
        completed_at=_time(data.get("completed_at")),
    )


def run_from_json(data: dict[str, Any]) -> RunRecord:
    """A run from the API's JSON (``RunRecord.to_dict``)."""
    return RunRecord(
        id=str(data["id"]),
        workflow=str(data["workflow"]),
        version=str(data["version"]),
        status=RunStatus(data["status"]),
        input=data.get("input"),
        output=data.get("output"),
        error=data.get("error"),
        parent_id=data.get("parent_id"),
        priority=int(data.get("priority", 0)),
        concurrency_key=data.get("concurrency_key"),
        deadline=_time(data.get("deadline")),
        cancel_requested=bool(data.get("cancel_requested")),
        recovered=int(data.get("recovered", 0)),
        created_at=_time(data.get("created_at")) or 0.0,
        started_at=_time(data.get("started_at")),
        updated_at=_time(data.get("updated_at")) or 0.0,
        completed_at=_time(data.get("completed_at")),
        event_source=data.get("event_source"),
        event_id=data.get("event_id"),
        started_by=data.get("started_by"),
        paused=data.get("paused"),
        paused_at=_time(data.get("paused_at")),
        reset_of=data.get("reset_of"),
        reset_to=data.get("reset_to"),
        quarantined_at=_time(data.get("quarantined_at")),
        labels=dict(data.get("labels") or {}),
        steps=[step_from_json(str(data["id"]), s) for s in data.get("steps") or []],
    )


def _part(value: str) -> str:
    """A run id, workflow or name as a URL path part (trigger run ids hold ``#``)."""
    return quote(value, safe="/")


class Server:
    """The run operations of :class:`~opsloom.app.App`, over a server's HTTP API."""

    def __init__(self, url: str, token: str | None) -> None:
        self.url = url
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        self._headers = headers

    @property
    def store(self) -> Store:
        raise ConfigurationError("this command works on the database: pass --db, not --server")

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        answer = await self._send(method, path, **kwargs)
        return answer.json() if answer.content else None

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async with httpx.AsyncClient(
            base_url=f"{self.url}/api/v1", headers=self._headers, timeout=30
        ) as http:
            try:
                answer = await http.request(method, path, **kwargs)
            except httpx.HTTPError as exc:
                raise ServerError(f"cannot reach {self.url}: {exc}", "unreachable") from None
        if answer.status_code >= 400:
            try:
                body = answer.json()
            except ValueError:
                body = {}
            detail = body.get("detail") or answer.text or answer.reason_phrase
            raise ServerError(
                f"{self.url} answered {answer.status_code}: {detail}",
                str(body.get("code") or "http_error"),
            )
        return answer

    async def list_runs(
        self,
        *,
        status: RunStatus | str | None = None,
        workflow: str | None = None,
        limit: int = 50,
        labels: dict[str, str] | None = None,
    ) -> list[RunRecord]:
        params: dict[str, str | int | list[str]] = {"limit": limit}
        if labels:
            params["label"] = [f"{key}={value}" for key, value in labels.items()]
        if status == QUARANTINED_STATUS:
            params["quarantined"] = "true"
        elif status is not None:
            params["status"] = str(RunStatus(status))
        if workflow is not None:
            params["workflow"] = workflow
        return [run_from_json(run) for run in await self._call("GET", "/runs", params=params)]

    async def get_run(self, run_id: str) -> RunRecord:
        return run_from_json(await self._call("GET", f"/runs/{_part(run_id)}"))

    async def signal(self, run_id: str, name: str, data: Any = None) -> None:
        await self._call("POST", f"/runs/{_part(run_id)}/signals/{_part(name)}", json=data)

    async def query(self, run_id: str, name: str, data: Any = None) -> Any:
        return (
            await self._call("POST", f"/runs/{_part(run_id)}/queries/{_part(name)}", json=data)
        )["result"]

    async def update(self, run_id: str, name: str, data: Any = None) -> Any:
        return (
            await self._call("POST", f"/runs/{_part(run_id)}/updates/{_part(name)}", json=data)
        )["result"]

    async def cancel(self, run_id: str) -> list[str]:
        answer = await self._call("POST", f"/runs/{_part(run_id)}/cancel")
        return list(answer["cancelled"])

    async def pause(self, run_id: str) -> RunRecord:
        return run_from_json(await self._call("POST", f"/runs/{_part(run_id)}/pause"))

    async def resume(self, run_id: str) -> RunRecord:
        return run_from_json(await self._call("POST", f"/runs/{_part(run_id)}/resume"))

    async def requeue(self, run_id: str) -> RunRecord:
        return run_from_json(await self._call("POST", f"/runs/{run_id}/requeue"))

    async def pause_workflow(self, workflow: str) -> list[str]:
        return list((await self._call("POST", f"/workflows/{_part(workflow)}/pause"))["runs"])

    async def resume_workflow(self, workflow: str) -> list[str]:
        return list((await self._call("POST", f"/workflows/{_part(workflow)}/resume"))["runs"])

    async def retry(self, run_id: str) -> RunRecord:
        return run_from_json(await self._call("POST", f"/runs/{_part(run_id)}/retry"))

    async def start(
        self,
        workflow: str,
        input: Any = None,
        *,
        run_id: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> tuple[RunRecord, bool]:
        """Start a run; the run and whether it is new (an existing ``run_id`` is not)."""
        body: dict[str, Any] = {"workflow": workflow, "input": input}
        if run_id is not None:
            body["run_id"] = run_id
        if labels:
            body["labels"] = labels
        answer = await self._send("POST", "/runs", json=body)
        return run_from_json(answer.json()), answer.status_code == 201

    async def wait(self, run_id: str, timeout: float | None, poll: float = 0.5) -> RunRecord:
        """Poll until the run ends (``TimeoutError`` after ``timeout`` seconds)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            run = await self.get_run(run_id)
            if run.status.terminal:
                return run
            if deadline is not None and loop.time() >= deadline:
                raise TimeoutError(f"run {run_id!r} did not end within {timeout}s")
            await asyncio.sleep(poll)

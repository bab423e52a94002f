"""Loopback stand-ins of the SaaS tools for ``opsloom demo``: Slack, PagerDuty, GitHub, Jira
and a Kubernetes API server holding one Deployment.

Each answers the calls the incident runbook makes with the members the vendor documents for
them, and keeps what it was sent so the demo can show it. They check nothing against the
vendors' specs (a wheel carries none): the connectors' tests do that, against the
spec-checked fakes of ``tests/connectors``.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opsloom.connectors.testing import FakeRequest, FakeResponse, FakeVendor

Route = Callable[[FakeRequest], FakeResponse]


@dataclass
class Slack:
    """``chat.postMessage`` and ``chat.update``; :attr:`messages` newest first."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    _ts: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def vendor(self) -> FakeVendor:
        """The Web API under ``/api``."""
        return FakeVendor(
            None,
            {
                ("POST", "/api/chat.postMessage"): self._post,
                ("POST", "/api/chat.update"): self._update,
            },
        )

    def _post(self, request: FakeRequest) -> FakeResponse:
        form = request.form
        ts = f"1700000000.{next(self._ts):06d}"
        message = {"channel": form["channel"], "ts": ts, "text": form.get("text", "")}
        self.messages.insert(0, message)
        return FakeResponse(200, {"ok": True, **message, "message": {"text": message["text"]}})

    def _update(self, request: FakeRequest) -> FakeResponse:
        form = request.form
        for message in self.messages:
            if message["channel"] == form["channel"] and message["ts"] == form["ts"]:
                message["text"] = form.get("text", "")
        return FakeResponse(200, {"ok": True, "channel": form["channel"], "ts": form["ts"]})


@dataclass
class PagerDuty:
    """Events API v2: :attr:`events` are the ``event_action`` of each event, in order."""

    events: list[str] = field(default_factory=list)

    def vendor(self) -> FakeVendor:
        """``POST /v2/enqueue``."""
        return FakeVendor(None, {("POST", "/v2/enqueue"): self._enqueue})

    def _enqueue(self, request: FakeRequest) -> FakeResponse:
        event = request.json
        self.events.append(event["event_action"])
        answer = {"status": "success", "message": "Event processed"}
        return FakeResponse(202, {**answer, "dedup_key": event["dedup_key"]})


def github(deployments: list[dict[str, Any]]) -> FakeVendor:
    """``GET /repos/{owner}/{repo}/deployments``, answering ``deployments``."""
    return FakeVendor(
        None,
        {
            ("GET", "/repos/{owner}/{repo}/deployments"): lambda request: FakeResponse(
                200, deployments
            )
        },
    )


@dataclass
class Jira:
    """``POST /rest/api/3/issue``: :attr:`issues` are the created issues' fields."""

    site: str = "http://jira.local"
    issues: list[dict[str, Any]] = field(default_factory=list)

    def vendor(self) -> FakeVendor:
        """Jira Cloud's REST API v3 (issue creation only)."""
        return FakeVendor(None, {("POST", "/rest/api/3/issue"): self._create})

    def _create(self, request: FakeRequest) -> FakeResponse:
        self.issues.append(request.json["fields"])
        number = len(self.issues)
        key = f"{request.json['fields']['project']['key']}-{number}"
        return FakeResponse(
            201, {"id": str(10000 + number), "key": key, "self": f"{self.site}/issue/{number}"}
        )


@dataclass
class Kubernetes:
    """One namespace's Deployments; :attr:`patches` are the patches applied, in order."""

    token: str
    deployments: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    patches: list[dict[str, Any]] = field(default_factory=list)

    def add(self, name: str, namespace: str, replicas: int) -> None:
        """A Deployment of one container."""
        self.deployments[(namespace, name)] = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace, "generation": 1},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": name, "image": f"registry.local/{name}:1"}]},
                },
            },
        }

    def vendor(self) -> FakeVendor:
        """``GET`` and ``PATCH`` of ``/apis/apps/v1/namespaces/{ns}/deployments/{name}``."""
        path = "/apis/apps/v1/namespaces/{ns}/deployments/{name}"
        return FakeVendor(None, {("GET", path): self._get, ("PATCH", path): self._patch})

    def _found(self, request: FakeRequest) -> dict[str, Any] | FakeResponse:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return FakeResponse(401, {"kind": "Status", "code": 401, "reason": "Unauthorized"})
        found = self.deployments.get((request.params["ns"], request.params["name"]))
        if found is None:
            message = f'deployments.apps "{request.params["name"]}" not found'
            return FakeResponse(404, {"kind": "Status", "code": 404, "message": message})
        return found

    def _get(self, request: FakeRequest) -> FakeResponse:
        found = self._found(request)
        return found if isinstance(found, FakeResponse) else FakeResponse(200, found)

    def _patch(self, request: FakeRequest) -> FakeResponse:
        found = self._found(request)
        if isinstance(found, FakeResponse):
            return found
        self.patches.append(request.json)
        updated = merge_patch(found, request.json)
        updated["metadata"]["generation"] = found["metadata"]["generation"] + 1
        self.deployments[(request.params["ns"], request.params["name"])] = updated
        return FakeResponse(200, updated)


def merge_patch(target: Any, patch: Any) -> Any:
    """A JSON merge patch (RFC 7386), also what a strategic merge patch does to maps."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged

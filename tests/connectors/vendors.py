"""Fakes of the vendors our connectors talk to, answering as their specs or docs say.

Each ``*_fake()`` returns an unstarted :class:`~opsloom.connectors.testing.FakeVendor`; use it
as a context manager. Vendors with a spec in ``shared/contracts`` check every request against
it; the others (PagerDuty, Jira) check the documented shape in their routes.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
from pathlib import Path
from typing import Any

import pytest

from opsloom.connectors.testing import (
    DocumentedContract,
    FakeRequest,
    FakeResponse,
    FakeVendor,
    JsonSchemaContract,
    OpenApiContract,
    Rule,
    SwaggerContract,
    example_routes,
    load_spec,
    spec_example,
)


def _contracts() -> Path:
    # $OPSLOOM_CONTRACTS, else shared/ beside the repository or a few folders up (work trees),
    # else the machine's shared folder (a clone elsewhere, e.g. in a temporary directory).
    configured = os.environ.get("OPSLOOM_CONTRACTS")
    if configured:
        return Path(configured)
    for folder in Path(__file__).resolve().parents:
        candidate = folder / "shared" / "contracts"
        if candidate.is_dir():
            return candidate
    return Path("/work/shared/contracts")


CONTRACTS = _contracts()


@functools.cache
def _load(path: Path) -> dict[str, Any]:
    return load_spec(path)


def contract(relative: str) -> dict[str, Any]:
    """A vendor spec from the shared contracts folder (skip without it; fail on CI)."""
    path = CONTRACTS / relative
    if not path.exists():
        reason = f"vendor spec {path} is not available"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return _load(path)


_ts = itertools.count(1)


def slack_fake(messages: list[dict[str, Any]] | None = None, lose_answers: int = 0) -> FakeVendor:
    """Slack Web API methods, checked against Slack's Swagger 2.0 spec.

    ``messages`` (when given) keeps what is posted and updated, as ``conversations.history``
    answers it (newest first), each with its ``channel``. The first ``lose_answers`` posts
    are kept but answered ``internal_error``, as when Slack's answer is lost.
    """
    lost = itertools.count()
    spec = contract("slack/slack_web_openapi_v2.json")
    # The spec names a `token` header; Slack's docs send `Authorization: Bearer`.
    checker = SwaggerContract(spec, header_aliases={"token": "authorization"})
    kept: list[dict[str, Any]] = [] if messages is None else messages

    def example(path: str, method: str = "post") -> dict[str, Any]:
        body: dict[str, Any] = spec_example(spec, path, method)
        return body

    def content(request: FakeRequest) -> dict[str, Any]:
        form = request.form
        blocks = json.loads(form["blocks"]) if "blocks" in form else []
        return {"text": form.get("text", ""), "blocks": blocks}

    def post(request: FakeRequest) -> FakeResponse:
        body = example("/chat.postMessage")
        ts = f"1503435956.{next(_ts):06d}"
        channel = request.form["channel"]
        kept.insert(0, {"type": "message", "channel": channel, "ts": ts, **content(request)})
        if next(lost) < lose_answers:
            return FakeResponse(200, {"ok": False, "error": "internal_error"})
        return FakeResponse(200, {**body, "channel": channel, "ts": ts})

    def update(request: FakeRequest) -> FakeResponse:
        body = example("/chat.update")
        channel, ts = request.form["channel"], request.form["ts"]
        for message in kept:
            if message["channel"] == channel and message["ts"] == ts:
                message.update(content(request))
        return FakeResponse(200, {**body, "channel": channel, "ts": ts})

    def history(request: FakeRequest) -> FakeResponse:
        channel = request.query["channel"][-1]
        limit = int(request.query.get("limit", ["100"])[-1])
        found = [m for m in kept if m["channel"] == channel][:limit]
        return FakeResponse(200, {**example("/conversations.history", "get"), "messages": found})

    def react(request: FakeRequest) -> FakeResponse:
        if request.form["name"] == "already":
            return FakeResponse(200, spec_example(spec, "/reactions.add", "post", "default"))
        return FakeResponse(200, example("/reactions.add"))

    def open_im(request: FakeRequest) -> FakeResponse:
        return FakeResponse(200, example("/conversations.open"))

    def auth(request: FakeRequest) -> FakeResponse:
        return FakeResponse(200, example("/auth.test", "get"))

    return FakeVendor(
        checker,
        {
            ("POST", "/api/chat.postMessage"): post,
            ("POST", "/api/chat.update"): update,
            ("GET", "/api/conversations.history"): history,
            ("POST", "/api/reactions.add"): react,
            ("POST", "/api/conversations.open"): open_im,
            ("GET", "/api/auth.test"): auth,
        },
    )


def slack_rate_limited(retry_after: int) -> FakeResponse:
    """Slack's documented answer when a method is over its rate limit."""
    return FakeResponse(
        429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry_after)}
    )


# --- PagerDuty (documentation: Events API v2, REST API v2) ---------------------------------

_PD_EVENT = {
    "type": "object",
    "required": ["routing_key", "event_action"],
    "properties": {
        "routing_key": {"type": "string", "minLength": 1},
        "event_action": {"enum": ["trigger", "acknowledge", "resolve"]},
        "dedup_key": {"type": "string", "maxLength": 255},
        "payload": {
            "type": "object",
            "required": ["summary", "source", "severity"],
            "properties": {
                "summary": {"type": "string", "maxLength": 1024},
                "source": {"type": "string"},
                "severity": {"enum": ["critical", "error", "warning", "info"]},
                "custom_details": {"type": "object"},
            },
        },
    },
    "if": {"properties": {"event_action": {"const": "trigger"}}},
    "then": {"required": ["payload"]},
    "else": {"required": ["dedup_key"]},
}
_PD_REST = {
    "Authorization": r"^Token token=\S+$",
    "Accept": r"^application/vnd\.pagerduty\+json;version=2$",
    "From": r"^\S+@\S+$",
}
_PD_STATUS = {
    "type": "object",
    "required": ["incident"],
    "properties": {
        "incident": {
            "type": "object",
            "required": ["type", "status"],
            "properties": {
                "type": {"enum": ["incident", "incident_reference"]},
                "status": {"enum": ["acknowledged", "resolved"]},
            },
        }
    },
}
_PD_NOTE = {
    "type": "object",
    "required": ["note"],
    "properties": {
        "note": {
            "type": "object",
            "required": ["content"],
            "properties": {"content": {"type": "string", "minLength": 1}},
        }
    },
}


def pagerduty_fake() -> FakeVendor:
    """Events v2 and REST incidents, shaped as PagerDuty's documentation says."""
    checker = DocumentedContract(
        [
            Rule("POST", "/v2/enqueue", _PD_EVENT),
            Rule("PUT", "/incidents/{id}", _PD_STATUS, _PD_REST),
            Rule("POST", "/incidents/{id}/notes", _PD_NOTE, _PD_REST),
        ]
    )

    def enqueue(request: FakeRequest) -> FakeResponse:
        key = request.json.get("dedup_key") or "srv01/mysql"
        return FakeResponse(
            202, {"status": "success", "message": "Event processed", "dedup_key": key}
        )

    def status(request: FakeRequest) -> FakeResponse:
        incident = {
            "id": request.params["id"],
            "type": "incident",
            "status": request.json["incident"]["status"],
            "incident_number": 1234,
            "html_url": f"https://acme.pagerduty.com/incidents/{request.params['id']}",
        }
        return FakeResponse(200, {"incident": incident})

    def note(request: FakeRequest) -> FakeResponse:
        content = request.json["note"]["content"]
        return FakeResponse(
            201,
            {"note": {"id": "PWL7QXS", "content": content, "created_at": "2026-12-07T10:00:00Z"}},
        )

    return FakeVendor(
        checker,
        {
            ("POST", "/v2/enqueue"): enqueue,
            ("PUT", "/incidents/{id}"): status,
            ("POST", "/incidents/{id}/notes"): note,
        },
    )


# --- Jira Cloud (documentation: REST API v3) -----------------------------------------------

_ADF = {
    "type": "object",
    "required": ["type", "version", "content"],
    "properties": {"type": {"const": "doc"}, "version": {"const": 1}, "content": {"type": "array"}},
}
_JIRA_AUTH = {"Authorization": r"^Basic [A-Za-z0-9+/=]+$"}


def jira_fake() -> FakeVendor:
    """Issues, comments and transitions, shaped as Atlassian's REST v3 documentation says."""
    issue_schema = {
        "type": "object",
        "required": ["fields"],
        "properties": {
            "fields": {
                "type": "object",
                "required": ["project", "summary", "issuetype"],
                "properties": {
                    "project": {"type": "object", "required": ["key"]},
                    "summary": {"type": "string", "maxLength": 255},
                    "issuetype": {"type": "object", "required": ["name"]},
                    "description": _ADF,
                    "labels": {"type": "array", "items": {"type": "string"}},
                },
            }
        },
    }
    checker = DocumentedContract(
        [
            Rule("POST", "/rest/api/3/issue", issue_schema, _JIRA_AUTH),
            Rule(
                "POST",
                "/rest/api/3/issue/{key}/comment",
                {"type": "object", "required": ["body"], "properties": {"body": _ADF}},
                _JIRA_AUTH,
            ),
            Rule("GET", "/rest/api/3/issue/{key}/transitions", None, _JIRA_AUTH),
            Rule(
                "POST",
                "/rest/api/3/issue/{key}/transitions",
                {
                    "type": "object",
                    "required": ["transition"],
                    "properties": {
                        "transition": {"type": "object", "required": ["id"]},
                    },
                },
                _JIRA_AUTH,
            ),
            Rule("GET", "/rest/api/3/myself", None, _JIRA_AUTH),
        ]
    )
    issues = itertools.count(1)

    def create(request: FakeRequest) -> FakeResponse:
        number = next(issues)
        key = f"{request.json['fields']['project']['key']}-{number}"
        return FakeResponse(
            201,
            {"id": str(10000 + number), "key": key, "self": f"https://acme/rest/api/3/issue/{key}"},
        )

    def comment(request: FakeRequest) -> FakeResponse:
        return FakeResponse(201, {"id": "10000", "body": request.json["body"]})

    def transitions(request: FakeRequest) -> FakeResponse:
        return FakeResponse(
            200,
            {
                "transitions": [
                    {"id": "11", "name": "Start", "to": {"name": "In Progress"}},
                    {"id": "31", "name": "Resolve", "to": {"name": "Done"}},
                ]
            },
        )

    def myself(request: FakeRequest) -> FakeResponse:
        return FakeResponse(200, {"displayName": "Ops Bot", "emailAddress": "bot@acme.test"})

    return FakeVendor(
        checker,
        {
            ("POST", "/rest/api/3/issue"): create,
            ("POST", "/rest/api/3/issue/{key}/comment"): comment,
            ("GET", "/rest/api/3/issue/{key}/transitions"): transitions,
            ("POST", "/rest/api/3/issue/{key}/transitions"): lambda r: FakeResponse(204),
            ("GET", "/rest/api/3/myself"): myself,
        },
    )


# --- GitHub (spec: github/rest/api.github.com.json) ---------------------------------------


def github_fake() -> FakeVendor:
    """GitHub REST operations, checked against GitHub's OpenAPI document."""
    spec = contract("github/rest/api.github.com.json")
    return FakeVendor(
        OpenApiContract(spec),
        example_routes(
            spec,
            [
                ("POST", "/repos/{owner}/{repo}/issues", "201"),
                ("POST", "/repos/{owner}/{repo}/issues/{issue_number}/comments", "201"),
                ("PATCH", "/repos/{owner}/{repo}/issues/{issue_number}", "200"),
                ("POST", "/repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches", "204"),
                ("POST", "/repos/{owner}/{repo}/deployments/{deployment_id}/statuses", "201"),
                ("GET", "/repos/{owner}/{repo}/deployments", "200"),
                ("GET", "/user", "200"),
            ],
        ),
    )


def github_rate_limited(reset: int) -> FakeResponse:
    """GitHub's documented answer when the primary rate limit is spent."""
    return FakeResponse(
        403,
        {"message": "API rate limit exceeded", "documentation_url": "https://docs.github.com"},
        {
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": "0",
            "x-ratelimit-reset": str(reset),
        },
    )


# --- Opsgenie (spec: opsgenie/swagger.json) -------------------------------------------------


def opsgenie_fake() -> FakeVendor:
    """Opsgenie alert operations, checked against Opsgenie's Swagger 2.0 document."""
    spec = contract("opsgenie/swagger.json")

    def accepted(request: FakeRequest) -> FakeResponse:
        return FakeResponse(
            202, {"result": "Request will be processed", "took": 0.302, "requestId": "43a29c5c"}
        )

    return FakeVendor(
        SwaggerContract(spec),
        {
            ("POST", "/v2/alerts"): accepted,
            ("POST", "/v2/alerts/{identifier}/acknowledge"): accepted,
            ("POST", "/v2/alerts/{identifier}/close"): accepted,
        },
    )


# --- Discord (spec: discord/openapi.json) ---------------------------------------------------


def discord_fake() -> FakeVendor:
    """Discord's execute-webhook operation, checked against Discord's OpenAPI document."""
    spec = contract("discord/openapi.json")

    def execute(request: FakeRequest) -> FakeResponse:
        message = {
            "id": "1178440389924765726",
            "channel_id": "1101246325234061412",
            "content": request.json.get("content", ""),
            "embeds": request.json.get("embeds", []),
        }
        return FakeResponse(200, message)

    formats = {"snowflake": lambda value: str(value).isdigit()}
    return FakeVendor(
        OpenApiContract(spec, formats=formats), {("POST", "/webhooks/{id}/{token}"): execute}
    )


def discord_rate_limited(seconds: float) -> FakeResponse:
    """Discord's documented 429: the wait in the body and in X-RateLimit-Reset-After."""
    return FakeResponse(
        429,
        {"message": "You are being rate limited.", "retry_after": seconds, "global": False},
        {"X-RateLimit-Reset-After": str(seconds), "X-RateLimit-Remaining": "0"},
    )


# --- Twilio (spec: twilio/twilio_api_v2010.json) --------------------------------------------


def twilio_fake() -> FakeVendor:
    """Twilio's Messages resource, checked against Twilio's OpenAPI document."""
    spec = contract("twilio/twilio_api_v2010.json")
    path = "/2010-04-01/Accounts/{AccountSid}/Messages.json"
    return FakeVendor(OpenApiContract(spec), example_routes(spec, [("POST", path, "201")]))


# --- OpenAI (spec: openai/openapi.yaml) -----------------------------------------------------


def openai_fake() -> FakeVendor:
    """Chat completions, checked against OpenAI's OpenAPI document (server path /v1)."""
    spec = contract("openai/openapi.yaml")

    def complete(request: FakeRequest) -> FakeResponse:
        return FakeResponse(
            200,
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 1741569952,
                "model": request.json["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": "Restart the pod.",
                            "refusal": None,
                        },
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 19, "completion_tokens": 5, "total_tokens": 24},
            },
        )

    return FakeVendor(JsonSchemaContract(spec), {("POST", "/v1/chat/completions"): complete})


# --- Datadog (spec: datadog/v1/openapi.yaml) and Sentry (spec: sentry/openapi-derefed.json) --


def datadog_fake() -> FakeVendor:
    """Datadog v1 events and downtimes, checked against Datadog's OpenAPI document."""
    spec = contract("datadog/v1/openapi.yaml")

    def event(request: FakeRequest) -> FakeResponse:
        body = {
            "status": "ok",
            "event": {
                "id": 1377281704830403917,
                "title": request.json["title"],
                "url": "https://app.datadoghq.com/event/event?id=1377281704830403917",
            },
        }
        return FakeResponse(202, body)

    def downtime(request: FakeRequest) -> FakeResponse:
        return FakeResponse(
            200, {"id": 1625, "scope": request.json["scope"], "end": request.json.get("end")}
        )

    return FakeVendor(
        OpenApiContract(spec, server="https://api.datadoghq.com"),
        {("POST", "/api/v1/events"): event, ("POST", "/api/v1/downtime"): downtime},
    )


def sentry_fake() -> FakeVendor:
    """Sentry's issue update, checked against Sentry's OpenAPI document."""
    spec = contract("sentry/openapi-derefed.json")

    def update(request: FakeRequest) -> FakeResponse:
        return FakeResponse(
            200,
            {
                "id": request.params["issue"],
                "status": request.json.get("status", "unresolved"),
                "assignedTo": request.json.get("assignedTo"),
            },
        )

    # The spec lists every field of the update as required, while Sentry's docs (and API) take
    # any subset: check the fields' types from the spec, not its `required` list.
    path = "/api/0/organizations/{organization_id_or_slug}/issues/{issue_id}/"
    media = spec["paths"][path]["put"]["requestBody"]["content"]["application/json"]
    schema = {k: v for k, v in media["schema"].items() if k != "required"}
    checker = DocumentedContract(
        [
            Rule(
                "PUT",
                "/api/0/organizations/{org}/issues/{issue}/",
                schema,
                {"Authorization": r"^Bearer \S+$"},
            )
        ]
    )
    return FakeVendor(checker, {("PUT", "/api/0/organizations/{org}/issues/{issue}/"): update})


# --- Teams, Telegram, Anthropic (documentation only) ----------------------------------------

_ADAPTIVE = {
    "type": "object",
    "required": ["type", "attachments"],
    "properties": {
        "type": {"const": "message"},
        "attachments": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["contentType", "content"],
                "properties": {
                    "contentType": {"const": "application/vnd.microsoft.card.adaptive"},
                    "content": {
                        "type": "object",
                        "required": ["type", "version", "body"],
                        "properties": {"type": {"const": "AdaptiveCard"}},
                    },
                },
            },
        },
    },
}


def teams_fake() -> FakeVendor:
    """A Teams Workflows webhook, shaped as Microsoft's documentation says."""
    checker = DocumentedContract(
        [Rule("POST", "/workflows/{id}/triggers/manual/paths/invoke", _ADAPTIVE)]
    )
    return FakeVendor(
        checker,
        {("POST", "/workflows/{id}/triggers/manual/paths/invoke"): lambda r: FakeResponse(202)},
    )


def telegram_fake() -> FakeVendor:
    """Telegram's sendMessage, shaped as the Bot API documentation says."""
    body = {
        "type": "object",
        "required": ["chat_id", "text"],
        "properties": {
            "chat_id": {"type": ["integer", "string"]},
            "text": {"type": "string", "minLength": 1, "maxLength": 4096},
            "parse_mode": {"enum": ["MarkdownV2", "HTML", "Markdown"]},
        },
    }
    checker = DocumentedContract([Rule("POST", "/bot{token}/sendMessage", body)])

    def send(request: FakeRequest) -> FakeResponse:
        chat = request.json["chat_id"]
        result = {
            "message_id": 42,
            "date": 1700000000,
            "chat": {"id": chat, "type": "group"},
            "text": request.json["text"],
        }
        return FakeResponse(200, {"ok": True, "result": result})

    return FakeVendor(checker, {("POST", "/bot{token}/sendMessage"): send})


def anthropic_fake() -> FakeVendor:
    """Anthropic's Messages API, shaped as its documentation says."""
    body = {
        "type": "object",
        "required": ["model", "max_tokens", "messages"],
        "properties": {
            "max_tokens": {"type": "integer", "minimum": 1},
            "messages": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["role", "content"],
                    "properties": {"role": {"enum": ["user", "assistant"]}},
                },
            },
        },
    }
    headers = {"x-api-key": r"^\S+$", "anthropic-version": r"^2023-06-01$"}
    checker = DocumentedContract([Rule("POST", "/v1/messages", body, headers)])

    def reply(request: FakeRequest) -> FakeResponse:
        return FakeResponse(
            200,
            {
                "id": "msg_01",
                "type": "message",
                "role": "assistant",
                "model": request.json["model"],
                "content": [{"type": "text", "text": "Roll back the deploy."}],
                "stop_reason": "end_turn",
                "usage": {"input_tokens": 12, "output_tokens": 6},
            },
        )

    return FakeVendor(checker, {("POST", "/v1/messages"): reply})


# --- Statuspage, Grafana, GitLab (documentation only) ---------------------------------------


def _object(*required: str, **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": list(required), "properties": properties}


_STATUS = {"enum": ["investigating", "identified", "monitoring", "resolved"]}
_COMPONENT = {
    "enum": [
        "operational",
        "degraded_performance",
        "partial_outage",
        "major_outage",
        "under_maintenance",
    ]
}


def statuspage_fake() -> FakeVendor:
    """Statuspage incidents and components, shaped as its REST documentation says."""
    auth = {"Authorization": r"^OAuth \S+$"}
    incident = _object(
        "incident", incident=_object("status", status=_STATUS, name={"type": "string"})
    )
    component = _object("component", component=_object("status", status=_COMPONENT))
    checker = DocumentedContract(
        [
            Rule("POST", "/pages/{page}/incidents", incident, auth),
            Rule("PATCH", "/pages/{page}/incidents/{id}", incident, auth),
            Rule("PATCH", "/pages/{page}/components/{id}", component, auth),
        ]
    )

    def made(request: FakeRequest) -> FakeResponse:
        status = request.json["incident"]["status"]
        ident = request.params.get("id", "p31zjtct2jer")
        return FakeResponse(201, {"id": ident, "status": status, "shortlink": "http://stspg.io/x"})

    def component_set(request: FakeRequest) -> FakeResponse:
        return FakeResponse(
            200, {"id": request.params["id"], "status": request.json["component"]["status"]}
        )

    return FakeVendor(
        checker,
        {
            ("POST", "/pages/{page}/incidents"): made,
            ("PATCH", "/pages/{page}/incidents/{id}"): made,
            ("PATCH", "/pages/{page}/components/{id}"): component_set,
        },
    )


def grafana_fake() -> FakeVendor:
    """Grafana annotations and alerting silences, shaped as its HTTP API documentation says;
    the silence body is checked against the Alertmanager spec Grafana follows."""
    auth = {"Authorization": r"^Bearer \S+$"}
    am = contract("alertmanager/openapi.yaml")
    silence = {"$ref": "#/definitions/postableSilence", "definitions": am["definitions"]}
    annotation = _object(
        "text", text={"type": "string"}, time={"type": "integer"}, tags={"type": "array"}
    )
    checker = DocumentedContract(
        [
            Rule("POST", "/api/annotations", annotation, auth),
            Rule("POST", "/api/alertmanager/grafana/api/v2/silences", silence, auth),
        ]
    )
    return FakeVendor(
        checker,
        {
            ("POST", "/api/annotations"): lambda r: FakeResponse(
                200, {"message": "Annotation added", "id": 7}
            ),
            ("POST", "/api/alertmanager/grafana/api/v2/silences"): lambda r: FakeResponse(
                202, {"silenceID": "6e8c0f25-e6b1-4f5c-a3b7-36d1a3c5b1f2"}
            ),
        },
    )


def gitlab_fake() -> FakeVendor:
    """GitLab issues, notes and pipelines, shaped as its REST v4 documentation says."""
    auth = {"PRIVATE-TOKEN": r"^\S+$"}
    checker = DocumentedContract(
        [
            Rule("POST", "/projects/{id}/issues", _object("title", title={"type": "string"}), auth),
            Rule(
                "POST",
                "/projects/{id}/issues/{iid}/notes",
                _object("body", body={"type": "string"}),
                auth,
            ),
            Rule(
                "POST",
                "/projects/{id}/pipeline",
                _object(
                    "ref",
                    ref={"type": "string"},
                    variables={"type": "array", "items": _object("key", "value")},
                ),
                auth,
            ),
        ]
    )
    return FakeVendor(
        checker,
        {
            ("POST", "/projects/{id}/issues"): lambda r: FakeResponse(
                201, {"id": 84, "iid": 14, "web_url": "https://gitlab.example/acme/api/-/issues/14"}
            ),
            ("POST", "/projects/{id}/issues/{iid}/notes"): lambda r: FakeResponse(201, {"id": 302}),
            ("POST", "/projects/{id}/pipeline"): lambda r: FakeResponse(
                201,
                {
                    "id": 61,
                    "status": "created",
                    "web_url": "https://gitlab.example/acme/api/-/pipelines/61",
                },
            ),
        },
    )

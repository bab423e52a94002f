"""``/hooks/<source>`` and ``/hooks/generic/<name>``: vendor webhooks in, CloudEvents stored.

These routes do not take the API token: every source has its own credentials (signing
secrets, bearer or basic credentials) checked by its :mod:`opsloom.triggers.sources` module.
A request is answered 202 only once its events are stored. A rejected request is answered
401 (authenticity), 400 (payload), 404 (no such source) or 413 (body over 1 MiB), stores
nothing and is only counted, per source and reason, in :class:`HookReceiver.rejections`.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from opsloom.api.problem import problem
from opsloom.api.schema import Problem, receipts_response
from opsloom.app import App
from opsloom.model.tracecontext import TraceParent
from opsloom.triggers.sources import (
    Headers,
    HooksConfig,
    RejectionCounter,
    SourceRegistry,
    WebhookAuthError,
    WebhookPayloadError,
    WebhookRequest,
    WebhookSource,
)

log = logging.getLogger("opsloom.api.hooks")

#: Largest webhook body accepted; vendors' notifications are far smaller.
MAX_BODY_BYTES = 1 << 20

router = APIRouter(prefix="/hooks", tags=["hooks"])


class HookReceiver:
    """What the hook routes need: the settings, the sources and the rejection counts.

    The API keeps one in ``api.state.hooks``; when none was put there, the first hook request
    takes the App's sources and webhook settings (:attr:`~opsloom.app.App.hooks_config`).
    """

    def __init__(
        self,
        config: HooksConfig,
        registry: SourceRegistry | None = None,
        rejections: RejectionCounter | None = None,
    ) -> None:
        self.config = config
        self.registry = registry or SourceRegistry()
        self.rejections = rejections or RejectionCounter()


async def hook_receiver(request: Request) -> HookReceiver:
    """The API's :class:`HookReceiver`, made from the App's sources on first use."""
    state = request.app.state
    receiver: HookReceiver | None = getattr(state, "hooks", None)
    if receiver is None:
        app: App = state.opsloom
        receiver = HookReceiver(app.hooks_config, app.sources)
        state.hooks = receiver
    return receiver


async def _app(request: Request) -> App:
    app: App = request.app.state.opsloom
    return app


AppDep = Annotated[App, Depends(_app)]
ReceiverDep = Annotated[HookReceiver, Depends(hook_receiver)]

_RESPONSES: dict[int | str, dict[str, object]] = {
    202: {"description": "Stored: ids of new events (`accepted`) and of repeats (`duplicates`)."},
    400: {"model": Problem, "description": "The payload cannot be read; `field` names the part."},
    401: {"model": Problem, "description": "Authenticity check failed; `reason` says why."},
    404: {"model": Problem, "description": "No such webhook source."},
    413: {"model": Problem, "description": "The body is larger than 1 MiB."},
}
_ANY_BODY: dict[str, object] = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": {}}}}
}


@router.post(
    "/generic/{name}",
    status_code=202,
    summary="Receive a Standard Webhooks delivery for a generic hook",
    responses=_RESPONSES,
    openapi_extra=_ANY_BODY,
)
async def post_generic_hook(
    app: AppDep, receiver: ReceiverDep, request: Request, name: str
) -> Response:
    return await _receive(app, receiver, request, receiver.registry.generic(name))


@router.post(
    "/{source}",
    status_code=202,
    summary="Receive a webhook from a registered source (alertmanager, github … or a plugin's)",
    responses=_RESPONSES,
    openapi_extra=_ANY_BODY,
)
async def post_hook(app: AppDep, receiver: ReceiverDep, request: Request, source: str) -> Response:
    return await _receive(app, receiver, request, receiver.registry.source(source))


async def _receive(
    app: App, receiver: HookReceiver, request: Request, source: WebhookSource | None
) -> Response:
    if source is None:
        receiver.rejections.add("unknown", "unknown_source")
        app.observer.webhook_received("unknown", False, "unknown_source", 0)
        known = ", ".join(receiver.registry.names)
        return problem(
            request,
            404,
            "hook_not_found",
            f"no webhook source at {request.url.path} (sources: {known}, generic/<name>)",
        )
    body = await _read_body(request, MAX_BODY_BYTES)
    if body is None:
        return _reject(
            request,
            receiver,
            source,
            413,
            "too_large",
            "webhook_too_large",
            f"the body is larger than {MAX_BODY_BYTES} bytes",
        )
    hook_request = WebhookRequest(
        method=request.method,
        path=request.url.path,
        headers=Headers(dict(request.headers)),
        body=body,
        query=dict(request.query_params),
    )
    try:
        source.verify(hook_request, receiver.config, app.clock.now())
    except WebhookAuthError as exc:
        return _reject(request, receiver, source, 401, exc.reason, exc.code, str(exc))
    try:
        events = source.normalise(hook_request)
    except WebhookPayloadError as exc:
        return _reject(
            request, receiver, source, 400, "invalid_payload", exc.code, str(exc), exc.field
        )
    traceparent = request.headers.get("traceparent", "")
    if TraceParent.parse(traceparent) is not None:
        # The sender's trace reaches the runs the events start (distributed tracing extension).
        events = [
            e
            if "traceparent" in e.extensions
            else dataclasses.replace(e, extensions={**e.extensions, "traceparent": traceparent})
            for e in events
        ]
    receipts = await app.emit_events(events) if events else []
    app.observer.webhook_received(source.name, True, "", sum(r.stored for r in receipts))
    return receipts_response(receipts)


def _reject(
    request: Request,
    receiver: HookReceiver,
    source: WebhookSource,
    status: int,
    reason: str,
    code: str,
    detail: str,
    field: str | None = None,
) -> Response:
    receiver.rejections.add(source.name, reason)
    app: App = request.app.state.opsloom
    app.observer.webhook_received(source.name, False, reason, 0)
    # Only the source and reason are logged: headers and body may hold secrets.
    log.warning(
        "webhook rejected: %s",
        detail,
        extra={"event": "webhook_rejected", "source": source.name, "reason": reason},
    )
    return problem(
        request,
        status,
        code,
        detail,
        title="Webhook rejected",
        source=source.name,
        reason=reason,
        field=field,
    )


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body, or ``None`` as soon as it is known to be larger than ``limit``."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)

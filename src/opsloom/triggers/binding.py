"""The CloudEvents HTTP protocol binding: events out of an HTTP request, in its three modes.

- *structured*: ``Content-Type: application/cloudevents+json`` (or plain ``application/json``)
  and the event's JSON form as the body;
- *batched*: ``Content-Type: application/cloudevents-batch+json`` and a JSON array of events;
- *binary*: the context attributes in ``ce-<name>`` headers (values percent-encoded), the
  ``Content-Type`` as ``datacontenttype`` and the body as the data.

Pure: no I/O. Every event is validated; an invalid one fails the whole request.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote

from opsloom.codec import JsonTextError, read_json
from opsloom.errors import InputError
from opsloom.model.cloudevent import CloudEvent, InvalidEventError, parse_event

STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
#: Largest batch accepted in one request (each event is validated and stored in one go).
MAX_BATCH = 1000
_PREFIX = "ce-"


class UnsupportedEventMediaError(InputError):
    """The request is in none of the CloudEvents HTTP modes."""

    code = "unsupported_media_type"


def events_from_http(
    headers: Mapping[str, str], body: bytes, *, default_id: Callable[[], str] | None = None
) -> list[CloudEvent]:
    """The events an HTTP request carries.

    Args:
        headers: the request headers (any case).
        body: the raw request body.
        default_id: makes an id for events sent without one.

    Raises:
        InvalidEventError: an event is invalid (names the attribute, and the batch index).
        UnsupportedEventMediaError: the content type is none of the CloudEvents modes.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    content_type = lowered.get("content-type", "")
    media = content_type.split(";", 1)[0].strip().lower()
    if media == BATCH:
        values = _json(body, "the batch")
        if not isinstance(values, list):
            raise InvalidEventError("a batch is a JSON array of events", attribute=None)
        if len(values) > MAX_BATCH:
            raise InvalidEventError(
                f"a batch holds at most {MAX_BATCH} events, not {len(values)}", attribute=None
            )
        return [parse_event(v, default_id=default_id, index=i) for i, v in enumerate(values)]
    if media == STRUCTURED:
        return [parse_event(_json(body, "the event"), default_id=default_id)]
    if any(name.startswith(_PREFIX) for name in lowered):
        return [_binary(lowered, content_type, media, body, default_id)]
    if media == "application/json" or media.endswith("+json"):
        value = _json(body, "the event")
        if isinstance(value, list):
            raise InvalidEventError(
                f"send several events with Content-Type: {BATCH}", attribute=None
            )
        return [parse_event(value, default_id=default_id)]
    # Any other type (none, curl -d's form type, text/plain): a body that is JSON is read as
    # structured mode (an object) or batched mode (an array), as every request body is.
    try:
        value = read_json(body)
    except ValueError:
        value = None
    if isinstance(value, dict):
        return [parse_event(value, default_id=default_id)]
    if isinstance(value, list):
        return events_from_http({"content-type": BATCH}, body, default_id=default_id)
    raise UnsupportedEventMediaError(
        f"Content-Type {content_type or '(none)'!r} is none of the CloudEvents modes and the "
        "body is no JSON event or array of events: send "
        f"{STRUCTURED}, {BATCH}, or the attributes as ce-* headers (binary mode)"
    )


def _json(body: bytes, what: str) -> Any:
    try:
        return read_json(body)
    except JsonTextError as exc:
        raise InvalidEventError(f"{what} is not accepted as JSON: {exc}", attribute=None) from None
    except json.JSONDecodeError as exc:
        raise InvalidEventError(
            f"{what} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
            attribute=None,
        ) from None


def _binary(
    headers: Mapping[str, str],
    content_type: str,
    media: str,
    body: bytes,
    default_id: Callable[[], str] | None,
) -> CloudEvent:
    attributes: dict[str, Any] = {}
    for name, value in headers.items():
        if not name.startswith(_PREFIX):
            continue
        attribute = name[len(_PREFIX) :]
        if attribute in ("data", "data_base64"):
            raise InvalidEventError(
                f"header {name!r}: in binary mode the body is the data", attribute=attribute
            )
        attributes[attribute] = unquote(value)
    if content_type:
        attributes["datacontenttype"] = content_type
    if body:
        if media == "application/json" or media.endswith("+json"):
            attributes["data"] = _json(body, "the body (the event data)")
        elif media.startswith("text/"):
            try:
                attributes["data"] = body.decode("utf-8")
            except UnicodeDecodeError:
                attributes["data_base64"] = base64.b64encode(body).decode("ascii")
        else:
            attributes["data_base64"] = base64.b64encode(body).decode("ascii")
    return parse_event(attributes, default_id=default_id)

"""What every webhook source shares: the request it reads, its errors and its contract.

A source is two pure steps. ``verify`` checks that a request really comes from the sender it
claims (signature, credentials, replay window) and ``normalise`` turns the verified payload
into CloudEvents. Neither does I/O: the HTTP route reads the body, and the App stores the
events, so both steps are tested with plain bytes and a fixed ``now``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel

from opsloom.codec import JsonTextError, read_json
from opsloom.errors import InputError, OpsloomError
from opsloom.model.cloudevent import CloudEvent

if TYPE_CHECKING:
    from opsloom.triggers.sources.config import HooksConfig


class WebhookAuthError(OpsloomError):
    """A webhook request failed its authenticity check; ``reason`` is a stable short code.

    Reasons: ``not_configured``, ``missing_signature``, ``malformed_signature``,
    ``bad_signature``, ``missing_timestamp``, ``stale_timestamp``, ``missing_credentials``,
    ``bad_credentials``.
    """

    code = "webhook_unauthorized"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class WebhookPayloadError(InputError):
    """A verified webhook carries a payload that cannot be read; the message names the field."""

    code = "invalid_webhook"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class Headers(Mapping[str, str]):
    """HTTP headers looked up without regard to case (``X-Hub-Signature-256`` = lower case)."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, str] | None = None) -> None:
        self._items: dict[str, str] = {}
        for name, value in (items or {}).items():
            self._items[name.lower()] = value

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """One inbound webhook request, as the route read it (the body is the raw bytes)."""

    method: str
    path: str
    headers: Headers
    body: bytes
    query: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        body: bytes,
        headers: Mapping[str, str] | None = None,
        *,
        method: str = "POST",
        path: str = "/",
        query: Mapping[str, str] | None = None,
    ) -> WebhookRequest:
        """A request from plain values (headers in any case)."""
        return cls(method, path, Headers(headers), body, dict(query or {}))

    def header(self, name: str) -> str | None:
        """A header's value with surrounding blanks removed, or ``None`` when absent or blank."""
        value = self.headers.get(name)
        if value is None:
            return None
        value = value.strip()
        return value or None


class WebhookSource(Protocol):
    """A sender of webhooks opsloom understands (``/hooks/<name>``).

    Sources are registered through the ``opsloom.sources`` entry point group (see
    :mod:`opsloom.extension`); ``config`` is the pydantic model of the source's settings
    section, from which its ``OPSLOOM_HOOKS_<NAME>_*`` variables and docs are derived.
    ``verify`` reads its section with ``config.section(self.name, TheModel)``.
    """

    @property
    def name(self) -> str:
        """The path segment(s) after ``/hooks/`` (``github``, ``generic/deploys``)."""
        ...

    @property
    def config(self) -> type[BaseModel]:
        """The pydantic model of this source's settings (secrets, tokens, headers)."""
        ...

    def verify(self, request: WebhookRequest, config: HooksConfig, now: float) -> None:
        """Check the request's authenticity.

        Raises:
            WebhookAuthError: with the reason the request is rejected.
        """
        ...

    def normalise(self, request: WebhookRequest) -> list[CloudEvent]:
        """The CloudEvents a verified request stands for.

        Raises:
            WebhookPayloadError: naming the field that is missing or malformed.
        """
        ...


# --- reading payloads ------------------------------------------------------------------------


def json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object."""
    try:
        value = read_json(body)
    except JsonTextError as exc:
        raise WebhookPayloadError(f"the body is not accepted as JSON: {exc}") from None
    except json.JSONDecodeError as exc:
        raise WebhookPayloadError(
            f"the body is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    if not isinstance(value, dict):
        raise WebhookPayloadError("the body must be a JSON object")
    return value


def member(obj: Mapping[str, Any], name: str, where: str) -> Any:
    """A required member of a JSON object; ``where`` is the object's path, for the message."""
    if name not in obj or obj[name] is None:
        raise WebhookPayloadError(
            f"field {_path(where, name)!r} is missing", field=_path(where, name)
        )
    return obj[name]


def text(obj: Mapping[str, Any], name: str, where: str, *, required: bool = True) -> str | None:
    """A string member (numbers are accepted and written as text, as some senders do)."""
    if name not in obj or obj[name] is None or obj[name] == "":
        if required:
            path = _path(where, name)
            raise WebhookPayloadError(f"field {path!r} is missing", field=path)
        return None
    value = obj[name]
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        path = _path(where, name)
        raise WebhookPayloadError(f"field {path!r} must be a string", field=path)
    return str(value)


def required_text(obj: Mapping[str, Any], name: str, where: str) -> str:
    """A string member that must be present."""
    value = text(obj, name, where)
    assert value is not None
    return value


def obj_member(
    obj: Mapping[str, Any], name: str, where: str, *, required: bool = False
) -> dict[str, Any]:
    """An object member (``{}`` when absent and not required)."""
    value = obj.get(name)
    if value is None:
        if required:
            path = _path(where, name)
            raise WebhookPayloadError(f"field {path!r} is missing", field=path)
        return {}
    if not isinstance(value, dict):
        path = _path(where, name)
        raise WebhookPayloadError(f"field {path!r} must be an object", field=path)
    return value


def string_map(obj: Mapping[str, Any], name: str, where: str) -> dict[str, str]:
    """An object of strings (labels, annotations); other scalar values are written as text."""
    value = obj_member(obj, name, where)
    out: dict[str, str] = {}
    for key, item in value.items():
        if isinstance(item, dict | list):
            path = _path(_path(where, name), str(key))
            raise WebhookPayloadError(f"field {path!r} must be a string", field=path)
        out[str(key)] = "" if item is None else str(item)
    return out


def _path(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name

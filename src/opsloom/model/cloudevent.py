"""CloudEvents 1.0: the event type every inbound signal becomes, and its validation.

An event is validated once, when it enters opsloom (API, CLI, ``App.emit``, ``ctx.emit``);
what the store holds is always a valid CloudEvent. The structured JSON form
(:meth:`CloudEvent.to_dict`) is what filters, jq ``where`` expressions, waiting runs and the
API see: context attributes and extensions as top-level members, ``data`` as a JSON value
(or ``data_base64`` for binary data).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from opsloom.clock import to_datetime
from opsloom.codec import encode
from opsloom.errors import InputError, SerializationError

SPEC_VERSION = "1.0"

#: Attributes defined by the specification itself; every other name is an extension.
CORE_ATTRIBUTES = (
    "id",
    "source",
    "specversion",
    "type",
    "datacontenttype",
    "dataschema",
    "subject",
    "time",
)
REQUIRED_ATTRIBUTES = ("id", "source", "specversion", "type")
#: Members of the JSON form that carry the payload, not context attributes.
DATA_MEMBERS = ("data", "data_base64")

# Attribute names: lower-case ASCII letters and digits; opsloom holds them to the
# specification's advice of at most 20 characters.
_NAME = re.compile(r"^[a-z0-9]{1,20}$")
# RFC 3339 date-time: a full date, "T", a full time with an offset (or Z).
_RFC3339 = re.compile(r"^(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_INT32 = (-(2**31), 2**31 - 1)

ExtensionValue = str | int | bool


class InvalidEventError(InputError):
    """An event is not a valid CloudEvent; ``attribute`` names the culprit.

    ``index`` is the event's position in a batch (``None`` for a single event).
    """

    code = "invalid_event"

    def __init__(self, message: str, *, attribute: str | None, index: int | None = None) -> None:
        where = "" if index is None else f"event #{index} of the batch: "
        super().__init__(where + message)
        self.attribute = attribute
        self.index = index


@dataclass(frozen=True, slots=True)
class CloudEvent:
    """One CloudEvent (specversion 1.0); build it with :func:`parse_event` to validate it."""

    id: str
    source: str
    type: str
    specversion: str = SPEC_VERSION
    subject: str | None = None
    time: str | None = None
    datacontenttype: str | None = None
    dataschema: str | None = None
    extensions: Mapping[str, ExtensionValue] = field(default_factory=dict)
    data: Any = None
    data_base64: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The structured JSON form (absent attributes are left out)."""
        out: dict[str, Any] = {
            "specversion": self.specversion,
            "id": self.id,
            "source": self.source,
            "type": self.type,
        }
        for name in ("subject", "time", "datacontenttype", "dataschema"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        out.update(self.extensions)
        if self.data_base64 is not None:
            out["data_base64"] = self.data_base64
        elif self.data is not None:
            out["data"] = self.data
        return out

    def attribute(self, name: str) -> ExtensionValue | None:
        """A context attribute or extension by name (``None`` when absent)."""
        if name in CORE_ATTRIBUTES:
            value: ExtensionValue | None = getattr(self, name)
            return value
        return self.extensions.get(name)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as the store holds it: its intake position and arrival time."""

    seq: int
    received_at: float
    event: CloudEvent

    def to_dict(self) -> dict[str, Any]:
        """The stable JSON shape of the API and of ``--json`` CLI output."""
        received = to_datetime(self.received_at)
        return {
            "seq": self.seq,
            "received_at": None if received is None else received.isoformat(),
            "event": self.event.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class EventReceipt:
    """What intake did with one event: ``stored`` is False for a duplicate (same source+id)."""

    event_id: str
    stored: bool
    source: str


def parse_event(
    value: Any, *, default_id: Callable[[], str] | None = None, index: int | None = None
) -> CloudEvent:
    """Validate the structured JSON form of a CloudEvent.

    Args:
        value: the event as a JSON object (a dict).
        default_id: called for an id when the event has none (API and CLI intake);
            without it a missing ``id`` is an error.
        index: the event's position in a batch, named in error messages.

    Raises:
        InvalidEventError: naming the attribute that is missing or malformed.
    """

    def fail(message: str, attribute: str | None) -> InvalidEventError:
        return InvalidEventError(message, attribute=attribute, index=index)

    if not isinstance(value, Mapping):
        raise fail(f"a CloudEvent is a JSON object, not {_kind(value)}", None)
    # JSON null stands for an absent attribute.
    members = {str(k): v for k, v in value.items() if v is not None}
    if "id" not in members and default_id is not None:
        members["id"] = default_id()
    for name in REQUIRED_ATTRIBUTES:
        if name not in members:
            raise fail(f"the required attribute {name!r} is missing", name)
    for name in members:
        if name not in DATA_MEMBERS and not _NAME.match(name):
            raise fail(
                f"attribute name {name!r} is invalid: names are 1 to 20 lower-case ASCII "
                "letters or digits",
                name,
            )
    specversion = members["specversion"]
    if specversion != SPEC_VERSION:
        raise fail(
            f"attribute 'specversion' must be {SPEC_VERSION!r}, not {specversion!r}", "specversion"
        )
    strings: dict[str, str] = {}
    for name in CORE_ATTRIBUTES:
        if name not in members:
            continue
        text = members[name]
        if not isinstance(text, str):
            raise fail(f"attribute {name!r} must be a string, not {_kind(text)}", name)
        if not text:
            raise fail(f"attribute {name!r} must not be empty", name)
        strings[name] = text
    if "time" in strings:
        strings["time"] = _check_time(strings["time"], fail)
    extensions: dict[str, ExtensionValue] = {}
    for name, ext in members.items():
        if name in CORE_ATTRIBUTES or name in DATA_MEMBERS:
            continue
        extensions[name] = _check_extension(name, ext, fail)
    data = members.get("data")
    data_base64 = members.get("data_base64")
    if data is not None and data_base64 is not None:
        raise fail("an event carries 'data' or 'data_base64', not both", "data_base64")
    if data_base64 is not None:
        if not isinstance(data_base64, str):
            raise fail("'data_base64' must be a base64 string", "data_base64")
        try:
            base64.b64decode(data_base64, validate=True)
        except (binascii.Error, ValueError):
            raise fail("'data_base64' is not valid base64", "data_base64") from None
    if data is not None:
        try:
            encode(data)
        except SerializationError as exc:
            raise fail(f"'data' {exc}", "data") from None
    return CloudEvent(
        id=strings["id"],
        source=strings["source"],
        type=strings["type"],
        specversion=SPEC_VERSION,
        subject=strings.get("subject"),
        time=strings.get("time"),
        datacontenttype=strings.get("datacontenttype"),
        dataschema=strings.get("dataschema"),
        extensions=extensions,
        data=data,
        data_base64=data_base64,
    )


def rfc3339(ts: float) -> str:
    """Epoch seconds as an RFC 3339 timestamp in UTC (``…Z``)."""
    moment = to_datetime(ts)
    assert moment is not None
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _check_time(text: str, fail: Callable[[str, str], InvalidEventError]) -> str:
    match = _RFC3339.match(text)
    problem = (
        f"attribute 'time' must be an RFC 3339 timestamp (like 2024-05-01T12:00:00Z), not {text!r}"
    )
    if match is None:
        raise fail(problem, "time")
    date, clock, fraction, offset = match.groups()
    # datetime keeps microseconds: longer fractions are valid RFC 3339 and are only shortened
    # for this check; the stored text stays as the producer wrote it.
    normalised = f"{date}T{clock}{(fraction or '')[:7]}{'+00:00' if offset in 'Zz' else offset}"
    try:
        datetime.fromisoformat(normalised)
    except ValueError:
        raise fail(problem, "time") from None
    return text


def _check_extension(
    name: str, value: Any, fail: Callable[[str, str], InvalidEventError]
) -> ExtensionValue:
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        if not _INT32[0] <= value <= _INT32[1]:
            raise fail(f"extension {name!r} is outside the 32-bit integer range", name)
        return value
    raise fail(
        f"extension {name!r} must be a string, an integer or a boolean, not {_kind(value)}", name
    )


def _kind(value: Any) -> str:
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "null" if value is None else type(value).__name__

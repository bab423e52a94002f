"""Rate limits of run starts: how many runs may start per second, per workflow or per key.

A limit lets ``rate`` runs start per second, ``burst`` of them at once. With a ``key`` (a jq
expression: over the run input for a workflow's limit, over the event for a trigger's) the
limit holds for each key value on its own: ``".service"`` allows ``rate`` runs a second per
service. Starts past the limit either **queue** (the default: the run is created and its job
becomes ready at its turn, so a storm drains at the rate) or are **dropped** (``overflow:
drop``: a trigger stores the event and starts nothing; ``App.start`` and the API refuse with
:class:`~opsloom.errors.RateLimitExceededError`, HTTP 429).

The state of a limit is a schedule of start times kept in the store (the generic cell rate
algorithm, a token bucket by another name), one row per limit and key, updated in the
transaction that creates the run: every process on the store shares it.

Written as ``"10/minute"`` (``N/unit`` with a unit of ``second``, ``minute``, ``hour``, ``day``
or a number of seconds: ``"3/30"``), or as a mapping ``{"limit": 10, "period": "1m", "burst":
5, "key": ".service", "overflow": "queue"}`` (the period in seconds, a unit or a span such as
``30s``, ``5m``, ``1h``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from opsloom.errors import InputError
from opsloom.model.matching import jq_program

Overflow = Literal["queue", "drop"]
OVERFLOWS: tuple[Overflow, ...] = ("queue", "drop")
_UNITS = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
}
#: What a limit is keyed by when it has no ``key`` (or the key gives no value).
NO_KEY = ""


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``rate`` starts per second, ``burst`` at once, per value of ``key`` if given.

    Raises:
        InputError: a rate that is not positive, a burst below 1, an unknown overflow.
    """

    rate: float
    burst: int = 1
    key: str | None = None
    overflow: Overflow = "queue"

    def __post_init__(self) -> None:
        if isinstance(self.rate, bool) or not (
            isinstance(self.rate, int | float) and 0 < self.rate < float("inf")
        ):
            raise InputError(
                f"a rate limit is a positive number of runs per second, not {self.rate}"
            )
        if isinstance(self.burst, bool) or not isinstance(self.burst, int) or self.burst < 1:
            raise InputError(f"a rate limit's burst is at least 1, not {self.burst!r}")
        if self.overflow not in OVERFLOWS:
            raise InputError(f"a rate limit's overflow is queue or drop, not {self.overflow!r}")
        if self.key is not None:
            try:
                jq_program(self.key)
            except ValueError as exc:
                raise InputError(
                    f"a rate limit's key {self.key!r} is not a jq expression: {exc}"
                ) from None

    @property
    def interval(self) -> float:
        """Seconds between two starts at the rate."""
        return 1.0 / self.rate

    @classmethod
    def parse(cls, value: Any, where: str = "rate_limit") -> RateLimit:
        """A limit from ``"N/unit"``, a mapping (see the module docstring) or a limit.

        Raises:
            InputError: names ``where`` and what is wrong.
        """
        try:
            if isinstance(value, RateLimit):
                return value
            if isinstance(value, str):
                return cls(rate=_per_second(value))
            if isinstance(value, Mapping):
                return _from_mapping(value)
        except InputError as exc:
            raise InputError(f"{where}: {exc}") from None
        raise InputError(
            f"{where}: a rate limit is 'N/unit' (\"10/minute\") or a mapping with limit and "
            f"period, not {type(value).__name__}"
        )

    def key_of(self, value: Any) -> str:
        """The key a start with ``value`` (run input or event) counts under: the text of the
        key expression's first value, or :data:`NO_KEY` (one shared bucket) when there is no
        key, or the expression gives nothing or fails."""
        if self.key is None:
            return NO_KEY
        try:
            outputs = jq_program(self.key).input_value(value).all()
        except ValueError:
            return NO_KEY
        if not outputs or outputs[0] is None:
            return NO_KEY
        found = outputs[0]
        return found if isinstance(found, str) else json.dumps(found, sort_keys=True)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape shown by the CLI and the API."""
        return {
            "per_second": self.rate,
            "burst": self.burst,
            "key": self.key,
            "overflow": self.overflow,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> RateLimit:
        """A limit from its :meth:`to_dict` shape (as stored)."""
        return cls(
            rate=float(raw["per_second"]),
            burst=int(raw.get("burst", 1)),
            key=raw.get("key"),
            overflow=raw.get("overflow", "queue"),
        )

    def describe(self) -> str:
        """A short text: ``0.1667/s burst 5 per .service, queue``."""
        text = f"{self.rate:.4g}/s"
        if self.burst > 1:
            text += f" burst {self.burst}"
        if self.key is not None:
            text += f" per {self.key}"
        return f"{text}, {self.overflow}"


def _per_second(text: str) -> float:
    count, sep, unit = text.strip().partition("/")
    if not sep:
        raise InputError(f"{text!r} is not 'N/unit' (\"10/minute\")")
    try:
        number = float(count)
    except ValueError:
        raise InputError(f"{text!r}: {count!r} is not a number of runs") from None
    unit = unit.strip().lower()
    seconds = _UNITS.get(unit.removesuffix("s") if unit not in _UNITS else unit)
    if seconds is None:
        try:
            seconds = float(unit)
        except ValueError:
            raise InputError(
                f"{text!r}: the unit is second, minute, hour, day or seconds, not {unit!r}"
            ) from None
    if not seconds > 0:
        raise InputError(f"{text!r}: the period must be positive")
    return number / seconds


def _from_mapping(raw: Mapping[str, Any]) -> RateLimit:
    unknown = sorted(set(raw) - {"limit", "period", "burst", "key", "overflow"})
    if unknown:
        raise InputError(f"unknown member {unknown[0]!r} (limit, period, burst, key, overflow)")
    if "limit" not in raw:
        raise InputError("limit (how many runs per period) is missing")
    limit = raw["limit"]
    if isinstance(limit, bool) or not isinstance(limit, int | float):
        raise InputError(f"limit must be a number, not {limit!r}")
    period = _seconds(raw.get("period", 1))
    return RateLimit(
        rate=limit / period,
        burst=raw.get("burst", 1),
        key=raw.get("key"),
        overflow=raw.get("overflow", "queue"),
    )


_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")


def _seconds(value: Any) -> float:
    """Seconds of a period: a number, a unit name (``minute``) or a span (``30s``, ``5m``)."""
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        match = _SPAN.match(text)
        if text in _UNITS:
            seconds = _UNITS[text]
        elif match is not None:
            seconds = float(match[1]) * _UNITS[match[2] or "s"]
    if seconds is None:
        raise InputError(f"period is seconds, a unit or a span like 30s, 5m, 1h; not {value!r}")
    if not seconds > 0:
        raise InputError(f"period must be positive, not {value!r}")
    return seconds

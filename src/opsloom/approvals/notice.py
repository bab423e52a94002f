"""Who hears of an approval, and where: the notices file and the audience of a stage.

The operator writes the notices file (``OPSLOOM_APPROVAL_NOTICES_FILE``, YAML or JSON)::

    public_url: https://opsloom.example.com   # where links in messages point
    link_ttl: 86400                           # one-time e-mail links last this long (s)
    defaults:                 # how a person is reached without an entry under users
      - slack: ops-slack      # a direct message, to the Slack id of their account
      - email: ops-mail       # the signed one-time links, to the address of their account
    users:
      carol:
        - {email: ops-mail, to: carol@pager.example.com}
    groups:                   # a group with channels is told there, not member by member
      sre-leads:
        - {slack: ops-slack, channel: C024BE91L}
        - {teams: sre-teams}

Each channel names one connection (``slack``, ``email`` or ``teams``). A person's Slack
channel defaults to the ``slack_id`` of their opsloom account and their address to its
``email``; someone with neither is skipped. A group without channels of its own is told
through its members. The requester is never told to decide their own request (they hear of
the questions asked them instead).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from opsloom.errors import ConfigurationError
from opsloom.settings import read_settings_file

if TYPE_CHECKING:
    from opsloom.identity.access import Identity
    from opsloom.model.run import NewRun


class NoticeRuns(Protocol):
    """What opening a request needs of the app's notices: the request's notices run."""

    def new_run(self, request_id: str, now: float) -> NewRun: ...


_active: contextvars.ContextVar[NoticeRuns | None] = contextvars.ContextVar(
    "opsloom_notices", default=None
)


def active_notices() -> NoticeRuns | None:
    """The notices of the app whose worker runs this code (None: notices are off)."""
    return _active.get()


def activate_notices(notices: NoticeRuns | None) -> contextvars.Token[NoticeRuns | None]:
    """Make ``notices`` those of code run from this context on (the app's worker)."""
    return _active.set(notices)


def deactivate_notices(token: contextvars.Token[NoticeRuns | None]) -> None:
    """Undo :func:`activate_notices` (a token of another context is ignored)."""
    with contextlib.suppress(ValueError):
        _active.reset(token)


class Channel(BaseModel):
    """One way to reach someone: a Slack, e-mail or Teams connection and an address."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    slack: str | None = Field(default=None, description="A Slack connection.")
    channel: str | None = Field(
        default=None, description="Slack channel or user id (default: the user's Slack id)."
    )
    email: str | None = Field(default=None, description="An e-mail (SMTP) connection.")
    to: str | None = Field(default=None, description="Address (default: the user's e-mail).")
    teams: str | None = Field(default=None, description="A Teams Workflows connection.")

    @model_validator(mode="after")
    def _one_kind(self) -> Channel:
        kinds = [k for k in ("slack", "email", "teams") if getattr(self, k)]
        if len(kinds) != 1:
            raise ValueError("a channel names exactly one of slack, email or teams")
        if self.channel and not self.slack:
            raise ValueError("'channel' belongs to a slack channel")
        if self.to and not self.email:
            raise ValueError("'to' belongs to an email channel")
        return self

    @property
    def kind(self) -> str:
        return "slack" if self.slack else "email" if self.email else "teams"

    @property
    def connection(self) -> str:
        return self.slack or self.email or self.teams or ""


class NoticeConfig(BaseModel):
    """The notices file (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    public_url: str = Field(min_length=1, pattern=r"^https?://")
    link_ttl: float = Field(default=24 * 3600.0, gt=0)
    defaults: list[Channel] = Field(default_factory=list)
    users: dict[str, list[Channel]] = Field(default_factory=dict)
    groups: dict[str, list[Channel]] = Field(default_factory=dict)

    @field_validator("groups")
    @classmethod
    def _shared_places(cls, groups: dict[str, list[Channel]]) -> dict[str, list[Channel]]:
        for group, channels in groups.items():
            for channel in channels:
                if channel.kind == "email":
                    raise ValueError(
                        f"group {group!r}: e-mail carries one-time links of one person; "
                        "reach the members through users or defaults instead"
                    )
                if channel.kind == "slack" and not channel.channel:
                    raise ValueError(f"group {group!r}: a slack channel needs 'channel'")
        return groups

    @property
    def base_url(self) -> str:
        return self.public_url.rstrip("/")

    def connections(self) -> set[str]:
        """Every connection the file names."""
        every = [*self.defaults, *(c for cs in self.users.values() for c in cs)]
        every += [c for cs in self.groups.values() for c in cs]
        return {c.connection for c in every}


def parse_notices(value: Mapping[str, Any], where: str) -> NoticeConfig:
    """The config in ``value``; ``ConfigurationError`` naming ``where`` and the bad field."""
    try:
        return NoticeConfig.model_validate(dict(value))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise ConfigurationError(f"invalid approval notices in {where}: {problems}") from None


def load_notices(path: Path) -> NoticeConfig:
    """Read the notices file (YAML, or JSON by its suffix)."""
    return parse_notices(read_settings_file(path, "approval notices"), str(path))


@dataclass(frozen=True, slots=True)
class Destination:
    """One place a notice goes: a connection, an address and, for e-mail, whose links."""

    kind: str  # slack | email | teams
    connection: str
    address: str
    user: str | None

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.connection}:{self.address}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "connection": self.connection,
            "address": self.address,
            "user": self.user,
            "key": self.key,
        }


async def _person(config: NoticeConfig, identity: Identity, user_id: str) -> list[Destination]:
    user = await identity.get_user(user_id)
    if user is None or user.disabled:
        return []
    found = []
    for channel in config.users.get(user_id, config.defaults):
        if channel.kind == "slack":
            address = channel.channel or user.slack_id
        elif channel.kind == "email":
            address = channel.to or user.email
        else:
            address = "webhook"
        if address:
            found.append(Destination(channel.kind, channel.connection, address, user_id))
    return found


async def audience(
    config: NoticeConfig,
    identity: Identity,
    approvers: Mapping[str, Any],
    delegates: Mapping[str, str],
    excluded: set[str],
) -> list[Destination]:
    """Where the approvers of one rung (and the delegates acting for them) are told.

    ``excluded`` (the requester, a starter who may not decide) is never told to decide.
    """
    found: dict[str, Destination] = {}
    people: list[str] = list(approvers.get("users") or [])
    for group in approvers.get("groups") or []:
        channels = config.groups.get(group)
        if channels:
            for c in channels:
                address = c.channel if c.kind == "slack" else "webhook"
                dest = Destination(c.kind, c.connection, address or "", None)
                found.setdefault(dest.key, dest)
        else:
            people.extend(await identity.members(group))
    # A delegate decides instead of the person who delegated.
    people = [delegate for p in people for delegate in _acting(p, delegates)]
    for person in dict.fromkeys(people):
        if person in excluded:
            continue
        for dest in await _person(config, identity, person):
            found.setdefault(dest.key, dest)
    return list(found.values())


def _acting(person: str, delegates: Mapping[str, str]) -> list[str]:
    acting = [d for d, origin in delegates.items() if origin == person]
    return acting or [person]


async def reach(config: NoticeConfig, identity: Identity, user_id: str) -> list[Destination]:
    """Where one person (a requester asked a question) is told."""
    return await _person(config, identity, user_id)

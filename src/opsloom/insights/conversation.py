"""The conversation model every adapter produces and every analyzer reads.

Pure data, no I/O. A :class:`Conversation` is an ordered tuple of :class:`Turn`; metadata
that adapters find (timestamps, model, token counts, cost, tool calls) is kept on the turn it
belongs to, so flow analysis can compute latency, tokens and cost per conversation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]
ROLES: frozenset[str] = frozenset({"system", "user", "assistant", "tool"})

#: Roles that other formats use for the same speakers.
_ROLE_ALIASES = {
    "human": "user",
    "developer": "system",
    "ai": "assistant",
    "model": "assistant",
    "bot": "assistant",
    "function": "tool",
    "ipython": "tool",
}


class ConversationFormatError(ValueError):
    """A payload cannot be read as a conversation; the message says what and where."""

    code = "conversation_invalid"

    def __init__(self, message: str, *, where: str = "") -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where


def normalise_role(role: object, *, where: str = "") -> Role:
    """Map a speaker name from any supported format onto a :data:`Role`."""
    if not isinstance(role, str):
        raise ConversationFormatError(f"role must be a string, not {role!r}", where=where)
    lowered = role.strip().lower()
    lowered = _ROLE_ALIASES.get(lowered, lowered)
    if lowered not in ROLES:
        raise ConversationFormatError(f"unknown role {role!r}", where=where)
    return lowered  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool (function) call an assistant turn asked for."""

    name: str
    arguments: str = ""
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Turn:
    """One message of a conversation.

    Attributes:
        role: who spoke.
        text: the message text (text parts joined); empty for a bare tool-call turn.
        time: when the message was written or the generation started (UTC), if known.
        end_time: when a generated message was complete, if known (latency = end - time).
        model: the model that generated an assistant turn.
        input_tokens: prompt tokens of the generation that produced this turn.
        output_tokens: completion tokens of that generation.
        cost: cost of that generation in USD.
        tool_calls: tools the assistant asked to call.
        tool_call_id: for a tool turn, the call it answers.
        name: the tool's or participant's name.
        finish_reason: why generation stopped (``stop``, ``length``, ``content_filter`` …).
        error: for a tool turn or a failed generation, the error it reported.
    """

    role: Role
    text: str
    time: datetime | None = None
    end_time: datetime | None = None
    model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost: float | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None
    finish_reason: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Conversation:
    """A whole conversation and what is known about where it came from.

    Attributes:
        id: stable identifier (from the source: conversation, session or trace id).
        turns: the messages in order.
        app: the application or service that held the conversation.
        model: the main model (the most frequent one of the assistant turns when not given).
        prompt_version: version of the system prompt or prompt template.
        tags: free labels from the source.
        user: the end user's id, when the source names one.
        ended: the source says the conversation is over (else inactivity decides).
        metadata: other source metadata kept as-is (JSON values).
    """

    id: str
    turns: tuple[Turn, ...]
    app: str | None = None
    model: str | None = None
    prompt_version: str | None = None
    tags: tuple[str, ...] = ()
    user: str | None = None
    ended: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def started_at(self) -> datetime | None:
        """Time of the first turn that has one."""
        return next((t.time for t in self.turns if t.time is not None), None)

    @property
    def last_activity(self) -> datetime | None:
        """Latest time any turn carries (its end time when known)."""
        latest: datetime | None = None
        for turn in self.turns:
            for moment in (turn.time, turn.end_time):
                if moment is not None and (latest is None or moment > latest):
                    latest = moment
        return latest

    def main_model(self) -> str | None:
        """The given model, else the one most assistant turns name."""
        if self.model:
            return self.model
        counts: dict[str, int] = {}
        for turn in self.turns:
            if turn.model:
                counts[turn.model] = counts.get(turn.model, 0) + 1
        return max(counts, key=counts.__getitem__) if counts else None

"""Building one conversation from model calls that each repeat the history."""

from __future__ import annotations

from opsloom.insights.conversation import Turn


def append_new(turns: list[Turn], inputs: list[Turn], tool_spans: bool) -> None:
    """Append the input messages the conversation does not hold yet.

    Inputs usually repeat the history: skip the common prefix (tool messages aside, which
    tool spans may have recorded already). When the history was cut (a sliding window),
    nothing lines up; then only the messages after the last assistant message are new.
    """
    seen = [(t.role, t.text) for t in turns if t.role != "tool"]
    fresh = [t for t in inputs if t.role != "tool" or not tool_spans]
    matched = 0  # non-tool messages of `fresh` matching the history, in order
    start = 0  # index in `fresh` after the last matched message
    for i, turn in enumerate(fresh):
        if turn.role == "tool":
            continue
        if matched < len(seen) and seen[matched] == (turn.role, turn.text):
            matched += 1
            start = i + 1
        else:
            break
    if turns and matched == 0:
        start = 1 + max((i for i, t in enumerate(fresh) if t.role == "assistant"), default=-1)
    turns.extend(fresh[start:])

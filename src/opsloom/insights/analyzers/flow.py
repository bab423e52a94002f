"""How the conversation went mechanically: answers, cut-offs, tool errors, time and money.

Unanswered user turns (no assistant reply before the next user turn or the end), truncated
replies (a ``length``/``max_tokens`` stop), failed tools and
generations, latency between a user turn and its answer, tokens and cost.
"""

from __future__ import annotations

from typing import ClassVar

from opsloom.insights.analyzers.base import Score, Work

#: A reply slower than this (seconds) counts as slow.
SLOW_SECONDS = 20.0
_TRUNCATED_STOPS = frozenset({"length", "max_tokens", "max_output_tokens", "MAX_TOKENS"})


class FlowAnalyzer:
    """Conversation statistics and the ``flow`` score."""

    name: ClassVar[str] = "flow"
    version: ClassVar[str] = "1"
    needs: ClassVar[frozenset[str]] = frozenset()
    provides: ClassVar[frozenset[str]] = frozenset({"latency"})
    requires: ClassVar[tuple[str, ...]] = ()

    def analyze(self, work: Work) -> None:
        """Fill ``stats`` (turns, tokens, cost, latency) and flag flow problems."""
        turns = work.conversation.turns
        unanswered: list[int] = []
        truncated: list[int] = []
        tool_errors: list[int] = []
        slow: list[int] = []
        latencies: list[float] = []
        pending_user: int | None = None
        input_tokens = output_tokens = 0
        cost = 0.0
        costed = False
        for i, turn in enumerate(turns):
            if turn.input_tokens:
                input_tokens += turn.input_tokens
            if turn.output_tokens:
                output_tokens += turn.output_tokens
            if turn.cost is not None:
                cost += turn.cost
                costed = True
            if turn.role == "user":
                if pending_user is not None:
                    unanswered.append(pending_user)
                pending_user = i
            elif turn.role == "assistant":
                if turn.finish_reason in _TRUNCATED_STOPS:
                    truncated.append(i)
                if turn.error:
                    tool_errors.append(i)
                if pending_user is not None and (turn.text.strip() or turn.tool_calls):
                    latency = self._latency(work, pending_user, i)
                    if latency is not None:
                        latencies.append(latency)
                        work.signals[i]["latency"] = round(latency, 3)
                        if latency > SLOW_SECONDS:
                            slow.append(i)
                    pending_user = None
            elif turn.role == "tool" and turn.error:
                tool_errors.append(i)
        # A last user turn is unanswered only once the conversation is over: else the
        # answer may still be on its way.
        last = len(turns) - 1
        if pending_user is not None and (pending_user < last or work.closed):
            unanswered.append(pending_user)
        roles = [t.role for t in turns]
        work.stats.update(
            {
                "turns": len(turns),
                "user_turns": roles.count("user"),
                "assistant_turns": roles.count("assistant"),
                "tool_turns": roles.count("tool"),
                "tool_calls": sum(len(t.tool_calls) for t in turns),
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                "cost": round(cost, 6) if costed else None,
                "latency_p50": _quantile(latencies, 0.5),
                "latency_max": max(latencies) if latencies else None,
                "duration": _duration(work),
                "unanswered": len(unanswered),
                "truncated": len(truncated),
                "tool_errors": len(tool_errors),
            }
        )
        if unanswered:
            work.flag("unanswered", "high", unanswered, "a user turn got no answer")
        if truncated:
            work.flag("truncated", "medium", truncated, "a reply was cut at the token limit")
        if tool_errors:
            work.flag("tool_error", "medium", tool_errors, "a tool or generation failed")
        if slow:
            work.flag("slow_reply", "low", slow, f"replies slower than {SLOW_SECONDS:.0f}s")
        user_turns = max(1, roles.count("user"))
        problems = len(unanswered) + len(truncated) + 0.5 * len(tool_errors) + 0.25 * len(slow)
        work.scores["flow"] = Score(
            max(0.0, 1.0 - problems / user_turns), "rules", 0.8 if len(turns) > 1 else 0.3
        )

    @staticmethod
    def _latency(work: Work, user: int, reply: int) -> float | None:
        turns = work.conversation.turns
        asked = turns[user].time
        answered = turns[reply].end_time or turns[reply].time
        if asked is None or answered is None:
            return None
        seconds = (answered - asked).total_seconds()
        return seconds if seconds >= 0 else None


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def _duration(work: Work) -> float | None:
    start, end = work.conversation.started_at, work.conversation.last_activity
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 3)

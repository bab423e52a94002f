"""Frustration (dissatisfaction) per user turn, from everything the user's words show.

Evidence combined by noisy-OR: negative sentiment, complaint phrases, shouting (capitals,
"!!", "??"), corrections, repeated questions, confusion and asking for a human. Each user
turn gets ``frustration`` in [0, 1]; the conversation gets a ``satisfaction`` score.
"""

from __future__ import annotations

import re
from typing import ClassVar

from opsloom.insights.analyzers.base import Score, Work, combine
from opsloom.insights.analyzers.lexicon import FRUSTRATION

_SHOUT = re.compile(r"\b[A-Z]{3,}\b")
_BANG = re.compile(r"[!?]{2,}")
#: From this frustration a user turn counts as dissatisfied.
FRUSTRATED = 0.5


class FrustrationAnalyzer:
    """``frustration`` per user turn and the conversation's ``satisfaction`` score."""

    name: ClassVar[str] = "frustration"
    version: ClassVar[str] = "1"
    needs: ClassVar[frozenset[str]] = frozenset(
        {"sentiment", "repeat", "correction", "clarification", "escalation"}
    )
    provides: ClassVar[frozenset[str]] = frozenset({"frustration"})
    requires: ClassVar[tuple[str, ...]] = ()

    def turn(self, text: str, lower: str, signals: dict[str, float]) -> float:
        """Frustration of one user turn from its text and the other analyzers' signals."""
        negative = max(0.0, -signals.get("sentiment", 0.0))
        shouting = 0.0
        shouted = _SHOUT.findall(text)
        if shouted and len(" ".join(shouted)) > 0.3 * len(text):
            shouting = 0.35
        if _BANG.search(text):
            shouting = max(shouting, 0.3)
        return combine(
            0.75 * negative,
            FRUSTRATION.score(lower),
            shouting,
            0.8 * signals.get("correction", 0.0),
            0.7 * signals.get("repeat", 0.0),
            0.8 * signals.get("clarification", 0.0),
            0.6 * signals.get("escalation", 0.0),
        )

    def analyze(self, work: Work) -> None:
        """Set ``frustration`` on user turns; score satisfaction; flag frustrated users."""
        values: list[float] = []
        frustrated: list[int] = []
        for i in work.indexes("user"):
            signals = work.signals[i]
            value = self.turn(work.conversation.turns[i].text, work.lower[i], signals)
            signals["frustration"] = round(value, 4)
            values.append(value)
            if value >= FRUSTRATED:
                frustrated.append(i)
        if not values:
            return
        # The worst moment and the ending weigh most: a user who leaves angry is unhappy
        # whatever came before; one who recovers is less so.
        worst, last = max(values), values[-1]
        mean = sum(values) / len(values)
        dissatisfaction = 0.4 * worst + 0.35 * last + 0.25 * mean
        work.scores["satisfaction"] = Score(
            1.0 - dissatisfaction,
            "lexicon+vader",
            min(0.9, 0.3 + 0.15 * len(values)),
        )
        work.stats["frustrated_turns"] = len(frustrated)
        if frustrated:
            work.flag(
                "user_frustrated",
                "high" if len(frustrated) > 1 or values[-1] >= FRUSTRATED else "medium",
                frustrated,
                f"{len(frustrated)} of {len(values)} user turns show frustration",
            )

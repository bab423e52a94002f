"""Sentiment of every turn with VADER (lexicon and rules; no model download).

VADER's compound score is already in [-1, 1]; it is kept as the turn's ``sentiment``. The
conversation gets the mean sentiment of user turns and the change from the first to the last
user turn (a user who ends happier than they started is a good sign).
"""

from __future__ import annotations

from typing import ClassVar

from opsloom.insights.analyzers.base import Work

#: Turns longer than this are scored on their start and end: sentiment of a long answer is
#: carried by how it opens and closes, and VADER's cost grows with length.
_MAX_CHARS = 2000


class SentimentAnalyzer:
    """Per-turn sentiment (VADER compound, -1…1)."""

    name: ClassVar[str] = "sentiment"
    version: ClassVar[str] = "1"
    needs: ClassVar[frozenset[str]] = frozenset()
    provides: ClassVar[frozenset[str]] = frozenset({"sentiment"})
    requires: ClassVar[tuple[str, ...]] = ("vaderSentiment",)

    def __init__(self) -> None:
        from opsloom.insights.analyzers.vader import Vader

        self._vader = Vader()

    def polarity(self, text: str) -> float:
        """VADER compound score of ``text`` in [-1, 1]."""
        if not text.strip():
            return 0.0
        if len(text) > _MAX_CHARS:
            half = _MAX_CHARS // 2
            text = f"{text[:half]} {text[-half:]}"
        return self._vader.compound(text)

    def analyze(self, work: Work) -> None:
        """Set ``sentiment`` on user and assistant turns."""
        user: list[float] = []
        for turn, signals in zip(work.conversation.turns, work.signals, strict=True):
            if turn.role in ("user", "assistant"):
                value = self.polarity(turn.text)
                signals["sentiment"] = round(value, 4)
                if turn.role == "user":
                    user.append(value)
        if user:
            work.stats["user_sentiment_mean"] = round(sum(user) / len(user), 4)
            work.stats["user_sentiment_shift"] = round(user[-1] - user[0], 4)

"""Toxicity per user and assistant turn: ``alt-profanity-check`` plus abuse phrasing.

The package ships a small linear model over words (no download at run time); it is an extra
because it brings scikit-learn. It sees the text with technical and quoted uses masked ("kill
the process", "the word 'idiot'"), and its probability is combined with the phrasing it
misses: threats, contempt for groups and insults aimed at the reader (:mod:`.abuse`).
Without the extra this analyzer is skipped and the result says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from opsloom.insights.analyzers.abuse import abuse_score, prepare
from opsloom.insights.analyzers.base import Work, combine

#: From this score a turn counts as toxic.
TOXIC = 0.7


class ToxicityAnalyzer:
    """``toxicity`` (0 to 1) per user and assistant turn."""

    name: ClassVar[str] = "toxicity"
    version: ClassVar[str] = "2"
    needs: ClassVar[frozenset[str]] = frozenset()
    provides: ClassVar[frozenset[str]] = frozenset({"toxicity"})
    requires: ClassVar[tuple[str, ...]] = ("profanity_check",)

    def __init__(self) -> None:
        from profanity_check import predict_prob

        self._predict: Any = predict_prob

    def scores(self, texts: Sequence[str]) -> list[float]:
        """Toxicity of each text, in [0, 1]."""
        prepared = [prepare(text) for text in texts]
        probabilities = self._predict(prepared)
        return [
            combine(float(p), abuse_score(text))
            for p, text in zip(probabilities, prepared, strict=True)
        ]

    def analyze(self, work: Work) -> None:
        """Set ``toxicity``; flag toxic assistant turns (high) and user turns (medium)."""
        indexes = [
            i for i, t in enumerate(work.conversation.turns) if t.role in ("user", "assistant")
        ]
        if not indexes:
            return
        values = self.scores([work.conversation.turns[i].text for i in indexes])
        toxic_assistant: list[int] = []
        toxic_user: list[int] = []
        for i, value in zip(indexes, values, strict=True):
            work.signals[i]["toxicity"] = round(value, 4)
            if value >= TOXIC:
                role = work.conversation.turns[i].role
                (toxic_assistant if role == "assistant" else toxic_user).append(i)
        if toxic_assistant:
            work.flag("assistant_toxic", "high", toxic_assistant, "the assistant was abusive")
        if toxic_user:
            work.flag("user_toxic", "medium", toxic_user, "the user was abusive")

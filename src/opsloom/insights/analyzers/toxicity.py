"""Toxicity per user and assistant turn with ``alt-profanity-check`` (optional extra).

The package ships a small linear model (no download at run time); it is an extra because it
brings scikit-learn. Without it this analyzer is skipped and the result says so.
"""

from __future__ import annotations

from typing import Any, ClassVar

from opsloom.insights.analyzers.base import Work

#: From this probability a turn counts as toxic.
TOXIC = 0.7


class ToxicityAnalyzer:
    """``toxicity`` (0 to 1) per user and assistant turn."""

    name: ClassVar[str] = "toxicity"
    version: ClassVar[str] = "1"
    needs: ClassVar[frozenset[str]] = frozenset()
    provides: ClassVar[frozenset[str]] = frozenset({"toxicity"})
    requires: ClassVar[tuple[str, ...]] = ("profanity_check",)

    def __init__(self) -> None:
        from profanity_check import predict_prob

        self._predict: Any = predict_prob

    def analyze(self, work: Work) -> None:
        """Set ``toxicity``; flag toxic assistant turns (high) and user turns (medium)."""
        indexes = [
            i for i, t in enumerate(work.conversation.turns) if t.role in ("user", "assistant")
        ]
        if not indexes:
            return
        probabilities = self._predict([work.conversation.turns[i].text for i in indexes])
        toxic_assistant: list[int] = []
        toxic_user: list[int] = []
        for i, p in zip(indexes, probabilities, strict=True):
            work.signals[i]["toxicity"] = round(float(p), 4)
            if p >= TOXIC:
                role = work.conversation.turns[i].role
                (toxic_assistant if role == "assistant" else toxic_user).append(i)
        if toxic_assistant:
            work.flag("assistant_toxic", "high", toxic_assistant, "the assistant was abusive")
        if toxic_user:
            work.flag("user_toxic", "medium", toxic_user, "the user was abusive")

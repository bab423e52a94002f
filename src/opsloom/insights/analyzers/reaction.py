"""How users react: repeated questions, corrections, clarification, asking for a human.

Each is a per-user-turn signal in [0, 1]; :mod:`frustration` combines them with sentiment.
Repetition compares a user turn with the user's previous turns by their content words, so a
rephrased question counts too, and also listens for "as I said", "again".
"""

from __future__ import annotations

from typing import ClassVar

from opsloom.insights.analyzers.base import Work
from opsloom.insights.analyzers.lexicon import CLARIFICATION, CORRECTION, ESCALATION, REPEAT

#: Words that carry no topic: ignored when comparing two questions.
_STOP = frozenset(
    """
a an the and or but if of to in on at for with from by about as is are was were be been
am do does did have has had i you he she it we they me my your our their this that these
those what which who whom how why when where can could would should will shall may might
must please just so then than there here not no yes ok okay thanks thank hi hello hey
    """.split()  # noqa: SIM905 (a word list reads better as text)
)
#: Content-word overlap (Jaccard) from which a user turn repeats an earlier one.
REPEAT_SIMILARITY = 0.5
#: How many earlier user turns a question is compared with.
_LOOKBACK = 4


def content_words(words: list[str]) -> frozenset[str]:
    """The words of a turn that say what it is about."""
    return frozenset(w for w in words if w not in _STOP and len(w) > 1)


class RepetitionAnalyzer:
    """``repeat`` per user turn: it asks again what an earlier user turn asked."""

    name: ClassVar[str] = "repetition"
    version: ClassVar[str] = "1"
    needs: ClassVar[frozenset[str]] = frozenset()
    provides: ClassVar[frozenset[str]] = frozenset({"repeat"})
    requires: ClassVar[tuple[str, ...]] = ()

    def analyze(self, work: Work) -> None:
        """Set ``repeat`` on user turns; flag repeated questions."""
        earlier: list[frozenset[str]] = []
        repeated: list[int] = []
        for i in work.indexes("user"):
            words = content_words(work.words[i])
            similarity = 0.0
            # Two or three content words repeat by chance ("no, I don't like that").
            if len(words) >= 3:
                for other in earlier[-_LOOKBACK:]:
                    union = len(words | other)
                    if union:
                        similarity = max(similarity, len(words & other) / union)
            cue = REPEAT.score(work.lower[i])
            # Overlap below the threshold is ordinary topic continuity, not a repeat.
            overlap = similarity if similarity >= REPEAT_SIMILARITY else similarity * 0.4
            value = max(cue, overlap)
            work.signals[i]["repeat"] = round(value, 4)
            if value >= 0.5:
                repeated.append(i)
            earlier.append(words)
        if repeated:
            work.flag(
                "repeated_question",
                "medium" if len(repeated) > 1 else "low",
                repeated,
                f"the user asked again or rephrased {len(repeated)} time(s)",
            )


class CorrectionAnalyzer:
    """``correction`` and ``clarification`` per user turn, replying to the assistant."""

    name: ClassVar[str] = "correction"
    version: ClassVar[str] = "1"
    needs: ClassVar[frozenset[str]] = frozenset()
    provides: ClassVar[frozenset[str]] = frozenset({"correction", "clarification"})
    requires: ClassVar[tuple[str, ...]] = ()

    def analyze(self, work: Work) -> None:
        """Set ``correction`` and ``clarification``; flag corrections."""
        turns = work.conversation.turns
        corrected: list[int] = []
        confused: list[int] = []
        after_assistant = False
        for i, turn in enumerate(turns):
            if turn.role == "assistant":
                after_assistant = True
                continue
            if turn.role != "user":
                continue
            text = work.lower[i]
            # Before any assistant turn there is nothing to correct.
            correction = CORRECTION.score(text) if after_assistant else 0.0
            clarification = CLARIFICATION.score(text) if after_assistant else 0.0
            work.signals[i]["correction"] = round(correction, 4)
            work.signals[i]["clarification"] = round(clarification, 4)
            if correction >= 0.5:
                corrected.append(i)
            if clarification >= 0.5:
                confused.append(i)
        if corrected:
            work.flag(
                "user_correction",
                "medium",
                corrected,
                f"the user said the assistant was wrong {len(corrected)} time(s)",
            )
        if confused:
            work.flag(
                "clarification_needed",
                "low",
                confused,
                f"the user did not understand the assistant {len(confused)} time(s)",
            )


class EscalationAnalyzer:
    """``escalation`` per user turn: asking for a human, a manager, a complaint."""

    name: ClassVar[str] = "escalation"
    version: ClassVar[str] = "1"
    needs: ClassVar[frozenset[str]] = frozenset()
    provides: ClassVar[frozenset[str]] = frozenset({"escalation"})
    requires: ClassVar[tuple[str, ...]] = ()

    def analyze(self, work: Work) -> None:
        """Set ``escalation``; flag requests for a human."""
        asked: list[int] = []
        for i in work.indexes("user"):
            value = ESCALATION.score(work.lower[i])
            work.signals[i]["escalation"] = round(value, 4)
            if value >= 0.5:
                asked.append(i)
        if asked:
            work.flag("human_requested", "high", asked, "the user asked for a human")

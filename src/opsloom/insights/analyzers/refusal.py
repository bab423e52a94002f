"""Assistant turns that refuse, and assistant turns that degenerate.

Refusal: first-person declining ("I can't help with that", "I'd rather not"), its reasons
(policy, safety, "as an AI") and redirects ("ask a lawyer"), weighed by where they stand and
by whether the reply then answers anyway (:mod:`.declining`), combined with the reply's
opening words by a learned linear model (:mod:`.refusal_model`); a ``content_filter`` stop is
a refusal by the provider. Degeneration: a reply that loops on
its own words, repeats an earlier reply, or is a canned fallback ("I didn't understand").
"""

from __future__ import annotations

from typing import ClassVar

from opsloom.insights.analyzers.base import Score, Work
from opsloom.insights.analyzers.lexicon import FALLBACK
from opsloom.insights.analyzers.refusal_model import refusal_model

#: Characters of a reply's opening where a fallback phrase counts.
_OPENING = 300
#: From this refusal score an assistant turn counts as a refusal.
REFUSED = 0.5


def refusal_score(lower: str, finish_reason: str | None = None) -> float:
    """Refusal of one assistant reply (lower-case text), in [0, 1]."""
    if finish_reason == "content_filter":
        return 1.0
    return refusal_model().score(lower)


class RefusalAnalyzer:
    """``refusal`` per assistant turn."""

    name: ClassVar[str] = "refusal"
    version: ClassVar[str] = "5"
    needs: ClassVar[frozenset[str]] = frozenset()
    provides: ClassVar[frozenset[str]] = frozenset({"refusal"})
    requires: ClassVar[tuple[str, ...]] = ()

    def analyze(self, work: Work) -> None:
        """Set ``refusal`` on assistant turns; flag refusals."""
        refused: list[int] = []
        assistant = work.indexes("assistant")
        for i in assistant:
            value = refusal_score(work.lower[i], work.conversation.turns[i].finish_reason)
            work.signals[i]["refusal"] = round(value, 4)
            if value >= REFUSED:
                refused.append(i)
        work.stats["refusals"] = len(refused)
        if refused:
            work.flag(
                "assistant_refusal",
                "medium" if len(refused) > 1 else "low",
                refused,
                f"the assistant declined {len(refused)} of {len(assistant)} time(s)",
            )


def loop_ratio(words: list[str], n: int = 4) -> float:
    """Share of a text's word n-grams that are repeats (0 for short texts)."""
    if len(words) < 4 * n:
        return 0.0
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return 1.0 - len(set(grams)) / len(grams)


class DegenerationAnalyzer:
    """``degeneration`` per assistant turn: loops, repeated replies, canned fallbacks."""

    name: ClassVar[str] = "degeneration"
    version: ClassVar[str] = "1"
    needs: ClassVar[frozenset[str]] = frozenset({"refusal"})
    provides: ClassVar[frozenset[str]] = frozenset({"degeneration"})
    requires: ClassVar[tuple[str, ...]] = ()

    def analyze(self, work: Work) -> None:
        """Set ``degeneration``; flag loops, repeats and fallbacks; score responsiveness."""
        seen: set[str] = set()
        loops: list[int] = []
        repeats: list[int] = []
        fallbacks: list[int] = []
        assistant = work.indexes("assistant")
        for i in assistant:
            text = work.lower[i].strip()
            loop = loop_ratio(work.words[i])
            repeat = 1.0 if text and text in seen else 0.0
            fallback = FALLBACK.score(text[:_OPENING])
            seen.add(text)
            value = max(min(1.0, loop * 1.5), repeat, fallback)
            work.signals[i]["degeneration"] = round(value, 4)
            if loop >= 0.35:
                loops.append(i)
            if repeat:
                repeats.append(i)
            if fallback >= 0.5:
                fallbacks.append(i)
        if loops:
            work.flag("assistant_loop", "high", loops, "the reply repeats its own phrases")
        if repeats:
            work.flag("assistant_repeat", "medium", repeats, "the same reply was given again")
        if fallbacks:
            work.flag("assistant_fallback", "medium", fallbacks, "a canned fallback reply")
        if assistant:
            poor = sum(
                1
                for i in assistant
                if work.signals[i].get("refusal", 0.0) >= REFUSED
                or work.signals[i]["degeneration"] >= 0.5
                or (not work.lower[i].strip() and not work.conversation.turns[i].tool_calls)
            )
            work.scores["responsiveness"] = Score(
                1.0 - poor / len(assistant),
                "lexicon",
                min(0.8, 0.3 + 0.1 * len(assistant)),
            )

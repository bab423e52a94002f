"""Readability of assistant replies: Flesch reading ease, mapped onto 0 to 1.

Syllables are estimated from vowel groups (no dictionary): good enough to tell a plain
answer from a wall of jargon, which is what the score is for.
"""

from __future__ import annotations

import re
from typing import ClassVar

from opsloom.insights.analyzers.base import Score, Work

_SENTENCE = re.compile(r"[.!?]+(?:\s|$)|\n+")
_VOWELS = re.compile(r"[aeiouy]+")
_SILENT_E = re.compile(r"[aeiouy][^aeiouy\W]+[^l\We]e\b|[aeiouy][^aeiouy\W]e\b")
#: Replies shorter than this many words say too little to grade.
_MIN_WORDS = 12


def syllables(text: str, words: int) -> int:
    """Estimated syllables of a lower-case text of ``words`` words.

    Vowel groups, less a silent final "e" (not "-le", "-ee"), at least one per word.
    """
    count = len(_VOWELS.findall(text)) - len(_SILENT_E.findall(text))
    return max(words, count)


def reading_ease(text: str, words: list[str]) -> float:
    """Flesch reading ease (higher is easier; 60 to 70 is plain English)."""
    sentences = max(1, len([s for s in _SENTENCE.split(text) if s.strip()]))
    total = syllables(text, len(words))
    return 206.835 - 1.015 * len(words) / sentences - 84.6 * total / len(words)


class ReadabilityAnalyzer:
    """``readability`` per assistant turn and the conversation's readability score."""

    name: ClassVar[str] = "readability"
    version: ClassVar[str] = "1"
    needs: ClassVar[frozenset[str]] = frozenset()
    provides: ClassVar[frozenset[str]] = frozenset({"readability"})
    requires: ClassVar[tuple[str, ...]] = ()

    def analyze(self, work: Work) -> None:
        """Set ``readability`` (Flesch) on assistant turns long enough to grade."""
        values: list[float] = []
        for i in work.indexes("assistant"):
            words = work.words[i]
            if len(words) < _MIN_WORDS:
                continue
            ease = reading_ease(work.lower[i], words)
            work.signals[i]["readability"] = round(ease, 1)
            values.append(ease)
        if values:
            mean = sum(values) / len(values)
            work.stats["reading_ease"] = round(mean, 1)
            # 30 (academic) maps to 0, 70 (plain English) and above to 1.
            work.scores["readability"] = Score(
                min(1.0, max(0.0, (mean - 30.0) / 40.0)), "flesch", 0.5
            )

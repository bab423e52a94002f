"""Relevance of each assistant reply to the user turn it answers (``embeddings`` extra).

Offline and light: each text becomes a vector of hashed character n-grams (3 to 5 letters
within words, English stop words dropped), so "deploy", "deployment" and "deployed" share
most of their features; relevance is the cosine of the reply's vector and the question's,
spread onto [0, 1]. No model is downloaded and nothing is fitted at run time. It is lexical:
a reply that answers in other words than the question scores lower than it should, which is
why its confidence is low; the LLM judge's relevance, when used, replaces the conversation
score.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, ClassVar

from opsloom.insights.analyzers.base import Score, Work

#: Cosine at and above which a reply counts as fully on topic (short texts rarely share more).
_FULL = 0.3
#: Relevance under which a reply to a question is flagged as off topic.
OFF_TOPIC = 0.15
#: A question needs this many content words for its reply to be judged.
_MIN_WORDS = 3
_WORD = re.compile(r"[a-z0-9][a-z0-9'_-]*")


class TextVectors:
    """Hashed character n-gram vectors of texts, L2-normalised (needs scikit-learn)."""

    def __init__(self) -> None:
        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, HashingVectorizer

        self._stop = frozenset(ENGLISH_STOP_WORDS) | {"i'm", "it's", "don't", "can't", "you're"}
        self._vectorizer: Any = HashingVectorizer(
            analyzer="char_wb",
            ngram_range=(3, 5),
            n_features=2**18,
            alternate_sign=False,
            norm="l2",
        )

    def content_words(self, text: str) -> list[str]:
        """The words of a text that carry its topic (lower case, stop words dropped)."""
        return [w for w in _WORD.findall(text.lower()) if w not in self._stop]

    def vectors(self, texts: Sequence[str]) -> Any:
        """A sparse matrix, one normalised row per text."""
        return self._vectorizer.transform([" ".join(self.content_words(t)) for t in texts])


def spread(cosine: float) -> float:
    """Cosine of two texts' vectors onto a 0 to 1 relevance."""
    return max(0.0, min(1.0, cosine / _FULL))


class RelevanceAnalyzer:
    """``relevance`` per assistant reply to a user turn; the conversation's mean."""

    name: ClassVar[str] = "relevance"
    version: ClassVar[str] = "1"
    needs: ClassVar[frozenset[str]] = frozenset()
    provides: ClassVar[frozenset[str]] = frozenset({"relevance"})
    requires: ClassVar[tuple[str, ...]] = ("sklearn",)

    def __init__(self) -> None:
        self._vectors = TextVectors()

    def analyze(self, work: Work) -> None:
        """Set ``relevance`` on replies; flag replies to questions that share nothing."""
        turns = work.conversation.turns
        pairs: list[tuple[int, int]] = []  # (user turn, the assistant reply to it)
        for i, turn in enumerate(turns):
            if turn.role != "assistant" or not turn.text.strip():
                continue
            asked = next((j for j in range(i - 1, -1, -1) if turns[j].role == "user"), None)
            if asked is not None and turns[asked].text.strip():
                pairs.append((asked, i))
        if not pairs:
            return
        texts = [turns[j].text for pair in pairs for j in pair]
        matrix = self._vectors.vectors(texts)
        values: list[float] = []
        off_topic: list[int] = []
        for n, (asked, reply) in enumerate(pairs):
            cosine = float(matrix[2 * n].multiply(matrix[2 * n + 1]).sum())
            value = spread(cosine)
            work.signals[reply]["relevance"] = round(value, 4)
            values.append(value)
            question = turns[asked].text
            if (
                value < OFF_TOPIC
                and "?" in question
                and len(self._vectors.content_words(question)) >= _MIN_WORDS
                and len(self._vectors.content_words(turns[reply].text)) >= _MIN_WORDS
            ):
                off_topic.append(reply)
        if off_topic:
            work.flag(
                "off_topic_reply",
                "low",
                off_topic,
                "the reply shares no topic words with the question",
            )
        work.scores.setdefault(
            "relevance",
            Score(
                sum(values) / len(values), "hashed-char-ngrams", min(0.5, 0.2 + 0.05 * len(values))
            ),
        )

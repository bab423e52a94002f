"""VADER's compound score with less repeated work per message.

``vaderSentiment``'s ``polarity_scores`` walks the text character by character to replace
emojis, lower-cases the whole message again for every sentiment word it meets (negation and
idiom checks), and computes three proportions nobody here reads. :class:`Vader` gives the same
compound score: a message without emojis skips the character walk, words outside the lexicon
(most of them) are settled without a call, the negation and idiom checks lower-case only the
words they look at, the "but" rule runs only when the message has a "but", and only the
compound score is computed. A message with an emoji takes the library's own path unchanged.
The scores are compared with the library's on the labelled datasets by ``bench/insights.py``
and on edge cases by the tests. Imported only when ``vaderSentiment`` is installed.
"""

from __future__ import annotations

import string

from vaderSentiment.vaderSentiment import (
    BOOSTER_DICT,
    N_SCALAR,
    NEGATE,
    SPECIAL_CASES,
    SentimentIntensityAnalyzer,
    SentiText,
    allcap_differential,
    normalize,
)

_NEGATIONS = frozenset(NEGATE)
_PUNCTUATION = string.punctuation
_EMPHATIC = ("so", "this")


def _negated(word: str) -> bool:
    """VADER's negation test of one lower-cased word."""
    return word in _NEGATIONS or "n't" in word


class Vader(SentimentIntensityAnalyzer):  # type: ignore[misc]
    """``SentimentIntensityAnalyzer`` whose :meth:`compound` is ``polarity_scores``' compound."""

    def __init__(self) -> None:
        super().__init__()
        self._emoji_chars = frozenset(key for key in self.emojis if len(key) == 1)

    def compound(self, text: str) -> float:
        """The compound score (-1…1, 4 decimals) ``polarity_scores(text)`` would give."""
        if not self._emoji_chars.isdisjoint(text):
            return float(self.polarity_scores(text)["compound"])
        text = text.strip()
        words = []
        for token in text.split():
            stripped = token.strip(_PUNCTUATION)
            words.append(token if len(stripped) <= 2 else stripped)
        sentitext = SentiText.__new__(SentiText)
        sentitext.text = text
        sentitext.words_and_emoticons = words
        sentitext.is_cap_diff = allcap_differential(words)
        lowered = [word.lower() for word in words]
        lexicon = self.lexicon
        last = len(words) - 1
        sentiments: list[float] = []
        for i, word in enumerate(lowered):
            if (
                word in BOOSTER_DICT
                or (i < last and word == "kind" and lowered[i + 1] == "of")
                or word not in lexicon
            ):
                sentiments.append(0)
                continue
            sentiments = self.sentiment_valence(0, sentitext, words[i], i, sentiments)
        if "but" in lowered:
            sentiments = self._but_check(words, sentiments)
        if not sentiments:
            return 0.0
        total = float(sum(sentiments))
        emphasis = self._punctuation_emphasis(text)
        if total > 0:
            total += emphasis
        elif total < 0:
            total -= emphasis
        return float(round(normalize(total), 4))

    @staticmethod
    def _negation_check(valence: float, words: list[str], start_i: int, i: int) -> float:
        # The library's rule, lower-casing only the (up to three) words before word i.
        one = words[i - 1].lower()
        if start_i == 0:
            return valence * N_SCALAR if _negated(one) else valence
        two = words[i - 2].lower()
        if start_i == 1:
            if two == "never" and one in _EMPHATIC:
                return valence * 1.25
            if two == "without" and one == "doubt":
                return valence
            return valence * N_SCALAR if _negated(two) else valence
        if start_i == 2:
            three = words[i - 3].lower()
            if (three == "never" and two in _EMPHATIC) or one in _EMPHATIC:
                return valence * 1.25
            if three == "without" and (two == "doubt" or one == "doubt"):
                return valence
            return valence * N_SCALAR if _negated(three) else valence
        return valence

    @staticmethod
    def _special_idioms_check(valence: float, words: list[str], i: int) -> float:
        # The library's rule, lower-casing only the words from i - 3 to i + 2.
        zero, one, two, three = (words[k].lower() for k in (i, i - 1, i - 2, i - 3))
        three_two_one = f"{three} {two} {one}"
        three_two = f"{three} {two}"
        two_one = f"{two} {one}"
        for sequence in (f"{one} {zero}", f"{two} {one} {zero}", two_one, three_two_one, three_two):
            if sequence in SPECIAL_CASES:
                valence = SPECIAL_CASES[sequence]
                break
        if len(words) - 1 > i:
            following = words[i + 1].lower()
            zero_one = f"{zero} {following}"
            if zero_one in SPECIAL_CASES:
                valence = SPECIAL_CASES[zero_one]
            if len(words) - 1 > i + 1:
                zero_one_two = f"{zero_one} {words[i + 2].lower()}"
                if zero_one_two in SPECIAL_CASES:
                    valence = SPECIAL_CASES[zero_one_two]
        for n_gram in (three_two_one, three_two, two_one):
            if n_gram in BOOSTER_DICT:
                valence = valence + BOOSTER_DICT[n_gram]
        return valence

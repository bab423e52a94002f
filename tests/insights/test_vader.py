"""Our VADER path gives the compound score of vaderSentiment's own ``polarity_scores``."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from opsloom.insights.analyzers.vader import Vader

VADER = Vader()
#: The library itself: ``Vader.polarity_scores`` would run our own negation and idiom rules.
LIBRARY = SentimentIntensityAnalyzer()

#: Words that trigger each of VADER's rules: lexicon words, boosters and dampeners, negations,
#: "but", "kind of", "no", "least", "never so", "without doubt", idioms, capitals, emoticons.
WORDS = [
    "good", "GOOD", "bad", "BAD", "great", "terrible", "love", "hate", "fun", "sad",
    "very", "VERY", "extremely", "kind", "of", "sort", "somewhat", "barely", "no", "not",
    "isn't", "never", "so", "this", "without", "doubt", "least", "at", "but", "BUT",
    "the", "bomb", "shit", "bus", "stop", "cut", "mustard", "yeah", "right", "kiss",
    "death", "hand", "to", "mouth", "is", "it", "was", "I", "you", ":)", ":(", ":-D",
    "good!", "bad?", "(great)", "ok...", "nope", "uh-uh", "dont", "cant", "wasn't",
    "\U0001f600", "\u2764", "!!!", "??",
]  # fmt: skip

EDGE_CASES = [
    "",
    "   ",
    "good",
    "not good",
    "no good",
    "no no bad",
    "no problem or worry",
    "The food was good, but the service was horrible.",
    "It was kind of good.",
    "I never so loved this",
    "without doubt the best",
    "least happy",
    "at least happy",
    "This is VERY GOOD and others are fine",
    "ALL CAPS GREAT",
    "the bomb!!!",
    "waiting at the bus stop",
    "yeah right, great",
    "Great?? Really???",
    "I love it \U0001f600",
    "sort of bad",
    "It's not the bomb",
    ":) :( :-D",
]


def library(text: str) -> float:
    return float(LIBRARY.polarity_scores(text)["compound"])


def test_compound__matches_the_library_on_each_rule() -> None:
    ours = [VADER.compound(text) for text in EDGE_CASES]
    assert ours == [library(text) for text in EDGE_CASES]
    assert len({score for score in ours}) > 10  # the cases do exercise different rules


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(WORDS), max_size=14), st.sampled_from(["", ".", "!", "?!"]))
def test_compound__matches_the_library_on_word_mixes(words: list[str], end: str) -> None:
    text = " ".join(words) + end
    assert VADER.compound(text) == library(text)

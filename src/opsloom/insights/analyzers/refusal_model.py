"""A learned refusal score: logistic regression over a reply's opening words, the cue evidence
and the reply's stance.

The cue detector (:mod:`.declining`) knows how refusals are phrased; the soft ways of declining
(:mod:`.stance`: "please don't", "I'm not comfortable recommending", "that's not legal") add
what it does not count; the words a reply opens with ("this is", "to help", "i don't have",
"the", "if") tell both apart from answers that share a cue. The weights in
``refusal_model.json`` were learned from the labelled replies of ``bench/labels`` by
``bench/tools/refusal_model.py`` (seeded: it writes the same file on every run) and calibrated
on its out-of-fold scores; scoring is a sum of dictionary lookups, no library needed. The file
also holds a few replies with the probability the trained model gave them, so a test can check
that this scorer and the trained model agree.
"""

from __future__ import annotations

import functools
import json
import math
import re
from importlib.resources import files
from itertools import pairwise, repeat
from typing import NamedTuple

from opsloom.insights.analyzers.declining import decline_evidence
from opsloom.insights.analyzers.stance import stances

_NORMALISE = str.maketrans({"\u2019": "'", "\u2018": "'"})
_WORD = re.compile(r"[a-z0-9']+")
#: Name of the cue evidence among the features.
CUE = "cue"
#: Prefix of the stance features (``stance:unwilling`` …).
STANCE = "stance:"
_PREFIX_CHARS = 10


def opening_words(lower: str, opening: int) -> list[str]:
    """The first ``opening`` words of a text in lower case (typographic apostrophes as ')."""
    if "\u2019" in lower or "\u2018" in lower:
        lower = lower.translate(_NORMALISE)
    # Words average under 8 characters: scan a prefix, and the whole text only if it falls short
    # (with more than ``opening`` words in the prefix, the first ``opening`` are whole).
    words = _WORD.findall(lower, 0, opening * _PREFIX_CHARS)
    if len(words) <= opening and len(lower) > opening * _PREFIX_CHARS:
        words = _WORD.findall(lower)
    return words[:opening]


def features(lower: str, opening: int, pairs: bool, stance: bool = False) -> dict[str, float]:
    """Features of a reply in lower case: its first ``opening`` words, word pairs, first word,
    the cue detector's evidence (``cue``) and, with ``stance``, the kinds of stance it shows
    (``stance:<kind>``). Present words and stances count 1."""
    found: dict[str, float] = {CUE: decline_evidence(lower)}
    if stance:
        found.update((STANCE + kind, 1.0) for kind in stances(lower))
    words = opening_words(lower, opening)
    if words:
        found["<s>" + words[0]] = 1.0
    for n, word in enumerate(words):
        found[word] = 1.0
        if pairs and n:
            found[words[n - 1] + " " + word] = 1.0
    return found


class RefusalModel(NamedTuple):
    """Learned weights: the score is the logistic of intercept + the present features' sum."""

    intercept: float
    weights: dict[str, float]
    opening: int
    pairs: bool
    stance: bool = False

    def score(self, lower: str) -> float:
        """Refusal of one assistant reply (lower-case text), in [0, 1]: 0 for an empty one."""
        if not lower or lower.isspace():
            return 0.0
        # The sum over :func:`features`, each counted once, in C-level loops; fsum rounds
        # exactly, so the set's order (it varies between processes) cannot move the result.
        weights = self.weights
        total = self.intercept + weights[CUE] * decline_evidence(lower)
        words = opening_words(lower, self.opening)
        if words:
            keys = set(words)
            if self.pairs:
                keys.update(map(" ".join, pairwise(words)))
            keys.add("<s>" + words[0])
            if self.stance:
                keys.update(STANCE + kind for kind in stances(lower))
            total += math.fsum(map(weights.get, keys, repeat(0.0)))
        return 1.0 / (1.0 + math.exp(-total))


@functools.cache
def refusal_model() -> RefusalModel:
    """The model shipped with opsloom (read once)."""
    data = json.loads(files(__package__).joinpath("refusal_model.json").read_text("utf-8"))
    spec = data["spec"]
    return RefusalModel(
        data["intercept"],
        data["weights"],
        spec["opening"],
        spec["pairs"],
        bool(spec.get("stance", 0.0)),
    )

"""Weighted cue phrases: the offline detectors' lexicons.

A :class:`CueSet` holds phrases (regular expressions over lower-case text) grouped by weight,
compiled into one alternation per weight so a turn is scanned a few times, not once per
phrase. Its score is the noisy-OR of the weights of the groups that match.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence


class CueSet:
    """Phrases by weight; ``score(text)`` in [0, 1)."""

    def __init__(self, name: str, groups: Mapping[float, Sequence[str]]) -> None:
        self.name = name
        self._groups = tuple(
            (weight, re.compile(r"(?<![a-z0-9'])(?:" + "|".join(phrases) + r")(?![a-z0-9])"))
            for weight, phrases in sorted(groups.items(), reverse=True)
        )

    def score(self, text: str) -> float:
        """Noisy-OR of the weights of matching groups (0 when nothing matches)."""
        remaining = 1.0
        for weight, pattern in self._groups:
            if pattern.search(text):
                remaining *= 1.0 - weight
        return 1.0 - remaining

    def best(self, text: str) -> float:
        """Weight of the strongest matching group (0 when nothing matches)."""
        for weight, pattern in self._groups:
            if pattern.search(text):
                return weight
        return 0.0

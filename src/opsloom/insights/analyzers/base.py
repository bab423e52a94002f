"""What an analyzer is, and the work it reads and writes.

An analyzer looks at a whole :class:`~opsloom.insights.conversation.Conversation` and adds
per-turn signals, scores, flags and statistics to a shared :class:`Work`. It declares what it
``needs`` (signals other analyzers provide, so it runs after them) and what it ``provides``,
and which optional Python modules it ``requires``: when one is missing the analyzer is
skipped and the reason recorded in the result, never silently.

Third-party analyzers are classes (or factories) published under the ``opsloom.analyzers``
entry point group; the built-ins are declared there too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

from opsloom.insights.conversation import Conversation

Severity = Literal["info", "low", "medium", "high", "critical"]
SEVERITIES: tuple[str, ...] = ("info", "low", "medium", "high", "critical")

_WORD = re.compile(r"[a-z0-9']+")
#: Typographic apostrophes and quotes as the lexicons write them (one character each, so
#: positions in the lower-case text stay those of the original).
_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"'})


@dataclass(frozen=True, slots=True)
class Score:
    """A normalised quality score: 0 is worst, 1 best.

    Attributes:
        value: the score in [0, 1].
        method: how it was computed (e.g. ``lexicon+vader``, ``llm-judge``).
        confidence: how much to trust it, in [0, 1] (little evidence, low confidence).
    """

    value: float
    method: str
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "value": round(self.value, 4),
            "method": self.method,
            "confidence": round(self.confidence, 4),
        }


@dataclass(frozen=True, slots=True)
class Flag:
    """Something worth a look: a code, how bad, which turns show it, and a short reason."""

    code: str
    severity: Severity
    turns: tuple[int, ...]
    evidence: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "code": self.code,
            "severity": self.severity,
            "turns": list(self.turns),
            "evidence": self.evidence,
        }


@dataclass(slots=True)
class Work:
    """A conversation under analysis: its turns' signals and everything found so far.

    ``closed``: the conversation is over (ended explicitly, or inactive long enough), so a
    last question without an answer will not get one. Analyzers write per-turn values into
    ``signals[i]`` (a dict per turn), conversation values into ``scores``, ``flags`` and
    ``stats``, and free-form values for later analyzers into ``shared``.
    """

    conversation: Conversation
    closed: bool = False
    signals: list[dict[str, Any]] = field(default_factory=list)
    scores: dict[str, Score] = field(default_factory=dict)
    flags: list[Flag] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    shared: dict[str, Any] = field(default_factory=dict)
    _lower: list[str] | None = None
    _words: list[list[str]] | None = None

    def __post_init__(self) -> None:
        if not self.signals:
            self.signals = [{"role": t.role} for t in self.conversation.turns]

    @property
    def lower(self) -> list[str]:
        """Each turn's text in lower case with typographic apostrophes and quotes made plain
        (``don\u2019t`` reads as ``don't``), computed once and shared by all analyzers."""
        if self._lower is None:
            self._lower = [t.text.lower().translate(_QUOTES) for t in self.conversation.turns]
        return self._lower

    @property
    def words(self) -> list[list[str]]:
        """Each turn's lower-case words."""
        if self._words is None:
            self._words = [_WORD.findall(text) for text in self.lower]
        return self._words

    def indexes(self, role: str) -> list[int]:
        """Positions of the turns spoken by ``role``."""
        return [i for i, t in enumerate(self.conversation.turns) if t.role == role]

    def flag(self, code: str, severity: Severity, turns: list[int], evidence: str) -> None:
        """Record a flag."""
        self.flags.append(Flag(code, severity, tuple(turns), evidence))


@runtime_checkable
class Analyzer(Protocol):
    """A conversation analyzer plugin.

    Attributes:
        name: unique name (also its entry point name).
        version: changes when its output for the same input changes.
        needs: names of signals it reads, provided by other analyzers.
        provides: names of signals it writes.
        requires: importable modules it depends on beyond opsloom's own dependencies.
    """

    name: ClassVar[str]
    version: ClassVar[str]
    needs: ClassVar[frozenset[str]]
    provides: ClassVar[frozenset[str]]
    requires: ClassVar[tuple[str, ...]]

    def analyze(self, work: Work) -> None:
        """Add this analyzer's findings to ``work``."""


def squash(total: float) -> float:
    """Map a non-negative evidence sum onto [0, 1) (1 - e^-x feel, cheap)."""
    return total / (1.0 + total) if total > 0 else 0.0


def combine(*probabilities: float) -> float:
    """Noisy-OR of independent pieces of evidence, each in [0, 1]."""
    remaining = 1.0
    for p in probabilities:
        remaining *= 1.0 - min(1.0, max(0.0, p))
    return 1.0 - remaining

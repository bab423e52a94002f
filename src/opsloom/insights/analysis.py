"""Running the analyzers over conversations and shaping the versioned result.

:class:`Analysis` loads the analyzers once (entry point group ``opsloom.analyzers``, falling
back to the built-ins when opsloom runs from a source tree without its metadata), orders them
so each runs after the analyzers that provide what it needs, and records every analyzer it
could not use with the reason. :meth:`Analysis.run` turns one conversation into a JSON-ready
result (:data:`RESULT_VERSION`).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from importlib.metadata import entry_points
from typing import Any

from opsloom.insights import rule
from opsloom.insights.analyzers.base import Analyzer, Work
from opsloom.insights.conversation import Conversation

log = logging.getLogger("opsloom.insights")

#: Default inactivity after which a conversation counts as closed (30 minutes).
INACTIVITY_SECONDS = 1800.0
#: Version of the result's shape; bumped when a key changes meaning or goes away.
RESULT_VERSION = "1"
ENTRY_POINT_GROUP = "opsloom.analyzers"

#: The built-in analyzers (also declared as entry points in pyproject.toml).
BUILTIN: dict[str, str] = {
    "sentiment": "opsloom.insights.analyzers.sentiment:SentimentAnalyzer",
    "repetition": "opsloom.insights.analyzers.reaction:RepetitionAnalyzer",
    "correction": "opsloom.insights.analyzers.reaction:CorrectionAnalyzer",
    "escalation": "opsloom.insights.analyzers.reaction:EscalationAnalyzer",
    "frustration": "opsloom.insights.analyzers.frustration:FrustrationAnalyzer",
    "refusal": "opsloom.insights.analyzers.refusal:RefusalAnalyzer",
    "degeneration": "opsloom.insights.analyzers.refusal:DegenerationAnalyzer",
    "pii": "opsloom.insights.analyzers.pii:PiiAnalyzer",
    "readability": "opsloom.insights.analyzers.readability:ReadabilityAnalyzer",
    "flow": "opsloom.insights.analyzers.flow:FlowAnalyzer",
    "toxicity": "opsloom.insights.analyzers.toxicity:ToxicityAnalyzer",
    "relevance": "opsloom.insights.analyzers.relevance:RelevanceAnalyzer",
}

#: What to install for an optional module an analyzer requires.
_EXTRAS = {
    "profanity_check": "opsloom[toxicity]",
    "sklearn": "opsloom[embeddings]",
    "vaderSentiment": "vaderSentiment",
}


@dataclass(frozen=True, slots=True)
class Skipped:
    """An analyzer that does not run, and why."""

    name: str
    reason: str


def _load(target: str) -> Callable[[], Analyzer]:
    module, _, attribute = target.partition(":")
    factory: Callable[[], Analyzer] = getattr(importlib.import_module(module), attribute)
    return factory


def _factories() -> dict[str, Callable[[], Callable[[], Analyzer]]]:
    """Loaders of every known analyzer factory, by name (entry points win)."""
    found: dict[str, Callable[[], Callable[[], Analyzer]]] = {
        name: partial(_load, target) for name, target in BUILTIN.items()
    }
    for point in entry_points(group=ENTRY_POINT_GROUP):
        found[point.name] = point.load
    return found


class Analysis:
    """A ready set of analyzers in dependency order.

    Args:
        analyzers: the analyzers to run (any order; they are sorted by needs/provides).
        skipped: analyzers already known not to run, with their reasons.
        inactivity: seconds without activity after which a conversation counts as closed
            (when :meth:`run` is told the time); an explicit end closes it at once.
    """

    def __init__(
        self,
        analyzers: Iterable[Analyzer],
        skipped: Iterable[Skipped] = (),
        inactivity: float = INACTIVITY_SECONDS,
    ) -> None:
        self.inactivity = inactivity
        self.skipped: list[Skipped] = list(skipped)
        self.analyzers: list[Analyzer] = self._order(list(analyzers))

    @classmethod
    def discover(
        cls,
        only: Collection[str] | None = None,
        exclude: Collection[str] = (),
        extra: Iterable[Analyzer] = (),
        inactivity: float = INACTIVITY_SECONDS,
    ) -> Analysis:
        """Load the installed analyzers (``only`` some, or all but ``exclude``) plus ``extra``.

        An analyzer whose entry point cannot be imported, whose required modules are missing
        or whose constructor fails is recorded in :attr:`skipped` with the reason.
        """
        loaded: list[Analyzer] = list(extra)
        skipped: list[Skipped] = []
        for name, load in sorted(_factories().items()):
            if (only is not None and name not in only) or name in exclude:
                continue
            try:
                factory = load()
            except ImportError as exc:
                skipped.append(Skipped(name, f"cannot be imported: {exc}"))
                continue
            missing = [
                m for m in getattr(factory, "requires", ()) if importlib.util.find_spec(m) is None
            ]
            if missing:
                hint = ", ".join(_EXTRAS.get(m, m) for m in missing)
                skipped.append(Skipped(name, f"needs {', '.join(missing)} (install {hint})"))
                continue
            try:
                loaded.append(factory())
            except Exception as exc:  # a plugin's constructor may fail in any way
                skipped.append(Skipped(name, f"could not start: {exc}"))
        return cls(loaded, skipped, inactivity)

    def _order(self, analyzers: list[Analyzer]) -> list[Analyzer]:
        provided = {p for a in analyzers for p in a.provides}
        usable: list[Analyzer] = []
        for analyzer in analyzers:
            missing = sorted(analyzer.needs - provided)
            if missing:
                reason = f"needs {', '.join(missing)}, which no analyzer provides"
                self.skipped.append(Skipped(analyzer.name, reason))
            else:
                usable.append(analyzer)
        if len(usable) < len(analyzers):
            return self._order(usable)  # a skipped analyzer may have provided for another
        ordered: list[Analyzer] = []
        ready: set[str] = set()
        pending = sorted(usable, key=lambda a: a.name)
        while pending:
            runnable = [a for a in pending if a.needs <= ready]
            if not runnable:
                names = ", ".join(a.name for a in pending)
                raise ValueError(f"analyzers need each other in a cycle: {names}")
            for analyzer in runnable:
                ordered.append(analyzer)
                ready |= analyzer.provides
            pending = [a for a in pending if a not in runnable]
        return ordered

    @property
    def versions(self) -> dict[str, str]:
        """Name → version of every analyzer that runs."""
        return {a.name: a.version for a in self.analyzers}

    def closed(self, conversation: Conversation, now: datetime | None) -> bool:
        """Whether the conversation is over: ended, or idle for :attr:`inactivity` at ``now``."""
        if conversation.ended:
            return True
        last = conversation.last_activity
        return (
            now is not None and last is not None and (now - last).total_seconds() >= self.inactivity
        )

    def run(self, conversation: Conversation, now: datetime | None = None) -> dict[str, Any]:
        """Analyse one conversation; the versioned, JSON-ready result.

        ``now`` lets inactivity close the conversation; without it only an explicit end does.
        """
        closed = self.closed(conversation, now)
        work = Work(conversation, closed=closed)
        failed: list[Skipped] = []
        for analyzer in self.analyzers:
            try:
                analyzer.analyze(work)
            except Exception as exc:  # one faulty plugin must not lose the other findings
                log.warning("analyzer %s failed on %s: %s", analyzer.name, conversation.id, exc)
                failed.append(Skipped(analyzer.name, f"failed: {type(exc).__name__}: {exc}"))
        outcome = rule.apply(work.flags, work.scores)
        summary = work.shared.get("judge_summary")
        if summary:
            outcome["insights"].append({"rule": "judge", "text": str(summary)})
        return {
            "version": RESULT_VERSION,
            "conversation": {**_describe(conversation), "closed": closed},
            "stats": work.stats,
            "scores": {name: score.to_dict() for name, score in sorted(work.scores.items())},
            "turns": work.signals,
            "flags": [flag.to_dict() for flag in work.flags],
            **outcome,
            "analyzers": {
                "ran": self.versions,
                "skipped": [{"name": s.name, "reason": s.reason} for s in self.skipped + failed],
            },
        }


def _describe(conversation: Conversation) -> dict[str, Any]:
    started, last = conversation.started_at, conversation.last_activity
    return {
        "id": conversation.id,
        "app": conversation.app,
        "model": conversation.main_model(),
        "prompt_version": conversation.prompt_version,
        "tags": list(conversation.tags),
        "user": conversation.user,
        "started_at": started.isoformat() if started else None,
        "last_activity": last.isoformat() if last else None,
        "ended": conversation.ended,
    }

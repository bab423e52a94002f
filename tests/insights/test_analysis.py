"""Plugins: discovery, dependency order, and analyzers that cannot run."""

from __future__ import annotations

from typing import ClassVar

import pytest
from analysis_run import Run

from opsloom.insights import Analysis, Conversation, Turn, Work
from opsloom.insights.analyzers.frustration import FrustrationAnalyzer
from opsloom.insights.analyzers.pii import PiiAnalyzer


class NeedsGpu:
    name: ClassVar[str] = "gpu-judge"
    version: ClassVar[str] = "1"
    needs: ClassVar[frozenset[str]] = frozenset()
    provides: ClassVar[frozenset[str]] = frozenset({"judgement"})
    requires: ClassVar[tuple[str, ...]] = ("module_that_is_not_installed_anywhere",)

    def analyze(self, work: Work) -> None:  # pragma: no cover - never runs
        raise AssertionError


class Broken:
    name: ClassVar[str] = "broken"
    version: ClassVar[str] = "1"
    needs: ClassVar[frozenset[str]] = frozenset()
    provides: ClassVar[frozenset[str]] = frozenset()
    requires: ClassVar[tuple[str, ...]] = ()

    def analyze(self, work: Work) -> None:
        raise RuntimeError("lexicon file missing")


class Longest:
    """Needs the PII analyzer's output: must run after it."""

    name: ClassVar[str] = "longest"
    version: ClassVar[str] = "2"
    needs: ClassVar[frozenset[str]] = frozenset({"pii"})
    provides: ClassVar[frozenset[str]] = frozenset({"longest"})
    requires: ClassVar[tuple[str, ...]] = ()

    def analyze(self, work: Work) -> None:
        assert all("pii" in s for s in work.signals)
        work.stats["longest"] = max(len(t.text) for t in work.conversation.turns)


def test_discover__builtins_declared_as_entry_points(analysis: Analysis) -> None:
    from importlib.metadata import entry_points

    declared = {p.name for p in entry_points(group="opsloom.analyzers")}
    assert {"sentiment", "frustration", "refusal", "pii", "flow"} <= declared
    assert {"sentiment", "frustration", "refusal", "pii", "flow"} <= set(analysis.versions)


def test_discover__missing_optional_module_is_skipped_with_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from opsloom.insights import analysis as module

    monkeypatch.setitem(module.BUILTIN, "gpu-judge", f"{__name__}:NeedsGpu")
    found = Analysis.discover(only={"gpu-judge", "pii"})
    assert [a.name for a in found.analyzers] == ["pii"]
    [skipped] = found.skipped
    assert skipped.name == "gpu-judge"
    assert "module_that_is_not_installed_anywhere" in skipped.reason


def test_order__needs_run_first_and_unmet_needs_are_skipped() -> None:
    found = Analysis([Longest(), PiiAnalyzer(), FrustrationAnalyzer()])
    assert [a.name for a in found.analyzers] == ["pii", "longest"]
    [skipped] = found.skipped
    assert skipped.name == "frustration"
    assert "no analyzer provides" in skipped.reason
    result = found.run(Conversation(id="x", turns=(Turn(role="user", text="hello there"),)))
    assert result["stats"]["longest"] == 11
    assert result["analyzers"]["ran"] == {"pii": "1", "longest": "2"}


def test_run__failing_analyzer_is_recorded_and_others_still_report() -> None:
    found = Analysis([Broken(), PiiAnalyzer()])
    turns = (Turn(role="assistant", text="mail bob@example.com"),)
    result = found.run(Conversation(id="x", turns=turns))
    assert result["flags"][0]["code"] == "pii_leak"
    assert {"name": "broken", "reason": "failed: RuntimeError: lexicon file missing"} in result[
        "analyzers"
    ]["skipped"]


def test_result__is_deterministic(run: Run) -> None:
    pairs = (("user", "This is useless, give me a human"), ("assistant", "I can't do that."))
    assert run(*pairs) == run(*pairs)

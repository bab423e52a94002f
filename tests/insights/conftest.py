"""Shared fixtures of the insights tests: one analyzer set per session (lexicons load once)."""

from __future__ import annotations

from typing import Any

import pytest
from analysis_run import Run

from opsloom.insights import Analysis, Conversation, Turn


@pytest.fixture(scope="session")
def analysis() -> Analysis:
    return Analysis.discover()


@pytest.fixture
def run(analysis: Analysis) -> Run:
    """Analyse a conversation given as (role, text) pairs; returns the result."""

    def go(*pairs: tuple[str, str], ended: bool = False, **turn_extra: Any) -> dict[str, Any]:
        turns = tuple(Turn(role=role, text=text) for role, text in pairs)  # type: ignore[arg-type]
        return analysis.run(Conversation(id="c-test", turns=turns, ended=ended))

    return go

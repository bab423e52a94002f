"""The type of the ``run`` fixture of the insights tests (``conftest.py``), importable by the
test modules under a name no other test directory uses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Run = Callable[..., dict[str, Any]]
"""Analyse a conversation given as (role, text) pairs; returns the result."""

"""Any directories of the test tree collect together in one pytest command.

Test directories are not packages: pytest puts each one on ``sys.path`` and imports its modules
by their bare name, so a name is one module for the whole session. Two helper modules with the
same name, or a test that imports ``conftest`` (every directory has one), pick up whichever
was imported first and fail depending on which directories a command names.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def _top_level_modules() -> list[Path]:
    """The modules imported by their bare name: those outside any package."""
    return [
        path
        for path in TESTS.rglob("*.py")
        if not any((TESTS / up / "__init__.py").exists() for up in path.relative_to(TESTS).parents)
    ]


def test_tree__module_names_are_unique_across_directories() -> None:
    by_name: dict[str, list[str]] = defaultdict(list)
    for path in _top_level_modules():
        if path.name != "conftest.py":
            by_name[path.stem].append(str(path.relative_to(TESTS)))
    assert {name: paths for name, paths in by_name.items() if len(paths) > 1} == {}


def test_tree__no_module_imports_a_conftest() -> None:
    importers = []
    for path in _top_level_modules():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            if "conftest" in names:
                importers.append(str(path.relative_to(TESTS)))
    assert importers == []

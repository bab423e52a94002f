"""Mutation testing of one module with only its own tests (mutmut, SQLite store).

    .venv/bin/python tools/mutation.py src/opsloom/triggers/sources/github.py \
        tests/triggers/test_sources_github.py

mutmut reads its settings from ``pyproject.toml`` in the folder it runs in, and first runs the
whole test selection to learn which tests reach which mutant. For one module that selection
should be the module's own tests, not every core module's: this script runs mutmut in
``mutants-one/<module>/`` with a copy of ``pyproject.toml`` whose ``[tool.mutmut]`` names that
module and those tests (the rest of the settings as in ``pyproject.toml``), then prints each
surviving mutant's diff and the score: killed (and timed out) over all tested mutants.
Mutants listed under ``[tool.mutation-equivalent]`` in ``pyproject.toml`` (each with the reason
it changes no behaviour) are left out of the score. Results stay in that folder; remove it to
test every mutant again after changing the tests.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINKED = ("src", "tests", "examples", "docs")


def section(module: str, tests: list[str]) -> str:
    """The ``[tool.mutmut]`` section for ``module`` and ``tests``, other keys kept."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
    config["paths_to_mutate"] = [module]
    config["pytest_add_cli_args_test_selection"] = tests
    lines = ["[tool.mutmut]"]
    for key, value in config.items():
        items = ", ".join(f'"{item}"' for item in value) if isinstance(value, list) else None
        lines.append(f"{key} = [{items}]" if items is not None else f"{key} = {value!r}")
    return "\n".join(lines) + "\n"


def prepare(module: str, tests: list[str]) -> Path:
    folder = ROOT / "mutants-one" / Path(module).stem
    folder.mkdir(parents=True, exist_ok=True)
    for name in LINKED:
        link = folder / name
        if not link.exists():
            link.symlink_to(ROOT / name)
    text = (ROOT / "pyproject.toml").read_text()
    # Replace the [tool.mutmut] table (up to the next table) with this module's.
    text = re.sub(
        r"^\[tool\.mutmut\]\n.*?(?=^\[|\Z)", section(module, tests) + "\n", text, flags=re.M | re.S
    )
    (folder / "pyproject.toml").write_text(text)
    return folder


def equivalent() -> dict[str, str]:
    """The mutants known to change no behaviour, with why."""
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]
    found: dict[str, str] = tool.get("mutation-equivalent", {})
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("module", help="the file to mutate, e.g. src/opsloom/engine/replay.py")
    parser.add_argument("tests", nargs="+", help="the tests that cover it (files or folders)")
    parser.add_argument("--max-children", type=int, default=1, help="mutants tested at once")
    options = parser.parse_args()
    folder = prepare(options.module, options.tests)
    mutmut = Path(sys.executable).with_name("mutmut")
    subprocess.run(
        [str(mutmut), "run", "--max-children", str(options.max_children)], cwd=folder, check=False
    )
    listing = subprocess.run(
        [str(mutmut), "results", "--all", "true"],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    known = equivalent()
    counts: dict[str, int] = {}
    survivors = []
    for line in listing.splitlines():
        name, _, status = line.strip().rpartition(": ")
        if not name:
            continue
        if status == "survived" and name in known:
            status = "equivalent"
        counts[status] = counts.get(status, 0) + 1
        if status == "survived":
            survivors.append(name)
    for name in survivors:
        shown = subprocess.run(
            [str(mutmut), "show", name], cwd=folder, capture_output=True, text=True, check=False
        )
        print(shown.stdout)
    caught = counts.get("killed", 0) + counts.get("timeout", 0)
    left_out = ("skipped", "not checked", "equivalent")
    tested = sum(n for status, n in counts.items() if status not in left_out)
    score = 100 * caught / tested if tested else 0.0
    print(f"{options.module}: {counts}")
    print(f"score {score:.1f}% ({caught} of {tested} mutants caught)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

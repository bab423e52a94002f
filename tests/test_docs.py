"""The documentation: generated reference pages are current, the site builds strictly.

The CLI, settings, HTTP API and webhook-source pages are generated from the code by
``docs/gen.py``; when the code changes, ``make docs-gen`` rewrites them. These tests say so
instead of letting the pages drift.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("opsloom_docs_gen", DOCS / "gen.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = _generator()


@pytest.mark.parametrize("page", sorted(GEN.PAGES))
def test_generated_page__matches_the_code(page: str) -> None:
    committed = GEN.GENERATED / page
    fresh = GEN.PAGES[page]()
    current = committed.read_text(encoding="utf-8") if committed.exists() else ""
    if current != fresh:
        diff = "".join(
            list(
                difflib.unified_diff(
                    current.splitlines(keepends=True),
                    fresh.splitlines(keepends=True),
                    f"committed docs/_generated/{page}",
                    "generated from the code now",
                )
            )[:40]
        )
        pytest.fail(
            f"docs/_generated/{page} is stale: the code it documents changed.\n"
            f"Regenerate it with `{GEN.REGENERATE}` (or `python docs/gen.py`) and commit it.\n"
            f"{diff}",
            pytrace=False,
        )


def test_docstring_attributes__a_colon_inside_a_description_is_no_new_name() -> None:
    doc = """Settings.

    Attributes:
        quarantine_after: a run whose worker vanished this many times
            while executing it is quarantined: no worker claims it. 0: never.
        log_level / log_format: what is logged.
    """
    assert GEN.docstring_attributes(doc) == {
        "quarantine_after": (
            "a run whose worker vanished this many times while executing it is quarantined: "
            "no worker claims it. 0: never."
        ),
        "log_level": "what is logged.",
        "log_format": "what is logged.",
    }


def test_generated_pages__depend_only_on_the_code(monkeypatch: pytest.MonkeyPatch) -> None:
    # Settings with other values in the environment must not leak into the reference.
    monkeypatch.setenv("OPSLOOM_API_PORT", "9999")
    monkeypatch.setenv("OPSLOOM_DATABASE_URL", "sqlite:///elsewhere.db")
    monkeypatch.setenv("COLUMNS", "40")
    for page, render in GEN.PAGES.items():
        text = render()
        assert "9999" not in text, page
        assert "elsewhere.db" not in text, page


def test_generated_pages__cover_every_command_setting_route_and_source() -> None:
    import typer.main

    from opsloom.api import create_api
    from opsloom.app import App
    from opsloom.cli.main import cli
    from opsloom.settings import Settings
    from opsloom.triggers.sources import builtin_sources

    cli_page = GEN.cli_page()
    root = typer.main.get_command(cli)
    for name, command in root.commands.items():  # type: ignore[attr-defined]
        if command.hidden:  # started by opsloom itself (as gen.py leaves them out)
            assert f"`opsloom {name}`" not in cli_page
            continue
        assert f"`opsloom {name}`" in cli_page
        for sub in getattr(command, "commands", {}):
            assert f"`opsloom {name} {sub}`" in cli_page
    settings_page = GEN.settings_page()
    for field in Settings.model_fields:
        assert f"`OPSLOOM_{field.upper()}`" in settings_page
    http_page = GEN.http_page()
    paths = create_api(App("sqlite:///never-opened.db")).openapi()["paths"]
    for path, operations in paths.items():
        for method in operations:
            assert f"`{method.upper()} {path}`" in http_page
    sources_page = GEN.sources_page()
    for name, source in builtin_sources().items():
        if type(source).__module__.startswith("opsloom."):
            assert f"`/hooks/{name}`" in sources_page


def test_check__names_a_stale_page_and_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(GEN, "GENERATED", tmp_path)
    assert GEN.main([]) == 0
    assert GEN.main(["--check"]) == 0
    (tmp_path / "settings.md").write_text("old\n", encoding="utf-8")
    capsys.readouterr()
    assert GEN.main(["--check"]) == 1
    out = capsys.readouterr().out
    assert "docs/_generated/settings.md is stale" in out
    assert "make docs-gen" in out


def test_readme__is_short_and_keeps_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.encode()) <= 12 * 1024, "README.md must stay under 12 KB: move details to docs/"
    assert "make run    # serve the example workflows" in text
    assert "make test   # run the test suite" in text
    assert "`make test` is the test command" in text


def test_readme__links_point_at_files_that_exist() -> None:
    text = README.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    assert targets
    missing = [t for t in targets if "://" not in t and not (ROOT / t).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"


def test_readme__links_every_page_of_the_site() -> None:
    # The README's map of the docs is the site's table of contents in short.
    text = README.read_text(encoding="utf-8")
    pages = sorted(
        str(p.relative_to(ROOT))
        for p in DOCS.rglob("*.md")
        if "_generated" not in p.parts and "_build" not in p.parts and p.name != "index.md"
    )
    unlinked = [page for page in pages if f"({page})" not in text]
    assert not unlinked, f"README.md's map of the docs does not link {unlinked}"


@pytest.mark.slow
def test_site__builds_with_warnings_as_errors(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-q",
            "-W",
            "--keep-going",
            "-n",
            "-E",
            "-b",
            "html",
            str(DOCS),
            str(tmp_path / "html"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, (
        "the documentation does not build (a broken link, a missing anchor or a page outside "
        f"every table of contents); `make docs` shows the same:\n{result.stderr}"
    )
    assert (tmp_path / "html" / "reference" / "cli.html").exists()


def _blocks(language: str) -> list[tuple[str, str]]:
    """Fenced blocks of ``language`` in the hand-written pages and the README: (place, text)."""
    found = []
    pages = [README, *sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.parts)]
    for page in pages:
        text = page.read_text(encoding="utf-8")
        for match in re.finditer(rf"^```{language}\n(.*?)^```", text, re.M | re.S):
            line = text.count("\n", 0, match.start()) + 2
            found.append((f"{page.relative_to(ROOT)}:{line}", match.group(1)))
    return found


def _submodule(package: str, name: str) -> bool:
    try:
        importlib.import_module(f"{package}.{name}")
    except ImportError:
        return False
    return True


def test_doc_snippets__python_compiles_and_its_opsloom_imports_resolve() -> None:
    problems = []
    for place, source in _blocks("python"):
        try:
            tree = ast.parse(source, place)
        except SyntaxError as exc:
            problems.append(f"{place}: {exc.msg} (line {exc.lineno} of the block)")
            continue
        for node in tree.body:
            if not isinstance(node, ast.ImportFrom) or not (node.module or "").startswith(
                "opsloom"
            ):
                continue
            module = node.module
            for alias in node.names:
                try:
                    imported = importlib.import_module(module)
                except ImportError as exc:
                    problems.append(f"{place}: `from {module} import …` fails: {exc}")
                    break
                if not hasattr(imported, alias.name) and not _submodule(module, alias.name):
                    problems.append(f"{place}: {module} has no {alias.name!r}")
    assert not problems, "code in the docs no longer matches the code:\n" + "\n".join(problems)


def test_doc_snippets__workflow_documents_and_decision_tables_validate(tmp_path: Path) -> None:
    # The `opsloom` command as installed, wherever its module lives.
    opsloom = [
        sys.executable,
        "-c",
        "import sys; from importlib.metadata import entry_points; "
        "(command,) = entry_points(group='console_scripts', name='opsloom'); "
        "sys.argv[0] = 'opsloom'; sys.exit(command.load()())",
    ]
    kinds = {"document": ("validate",), "table": ("decisions", "validate")}
    files: dict[str, list[Path]] = {kind: [] for kind in kinds}
    places: dict[str, str] = {}
    for n, (place, source) in enumerate(_blocks("yaml")):
        kind = "document" if source.startswith("document:") else None
        if source.startswith("name:") and "rules:" in source:
            kind = "table"
        if kind is None:
            continue
        path = tmp_path / f"snippet{n}.yaml"
        path.write_text(source, encoding="utf-8")
        files[kind].append(path)
        places[path.name] = place
    assert files["document"] and files["table"]
    for kind, command in kinds.items():
        result = subprocess.run(
            [*opsloom, *command, *map(str, files[kind])],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        report = result.stdout + result.stderr
        for name, place in places.items():
            report = report.replace(str(tmp_path / name), place)
        assert result.returncode == 0, f"a {kind} in the docs does not validate:\n{report}"

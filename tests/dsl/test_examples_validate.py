"""Every example of the specification and every conformance-kit document loads and validates."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from opsloom.dsl.document import DocumentError, RuntimeFeatures, load_document, load_document_file

#: The specification's examples, copied with their licence (see SOURCE.md there).
EXAMPLES = Path(__file__).parent / "spec_examples"
#: The conformance kit's feature files, kept by the conformance suite.
FEATURES = Path(__file__).resolve().parents[1] / "conformance" / "ctk"

#: Examples (from the specification's main branch) that the 1.0.3 schema rejects, with why.
#: Each must keep failing with exactly this problem, so that a fix upstream is noticed.
NOT_VALID_IN_1_0_3: dict[str, tuple[str, str]] = {
    # `for.in` is a runtime expression (a string) in 1.0.3; the example gives an inline list.
    "for-inline-array.yaml": ("/do/0/logColors/for/in", "expected a string, got a list"),
    # `catch.then` is not part of 1.0.3 (the catch of a try has no flow directive).
    "try-catch-then-directive.yaml": (
        "/do/0/trySomething/catch/then",
        "unknown property 'then'",
    ),
}


def _examples() -> list[str]:
    return sorted(p.name for p in EXAMPLES.glob("*.yaml"))


@pytest.mark.parametrize("name", _examples())
def test_example__validates(name: str) -> None:
    path = EXAMPLES / name
    if name in NOT_VALID_IN_1_0_3:
        pointer, message = NOT_VALID_IN_1_0_3[name]
        with pytest.raises(DocumentError) as caught:
            load_document_file(path)
        (problem,) = caught.value.problems
        assert problem.path == pointer
        assert problem.message.startswith(message)
        return
    doc = load_document_file(path)
    assert doc.name
    assert doc.data["document"]["dsl"].startswith("1.0")


def test_examples__are_all_there() -> None:
    assert len(_examples()) >= 60
    assert set(NOT_VALID_IN_1_0_3) <= set(_examples())


_DEFINITION = re.compile(r'a workflow with definition:\s*\n\s*"""\w*\n(.*?)\n\s*"""', re.DOTALL)


def _ctk_documents() -> list[tuple[str, str]]:
    found = []
    for feature in sorted(FEATURES.glob("*.feature")):
        for index, match in enumerate(_DEFINITION.finditer(feature.read_text())):
            found.append((f"{feature.stem}-{index}", textwrap.dedent(match.group(1))))
    return found


@pytest.mark.parametrize(("name", "text"), _ctk_documents())
def test_ctk_document__loads_with_this_runtime(name: str, text: str) -> None:
    # The conformance kit uses only features this runtime supports, even with the machine's
    # features in play: nothing here needs a container or a missing script language.
    doc = load_document(text, name, runtime=RuntimeFeatures(container=False))
    assert doc.data["do"]


def test_ctk__documents_found() -> None:
    # 21 scenarios; each defines its workflow once.
    assert len(_ctk_documents()) == 21

"""``opsloom demo`` from an installed wheel, end to end, in an empty folder.

The wheel is built from this tree and installed into a fresh virtualenv; it carries the runbook
library (``opsloom.examples``), so the demo needs nothing of the source checkout: it starts real
Prometheus and Alertmanager, the stand-ins of the SaaS tools and ``opsloom up``, fires the alert
and ends with the incident resolved and the share of the reference procedure opsloom did.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from upkit import ROOT, build_wheel, clean_env, make_venv, pip_install

from opsloom.demo.run import EVIDENCE, PROCEDURE

sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from peers import require_binaries

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_demo__from_a_wheel_in_an_empty_folder_resolves_the_incident(tmp_path: Path) -> None:
    require_binaries()
    python = make_venv(tmp_path / "venv")
    pip_install(python, str(build_wheel(tmp_path)))
    empty = tmp_path / "empty"
    empty.mkdir()
    shipped = subprocess.run(
        [str(python), "-c", "import opsloom.examples.runbooks.incident as m; print(m.__file__)"],
        cwd=empty,
        capture_output=True,
        text=True,
        env=clean_env(),
        check=True,
    )
    assert shipped.stdout.startswith(str(tmp_path / "venv")), shipped.stdout

    demo = subprocess.run(
        [str(python.parent / "opsloom"), "demo", "--approve-after", "0"],
        cwd=empty,
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=540,
        check=False,
    )
    output = demo.stdout
    assert demo.returncode == 0, output + demo.stderr
    assert "■ run completed" in output and '"resolved": true' in output
    assert "PagerDuty events: trigger, trigger, resolve" in output  # paged, escalated, resolved
    assert "Kubernetes restarts: 1; Jira: OPS-1" in output
    assert "opsloom did 13 of 15 steps (87 %); left to people: 7, 11" in output
    assert "stopping everything the demo started" in output
    assert sorted(p.name for p in empty.iterdir()) == []  # it leaves nothing behind


def test_demo__procedure_is_the_one_the_docs_print() -> None:
    page = (ROOT / "docs" / "howto" / "runbooks.md").read_text(encoding="utf-8")
    section = page.split("## The reference procedure", 1)[1].split("\n## ", 1)[0]
    steps = re.findall(r"^(\d+)\. (.+)$", section, re.MULTILINE)
    assert [text for _, text in steps] == list(PROCEDURE)
    assert [int(n) for n, _ in steps] == list(range(1, len(PROCEDURE) + 1))
    assert set(EVIDENCE) <= set(range(1, len(PROCEDURE) + 1))

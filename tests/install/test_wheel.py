"""The first ten minutes from a built wheel: ``opsloom up`` in an empty directory just works.

The wheel is built from this tree and installed into a fresh virtualenv (its dependencies seen
from the development environment); ``opsloom up`` runs from an empty directory with no
``--app``: it serves the API and deployed documents, prints the first admin token as an
``export`` line, and creates its database there.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest
from upkit import build_wheel, clean_env, make_venv, opsloom_up, pip_install

pytestmark = pytest.mark.slow


def test_wheel__up_in_an_empty_directory_serves_and_prints_the_token(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    python = make_venv(tmp_path / "venv")
    pip_install(python, str(wheel))
    opsloom = python.parent / "opsloom"
    empty = tmp_path / "empty"
    empty.mkdir()

    version = subprocess.run(
        [str(opsloom), "--version"], capture_output=True, text=True, env=clean_env(), check=True
    )
    assert version.stdout.startswith("opsloom ")
    located = subprocess.run(
        [str(python), "-c", "import opsloom; print(opsloom.__file__)"],
        cwd=empty,
        capture_output=True,
        text=True,
        env=clean_env(),
        check=True,
    )
    # The wheel's copy runs, not the source tree's.
    assert located.stdout.startswith(str(tmp_path / "venv")), located.stdout

    with opsloom_up([str(opsloom), "up", "--port", "0"], empty, clean_env()) as server:
        output = server.output()
        assert "workflows: none" in output
        assert "no --app" in output
        token = next(
            line.removeprefix("export OPSLOOM_TOKEN=")
            for line in output.splitlines()
            if line.startswith("export OPSLOOM_TOKEN=")
        )
        assert f"{server.url}/docs" in output
        runs = httpx.get(f"{server.url}/api/v1/runs", headers={"Authorization": f"Bearer {token}"})
        assert runs.status_code == 200 and runs.json() == []
    assert (empty / "opsloom.db").exists()
    assert "Traceback" not in server.errors()

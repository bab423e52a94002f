"""A third-party package extends opsloom through entry points, without a line of opsloom changed.

``tests/plugin_pkg`` is installed into a fresh virtualenv; ``opsloom up`` from there serves a
document that calls the package's catalog function, answers its webhook source at
``/hooks/demo`` (configured by the variable derived from the source's settings model), lists
its connector's action, and names the package's broken entry point instead of failing.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from upkit import ROOT, clean_env, make_venv, opsloom_up, pip_install, wait_until

pytestmark = pytest.mark.slow

DOCUMENT = """\
document:
  dsl: '1.0.3'
  namespace: demo
  name: shout
  version: '1.0.0'
do:
  - loud:
      call: shout:1.0.0@default
      with:
        text: ${ .text }
"""
API_TOKEN = "plugin-test-token"
HOOK_TOKEN = "demo-hook-token"


@pytest.fixture(scope="module")
def python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = make_venv(tmp_path_factory.mktemp("plugin") / "venv")
    pip_install(venv, str(ROOT / "tests" / "plugin_pkg"))
    return venv


def test_plugin__function_in_a_served_document_and_source_at_its_hook(
    python: Path, tmp_path: Path
) -> None:
    db = f"sqlite:///{tmp_path / 'plugin.db'}"
    document = tmp_path / "shout.yaml"
    document.write_text(DOCUMENT, encoding="utf-8")
    env = clean_env(OPSLOOM_API_TOKEN=API_TOKEN, OPSLOOM_HOOKS_DEMO_TOKEN=HOOK_TOKEN)
    cli = [str(python), "-m", "opsloom.cli.main"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*cli, *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    deployed = run("deploy", str(document), "--db", db)
    # Validation knew the plugin's function: an unknown one is refused at deploy.
    assert deployed.returncode == 0, deployed.stderr
    assert "deployed demo/shout version 1.0.0" in deployed.stdout
    # The package's connector is one of the SDK: its typed action is listed like a built-in's.
    shown = run("connectors", "show", "demo", "--json")
    assert shown.returncode == 0, shown.stderr
    assert [a["id"] for a in json.loads(shown.stdout)["actions"]] == ["demo.ping"]

    with opsloom_up([*cli, "up", "--db", db, "--port", "0"], tmp_path, env) as server:
        assert "demo/shout" in server.output()
        assert "entry point 'broken'" in server.errors()
        assert "opsloom_plugin_demo.absent:nothing" in server.errors()
        assert "entry point 'demo'" not in server.errors()
        auth = {"Authorization": f"Bearer {API_TOKEN}"}

        started = httpx.post(
            f"{server.url}/api/v1/runs",
            json={"workflow": "demo/shout", "input": {"text": "hello"}},
            headers=auth,
        )
        assert started.status_code == 201, started.text
        run_url = f"{server.url}/api/v1/runs/{started.json()['id']}"

        def finished() -> dict[str, Any] | None:
            run: dict[str, Any] = httpx.get(run_url, headers=auth).json()
            return run if run["status"] in ("completed", "failed") else None

        run = wait_until(finished, "the document run to finish")
        assert run["status"] == "completed", run
        assert run["output"] == {"shouted": "HELLO!"}

        hook = f"{server.url}/hooks/demo"
        refused = httpx.post(hook, json={"id": "d-1"}, headers={"X-Demo-Token": "wrong"})
        assert refused.status_code == 401
        assert refused.json()["reason"] == "bad_credentials"
        accepted = httpx.post(hook, json={"id": "d-1"}, headers={"X-Demo-Token": HOOK_TOKEN})
        assert accepted.status_code == 202, accepted.text
        assert accepted.json() == {"accepted": ["d-1"], "duplicates": []}
        stored = httpx.get(f"{server.url}/api/v1/events", headers=auth).json()
        assert [(e["event"]["source"], e["event"]["type"]) for e in stored] == [
            ("/hooks/demo", "io.example.demo.v1")
        ]

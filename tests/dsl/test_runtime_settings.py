"""What a document runtime takes from the settings: secrets from a file, decision tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsloom import App
from opsloom.dsl.runtime import DslRuntime
from opsloom.errors import ConfigurationError

DOC = """\
document: {dsl: '1.0.3', namespace: t, name: secretive, version: '1.0.0'}
use:
  secrets: [pagerToken]
do:
  - show:
      set:
        token: ${ $secrets.pagerToken }
        length: ${ $secrets.pagerToken | length }
        others: ${ $secrets | keys }
"""


async def test_secrets_file__documents_see_the_secrets_they_declare(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = tmp_path / "secrets.yaml"
    secrets.write_text("pagerToken: s3cr3t\nsmtpPassword: hidden\n")
    monkeypatch.setenv("OPSLOOM_SECRETS_FILE", str(secrets))
    app = App(f"sqlite:///{tmp_path / 'rt.db'}")
    runtime = DslRuntime(app)
    async with app:
        await runtime.deploy(DOC)
        run = await app.start("t/secretive", {})
        # The document sees the value; its run data never holds it.
        assert await run.result(timeout=20) == {
            "token": "***",
            "length": 6,
            "others": ["pagerToken"],
        }
    await runtime.close()


def test_secrets_file__malformed_is_refused_without_echoing_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = tmp_path / "secrets.yaml"
    secrets.write_text("pagerToken: [s3cr3t\n")
    monkeypatch.setenv("OPSLOOM_SECRETS_FILE", str(secrets))
    with pytest.raises(ConfigurationError, match="not valid YAML or JSON") as caught:
        DslRuntime(App(f"sqlite:///{tmp_path / 'rt.db'}"))
    assert "s3cr3t" not in str(caught.value)


def test_decisions_dir__registers_decide(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    examples = Path(__file__).resolve().parents[2] / "examples" / "decisions"
    monkeypatch.setenv("OPSLOOM_DECISIONS_DIR", str(examples))
    runtime = DslRuntime(App(f"sqlite:///{tmp_path / 'rt.db'}"))
    assert runtime.catalog is not None and runtime.catalog.has("decide", "1.0.0")

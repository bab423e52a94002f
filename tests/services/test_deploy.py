"""Deploying a document stores it, registers it and writes who deployed it to the audit log."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsloom import App
from opsloom.dsl.runtime import DocumentVersionExistsError
from opsloom.services.document import deploy_document
from opsloom.settings import Settings

DOCUMENT = """\
document:
  dsl: '1.0.3'
  namespace: ops
  name: hello
  version: '{version}'
do:
  - say:
      set:
        said: {said}
"""


async def test_deploy__stored_registered_and_audited_once(tmp_path: Path) -> None:
    app = App(f"sqlite:///{tmp_path / 'deploy.db'}", worker=None, settings=Settings())
    async with app:
        text = DOCUMENT.format(version="1.0.0", said="hi")
        record, created = await deploy_document(app, text, "hello.yaml", actor="cli:ann")
        assert created and (record.workflow, record.version) == ("ops/hello", "1.0.0")
        again, created_again = await deploy_document(app, text, "hello.yaml", actor="cli:bob")
        assert not created_again and again.digest == record.digest
        with pytest.raises(DocumentVersionExistsError):
            await deploy_document(
                app, DOCUMENT.format(version="1.0.0", said="changed"), "x", actor="cli:eve"
            )
        entries = [(e.actor, e.action, e.subject, e.data) for e in await app.audit.entries()]
        assert entries == [
            (
                "cli:ann",
                "document.deploy",
                "document:ops/hello:1.0.0",
                {"source": "hello.yaml", "digest": record.digest},
            )
        ]
        assert [s.name for s in app.registry.workflows()] == ["ops/hello"]

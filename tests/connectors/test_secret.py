"""Secrets sealed at rest, the key file, redaction."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from opsloom.connectors import secret
from opsloom.connectors.secret import SecretBox
from opsloom.errors import SecretKeyError
from opsloom.model.redaction import Redactor


def test_key_file__created_once_with_mode_0600_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "opsloom.key"
    first = SecretBox.from_settings(None, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    token = first.seal({"token": "abc"})
    assert "abc" not in token
    assert SecretBox.from_settings(None, path).open(token) == {"token": "abc"}


def test_key_file__readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "opsloom.key"
    path.write_bytes(SecretBox.generate_key())
    os.chmod(path, 0o644)
    with pytest.raises(SecretKeyError, match="chmod 600"):
        SecretBox.from_settings(None, path)


def test_wrong_key__a_clear_error_not_garbage() -> None:
    token = SecretBox(SecretBox.generate_key()).seal({"token": "abc"})
    with pytest.raises(SecretKeyError, match="another key"):
        SecretBox(SecretBox.generate_key()).open(token, what="connection 'x'")


def test_bad_key_text() -> None:
    with pytest.raises(SecretKeyError, match="Fernet key"):
        SecretBox("not a key")


def test_redactor__values_keys_and_a_derived_basic_credential() -> None:
    # Connections mask their secrets with the same redactor as documents' $secrets.
    assert secret.Redactor is Redactor
    basic = base64.b64encode(b"AC123:hunter22").decode()
    redactor = Redactor(["hunter22", "ab"]).with_values([basic])
    value = {"msg": "pw hunter22", "hunter22": ["x", "Basic QUMxMjM6aHVudGVyMjI="], "n": 1}
    assert redactor.value(value) == {"msg": "pw ***", "***": ["x", "Basic ***"], "n": 1}
    assert redactor.text("ab stays: too short to mask") == "ab stays: too short to mask"

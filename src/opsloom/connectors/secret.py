"""Connection secrets: encrypted at rest, and redacted wherever they could surface.

Secrets are sealed with Fernet (AES-128-CBC with an HMAC-SHA256, from ``cryptography``) before
the store sees them. The key comes from ``OPSLOOM_SECRET_KEY`` (a Fernet key: 32 bytes,
url-safe base64) or, without it, from a key file created on first use with mode 0600, so a
copied database alone never reveals a token. Every process that reads connections (API,
workers) must use the same key: on PostgreSQL with several machines, set the variable.

:class:`~opsloom.model.redaction.Redactor` (re-exported here) masks the connection's secrets,
and the forms they travel in such as a Basic authorization credential, in any text or JSON value
before it leaves an action as output, error message or log line: the same redaction as the
``$secrets`` of documents.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import stat
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from opsloom.errors import SecretKeyError
from opsloom.model.redaction import MASK, Redactor

__all__ = ["MASK", "Redactor", "SecretBox"]


class SecretBox:
    """Seals and opens connection secrets with one key."""

    def __init__(self, key: bytes | str) -> None:
        try:
            self._fernet = Fernet(key)
            self._key = base64.urlsafe_b64decode(key)
        except (ValueError, TypeError):
            raise SecretKeyError(
                "the connection secret key is not a Fernet key (32 bytes, url-safe base64); "
                "make one with: python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'"
            ) from None

    @staticmethod
    def generate_key() -> bytes:
        """A new random key."""
        return Fernet.generate_key()

    @classmethod
    def from_settings(cls, key: str | None, key_file: Path) -> SecretBox:
        """The box of ``key`` when given, else of ``key_file`` (created, mode 0600, if absent).

        Raises:
            SecretKeyError: the file cannot be read or created, is readable by others, or does
                not hold a key.
        """
        if key:
            return cls(key.strip())
        return cls(_key_file(key_file))

    @classmethod
    def existing(cls, key: str | None, key_file: Path) -> SecretBox | None:
        """Like :meth:`from_settings`, but None instead of creating a key file that is absent."""
        if not key and not key_file.exists():
            return None
        return cls.from_settings(key, key_file)

    def derive(self, purpose: str) -> bytes:
        """A 32-byte key for another use of this key (HMAC-SHA256 of the purpose's name)."""
        return hmac.new(self._key, purpose.encode(), hashlib.sha256).digest()

    def seal(self, secrets: dict[str, str]) -> str:
        """The secrets as one token (empty mapping: empty string)."""
        if not secrets:
            return ""
        return self._fernet.encrypt(json.dumps(secrets, sort_keys=True).encode()).decode()

    def open(self, token: str, *, what: str = "a connection") -> dict[str, str]:
        """The secrets of a token made by :meth:`seal`.

        Raises:
            SecretKeyError: the token was sealed with another key (or was altered).
        """
        if not token:
            return {}
        try:
            data = json.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken:
            raise SecretKeyError(
                f"the secrets of {what} cannot be decrypted: they were sealed with another "
                "key (check OPSLOOM_SECRET_KEY / OPSLOOM_SECRET_KEY_FILE) or altered"
            ) from None
        return {str(k): str(v) for k, v in data.items()}


def _key_file(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    except OSError as exc:
        raise SecretKeyError(f"cannot create the secret key file {path}: {exc.strerror}") from None
    else:
        with os.fdopen(fd, "wb") as out:
            out.write(Fernet.generate_key() + b"\n")
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise SecretKeyError(
                f"the secret key file {path} is readable by others (mode {mode & 0o777:o}); "
                f"run: chmod 600 {path}"
            )
        key = path.read_bytes().strip()
    except OSError as exc:
        raise SecretKeyError(f"cannot read the secret key file {path}: {exc.strerror}") from None
    if not key:
        raise SecretKeyError(f"the secret key file {path} is empty")
    return key

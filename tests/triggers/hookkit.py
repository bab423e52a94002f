"""Helpers shared by the webhook source tests: payload fixtures, signing, corrupting."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

from opsloom.triggers.sources import HooksConfig, WebhookRequest

PAYLOADS = Path(__file__).parent / "payloads"


def payload(name: str) -> bytes:
    """A fixture's bytes, exactly as a sender would post them."""
    return (PAYLOADS / name).read_bytes()


def payload_json(name: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(payload(name))
    return value


def body(value: Any) -> bytes:
    return json.dumps(value).encode()


def hex_hmac(secret: str | bytes, message: bytes) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def b64_hmac(key: bytes, message: bytes) -> str:
    return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()


def flip(data: bytes, index: int = 0) -> bytes:
    """``data`` with one bit of one byte flipped."""
    changed = bytearray(data)
    changed[index] ^= 0x01
    return bytes(changed)


def request(data: bytes, headers: dict[str, str] | None = None) -> WebhookRequest:
    return WebhookRequest.build(data, headers or {})


def config(**sections: Any) -> HooksConfig:
    return HooksConfig.model_validate(sections)

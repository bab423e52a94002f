"""Per-source webhook credentials: which secrets, tokens and headers each source is checked with.

The settings come from a YAML or JSON file (``OPSLOOM_HOOKS_FILE``) and from
``OPSLOOM_HOOKS_*`` environment variables, which win over the file field by field. A list of
secrets is accepted everywhere one is, so a secret can be rotated without a gap: configure the
new one next to the old, switch the sender, then drop the old one. Values given in the
environment are comma-separated lists; put secrets that contain commas in the file.

A source without any credential accepts nothing: an unconfigured hook is closed, not open.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from opsloom.errors import ConfigurationError

ENV_PREFIX = "OPSLOOM_HOOKS_"
FILE_VARIABLE = "OPSLOOM_HOOKS_FILE"
GENERIC_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def _as_list(value: Any) -> Any:
    # One secret may be written alone; a list allows rotation.
    return [value] if isinstance(value, str) else value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BasicCredential(_Section):
    """A user name and password accepted in ``Authorization: Basic``."""

    username: str = Field(min_length=1)
    password: SecretStr


class CredentialHook(_Section):
    """Bearer tokens and basic credentials, as HTTP clients configured in a sender send them."""

    tokens: list[SecretStr] = Field(
        default_factory=list, description="Accepted `Authorization: Bearer` tokens."
    )
    basic: list[BasicCredential] = Field(
        default_factory=list, description="Accepted `Authorization: Basic` credentials."
    )

    _tokens = field_validator("tokens", mode="before")(_as_list)

    @property
    def has_credentials(self) -> bool:
        """Whether any token or basic credential is configured."""
        return bool(self.tokens or self.basic)


class AlertmanagerHook(CredentialHook):
    """Alertmanager: its receiver's ``http_config`` sends a bearer token or basic credentials."""


class SignedHook(_Section):
    """A source that signs its body with HMAC-SHA256 under a shared secret."""

    secrets: list[SecretStr] = Field(
        default_factory=list, description="Accepted signing secrets (several during rotation)."
    )

    _secrets = field_validator("secrets", mode="before")(_as_list)


class GitHubHook(SignedHook):
    """GitHub: the webhook's secret, signing ``X-Hub-Signature-256``."""


class SentryHook(SignedHook):
    """Sentry: the integration's client secret, signing ``Sentry-Hook-Signature``."""


class PagerDutyHook(SignedHook):
    """PagerDuty v3: the subscription's secret, signing ``X-PagerDuty-Signature``."""


class GrafanaHook(SignedHook, CredentialHook):
    """Grafana Alerting: the contact point's HMAC secret, or its basic/bearer credentials."""

    signature_header: str = "X-Grafana-Alerting-Signature"
    timestamp_header: str | None = Field(
        default="X-Grafana-Alerting-Signature-Timestamp",
        description="Header Grafana is configured to send the signing timestamp in.",
    )
    require_timestamp: bool = Field(
        default=False,
        description="Reject signed requests without a timestamp (no replay protection).",
    )


class DatadogHook(CredentialHook):
    """Datadog: a shared token in a custom header, or basic credentials (Datadog signs nothing)."""

    token_header: str = "X-Opsloom-Token"


class GenericHook(_Section):
    """A generic hook: a Standard Webhooks sender with its ``whsec_…`` secret(s)."""

    secrets: list[SecretStr] = Field(min_length=1)

    _secrets = field_validator("secrets", mode="before")(_as_list)

    @field_validator("secrets")
    @classmethod
    def _base64(cls, value: list[SecretStr]) -> list[SecretStr]:
        for secret in value:
            standard_key(secret.get_secret_value())
        return value

    def keys(self) -> list[bytes]:
        """The HMAC keys: each secret's base64 part, decoded."""
        return [standard_key(secret.get_secret_value()) for secret in self.secrets]


class HooksConfig(_Section):
    """Settings of every webhook source (``/hooks/<source>``)."""

    replay_window: float = Field(
        default=300.0, gt=0, description="Seconds a signed timestamp stays acceptable."
    )
    alertmanager: AlertmanagerHook = Field(default_factory=AlertmanagerHook)
    grafana: GrafanaHook = Field(default_factory=GrafanaHook)
    datadog: DatadogHook = Field(default_factory=DatadogHook)
    pagerduty: PagerDutyHook = Field(default_factory=PagerDutyHook)
    sentry: SentryHook = Field(default_factory=SentryHook)
    github: GitHubHook = Field(default_factory=GitHubHook)
    generic: dict[str, GenericHook] = Field(default_factory=dict)

    @field_validator("generic")
    @classmethod
    def _names(cls, value: dict[str, GenericHook]) -> dict[str, GenericHook]:
        for name in value:
            if not GENERIC_NAME.match(name):
                raise ValueError(
                    f"generic hook name {name!r} must be lower-case letters, digits, '-' or '_'"
                )
        return value

    def generic_hook(self, name: str) -> GenericHook | None:
        """The generic hook of that name (``-`` and ``_`` are interchangeable)."""
        return self.generic.get(name) or self.generic.get(name.replace("-", "_"))


def standard_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret (``whsec_`` + base64; the prefix is optional).

    Raises:
        ValueError: when the part after the prefix is not base64.
    """
    encoded = secret.removeprefix("whsec_")
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a Standard Webhooks secret is 'whsec_' followed by base64") from None
    if not key:
        raise ValueError("a Standard Webhooks secret must not be empty")
    return key


def load_hooks_config(
    file: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> HooksConfig:
    """Read the webhook settings from a file and the environment.

    Args:
        file: a YAML or JSON file shaped like :class:`HooksConfig`; default: the file named by
            ``OPSLOOM_HOOKS_FILE``, if any.
        environ: the variables to read (default: the process environment).

    Raises:
        ConfigurationError: the file cannot be read or a setting is invalid.
    """
    env = os.environ if environ is None else environ
    path = file if file is not None else env.get(FILE_VARIABLE) or None
    data: dict[str, Any] = _read_file(Path(path)) if path is not None else {}
    _apply_environment(data, env)
    try:
        return HooksConfig.model_validate(data)
    except ValidationError as exc:
        where = f" (from {path})" if path is not None else ""
        problems = "; ".join(
            ".".join(str(p) for p in error["loc"]) + f": {error['msg']}" for error in exc.errors()
        )
        raise ConfigurationError(f"invalid webhook settings{where}: {problems}") from None


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read the webhook settings file {path}: {exc}") from None
    try:
        if path.suffix.lower() == ".json":
            value = json.loads(text)
        else:
            from ruamel.yaml import YAML
            from ruamel.yaml.error import YAMLError

            try:
                value = YAML(typ="safe", pure=True).load(text)
            except YAMLError as exc:
                raise ValueError(str(exc)) from None
    except ValueError as exc:
        raise ConfigurationError(f"the webhook settings file {path} is not valid: {exc}") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigurationError(f"the webhook settings file {path} must hold a mapping")
    return value


# Environment variable suffix -> (section, field, kind); kind "list" splits on commas.
_VARIABLES: dict[str, tuple[str | None, str, str]] = {
    "REPLAY_WINDOW": (None, "replay_window", "text"),
    "GITHUB_SECRET": ("github", "secrets", "list"),
    "SENTRY_SECRET": ("sentry", "secrets", "list"),
    "PAGERDUTY_SECRET": ("pagerduty", "secrets", "list"),
    "GRAFANA_SECRET": ("grafana", "secrets", "list"),
    "GRAFANA_SIGNATURE_HEADER": ("grafana", "signature_header", "text"),
    "GRAFANA_TIMESTAMP_HEADER": ("grafana", "timestamp_header", "text"),
    "GRAFANA_REQUIRE_TIMESTAMP": ("grafana", "require_timestamp", "text"),
    "GRAFANA_TOKEN": ("grafana", "tokens", "list"),
    "ALERTMANAGER_TOKEN": ("alertmanager", "tokens", "list"),
    "DATADOG_TOKEN": ("datadog", "tokens", "list"),
    "DATADOG_TOKEN_HEADER": ("datadog", "token_header", "text"),
}
_BASIC_SECTIONS = ("alertmanager", "grafana", "datadog")


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _apply_environment(data: dict[str, Any], env: Mapping[str, str]) -> None:
    for suffix, (section, name, kind) in _VARIABLES.items():
        raw = env.get(ENV_PREFIX + suffix)
        if raw is None:
            continue
        target = data if section is None else _section(data, section)
        target[name] = _split(raw) if kind == "list" else raw.strip()
    for section in _BASIC_SECTIONS:
        user = env.get(f"{ENV_PREFIX}{section.upper()}_USERNAME")
        password = env.get(f"{ENV_PREFIX}{section.upper()}_PASSWORD")
        if user is not None or password is not None:
            _section(data, section)["basic"] = [
                {"username": user or "", "password": password or ""}
            ]
    generic_prefix = ENV_PREFIX + "GENERIC_"
    for variable, raw in env.items():
        if variable.startswith(generic_prefix) and variable.endswith("_SECRET"):
            name = variable[len(generic_prefix) : -len("_SECRET")].lower()
            if name:
                hooks = data.setdefault("generic", {})
                if not isinstance(hooks, dict):
                    raise ConfigurationError("webhook settings: 'generic' must be a mapping")
                hook = hooks.setdefault(name, {})
                if not isinstance(hook, dict):
                    raise ConfigurationError(f"webhook settings: generic.{name} must be a mapping")
                hook["secrets"] = _split(raw)


def _section(data: dict[str, Any], name: str) -> dict[str, Any]:
    section = data.setdefault(name, {})
    if not isinstance(section, dict):
        raise ConfigurationError(f"webhook settings: {name!r} must be a mapping")
    return section

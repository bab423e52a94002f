"""Per-source webhook credentials: which secrets, tokens and headers each source is checked with.

The settings come from a YAML or JSON file (``OPSLOOM_HOOKS_FILE``) and from
``OPSLOOM_HOOKS_*`` environment variables, which win over the file field by field. A list of
secrets is accepted everywhere one is, so a secret can be rotated without a gap: configure the
new one next to the old, switch the sender, then drop the old one. Values given in the
environment are comma-separated lists; put secrets that contain commas in the file.

Each registered source (:mod:`opsloom.extension`, group ``opsloom.sources``) owns one section,
shaped by its pydantic ``config`` model; the variables are derived from that model
(:func:`hook_variables`): ``OPSLOOM_HOOKS_<SOURCE>_<FIELD>``, where a field may name its
variable suffix with ``json_schema_extra={"env": "SECRET"}``, and a list of basic credentials
reads ``…_USERNAME`` and ``…_PASSWORD``.

A source without any credential accepts nothing: an unconfigured hook is closed, not open.
"""

from __future__ import annotations

import base64
import binascii
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from opsloom.errors import ConfigurationError
from opsloom.settings import read_settings_file

C = TypeVar("C", bound=BaseModel)

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
        default_factory=list,
        description="Accepted `Authorization: Bearer` tokens.",
        json_schema_extra={"env": "TOKEN"},
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
        default_factory=list,
        description="Accepted signing secrets (several during rotation).",
        json_schema_extra={"env": "SECRET"},
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


class HooksConfig(BaseModel):
    """Settings of every webhook source (``/hooks/<source>``).

    Besides ``replay_window`` and the ``generic`` hooks, each registered source has a section
    named after it (``config.github``), validated by the source's ``config`` model; read it
    typed with :meth:`section`. The sources are those of the validation context's ``sources``
    (a mapping of name to model) or else the installed ones. An unknown section is an error.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    replay_window: float = Field(
        default=300.0, gt=0, description="Seconds a signed timestamp stays acceptable."
    )
    generic: dict[str, GenericHook] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _sections(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, Mapping):
            return data
        context = info.context if isinstance(info.context, Mapping) else {}
        models: Mapping[str, type[BaseModel]] = context.get("sources") or installed_configs()
        fixed = {"replay_window", "generic"}
        unknown = sorted(str(key) for key in data if key not in fixed and key not in models)
        if unknown:
            known = ", ".join(sorted(models)) or "none"
            raise ValueError(f"no webhook source {unknown[0]!r} (sources: {known})")
        values = {key: data[key] for key in fixed if key in data}
        for name, model in models.items():
            values[name] = model.model_validate(data.get(name) or {})
        return values

    @field_validator("generic")
    @classmethod
    def _names(cls, value: dict[str, GenericHook]) -> dict[str, GenericHook]:
        for name in value:
            if not GENERIC_NAME.match(name):
                raise ValueError(
                    f"generic hook name {name!r} must be lower-case letters, digits, '-' or '_'"
                )
        return value

    def section(self, name: str, model: type[C]) -> C:
        """The settings of source ``name``, as its ``model`` (defaults when not configured)."""
        value = (self.__pydantic_extra__ or {}).get(name)
        if isinstance(value, model):
            return value
        return model.model_validate(value.model_dump() if isinstance(value, BaseModel) else {})

    def generic_hook(self, name: str) -> GenericHook | None:
        """The generic hook of that name (``-`` and ``_`` are interchangeable)."""
        return self.generic.get(name) or self.generic.get(name.replace("-", "_"))


def installed_configs() -> dict[str, type[BaseModel]]:
    """The ``config`` model of each installed webhook source, by name."""
    from opsloom.triggers.sources.registry import installed_sources

    sources, _ = installed_sources()
    return {name: source.config for name, source in sources.items()}


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
    file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    sources: Mapping[str, type[BaseModel]] | None = None,
) -> HooksConfig:
    """Read the webhook settings from a file and the environment.

    Args:
        file: a YAML or JSON file shaped like :class:`HooksConfig`; default: the file named by
            ``OPSLOOM_HOOKS_FILE``, if any.
        environ: the variables to read (default: the ``OPSLOOM_HOOKS_*`` variables of the
            process, read by :mod:`opsloom.settings`).
        sources: the ``config`` model of each webhook source by name (default: the installed
            sources).

    Raises:
        ConfigurationError: the file cannot be read or a setting is invalid.
    """
    if environ is None:
        from opsloom.settings import environment

        environ = environment(ENV_PREFIX)
    env = environ
    models = installed_configs() if sources is None else dict(sources)
    path = file if file is not None else env.get(FILE_VARIABLE) or None
    data = {} if path is None else read_settings_file(Path(path), "webhook settings")
    _apply_environment(data, env, models)
    try:
        return HooksConfig.model_validate(data, context={"sources": models})
    except ValidationError as exc:
        where = f" (from {path})" if path is not None else ""
        problems = "; ".join(
            ".".join(str(p) for p in error["loc"]) + f": {error['msg']}" for error in exc.errors()
        )
        raise ConfigurationError(f"invalid webhook settings{where}: {problems}") from None


@dataclass(frozen=True, slots=True)
class HookVariable:
    """One ``OPSLOOM_HOOKS_*`` environment variable, derived from a source's config model.

    Attributes:
        name: the variable, e.g. ``OPSLOOM_HOOKS_GITHUB_SECRET``.
        source: the section it sets (``None``: a setting of all sources).
        field: the field of that section.
        kind: ``list`` (comma-separated), ``text``, ``username`` or ``password``.
        description: the field's description.
    """

    name: str
    source: str | None
    field: str
    kind: str
    description: str


def hook_variables(sources: Mapping[str, type[BaseModel]] | None = None) -> list[HookVariable]:
    """Every webhook variable of ``sources`` (default: the installed ones), for reading and docs.

    ``OPSLOOM_HOOKS_FILE`` and ``OPSLOOM_HOOKS_GENERIC_<NAME>_SECRET`` come on top.
    """
    models = installed_configs() if sources is None else sources
    window = HooksConfig.model_fields["replay_window"]
    found = [
        HookVariable(
            ENV_PREFIX + "REPLAY_WINDOW", None, "replay_window", "text", window.description or ""
        )
    ]
    for source, model in sorted(models.items()):
        prefix = f"{ENV_PREFIX}{source.upper().replace('-', '_')}_"
        for name, info in model.model_fields.items():
            extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
            suffix = str(extra.get("env") or name.upper())
            description = info.description or ""
            if info.annotation == list[BasicCredential]:
                found.append(HookVariable(prefix + "USERNAME", source, name, "username", ""))
                found.append(HookVariable(prefix + "PASSWORD", source, name, "password", ""))
                continue
            kind = "list" if typing.get_origin(info.annotation) is list else "text"
            found.append(HookVariable(prefix + suffix, source, name, kind, description))
    return found


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _apply_environment(
    data: dict[str, Any], env: Mapping[str, str], models: Mapping[str, type[BaseModel]]
) -> None:
    basic: dict[tuple[str, str], dict[str, str]] = {}
    for variable in hook_variables(models):
        raw = env.get(variable.name)
        if raw is None:
            continue
        if variable.source is not None and variable.kind in ("username", "password"):
            basic.setdefault((variable.source, variable.field), {})[variable.kind] = raw
        else:
            target = data if variable.source is None else _section(data, variable.source)
            target[variable.field] = _split(raw) if variable.kind == "list" else raw.strip()
    for (source, name), pair in basic.items():
        _section(data, source)[name] = [
            {"username": pair.get("username", ""), "password": pair.get("password", "")}
        ]
    generic_prefix = ENV_PREFIX + "GENERIC_"
    for key, raw in env.items():
        if key.startswith(generic_prefix) and key.endswith("_SECRET"):
            name = key[len(generic_prefix) : -len("_SECRET")].lower()
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

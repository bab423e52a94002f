"""Webhook settings: environment variables, a YAML or JSON file, and their validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import SecretStr

from opsloom.errors import ConfigurationError
from opsloom.triggers.sources import load_hooks_config


def secrets(values: list[SecretStr]) -> list[str]:
    return [value.get_secret_value() for value in values]


def test_env__secrets_tokens_and_headers_per_source() -> None:
    config = load_hooks_config(
        environ={
            "OPSLOOM_HOOKS_GITHUB_SECRET": "new, old",
            "OPSLOOM_HOOKS_SENTRY_SECRET": "sentry-secret",
            "OPSLOOM_HOOKS_PAGERDUTY_SECRET": "pd",
            "OPSLOOM_HOOKS_GRAFANA_SECRET": "gf",
            "OPSLOOM_HOOKS_GRAFANA_SIGNATURE_HEADER": "X-Sig",
            "OPSLOOM_HOOKS_ALERTMANAGER_TOKEN": "am",
            "OPSLOOM_HOOKS_ALERTMANAGER_USERNAME": "alertmanager",
            "OPSLOOM_HOOKS_ALERTMANAGER_PASSWORD": "pw",
            "OPSLOOM_HOOKS_DATADOG_TOKEN": "dd",
            "OPSLOOM_HOOKS_GENERIC_DEPLOYS_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "OPSLOOM_HOOKS_REPLAY_WINDOW": "120",
        }
    )
    assert secrets(config.github.secrets) == ["new", "old"]
    assert secrets(config.sentry.secrets) == ["sentry-secret"]
    assert config.grafana.signature_header == "X-Sig"
    assert config.grafana.timestamp_header == "X-Grafana-Alerting-Signature-Timestamp"
    assert secrets(config.alertmanager.tokens) == ["am"]
    assert config.alertmanager.basic[0].username == "alertmanager"
    assert config.datadog.token_header == "X-Opsloom-Token"
    assert config.replay_window == 120
    hook = config.generic_hook("deploys")
    assert hook is not None and len(hook.keys()[0]) == 24


def test_defaults__every_source_is_closed_and_the_window_is_five_minutes() -> None:
    config = load_hooks_config(environ={})
    assert config.replay_window == 300
    assert not config.github.secrets and not config.alertmanager.has_credentials
    assert config.grafana.signature_header == "X-Grafana-Alerting-Signature"
    assert config.generic == {}


def test_file__yaml_settings_and_the_environment_wins(tmp_path: Path) -> None:
    path = tmp_path / "hooks.yaml"
    path.write_text(
        "github:\n"
        "  secrets: [from-file]\n"
        "sentry:\n"
        "  secrets: file-sentry\n"
        "generic:\n"
        "  build-events:\n"
        "    secrets: [whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw]\n",
        encoding="utf-8",
    )
    config = load_hooks_config(
        environ={"OPSLOOM_HOOKS_FILE": str(path), "OPSLOOM_HOOKS_GITHUB_SECRET": "from-env"}
    )
    assert secrets(config.github.secrets) == ["from-env"]
    assert secrets(config.sentry.secrets) == ["file-sentry"]
    assert config.generic_hook("build-events") is not None
    assert config.generic_hook("build_events") is None


def test_file__json_settings(tmp_path: Path) -> None:
    path = tmp_path / "hooks.json"
    path.write_text(json.dumps({"datadog": {"tokens": ["t"], "token_header": "X-T"}}))
    config = load_hooks_config(path, environ={})
    assert config.datadog.token_header == "X-T"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("github: [1, 2", "not valid"),
        ("- a list", "mapping"),
        ("githb:\n  secrets: [x]\n", "githb"),
        ("replay_window: -1\n", "replay_window"),
        ("generic:\n  Bad Name:\n    secrets: [whsec_AAAA]\n", "Bad Name"),
    ],
)
def test_file__invalid_settings_are_a_configuration_error(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "hooks.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigurationError, match=message):
        load_hooks_config(path, environ={})


def test_file__a_missing_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_hooks_config(tmp_path / "absent.yaml", environ={})

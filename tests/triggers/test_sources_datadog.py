"""Datadog: custom-header token or basic credentials, and the documented payload template."""

from __future__ import annotations

import base64
import copy

import pytest
from hookkit import body, config, payload, payload_json, request

from opsloom.triggers.sources import HooksConfig, WebhookAuthError, WebhookPayloadError
from opsloom.triggers.sources.datadog import DatadogSource

SOURCE = DatadogSource()
TOKEN = "dd-shared-token-91b2"
CONFIG = config(datadog={"tokens": [TOKEN]})
BODY = payload("datadog.json")


def reason(headers: dict[str, str], settings: HooksConfig = CONFIG) -> str:
    with pytest.raises(WebhookAuthError) as caught:
        SOURCE.verify(request(BODY, headers), settings, 0.0)
    return caught.value.reason


def test_verify__the_token_header_is_accepted() -> None:
    SOURCE.verify(request(BODY, {"X-Opsloom-Token": TOKEN}), CONFIG, 0.0)


def test_verify__a_custom_token_header_name() -> None:
    custom = config(datadog={"tokens": [TOKEN], "token_header": "X-Datadog-Hook"})
    SOURCE.verify(request(BODY, {"X-Datadog-Hook": TOKEN}), custom, 0.0)
    assert reason({"X-Opsloom-Token": TOKEN}, custom) == "missing_credentials"


def test_verify__wrong_or_missing_token_is_rejected() -> None:
    assert reason({"X-Opsloom-Token": TOKEN + "x"}) == "bad_credentials"
    assert reason({}) == "missing_credentials"


def test_verify__basic_credentials() -> None:
    settings = config(datadog={"basic": [{"username": "dd", "password": "pw"}]})
    good = "Basic " + base64.b64encode(b"dd:pw").decode()
    SOURCE.verify(request(BODY, {"Authorization": good}), settings, 0.0)
    bad = "Basic " + base64.b64encode(b"dd:nope").decode()
    assert reason({"Authorization": bad}, settings) == "bad_credentials"


def test_verify__an_unconfigured_source_accepts_nothing() -> None:
    assert reason({"X-Opsloom-Token": TOKEN}, config()) == "not_configured"


def test_normalise__a_triggered_monitor_fires() -> None:
    [event] = SOURCE.normalise(request(BODY))
    assert event.type == "io.opsloom.alert.firing.v1"
    assert event.source == "/hooks/datadog"
    assert event.subject == "9bd4ac313a4d1e8fae2482df7b77628"
    assert event.time == "2024-05-06T13:08:45.000000Z"
    data = event.data
    assert data["severity"] == "high"  # P2
    assert data["labels"]["env"] == "prod"
    assert data["labels"]["monitor"] == ""
    assert data["labels"]["host"] == "web-1"
    assert data["summary"] == "[Triggered on {host:web-1}] Load is high"
    assert data["links"] == [
        {"rel": "monitor", "href": "https://app.datadoghq.com/event/event?id=7409215284539834185"}
    ]


def test_normalise__a_recovered_monitor_resolves_the_same_fingerprint() -> None:
    value = copy.deepcopy(payload_json("datadog.json"))
    value.update(id="7409215284539834999", transition="Recovered", alert_type="success")
    [firing] = SOURCE.normalise(request(BODY))
    [resolved] = SOURCE.normalise(request(body(value)))
    assert resolved.type == "io.opsloom.alert.resolved.v1"
    assert resolved.subject == firing.subject
    assert resolved.data["endsAt"] == resolved.time
    assert resolved.id != firing.id


def test_normalise__a_retried_notification_keeps_its_id() -> None:
    assert SOURCE.normalise(request(BODY))[0].id == SOURCE.normalise(request(BODY))[0].id


def test_normalise__warn_without_priority_is_a_warning() -> None:
    value = copy.deepcopy(payload_json("datadog.json"))
    value.update(transition="Warn", priority="", alert_type="warning")
    [event] = SOURCE.normalise(request(body(value)))
    assert event.data["severity"] == "warning"


@pytest.mark.parametrize("missing", ["id", "transition"])
def test_normalise__a_template_without_required_members_names_them(missing: str) -> None:
    value = payload_json("datadog.json")
    del value[missing]
    with pytest.raises(WebhookPayloadError, match=f"'{missing}'"):
        SOURCE.normalise(request(body(value)))


def test_normalise__a_bad_date_names_the_field() -> None:
    value = payload_json("datadog.json")
    value["date"] = "soon"
    with pytest.raises(WebhookPayloadError) as caught:
        SOURCE.normalise(request(body(value)))
    assert caught.value.field == "date"

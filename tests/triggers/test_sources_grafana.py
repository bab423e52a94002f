"""Grafana Alerting: HMAC with a configurable header, the optional timestamp, alert links."""

from __future__ import annotations

import base64
import copy

import pytest
from hookkit import body, config, flip, hex_hmac, payload, payload_json, request

from opsloom.triggers.sources import HooksConfig, WebhookAuthError
from opsloom.triggers.sources.grafana import GrafanaSource

SECRET = "grafana-contact-point-secret"
SOURCE = GrafanaSource()
CONFIG = config(grafana={"secrets": [SECRET]})
BODY = payload("grafana.json")
NOW = 1_728_720_000.0


def signed(
    data: bytes, at: float | None = None, header: str = "X-Grafana-Alerting-Signature"
) -> dict[str, str]:
    if at is None:
        return {header: hex_hmac(SECRET, data)}
    stamp = str(int(at))
    return {
        header: hex_hmac(SECRET, stamp.encode() + b":" + data),
        "X-Grafana-Alerting-Signature-Timestamp": stamp,
    }


def reason(data: bytes, headers: dict[str, str], settings: HooksConfig = CONFIG) -> str:
    with pytest.raises(WebhookAuthError) as caught:
        SOURCE.verify(request(data, headers), settings, NOW)
    return caught.value.reason


def test_verify__body_signature_without_timestamp_is_accepted() -> None:
    SOURCE.verify(request(BODY, signed(BODY)), CONFIG, NOW)


def test_verify__timestamped_signature_covers_timestamp_and_body() -> None:
    SOURCE.verify(request(BODY, signed(BODY, at=NOW - 10)), CONFIG, NOW)


def test_verify__a_timestamp_that_was_not_signed_is_rejected() -> None:
    headers = {**signed(BODY), "X-Grafana-Alerting-Signature-Timestamp": str(int(NOW))}
    assert reason(BODY, headers) == "bad_signature"


def test_verify__stale_timestamp_is_rejected() -> None:
    assert reason(BODY, signed(BODY, at=NOW - 3600)) == "stale_timestamp"


def test_verify__required_timestamp_missing_is_rejected() -> None:
    strict = config(grafana={"secrets": [SECRET], "require_timestamp": True})
    assert reason(BODY, signed(BODY), strict) == "missing_timestamp"


def test_verify__flipped_byte_wrong_secret_and_missing_header_are_rejected() -> None:
    assert reason(flip(BODY, 5), signed(BODY)) == "bad_signature"
    other = config(grafana={"secrets": ["not-it"]})
    assert reason(BODY, signed(BODY), other) == "bad_signature"
    assert reason(BODY, {}) == "missing_signature"


def test_verify__the_signature_header_name_is_configurable() -> None:
    custom = config(grafana={"secrets": [SECRET], "signature_header": "X-Signature"})
    SOURCE.verify(request(BODY, signed(BODY, header="X-Signature")), custom, NOW)
    assert reason(BODY, signed(BODY), custom) == "missing_signature"


def test_verify__basic_credentials_instead_of_a_secret() -> None:
    basic = config(grafana={"basic": [{"username": "grafana", "password": "s3cret"}]})
    good = "Basic " + base64.b64encode(b"grafana:s3cret").decode()
    SOURCE.verify(request(BODY, {"Authorization": good}), basic, NOW)
    bad = "Basic " + base64.b64encode(b"grafana:guess").decode()
    assert reason(BODY, {"Authorization": bad}, basic) == "bad_credentials"


def test_verify__an_unconfigured_source_accepts_nothing() -> None:
    assert reason(BODY, signed(BODY), config()) == "not_configured"


def test_normalise__one_event_per_alert_with_grafana_links() -> None:
    first, second = SOURCE.normalise(request(BODY))
    assert first.source == "/hooks/grafana"
    assert first.type == "io.opsloom.alert.firing.v1"
    assert first.subject == "c6eadffa33fcdf37"
    assert first.time == "2024-10-12T09:51:03.157076+02:00"
    assert first.data["endsAt"] is None
    assert first.data["severity"] == "warning"  # no severity label
    rels = [link["rel"] for link in first.data["links"]]
    assert rels == ["source", "silence", "dashboard", "panel", "grafana"]
    assert first.data["raw"] == payload_json("grafana.json")["alerts"][0]
    assert second.data["severity"] == "critical"  # severity "page"
    # Empty dashboard and panel URLs are left out.
    assert [link["rel"] for link in second.data["links"]] == ["source", "silence", "grafana"]


def test_normalise__a_resolved_alert_has_its_own_id() -> None:
    value = copy.deepcopy(payload_json("grafana.json"))
    value["alerts"][0]["status"] = "resolved"
    value["alerts"][0]["endsAt"] = "2024-10-12T10:01:03.157076+02:00"
    firing = SOURCE.normalise(request(BODY))[0]
    resolved = SOURCE.normalise(request(body(value)))[0]
    assert resolved.type == "io.opsloom.alert.resolved.v1"
    assert resolved.subject == firing.subject
    assert resolved.id != firing.id

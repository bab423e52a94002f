"""Sentry: ``Sentry-Hook-Signature``, the timestamp window, alerts and issue events."""

from __future__ import annotations

import copy
import hashlib

import pytest
from hookkit import body, config, flip, hex_hmac, payload, payload_json, request

from opsloom.triggers.sources import HooksConfig, WebhookAuthError, WebhookPayloadError
from opsloom.triggers.sources.sentry import SentrySource

SECRET = "b5f3c4ad1e6f4b8a9c0d2e1f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b"
SOURCE = SentrySource()
CONFIG = config(sentry={"secrets": [SECRET]})
NOW = 1_715_004_000.0


def headers(data: bytes, resource: str, secret: str = SECRET, at: float = NOW) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "Request-ID": "c1e7ab5c-95b4-4a9d-8f0e-5a0b7c3d2e1f",
        "Sentry-Hook-Resource": resource,
        "Sentry-Hook-Timestamp": str(int(at)),
        "Sentry-Hook-Signature": hex_hmac(secret, data),
    }


def reason(data: bytes, hdrs: dict[str, str], settings: HooksConfig = CONFIG) -> str:
    with pytest.raises(WebhookAuthError) as caught:
        SOURCE.verify(request(data, hdrs), settings, NOW)
    return caught.value.reason


BODY = payload("sentry_metric_alert.json")


def test_verify__body_signed_with_the_client_secret_is_accepted() -> None:
    SOURCE.verify(request(BODY, headers(BODY, "metric_alert")), CONFIG, NOW)


def test_verify__without_a_timestamp_the_signature_still_decides() -> None:
    hdrs = headers(BODY, "metric_alert")
    del hdrs["Sentry-Hook-Timestamp"]
    SOURCE.verify(request(BODY, hdrs), CONFIG, NOW)


def test_verify__flipped_byte_wrong_secret_missing_header_are_rejected() -> None:
    assert reason(flip(BODY, 3), headers(BODY, "metric_alert")) == "bad_signature"
    assert reason(BODY, headers(BODY, "metric_alert", secret="another")) == "bad_signature"
    hdrs = headers(BODY, "metric_alert")
    del hdrs["Sentry-Hook-Signature"]
    assert reason(BODY, hdrs) == "missing_signature"


def test_verify__a_stale_timestamp_is_rejected() -> None:
    assert reason(BODY, headers(BODY, "metric_alert", at=NOW - 301)) == "stale_timestamp"


def test_verify__an_unconfigured_source_accepts_nothing() -> None:
    assert reason(BODY, headers(BODY, "metric_alert"), config()) == "not_configured"


def test_normalise__a_critical_metric_alert_fires() -> None:
    [event] = SOURCE.normalise(request(BODY, headers(BODY, "metric_alert")))
    assert event.type == "io.opsloom.alert.firing.v1"
    assert event.subject == "metric_alert-53"
    assert event.time == "2024-05-06T14:00:00.000000Z"
    data = event.data
    assert data["severity"] == "critical"
    assert data["labels"]["alert_rule"] == "Too many errors"
    assert data["annotations"]["title"] == "Critical: Too many errors"
    assert data["links"][0]["rel"] == "alert"


def test_normalise__a_resolved_metric_alert_resolves_the_same_fingerprint() -> None:
    value = copy.deepcopy(payload_json("sentry_metric_alert.json"))
    value["action"] = "resolved"
    value["data"]["metric_alert"]["date_closed"] = "2024-05-06T14:20:00.000000Z"
    data = body(value)
    [event] = SOURCE.normalise(request(data, headers(data, "metric_alert")))
    assert event.type == "io.opsloom.alert.resolved.v1"
    assert event.subject == "metric_alert-53"
    assert event.time == "2024-05-06T14:20:00.000000Z"


def test_normalise__an_event_alert_fires_for_its_issue() -> None:
    data = payload("sentry_event_alert.json")
    [event] = SOURCE.normalise(request(data, headers(data, "event_alert")))
    assert event.type == "io.opsloom.alert.firing.v1"
    assert event.subject == "issue-1170820242"
    assert event.data["severity"] == "high"  # level error
    assert event.data["labels"]["environment"] == "production"
    assert event.data["labels"]["alert_rule"] == "Send a notification for new issues"
    assert {link["rel"] for link in event.data["links"]} == {"event", "issue"}


def test_normalise__an_issue_event_is_identified_by_its_signed_body() -> None:
    data = payload("sentry_issue.json")
    [event] = SOURCE.normalise(request(data, headers(data, "issue")))
    assert event.type == "io.opsloom.sentry.issue.resolved.v1"
    assert event.id == hashlib.sha256(data).hexdigest()[:32]
    assert event.data["delivery"] == "c1e7ab5c-95b4-4a9d-8f0e-5a0b7c3d2e1f"
    assert event.subject == "1170820242"
    assert event.data["raw"] == payload_json("sentry_issue.json")


@pytest.mark.parametrize("resource", ["metric_alert", "event_alert", "issue"])
def test_normalise__a_replay_under_another_request_id_and_time_is_the_same_event(
    resource: str,
) -> None:
    data = payload(f"sentry_{resource}.json")
    original = headers(data, resource)
    replay = {**headers(data, resource, at=NOW + 60), "Request-ID": "forged-delivery"}
    [first] = SOURCE.normalise(request(data, original))
    [again] = SOURCE.normalise(request(data, replay))
    assert first.id == again.id
    changed = data.replace(b'"data"', b'"installation": {"uuid": "another"}, "data"', 1)
    [different] = SOURCE.normalise(request(changed, headers(changed, resource)))
    assert different.id != first.id


def test_normalise__missing_resource_header_or_action_names_it() -> None:
    hdrs = headers(BODY, "metric_alert")
    del hdrs["Sentry-Hook-Resource"]
    with pytest.raises(WebhookPayloadError, match="Sentry-Hook-Resource"):
        SOURCE.normalise(request(BODY, hdrs))
    data = body({"data": {}})
    with pytest.raises(WebhookPayloadError, match="'action'"):
        SOURCE.normalise(request(data, headers(data, "issue")))


def test_normalise__a_metric_alert_without_its_incident_names_the_field() -> None:
    data = body({"action": "critical", "data": {}})
    with pytest.raises(WebhookPayloadError, match=r"data\.metric_alert"):
        SOURCE.normalise(request(data, headers(data, "metric_alert")))

"""PagerDuty v3: ``X-PagerDuty-Signature`` with several signatures, incidents as alerts."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hookkit import body, config, flip, hex_hmac, payload, payload_json, request

from opsloom.triggers.sources import HooksConfig, WebhookAuthError, WebhookPayloadError
from opsloom.triggers.sources.pagerduty import PagerDutySource

SECRET = "pd-signing-secret-2f9a"
OLD_SECRET = "pd-signing-secret-old"
SOURCE = PagerDutySource()
CONFIG = config(pagerduty={"secrets": [SECRET]})
BODY = payload("pagerduty_incident_triggered.json")


# PagerDuty's Go client library (go-pagerduty, package webhookv3) tests its verifier with this
# secret, body (payloads/pagerduty_vector.json, byte for byte) and signatures.
VECTOR_SECRET = "lDQHScfUeXUKaQRNF+8XIiDKZ7XX3itBAYzwU0TARw8lJqRnkKl2iB1anSb0Z+IK"
VECTOR_BODY = payload("pagerduty_vector.json")
VECTOR_VALID = "v1=0c0b9495b893a39e70d1fea2fe11fbe0a825f88b9f67846f6cc07dd2bc5476cd"
VECTOR_MISMATCH = "v1=7020c8a7ec668a9b7012bc3dd82e483394b038f4230acc6785efbf2a7d8bcaf5"
VECTOR_CONFIG = config(pagerduty={"secrets": [VECTOR_SECRET]})


def test_verify__published_vector_is_accepted() -> None:
    SOURCE.verify(request(VECTOR_BODY, {"X-PagerDuty-Signature": VECTOR_VALID}), VECTOR_CONFIG, 0.0)


def test_verify__published_mismatch_is_rejected() -> None:
    header = {"X-PagerDuty-Signature": VECTOR_MISMATCH}
    assert reason(VECTOR_BODY, header, VECTOR_CONFIG) == "bad_signature"


def test_verify__published_vector_among_several_signatures_is_accepted() -> None:
    header = {"X-PagerDuty-Signature": f"{VECTOR_MISMATCH},{VECTOR_VALID}"}
    SOURCE.verify(request(VECTOR_BODY, header), VECTOR_CONFIG, 0.0)


def test_verify__published_vector_with_a_flipped_byte_is_rejected() -> None:
    header = {"X-PagerDuty-Signature": VECTOR_VALID}
    assert reason(flip(VECTOR_BODY, 100), header, VECTOR_CONFIG) == "bad_signature"


def test_normalise__published_vector_is_a_priority_update() -> None:
    [event] = SOURCE.normalise(request(VECTOR_BODY))
    assert event.type == "io.opsloom.pagerduty.incident.priority_updated.v1"
    assert event.id == "01BWDWL3NYY7LUFPZCC28QUCMK"
    assert event.subject == "PGR0VU2"


def signed(data: bytes, *secrets: str) -> dict[str, str]:
    return {"X-PagerDuty-Signature": ",".join(f"v1={hex_hmac(s, data)}" for s in secrets)}


def reason(data: bytes, headers: dict[str, str], settings: HooksConfig = CONFIG) -> str:
    with pytest.raises(WebhookAuthError) as caught:
        SOURCE.verify(request(data, headers), settings, 0.0)
    return caught.value.reason


def test_verify__one_signature_under_the_secret_is_accepted() -> None:
    SOURCE.verify(request(BODY, signed(BODY, SECRET)), CONFIG, 0.0)


def test_verify__several_signatures_with_one_valid_are_accepted() -> None:
    # During a rotation PagerDuty signs with every active secret, old and new.
    SOURCE.verify(request(BODY, signed(BODY, OLD_SECRET, SECRET)), CONFIG, 0.0)
    SOURCE.verify(request(BODY, signed(BODY, SECRET, OLD_SECRET)), CONFIG, 0.0)


def test_verify__unknown_schemes_and_undecodable_entries_are_skipped() -> None:
    header = f"v2=abc, v1=nothex, v1={hex_hmac(SECRET, BODY)}"
    SOURCE.verify(request(BODY, {"X-PagerDuty-Signature": header}), CONFIG, 0.0)


def test_verify__several_signatures_none_valid_are_rejected() -> None:
    assert reason(BODY, signed(BODY, OLD_SECRET, "another")) == "bad_signature"


def test_verify__a_flipped_body_byte_is_rejected() -> None:
    assert reason(flip(BODY, 40), signed(BODY, SECRET)) == "bad_signature"


def test_verify__missing_or_malformed_header_is_rejected() -> None:
    assert reason(BODY, {}) == "missing_signature"
    assert reason(BODY, {"X-PagerDuty-Signature": hex_hmac(SECRET, BODY)}) == "malformed_signature"


def test_verify__an_unconfigured_source_accepts_nothing() -> None:
    assert reason(BODY, signed(BODY, SECRET), config()) == "not_configured"


def with_event(event_type: str, **incident: Any) -> bytes:
    value = copy.deepcopy(payload_json("pagerduty_incident_triggered.json"))
    value["event"]["event_type"] = event_type
    value["event"]["data"].update(incident)
    return body(value)


def test_normalise__a_triggered_incident_is_a_firing_alert() -> None:
    [event] = SOURCE.normalise(request(BODY))
    assert event.type == "io.opsloom.alert.firing.v1"
    assert event.id == "5ac64822-4adc-4fda-ade0-410becf0de4f"
    assert event.subject == "PGR0VU2"
    assert event.time == "2024-05-06T14:00:00.000Z"
    data = event.data
    assert data["fingerprint"] == "PGR0VU2"
    assert data["severity"] == "critical"  # priority P1
    assert data["labels"]["service"] == "checkout"
    assert data["summary"] == "Checkout is failing"
    assert data["links"] == [
        {"rel": "incident", "href": "https://acme.pagerduty.com/incidents/PGR0VU2"}
    ]
    assert data["raw"] == payload_json("pagerduty_incident_triggered.json")


@pytest.mark.parametrize(
    ("event_type", "kind"),
    [
        ("incident.acknowledged", "io.opsloom.alert.acknowledged.v1"),
        ("incident.resolved", "io.opsloom.alert.resolved.v1"),
        ("incident.reopened", "io.opsloom.alert.firing.v1"),
        ("incident.annotated", "io.opsloom.pagerduty.incident.annotated.v1"),
        ("incident.priority_updated", "io.opsloom.pagerduty.incident.priority_updated.v1"),
    ],
)
def test_normalise__incident_lifecycle_maps_to_alert_status(event_type: str, kind: str) -> None:
    [event] = SOURCE.normalise(request(with_event(event_type)))
    assert event.type == kind
    assert event.subject == "PGR0VU2"


def test_normalise__a_resolved_incident_ends_when_it_occurred() -> None:
    [event] = SOURCE.normalise(request(with_event("incident.resolved", status="resolved")))
    assert event.data["status"] == "resolved"
    assert event.data["endsAt"] == "2024-05-06T14:00:00.000Z"


@pytest.mark.parametrize(("urgency", "severity"), [("high", "high"), ("low", "warning")])
def test_normalise__without_priority_urgency_gives_severity(urgency: str, severity: str) -> None:
    data = with_event("incident.triggered", priority=None, urgency=urgency)
    [event] = SOURCE.normalise(request(data))
    assert event.data["severity"] == severity


def test_normalise__missing_event_type_names_the_field() -> None:
    value = payload_json("pagerduty_incident_triggered.json")
    del value["event"]["event_type"]
    with pytest.raises(WebhookPayloadError, match=r"event\.event_type"):
        SOURCE.normalise(request(body(value)))

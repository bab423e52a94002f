"""Alertmanager: bearer/basic credentials and version 4 notifications, one event per alert."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest
from hookkit import body, config, payload, payload_json, request

from opsloom.triggers.sources import HooksConfig, WebhookAuthError, WebhookPayloadError
from opsloom.triggers.sources.alertmanager import AlertmanagerSource
from opsloom.triggers.sources.event import label_fingerprint, severity_of

SOURCE = AlertmanagerSource()
TOKEN = "am-token-7c1d"
CONFIG = config(
    alertmanager={"tokens": [TOKEN], "basic": [{"username": "alertmanager", "password": "pw"}]}
)
BODY = payload("alertmanager_v4.json")


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def reason(headers: dict[str, str], settings: HooksConfig = CONFIG) -> str:
    with pytest.raises(WebhookAuthError) as caught:
        SOURCE.verify(request(BODY, headers), settings, 0.0)
    return caught.value.reason


def test_verify__bearer_token_from_http_config_is_accepted() -> None:
    SOURCE.verify(request(BODY, {"Authorization": f"Bearer {TOKEN}"}), CONFIG, 0.0)
    SOURCE.verify(request(BODY, {"authorization": f"bearer {TOKEN}"}), CONFIG, 0.0)


def test_verify__basic_auth_from_http_config_is_accepted() -> None:
    SOURCE.verify(request(BODY, {"Authorization": basic("alertmanager", "pw")}), CONFIG, 0.0)


@pytest.mark.parametrize(
    "authorization",
    [
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN[:-1]}",
        "Bearer ",
        "Basic " + base64.b64encode(b"alertmanager:PW").decode(),
        "Basic " + base64.b64encode(b"someone:pw").decode(),
        "Basic !!!",
        f"Token {TOKEN}",
    ],
)
def test_verify__wrong_credentials_are_rejected(authorization: str) -> None:
    assert reason({"Authorization": authorization}) == "bad_credentials"


def test_verify__missing_authorization_is_rejected() -> None:
    assert reason({}) == "missing_credentials"


def test_verify__an_unconfigured_source_accepts_nothing() -> None:
    assert reason({"Authorization": f"Bearer {TOKEN}"}, config()) == "not_configured"


def test_verify__an_unconfigured_source_says_what_to_configure() -> None:
    with pytest.raises(WebhookAuthError) as caught:
        SOURCE.verify(request(BODY, {"Authorization": f"Bearer {TOKEN}"}), config(), 0.0)
    assert str(caught.value) == (
        "webhook source 'alertmanager' has no bearer token or basic credentials configured, "
        "so it accepts no request (see docs/howto/webhooks.md)"
    )


def test_normalise__one_event_per_alert_by_status() -> None:
    firing, resolved = SOURCE.normalise(request(BODY))
    assert firing.type == "io.opsloom.alert.firing.v1"
    assert firing.source == "/hooks/alertmanager"
    assert firing.subject == "1a30ba71cca2921f"
    assert firing.time == "2024-05-06T13:08:45.828Z"
    data: dict[str, Any] = firing.data
    assert data["status"] == "firing"
    assert data["severity"] == "critical"
    assert data["endsAt"] is None
    assert data["summary"] == "Probe failing: https://shop.example.org"
    assert data["labels"]["instance"] == "https://shop.example.org"
    assert data["annotations"] == payload_json("alertmanager_v4.json")["alerts"][0]["annotations"]
    assert [link["rel"] for link in data["links"]] == ["source", "alertmanager"]
    assert data["raw"] == payload_json("alertmanager_v4.json")["alerts"][0]
    assert resolved.type == "io.opsloom.alert.resolved.v1"
    assert resolved.time == "2024-05-06T13:01:03.157076876+02:00"
    assert resolved.data["severity"] == "warning"


def test_normalise__a_repeated_notification_has_the_same_ids() -> None:
    first = [event.id for event in SOURCE.normalise(request(BODY))]
    again = [
        event.id for event in SOURCE.normalise(request(body(payload_json("alertmanager_v4.json"))))
    ]
    assert first == again
    assert len(set(first)) == 2


def test_normalise__a_new_firing_of_the_same_alert_has_a_new_id() -> None:
    value = copy.deepcopy(payload_json("alertmanager_v4.json"))
    value["alerts"][0]["startsAt"] = "2024-05-07T08:00:00Z"
    before = SOURCE.normalise(request(BODY))[0]
    after = SOURCE.normalise(request(body(value)))[0]
    assert after.subject == before.subject
    assert after.id != before.id


def test_normalise__without_fingerprint_it_is_computed_from_sorted_labels() -> None:
    value = copy.deepcopy(payload_json("alertmanager_v4.json"))
    alert = value["alerts"][0]
    del alert["fingerprint"]
    [event, _] = SOURCE.normalise(request(body(value)))
    alert["labels"] = dict(reversed(list(alert["labels"].items())))
    [reordered, _] = SOURCE.normalise(request(body(value)))
    assert event.subject == reordered.subject == label_fingerprint(alert["labels"])
    alert["labels"]["instance"] = "https://other.example.org"
    [changed, _] = SOURCE.normalise(request(body(value)))
    assert changed.subject != event.subject


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda v: v.pop("alerts"), "alerts"),
        (lambda v: v["alerts"].append("nope"), "alerts[2]"),
        (lambda v: v["alerts"][1].update(labels=["a"]), "alerts[1].labels"),
        (lambda v: v["alerts"][0].update(startsAt="yesterday"), "alerts[0].startsAt"),
        (lambda v: v["alerts"][0].update(status="pending"), "alerts[0].status"),
        (lambda v: v["alerts"][0].update(status=["firing"]), "alerts[0].status"),
        (
            lambda v: v["alerts"][1].update(annotations={"summary": {}}),
            "alerts[1].annotations.summary",
        ),
        (lambda v: v["alerts"][0].update(fingerprint=["x"]), "alerts[0].fingerprint"),
        (lambda v: v["alerts"][0].update(startsAt={"t": 1}), "alerts[0].startsAt"),
        (lambda v: v["alerts"][1].update(endsAt=[]), "alerts[1].endsAt"),
    ],
)
def test_normalise__a_malformed_payload_names_the_field(mutate: Any, field: str) -> None:
    value = copy.deepcopy(payload_json("alertmanager_v4.json"))
    mutate(value)
    with pytest.raises(WebhookPayloadError) as caught:
        SOURCE.normalise(request(body(value)))
    assert caught.value.field == field
    assert field in str(caught.value)


def test_normalise__without_alerts_the_error_says_what_is_expected() -> None:
    with pytest.raises(WebhookPayloadError) as caught:
        SOURCE.normalise(request(body({"status": "firing", "alerts": {"0": {}}})))
    assert str(caught.value) == "field 'alerts' is missing or not an array of alerts"


@pytest.mark.parametrize("group_status", [None, 5])
def test_normalise__an_alert_without_status_needs_the_groups(group_status: Any) -> None:
    # Without a status of its own, an alert takes its group's; with neither (or a group
    # status that is not text) nothing tells whether it fires or resolves.
    value = copy.deepcopy(payload_json("alertmanager_v4.json"))
    value["status"] = group_status
    del value["alerts"][1]["status"]
    with pytest.raises(WebhookPayloadError) as caught:
        SOURCE.normalise(request(body(value)))
    assert caught.value.field == "alerts[1].status"
    assert str(caught.value) == "field 'alerts[1].status' is missing"


@pytest.mark.parametrize("external", ["", None, 9093])
def test_normalise__without_an_alertmanager_url_only_the_generator_is_linked(
    external: Any,
) -> None:
    value = copy.deepcopy(payload_json("alertmanager_v4.json"))
    value["externalURL"] = external
    firing, _ = SOURCE.normalise(request(body(value)))
    assert firing.data["links"] == [
        {"rel": "source", "href": value["alerts"][0]["generatorURL"]},
    ]


def test_normalise__a_body_that_is_not_json_is_a_payload_error() -> None:
    with pytest.raises(WebhookPayloadError, match="not valid JSON"):
        SOURCE.normalise(request(b"{not json"))


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (("critical",), "critical"),
        (("P1",), "critical"),
        (("page",), "critical"),
        (("error",), "high"),
        (("SEV-2",), "high"),
        (("warn",), "warning"),
        (("P3",), "warning"),
        (("info",), "info"),
        (("low",), "info"),
        (("bogus", "high"), "high"),
        ((None, ""), "warning"),
    ],
)
def test_severity__normalised_to_four_levels(values: tuple[str | None, ...], expected: str) -> None:
    assert severity_of(*values) == expected


def test_normalise__fallbacks_group_status_priority_severity_alertname_summary_and_links() -> None:
    # No status, severity or summary on the alert: the group's status, the `priority` label
    # and the alert name stand in; the generator and the Alertmanager URLs become links.
    raw = {
        "labels": {"alertname": "DiskFull", "priority": "P1"},
        "generatorURL": "http://prom/graph?g0",
        "fingerprint": "ab12",
    }
    notification = {"status": "resolved", "externalURL": "http://am:9093", "alerts": [raw]}
    [event] = SOURCE.normalise(request(body(notification)))
    found = event.to_dict()
    assert len(found.pop("id")) == 32
    assert found == {
        "specversion": "1.0",
        "source": "/hooks/alertmanager",
        "type": "io.opsloom.alert.resolved.v1",
        "subject": "ab12",
        "datacontenttype": "application/json",
        "data": {
            "source": "/hooks/alertmanager",
            "fingerprint": "ab12",
            "status": "resolved",
            "severity": "critical",
            "summary": "DiskFull",
            "labels": {"alertname": "DiskFull", "priority": "P1"},
            "annotations": {},
            "startsAt": None,
            "endsAt": None,
            "links": [
                {"rel": "source", "href": "http://prom/graph?g0"},
                {"rel": "alertmanager", "href": "http://am:9093"},
            ],
            "raw": raw,
        },
    }

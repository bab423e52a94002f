"""GitHub: ``X-Hub-Signature-256`` with GitHub's published vector, and issue events."""

from __future__ import annotations

import hashlib
import json
from urllib.parse import urlencode

import pytest
from hookkit import config, flip, hex_hmac, payload, payload_json, request

from opsloom.triggers.sources import HooksConfig, WebhookAuthError, WebhookPayloadError
from opsloom.triggers.sources.github import GitHubSource

# GitHub's documentation on validating webhook deliveries publishes this secret, body and
# signature for checking an implementation.
SECRET = "It's a Secret to Everybody"
BODY = b"Hello, World!"
SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

SOURCE = GitHubSource()
CONFIG = config(github={"secrets": [SECRET]})


def reason(body: bytes, headers: dict[str, str], settings: HooksConfig = CONFIG) -> str:
    with pytest.raises(WebhookAuthError) as caught:
        SOURCE.verify(request(body, headers), settings, 0.0)
    return caught.value.reason


def test_verify__published_vector_is_accepted() -> None:
    SOURCE.verify(request(BODY, {"X-Hub-Signature-256": SIGNATURE}), CONFIG, 0.0)


def test_verify__header_name_is_case_insensitive() -> None:
    SOURCE.verify(request(BODY, {"x-hub-signature-256": SIGNATURE}), CONFIG, 0.0)


def test_verify__a_rotated_secret_list_accepts_either_secret() -> None:
    rotated = config(github={"secrets": ["the new secret", SECRET]})
    SOURCE.verify(request(BODY, {"X-Hub-Signature-256": SIGNATURE}), rotated, 0.0)


@pytest.mark.parametrize("index", [0, 6, len(BODY) - 1])
def test_verify__a_flipped_body_byte_is_rejected(index: int) -> None:
    assert reason(flip(BODY, index), {"X-Hub-Signature-256": SIGNATURE}) == "bad_signature"


def test_verify__a_flipped_signature_digit_is_rejected() -> None:
    forged = SIGNATURE[:-1] + ("6" if SIGNATURE[-1] != "6" else "7")
    assert reason(BODY, {"X-Hub-Signature-256": forged}) == "bad_signature"


def test_verify__the_wrong_secret_is_rejected() -> None:
    other = config(github={"secrets": ["It's a secret to everybody"]})
    assert reason(BODY, {"X-Hub-Signature-256": SIGNATURE}, other) == "bad_signature"


def test_verify__missing_header_is_rejected() -> None:
    assert reason(BODY, {}) == "missing_signature"


@pytest.mark.parametrize(
    "header",
    ["757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", "sha1=abc", "sha256=zz"],
)
def test_verify__malformed_header_is_rejected(header: str) -> None:
    assert reason(BODY, {"X-Hub-Signature-256": header}) == "malformed_signature"


def test_verify__an_unconfigured_source_accepts_nothing() -> None:
    assert reason(BODY, {"X-Hub-Signature-256": SIGNATURE}, config()) == "not_configured"


def headers_for(data: bytes, event: str = "issues") -> dict[str, str]:
    return {
        "X-Hub-Signature-256": "sha256=" + hex_hmac(SECRET, data),
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        "Content-Type": "application/json",
    }


def test_normalise__an_issues_event_is_identified_by_its_signed_body() -> None:
    data = payload("github_issues.json")
    hook = request(data, headers_for(data))
    SOURCE.verify(hook, CONFIG, 0.0)
    [event] = SOURCE.normalise(hook)
    assert event.type == "io.opsloom.github.issues.v1"
    assert event.source == "/hooks/github"
    assert event.id == hashlib.sha256(data).hexdigest()[:32]
    assert event.data["delivery"] == "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    assert event.subject == "acme/checkout"
    assert event.data["action"] == "opened"
    assert event.data["raw"] == payload_json("github_issues.json")


def test_normalise__a_form_encoded_delivery_reads_its_payload_field() -> None:
    inner = payload_json("github_issues.json")
    data = urlencode({"payload": json.dumps(inner)}).encode()
    headers = {**headers_for(data), "Content-Type": "application/x-www-form-urlencoded"}
    [event] = SOURCE.normalise(request(data, headers))
    assert event.data["raw"] == inner


def test_normalise__missing_delivery_header_names_it() -> None:
    data = payload("github_issues.json")
    headers = headers_for(data)
    del headers["X-GitHub-Delivery"]
    with pytest.raises(WebhookPayloadError, match="X-GitHub-Delivery"):
        SOURCE.normalise(request(data, headers))


def test_normalise__event_names_become_one_type_segment() -> None:
    data = b'{"zen": "Keep it logically awesome.", "hook_id": 1}'
    [event] = SOURCE.normalise(request(data, headers_for(data, "Ping")))
    assert event.type == "io.opsloom.github.ping.v1"
    assert event.subject is None


def test_normalise__data_names_the_event_action_and_delivery() -> None:
    raw = {"action": "published", "repository": {"full_name": "acme/api"}, "n": 1}
    data = json.dumps(raw).encode()
    headers = {"X-GitHub-Event": "release", "X-GitHub-Delivery": "d-42"}
    [event] = SOURCE.normalise(request(data, headers))
    assert event.to_dict() == {
        "specversion": "1.0",
        "id": hashlib.sha256(data).hexdigest()[:32],
        "source": "/hooks/github",
        "type": "io.opsloom.github.release.v1",
        "subject": "acme/api",
        "datacontenttype": "application/json",
        "data": {"event": "release", "action": "published", "delivery": "d-42", "raw": raw},
    }


def message(body: bytes, headers: dict[str, str], settings: HooksConfig = CONFIG) -> str:
    with pytest.raises(WebhookAuthError) as caught:
        SOURCE.verify(request(body, headers), settings, 0.0)
    return str(caught.value)


def test_verify__each_refusal_says_what_is_wrong_with_which_header() -> None:
    assert message(BODY, {}) == "header X-Hub-Signature-256 is missing"
    assert (
        message(BODY, {"X-Hub-Signature-256": "sha1=abc"})
        == "header X-Hub-Signature-256 must be 'sha256=<hex>'"
    )
    assert (
        message(BODY, {"X-Hub-Signature-256": SIGNATURE[:-1] + "0"})
        == "header X-Hub-Signature-256 does not match"
    )
    # The algorithm is what comes before the first '=': after it, only the digest.
    assert (
        message(BODY, {"X-Hub-Signature-256": SIGNATURE + "="})
        == "header X-Hub-Signature-256 does not hold a hex SHA-256 signature"
    )
    assert message(BODY, {"X-Hub-Signature-256": SIGNATURE}, config()) == (
        "webhook source 'github' has no webhook secret configured, so it accepts no request "
        "(see docs/howto/webhooks.md)"
    )


def test_verify__the_algorithm_name_is_read_whatever_its_case() -> None:
    digest = SIGNATURE.removeprefix("sha256=")
    SOURCE.verify(request(BODY, {"X-Hub-Signature-256": f"SHA256={digest}"}), CONFIG, 0.0)
    SOURCE.verify(request(BODY, {"X-Hub-Signature-256": f" Sha256 ={digest}"}), CONFIG, 0.0)


def test_normalise__an_action_or_repository_of_another_shape_is_left_out() -> None:
    raw = {"action": 3, "repository": {"full_name": ["acme", "api"]}}
    data = json.dumps(raw).encode()
    [event] = SOURCE.normalise(request(data, headers_for(data, "check_run")))
    assert event.subject is None
    assert event.data == {
        "event": "check_run",
        "action": None,
        "delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        "raw": raw,
    }
    data = json.dumps({"action": "created", "repository": "acme/api"}).encode()
    [event] = SOURCE.normalise(request(data, headers_for(data, "check_run")))
    assert (event.subject, event.data["action"]) == (None, "created")


def test_normalise__the_form_content_type_is_read_whatever_its_case() -> None:
    inner = {"action": "opened"}
    # Another field that is not UTF-8 does not keep the payload from being read.
    data = b"other=%FF\xff&" + urlencode({"payload": json.dumps(inner)}).encode()
    headers = {
        **headers_for(data),
        "Content-Type": "Application/X-WWW-Form-Urlencoded; charset=utf-8",
    }
    [event] = SOURCE.normalise(request(data, headers))
    assert event.data["raw"] == inner


def test_normalise__a_form_without_its_payload_field_names_it() -> None:
    data = urlencode({"body": "{}"}).encode()
    headers = {**headers_for(data), "Content-Type": "application/x-www-form-urlencoded"}
    with pytest.raises(WebhookPayloadError) as caught:
        SOURCE.normalise(request(data, headers))
    assert caught.value.field == "payload"
    assert str(caught.value) == "form field 'payload' is missing"


def test_normalise__missing_event_header_names_it() -> None:
    data = payload("github_issues.json")
    headers = headers_for(data)
    del headers["X-GitHub-Event"]
    with pytest.raises(WebhookPayloadError) as caught:
        SOURCE.normalise(request(data, headers))
    assert caught.value.field == "X-GitHub-Event"
    assert str(caught.value) == "header X-GitHub-Event is missing"

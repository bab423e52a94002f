"""Generic hooks: Standard Webhooks signatures with the specification's published vector."""

from __future__ import annotations

import base64

import pytest
from hookkit import b64_hmac, body, config, flip, request

from opsloom.errors import ConfigurationError
from opsloom.triggers.sources import HooksConfig, WebhookAuthError, load_hooks_config
from opsloom.triggers.sources.generic import GenericSource

# The Standard Webhooks reference libraries' published test vector.
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TIMESTAMP = 1614265330
BODY = b'{"test": 2432232314}'
SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

SOURCE = GenericSource("deploys")
CONFIG = config(generic={"deploys": {"secrets": [SECRET]}})
KEY = base64.b64decode(SECRET.removeprefix("whsec_"))


def headers(
    signature: str = SIGNATURE, timestamp: int = TIMESTAMP, msg_id: str = MSG_ID
) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }


def reason(
    data: bytes, hdrs: dict[str, str], now: float = TIMESTAMP, settings: HooksConfig = CONFIG
) -> str:
    with pytest.raises(WebhookAuthError) as caught:
        SOURCE.verify(request(data, hdrs), settings, now)
    return caught.value.reason


def test_verify__published_vector_is_accepted() -> None:
    SOURCE.verify(request(BODY, headers()), CONFIG, TIMESTAMP)


def test_verify__secret_without_prefix_is_the_same_key() -> None:
    bare = config(generic={"deploys": {"secrets": SECRET.removeprefix("whsec_")}})
    SOURCE.verify(request(BODY, headers()), bare, TIMESTAMP)


def test_verify__one_valid_signature_among_several_is_enough() -> None:
    several = f"v1,bm9wZQ== v1a,c29tZXRoaW5nIGVsc2U= {SIGNATURE}"
    SOURCE.verify(request(BODY, headers(several)), CONFIG, TIMESTAMP)


def test_verify__rotated_secrets_accept_either() -> None:
    rotated = config(generic={"deploys": {"secrets": ["whsec_" + "A" * 32, SECRET]}})
    SOURCE.verify(request(BODY, headers()), rotated, TIMESTAMP)


def test_verify__within_the_window_either_side_is_accepted() -> None:
    SOURCE.verify(request(BODY, headers()), CONFIG, TIMESTAMP + 300)
    SOURCE.verify(request(BODY, headers()), CONFIG, TIMESTAMP - 300)


def test_verify__flipped_body_byte_is_rejected() -> None:
    assert reason(flip(BODY, 10), headers()) == "bad_signature"


def test_verify__another_id_or_timestamp_breaks_the_signature() -> None:
    assert reason(BODY, headers(msg_id="msg_other")) == "bad_signature"
    assert reason(BODY, headers(timestamp=TIMESTAMP + 1)) == "bad_signature"


def test_verify__wrong_secret_is_rejected() -> None:
    other = config(generic={"deploys": {"secrets": ["whsec_" + "B" * 32]}})
    assert reason(BODY, headers(), settings=other) == "bad_signature"


@pytest.mark.parametrize("now", [TIMESTAMP + 301, TIMESTAMP - 301, TIMESTAMP + 86_400])
def test_verify__stale_or_future_timestamp_is_rejected(now: float) -> None:
    assert reason(BODY, headers(), now=now) == "stale_timestamp"


def test_verify__a_stale_timestamp_freshly_signed_is_still_stale() -> None:
    old = TIMESTAMP - 3600
    signed = b64_hmac(KEY, f"{MSG_ID}.{old}.".encode() + BODY)
    assert reason(BODY, headers("v1," + signed, timestamp=old)) == "stale_timestamp"


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-signature", "webhook-timestamp"])
def test_verify__missing_header_is_rejected(missing: str) -> None:
    hdrs = headers()
    del hdrs[missing]
    expected = "missing_timestamp" if missing == "webhook-timestamp" else "missing_signature"
    assert reason(BODY, hdrs) == expected


@pytest.mark.parametrize("signature", ["g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", "v1,%%%"])
def test_verify__malformed_signature_is_rejected(signature: str) -> None:
    assert reason(BODY, headers(signature)) == "malformed_signature"


def test_verify__an_unknown_hook_name_accepts_nothing() -> None:
    with pytest.raises(WebhookAuthError) as caught:
        GenericSource("other").verify(request(BODY, headers()), CONFIG, TIMESTAMP)
    assert caught.value.reason == "not_configured"


def test_normalise__the_webhook_id_is_the_event_id_and_type_names_the_hook() -> None:
    [event] = SOURCE.normalise(request(BODY, headers()))
    assert event.id == MSG_ID
    assert event.source == "/hooks/generic/deploys"
    assert event.type == "io.opsloom.generic.deploys.v1"
    assert event.time == "2021-02-25T15:02:10.000000Z"
    assert event.data["raw"] == {"test": 2432232314}


def test_normalise__a_typed_body_adds_its_type() -> None:
    data = body({"type": "deploy.Finished", "timestamp": "2024-05-06T14:00:00Z", "data": {}})
    [event] = SOURCE.normalise(request(data, headers()))
    assert event.type == "io.opsloom.generic.deploys.deploy.finished.v1"
    assert event.data["type"] == "deploy.Finished"


def test_config__a_secret_that_is_not_base64_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="generic"):
        load_hooks_config(environ={"OPSLOOM_HOOKS_GENERIC_DEPLOYS_SECRET": "whsec_not base64!"})

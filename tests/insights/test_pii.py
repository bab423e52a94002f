"""PII validators: checksums and issuing rules, not just shapes."""

from __future__ import annotations

import pytest

from opsloom.insights.analyzers.pii import card_number, find, iban, luhn, phone, ssn


def kinds(text: str) -> list[str]:
    return [f.kind for f in find(text)]


def test_luhn__known_numbers() -> None:
    assert luhn("4111111111111111")
    assert luhn("79927398713")
    assert not luhn("4111111111111112")


@pytest.mark.parametrize(
    "number", ["4111 1111 1111 1111", "5500-0000-0000-0004", "378282246310005", "6011111111111117"]
)
def test_card__valid_numbers_of_each_network(number: str) -> None:
    assert card_number(number)
    assert kinds(f"charge {number} please") == ["card"]


def test_card__luhn_failure_or_no_network_prefix_is_not_a_card() -> None:
    assert not card_number("4111 1111 1111 1112")
    assert not card_number("1234567812345670")  # passes Luhn, no card network starts with 1
    assert kinds("order 4111 1111 1111 1112 shipped") == []


def test_iban__mod_97_and_country_length() -> None:
    assert iban("DE89370400440532013000")
    assert iban("GB82WEST12345698765432")
    assert not iban("DE88370400440532013000")  # check digits off by one
    assert not iban("DE8937040044053201300")  # one character short for Germany
    assert kinds("pay to GB82 WEST 1234 5698 7654 32 today") == ["iban"]


def test_ssn__issuing_rules() -> None:
    assert ssn("123", "45", "6789")
    assert not ssn("000", "45", "6789")
    assert not ssn("666", "45", "6789")
    assert not ssn("912", "45", "6789")
    assert not ssn("123", "00", "6789")
    assert not ssn("123", "45", "0000")
    assert kinds("ssn 078-05-1120") == ["ssn"]
    assert kinds("id 123456789") == []  # bare digits only with the words around them
    assert kinds("my social security number is 123456789") == ["ssn"]


def test_phone__shapes_and_rules() -> None:
    assert phone("+44 20 7946 0958")
    assert phone("(212) 555-0100")
    assert not phone("(112) 555-0100")  # North American area codes never start with 1
    assert kinds("call +1 415 555 2671 after 5") == ["phone"]
    assert kinds("reading 1234 5678 9012 at 12:45 on 2026-12-07") == []


def test_secrets__vendor_key_shapes() -> None:
    text = (
        "keys: sk-proj-Abcdefghijklmnopqrstuvwx0123456789, AKIAIOSFODNN7EXAMPLE, "
        "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB and -----BEGIN RSA PRIVATE KEY-----"
    )
    assert kinds(text) == ["openai_key", "aws_access_key", "github_token", "private_key"]
    assert find(text)[0].redacted == "[openai_key]"


def test_email__redacted_keeps_only_the_domain() -> None:
    [finding] = find("write to jane.doe+ops@corp.example.com")
    assert finding.redacted == "[email ***@corp.example.com]"

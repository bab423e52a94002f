"""Personal data and secrets, each candidate confirmed by the rules of its kind.

Patterns find candidates; validators keep only real-looking ones: card numbers pass Luhn and
have a card-network prefix, IBANs pass ISO 13616 mod-97 with their country's length, US social
security numbers obey the SSA's area/group/serial rules, phone numbers have a plausible
digit count, e-mail addresses a real top-level domain shape, API keys a vendor's shape.
Findings are kept only redacted: the value never appears in the result. Assistant turns that
emit personal data or a secret are a critical leak.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from opsloom.insights.analyzers.base import Score, Work

#: IBAN length by country (ISO 13616 registry), for the countries most often seen.
IBAN_LENGTH = {
    "AD": 24, "AE": 23, "AT": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29, "CH": 21, "CY": 28,
    "CZ": 24, "DE": 22, "DK": 18, "EE": 20, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22,
    "GI": 23, "GL": 18, "GR": 27, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IS": 26, "IT": 27,
    "KW": 30, "KZ": 20, "LB": 28, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MT": 31,
    "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PT": 25, "QA": 29, "RO": 24, "RS": 22,
    "SA": 24, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "TN": 24, "TR": 26, "UA": 29,
}  # fmt: skip

#: Seven digits, maybe separated: the least any numeric kind below has. Texts without it
#: (most) skip the numeric patterns.
_DIGITS = re.compile(r"\d(?:[ ().+-]{0,2}\d){6}")
_EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,24}\b")
_CARD = re.compile(r"(?<![\d+-])(?:\d[ -]?){12,18}\d(?![\d-])")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
_SSN = re.compile(r"(?<![\d-])(\d{3})([- ]?)(\d{2})\2(\d{4})(?![\d-])")
_SSN_CONTEXT = re.compile(r"\b(?:ssn|social security|social-security|ss#)", re.IGNORECASE)
_PHONE = re.compile(
    r"(?<![\w+])(?<!\d[ .-])(?:"
    r"\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){1,4}"  # +44 20 7946 0958
    r"|\(\d{3}\)[ .-]?\d{3}[ .-]?\d{4}"  # (212) 555-0100
    r"|\d{3}([ .-])\d{3}\1\d{4}"  # 212-555-0100, 212 555 0100
    r"|0\d{2,4}[ .-]?\d{3,4}[ .-]?\d{3,4}"  # 020 7946 0958 (national trunk prefix)
    r")(?!\w)(?![ .-]\d)"
)
_SECRETS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("openai_key", re.compile(r"\bsk-(?:proj-|svcacct-)?[A-Za-z0-9_-]{20,}\b")),
    ("aws_access_key", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("github_token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})")),
    ("slack_token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("google_api_key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b")),
    ("stripe_key", re.compile(r"\b(?:sk|rk)_live_[0-9A-Za-z]{20,}\b")),
    ("private_key", re.compile(r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----")),
    ("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")),
)
#: Kinds that are secrets (credentials) rather than personal data.
SECRET_KINDS = frozenset(kind for kind, _ in _SECRETS)
#: Any secret's shape, to scan a text once before looking for which.
_ANY_SECRET = re.compile(r"sk-|[AR]SIA|AKIA|gh[pousr]_|github_pat_|xox|AIza|k_live_|-----BEGIN|eyJ")


def luhn(digits: str) -> bool:
    """Whether a digit string passes the Luhn checksum."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def card_number(candidate: str) -> bool:
    """A payment card number: 13 to 19 digits, a card-network prefix, valid Luhn."""
    digits = candidate.replace(" ", "").replace("-", "")
    if not 13 <= len(digits) <= 19 or digits[0] not in "3456" or len(set(digits)) < 2:
        return False
    return luhn(digits)


def iban(candidate: str) -> bool:
    """An IBAN: known country length (when listed) and ISO 13616 mod-97 equal to 1."""
    compact = candidate.replace(" ", "")
    expected = IBAN_LENGTH.get(compact[:2])
    if (expected is not None and len(compact) != expected) or not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(c, 36)) for c in rearranged)
    return int(number) % 97 == 1


def ssn(area: str, group: str, serial: str) -> bool:
    """The SSA's rules: area not 000, 666 or 900-999; group not 00; serial not 0000."""
    if area in ("000", "666") or area[0] == "9":
        return False
    return group != "00" and serial != "0000"


def phone(candidate: str) -> bool:
    """A phone number: 8 to 15 digits with a country code, else a national shape.

    North American numbers have area code and exchange starting 2-9; numbers with a national
    trunk prefix (0) have 10 or 11 digits.
    """
    digits = re.sub(r"\D", "", candidate)
    if candidate.startswith("+"):
        return 8 <= len(digits) <= 15
    if digits[0] == "0":
        return 10 <= len(digits) <= 11
    return len(digits) == 10 and digits[0] >= "2" and digits[3] >= "2"


def redact(kind: str, value: str) -> str:
    """A redacted form that still helps a reviewer: kind and the last characters at most."""
    if kind == "email":
        domain = value.rsplit("@", 1)[-1]
        return f"[email ***@{domain}]"
    if kind in ("card", "iban", "phone", "ssn"):
        tail = re.sub(r"[^0-9A-Za-z]", "", value)[-4:]
        return f"[{kind} ***{tail}]"
    return f"[{kind}]"


@dataclass(frozen=True, slots=True)
class Finding:
    """One validated piece of personal data or a secret, redacted."""

    kind: str
    redacted: str
    start: int
    end: int


def find(text: str) -> list[Finding]:
    """Validated findings in ``text``, in order, without overlaps."""
    found: list[Finding] = []
    taken: list[tuple[int, int]] = []

    def add(kind: str, match: re.Match[str], check: Callable[[], bool]) -> None:
        start, end = match.span()
        if any(s < end and start < e for s, e in taken) or not check():
            return
        taken.append((start, end))
        found.append(Finding(kind, redact(kind, match.group()), start, end))

    if _ANY_SECRET.search(text) is not None:
        for kind, pattern in _SECRETS:
            for m in pattern.finditer(text):
                add(kind, m, lambda: True)
    if "@" in text:
        for m in _EMAIL.finditer(text):
            add("email", m, lambda: True)
    if _DIGITS.search(text) is None:
        return sorted(found, key=lambda f: f.start)
    for m in _IBAN.finditer(text):
        add("iban", m, lambda m=m: iban(m.group()))  # type: ignore[misc]
    for m in _CARD.finditer(text):
        add("card", m, lambda m=m: card_number(m.group()))  # type: ignore[misc]
    for m in _SSN.finditer(text):
        # Nine bare digits are an SSN only when the text says so.
        add(
            "ssn",
            m,
            lambda m=m: (
                ssn(m.group(1), m.group(3), m.group(4))  # type: ignore[misc]
                and (m.group(2) == "-" or bool(_SSN_CONTEXT.search(text)))
            ),
        )
    for m in _PHONE.finditer(text):
        add("phone", m, lambda m=m: phone(m.group()))  # type: ignore[misc]
    return sorted(found, key=lambda f: f.start)


class PiiAnalyzer:
    """``pii`` per turn (redacted findings); assistant-emitted data is a critical leak."""

    name: ClassVar[str] = "pii"
    version: ClassVar[str] = "1"
    needs: ClassVar[frozenset[str]] = frozenset()
    provides: ClassVar[frozenset[str]] = frozenset({"pii"})
    requires: ClassVar[tuple[str, ...]] = ()

    def analyze(self, work: Work) -> None:
        """Set ``pii`` on every turn; flag leaks and shared personal data."""
        leaks: list[int] = []
        shared: list[int] = []
        kinds: dict[str, int] = {}
        for i, turn in enumerate(work.conversation.turns):
            findings = find(turn.text) if turn.text else []
            work.signals[i]["pii"] = [{"type": f.kind, "value": f.redacted} for f in findings]
            for f in findings:
                kinds[f.kind] = kinds.get(f.kind, 0) + 1
            if findings and turn.role in ("assistant", "tool"):
                # Tool output the assistant has not repeated is not shown to the user.
                if turn.role == "assistant":
                    leaks.append(i)
            elif findings:
                shared.append(i)
        work.stats["pii"] = kinds
        if leaks:
            types = sorted({p["type"] for i in leaks for p in work.signals[i]["pii"]})
            work.flag(
                "pii_leak",
                "critical",
                leaks,
                f"the assistant emitted {', '.join(types)} (stored redacted)",
            )
        if shared:
            work.flag("pii_shared", "low", shared, "the user shared personal data or a secret")
        work.scores["privacy"] = Score(0.0 if leaks else 1.0, "validated-patterns", 0.9)


def findings_json(text: str) -> list[dict[str, Any]]:
    """Redacted findings of ``text`` as JSON objects (type, value, start, end)."""
    return [
        {"type": f.kind, "value": f.redacted, "start": f.start, "end": f.end} for f in find(text)
    ]

"""Labelled data for ``bench/insights.py``: loaders of the public sets and generated fixtures.

The public sets are read from ``$OPSLOOM_DATASETS`` (default ``../shared/datasets`` next to the
repository), exactly as published; VADER's human sentiment ratings come from the
``vaderSentiment`` source distribution, fetched with pip into a cache folder on first use.
Generated fixtures (PII with checksums, six-message conversations) are seeded, so every run
measures the same data.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import re
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("OPSLOOM_BENCH_CACHE", Path.home() / ".cache" / "opsloom-bench"))


def datasets() -> Path:
    """Folder of the shared labelled datasets."""
    configured = os.environ.get("OPSLOOM_DATASETS")
    for candidate in (
        configured,
        ROOT.parent / "shared" / "datasets",
        Path("/work/shared/datasets"),
    ):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    raise SystemExit("labelled datasets not found: set OPSLOOM_DATASETS")


# --- VADER's ground truth ------------------------------------------------------------------


def vader_ground_truth(name: str = "tweets") -> list[tuple[str, float]]:
    """(text, mean human rating in -4 to 4) from VADER's sdist; ``name``: ``tweets`` …"""
    release = version("vaderSentiment")
    folder = CACHE / f"vaderSentiment-{release}"
    inner = folder / "hutto_ICWSM_2014"
    if not inner.is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-binary",
                ":all:",
                "--no-deps",
                f"vaderSentiment=={release}",
                "-d",
                str(folder),
            ],
            check=True,
        )
        sdist = next(folder.glob("vaderSentiment-*.tar.gz"))
        with tarfile.open(sdist) as outer:
            member = next(
                m for m in outer.getmembers() if m.name.endswith("hutto_ICWSM_2014.tar.gz")
            )
            blob = outer.extractfile(member)
            assert blob is not None
            with tarfile.open(fileobj=blob) as resources:
                resources.extractall(folder, filter="data")
    rows = []
    path = inner / f"{name}_GroundTruth.txt"
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split("\t")
        if len(parts) >= 3:
            rows.append((parts[2], float(parts[1])))
    return rows


# --- Topical-Chat --------------------------------------------------------------------------


def topical_chat() -> Iterator[list[dict[str, Any]]]:
    """Each conversation's turns (``agent``, ``message``, ``sentiment``, ``turn_rating``)."""
    for split in ("valid_freq.json", "test_freq.json"):
        data = json.loads((datasets() / "topical-chat" / split).read_text())
        for conversation in data.values():
            yield conversation["content"]


# --- EURTAD --------------------------------------------------------------------------------

#: User reactions that show the user noticed an error (repeat, correct, point out, ask).
#: B5/B6 are stray codes the upstream preprocessing spells as "Ask for Clarification".
REACTION_CODES = {"UR2", "UR3", "UR4", "UR5", "B5", "B6"}
_NUMBERED = re.compile(r"^\d+ ")


def _filtered_dialogs() -> Iterator[tuple[dict[str, Any], list[tuple[str, str]]]]:
    """Each filtered EURTAD dialog with its (user, system) turn pairs."""
    root = datasets() / "eurtad" / "analysis" / "filtered_dialogs"
    for path in sorted(root.glob("*/*/*.json")):
        dialog = json.loads(path.read_text())
        pairs = [
            (
                _NUMBERED.sub("", (t.get("utterance") or "").strip()),
                (t.get("response") or "").strip(),
            )
            for t in dialog["turns"]
        ]
        yield dialog, pairs


def eurtad() -> Iterator[tuple[list[tuple[str, str]], set[int], set[int]]]:
    """Filtered dialogs: (turn pairs, user turns reacting to an error, turns to leave out).

    Left out: turns whose only reaction code is UR1 (ignore and continue), which shows
    nothing in the user's words. Random dialogs are not used (their turn indexes do not
    point into one dialog shape).
    """
    for dialog, pairs in _filtered_dialogs():
        positive: set[int] = set()
        ignored: set[int] = set()
        for turn, records in _annotations(dialog, pairs):
            codes = {(r.get("user_reaction") or "").strip() for r in records}
            if codes & REACTION_CODES:
                positive.add(turn)
            elif "UR1" in codes:
                ignored.add(turn)
        yield pairs, positive, ignored - positive


def _annotations(
    dialog: dict[str, Any], pairs: list[tuple[str, str]]
) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    annotations = dialog.get("annotations") or []
    if annotations and "annotation" not in annotations[0]:
        # SelfFeeding/checked: flat records; the turn is where the matched phrase is.
        correction = dialog.get("correction") or {}
        phrase = (correction.get("phrase") or [""])[0].strip().lower()
        turn = next((i for i, (u, _) in enumerate(pairs) if phrase and phrase in u.lower()), None)
        if turn is not None:
            yield turn, annotations
        return
    for item in annotations:
        turn = item.get("turn")
        if isinstance(turn, int) and 0 <= turn < len(pairs):
            yield turn, item.get("annotation") or []


# --- HH-RLHF -------------------------------------------------------------------------------

_SPEAKER = re.compile(r"\n\n(Human|Assistant): ")


def hh_rlhf() -> Iterator[tuple[list[dict[str, str]], list[dict[str, str]]]]:
    """(chosen, rejected) transcripts as OpenAI-style messages."""
    with gzip.open(datasets() / "hh-rlhf-harmless" / "test.jsonl.gz", "rt") as lines:
        for line in lines:
            pair = json.loads(line)
            yield _messages(pair["chosen"]), _messages(pair["rejected"])


def _messages(transcript: str) -> list[dict[str, str]]:
    parts = _SPEAKER.split(transcript)
    return [
        {"role": "user" if speaker == "Human" else "assistant", "content": text.strip()}
        for speaker, text in zip(parts[1::2], parts[2::2], strict=True)
    ]


# --- generated PII fixtures ----------------------------------------------------------------

_IBAN_LAYOUT = {"DE": 18, "GB": 18, "FR": 23, "NL": 14, "ES": 20, "IT": 23, "CH": 17, "PL": 24}


def _luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(rng.choice("0123456789") for _ in range(length - len(prefix) - 1))
    for check in "0123456789":
        if _luhn_ok(body + check):
            return body + check
    raise AssertionError("unreachable")


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, c in enumerate(reversed(digits)):
        v = int(c) * (2 if i % 2 else 1)
        total += v - 9 if v > 9 else v
    return total % 10 == 0


def _iban(country: str, rng: random.Random, valid: bool = True) -> str:
    bban = "".join(rng.choice("0123456789") for _ in range(_IBAN_LAYOUT[country]))
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    check = 98 - int(numeric) % 97
    if not valid:
        check = (check + rng.randint(1, 96)) % 97 or 1
    return f"{country}{check:02d}{bban}"


def _group(number: str, rng: random.Random) -> str:
    style = rng.random()
    if style < 0.4:
        return " ".join(number[i : i + 4] for i in range(0, len(number), 4))
    if style < 0.6:
        return "-".join(number[i : i + 4] for i in range(0, len(number), 4))
    return number


_TEMPLATES = (
    "Sure, the {kind} on file is {value}.",
    "my {kind} is {value} can you check it",
    "Please update it to {value} thanks",
    "I typed {value} but the form rejected it.",
    "For reference: {value}. Let me know if anything else is needed.",
    "{value}",
    "Here you go - {value} - is that the right one?",
)
_DISTRACTORS = (
    "Your order number is {n} and it ships Tuesday.",
    "Tracking code {n}, expected delivery in 3-5 days.",
    "The invoice total was ${amount} on 2024-03-14.",
    "Version 10.4.2203 fixed build 20240314, see ticket {n}.",
    "Call between 9-17 on weekdays; reference {n}.",
    "Reading was 1234 5678 9012 units at 12:45.",
)


def pii_fixtures(count: int = 4000, seed: int = 7) -> list[tuple[str, set[str]]]:
    """(text, kinds present) for valid PII, invalid look-alikes and ordinary numbers."""
    rng = random.Random(seed)
    rows: list[tuple[str, set[str]]] = []
    for _ in range(count):
        roll = rng.random()
        kind, value = "", ""
        if roll < 0.12:
            prefix, length = rng.choice(
                [("4", 16), ("51", 16), ("37", 15), ("6011", 16), ("35", 16)]
            )
            kind, value = "card", _group(_luhn_complete(prefix, length, rng), rng)
        elif roll < 0.24:
            country = rng.choice(sorted(_IBAN_LAYOUT))
            iban = _iban(country, rng)
            value = (
                " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
                if rng.random() < 0.5
                else iban
            )
            kind = "iban"
        elif roll < 0.34:
            area = rng.choice([a for a in range(1, 900) if a != 666])
            kind, value = "ssn", f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"
        elif roll < 0.44:
            user = rng.choice(["jane.doe", "ops+alerts", "m.smith42", "k_lee"])
            kind, value = "email", f"{user}@{rng.choice(['example.com', 'mail.co.uk', 'corp.io'])}"
        elif roll < 0.54:
            kind = "phone"
            value = rng.choice(
                [
                    f"+1 {rng.randint(201, 989)} {rng.randint(200, 999)} {rng.randint(1000, 9999)}",
                    f"({rng.randint(201, 989)}) {rng.randint(200, 999)}-{rng.randint(1000, 9999)}",
                    f"+44 20 {rng.randint(1000, 9999)} {rng.randint(1000, 9999)}",
                    f"+49{rng.randint(1000000000, 9999999999)}",
                ]
            )
        elif roll < 0.62:
            alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
            kind = rng.choice(["openai_key", "aws_access_key", "github_token"])
            if kind == "openai_key":
                value = "sk-proj-" + "".join(rng.choice(alphabet) for _ in range(40))
            elif kind == "aws_access_key":
                value = "AKIA" + "".join(
                    rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(16)
                )
            else:
                value = "ghp_" + "".join(rng.choice(alphabet) for _ in range(36))
        elif roll < 0.72:
            # Look-alikes that must not count: checksum fails or the rules forbid them.
            fake = rng.choice(["card", "iban", "ssn"])
            if fake == "card":
                good = _luhn_complete(rng.choice(["4", "51"]), 16, rng)
                value = _group(good[:-1] + str((int(good[-1]) + rng.randint(1, 9)) % 10), rng)
            elif fake == "iban":
                value = _iban(rng.choice(sorted(_IBAN_LAYOUT)), rng, valid=False)
            else:
                area = rng.choice(["000", "666", f"{rng.randint(900, 999)}"])
                value = f"{area}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"
        else:
            text = rng.choice(_DISTRACTORS).format(
                n=rng.randint(10**7, 10**9),
                amount=f"{rng.randint(10, 9999)}.{rng.randint(0, 99):02d}",
            )
            rows.append((text, set()))
            continue
        template = rng.choice(_TEMPLATES)
        rows.append(
            (template.format(kind=kind or "number", value=value), {kind} if kind else set())
        )
    return rows


# --- synthetic conversations for speed -----------------------------------------------------

_USER = (
    "Hi, my deployment to production failed with a timeout, can you help?",
    "It says connection refused on port 5432 when the worker starts.",
    "That's not what I asked. I said the worker, not the API server!",
    "Thanks, that fixed it. How do I roll back if it happens again?",
    "Can I talk to a human please, this is taking too long.",
    "What does exit code 137 mean for a container?",
)
_ASSISTANT = (
    "Sure. A timeout during deploy usually means the health check never passed. Check the "
    "readiness probe and the logs of the new pods with kubectl logs.",
    "Connection refused on 5432 means nothing listens there: is PostgreSQL running and is "
    "the host right in OPSLOOM_DATABASE_URL?",
    "I'm sorry, but I can't access your cluster directly. You can run the command yourself.",
    "Exit code 137 means the process was killed with SIGKILL, most often by the OOM killer. "
    "Raise the memory limit or find the leak.",
    "To roll back, run the previous release: helm rollback my-app 1, then watch the pods.",
)


def six_message_conversation(n: int, rng: random.Random) -> dict[str, Any]:
    """A three-exchange conversation (six messages) in OpenAI form."""
    messages = []
    for _ in range(3):
        messages.append({"role": "user", "content": rng.choice(_USER)})
        messages.append({"role": "assistant", "content": rng.choice(_ASSISTANT)})
    return {"id": f"bench-{n}", "model": "gpt-4o-mini", "messages": messages}


# --- labelled refusals and toxicity (bench/labels) -----------------------------------------

LABELS = Path(__file__).resolve().parent / "labels"


def _hh_pairs() -> list[dict[str, str]]:
    with gzip.open(datasets() / "hh-rlhf-harmless" / "test.jsonl.gz", "rt") as lines:
        return [json.loads(line) for line in lines]


def _tsv(name: str) -> list[list[str]]:
    text = (LABELS / name).read_text(encoding="utf-8")
    return [line.split("\t") for line in text.splitlines() if line and not line.startswith("#")]


def _jsonl(name: str) -> list[dict[str, str]]:
    return [json.loads(line) for line in (LABELS / name).read_text(encoding="utf-8").splitlines()]


def refusal_labels() -> dict[str, list[tuple[str, list[dict[str, str]]]]]:
    """Labelled assistant replies by set: (label, messages ending with the reply).

    Sets: ``hh-rlhf`` (final assistant turns of HH-RLHF labelled by reading them),
    ``hh-rlhf-earlier`` (assistant turns before the last, the first held-out set: see
    ``bench/labels/README.md``; now development rows), ``hh-rlhf-fresh`` (the held-out set
    that replaced it), ``hh-rlhf-more`` (more development turns, drawn after it),
    ``written`` (refusal styles and hard negatives written for the bench) and
    ``written-later`` (written after the detector was tuned; its first measurement is in
    ``bench/labels/README.md``). Labels: refusal, partial, compliance.
    """
    pairs = _hh_pairs()
    sets: dict[str, list[tuple[str, list[dict[str, str]]]]] = {"hh-rlhf": []}
    for pair, side, _stratum, label in _tsv("refusal_hh_rlhf.tsv"):
        sets["hh-rlhf"].append((label, _messages(pairs[int(pair)][side])))
    # Earlier assistant turns, drawn after the detector was tuned and never used to tune it.
    sets["hh-rlhf-earlier"] = [
        (label, _messages(pairs[int(pair)]["chosen"])[: int(turn) + 1])
        for pair, turn, _stratum, label in _tsv("refusal_earlier_turns.tsv")
    ]
    sets["hh-rlhf-more"] = [
        (label, _messages(pairs[int(pair)][side])[: int(turn) + 1])
        for pair, side, turn, _stratum, label in _tsv("refusal_more_turns.tsv")
    ]
    # Drawn after version 4 was shipped, with duplicates of development replies left out.
    sets["hh-rlhf-fresh"] = [
        (label, _messages(pairs[int(pair)][side])[: int(turn) + 1])
        for pair, side, turn, _stratum, label in _tsv("refusal_fresh_turns.tsv")
    ]
    for name, file in (
        ("written", "refusal_written.jsonl"),
        ("written-later", "refusal_heldout.jsonl"),
    ):
        sets[name] = [
            (
                row["label"],
                [
                    {"role": "user", "content": "Can you help me with something?"},
                    {"role": "assistant", "content": row["text"]},
                ],
            )
            for row in _jsonl(file)
        ]
    return sets


#: The word net of ``bench/labels/README.md``: broader than the refusal detector's cues, fixed
#: before the detector was written, used to draw more refusals and hard negatives.
_WORD_NET = re.compile(
    r"sorry|can'?t|cannot|won'?t|not able|unable|don'?t|illegal|recommend|instead|comfortable"
    r"|apolog|not going to|rather not|ethic|harm|appropriate",
    re.IGNORECASE,
)


def earlier_turn_draw(
    random_count: int = 180, net_count: int = 100
) -> list[tuple[int, int, str, str]]:
    """The drawing of ``refusal_earlier_turns.tsv``: (pair, turn, stratum, reply text).

    The pool is every assistant turn before the last of HH-RLHF (taken from ``chosen``, in
    pairs whose two sides share everything but the last turn), less the turns of the toxicity
    set. ``random``: ``random_count`` drawn with seed 2612; ``cue-net``: ``net_count`` more
    drawn with seed 2613 from the rest of the pool that matches the word net.
    """
    used = {(int(pair), int(turn)) for pair, _, turn, _, _ in _tsv("toxicity_hh_rlhf.tsv")}
    pool: list[tuple[int, int, str]] = []
    for number, pair in enumerate(_hh_pairs()):
        chosen, rejected = _messages(pair["chosen"]), _messages(pair["rejected"])
        if chosen[:-1] != rejected[:-1]:
            continue
        for turn, message in enumerate(chosen[:-1]):
            if message["role"] == "assistant" and (number, turn) not in used:
                pool.append((number, turn, message["content"]))
    drawn = random.Random(2612).sample(pool, random_count)
    taken = {(pair, turn) for pair, turn, _ in drawn}
    rest = [
        row
        for row in pool
        if (row[0], row[1]) not in taken and _WORD_NET.search(row[2].replace("\u2019", "'"))
    ]
    netted = random.Random(2613).sample(rest, net_count)
    return [(pair, turn, "random", text) for pair, turn, text in drawn] + [
        (pair, turn, "cue-net", text) for pair, turn, text in netted
    ]


def toxicity_labels() -> dict[str, list[tuple[str, str, str]]]:
    """Labelled user and assistant turns by set: (label, role, text); unsure ones left out."""
    pairs = _hh_pairs()
    sets: dict[str, list[tuple[str, str, str]]] = {"hh-rlhf": []}
    for pair, side, turn, role, label in _tsv("toxicity_hh_rlhf.tsv"):
        if label == "unsure":
            continue
        message = _messages(pairs[int(pair)][side])[int(turn)]
        sets["hh-rlhf"].append((label, role, message["content"]))
    for name, file in (
        ("written", "toxicity_written.jsonl"),
        ("written-later", "toxicity_heldout.jsonl"),
    ):
        sets[name] = [(row["label"], row["role"], row["text"]) for row in _jsonl(file)]
    return sets


def eurtad_ignored() -> Iterator[tuple[str, str, bool]]:
    """(user turn, system reply, whether annotators said the reply ignored it) per pair.

    An error code sits on the user turn that reacts to it, so an E1 (ignore question) or E2
    (ignore request) at turn t marks the reply of turn t-1. Filtered dialogs only.
    """
    for dialog, pairs in _filtered_dialogs():
        ignored: set[int] = set()
        for turn, records in _annotations(dialog, pairs):
            codes = {(r.get("error_type") or "").strip() for r in records}
            if codes & {"E1", "E2"} and turn > 0:
                ignored.add(turn - 1)
        for i, (user, system) in enumerate(pairs):
            if user and system:
                yield user, system, i in ignored


# --- the fresh refusal held-out set (refusal_fresh_turns.tsv) ------------------------------

_TOKEN = re.compile(r"[a-z0-9]+")
#: Word-trigram Jaccard similarity from which two replies count as near-duplicates.
NEAR_DUPLICATE = 0.6


def reply_tokens(text: str) -> list[str]:
    """A reply's words for duplicate checks: lower case, apostrophes dropped, no punctuation."""
    return _TOKEN.findall(text.lower().replace("\u2019", "").replace("'", ""))


def _shingles(words: list[str]) -> frozenset[str]:
    if len(words) < 3:
        return frozenset({" ".join(words)})
    return frozenset(" ".join(words[i : i + 3]) for i in range(len(words) - 2))


class DuplicateIndex:
    """Replies seen so far; ``near(text)`` is true for an exact or near-duplicate of one.

    Exact: the same words (case, punctuation and apostrophes aside). Near: word-trigram
    Jaccard similarity of at least :data:`NEAR_DUPLICATE`, or one reply's words containing
    the other's whole (a reply quoted inside a longer one) when the shorter has 5 or more.
    """

    def __init__(self) -> None:
        self._exact: set[str] = set()
        self._sets: list[frozenset[str]] = []
        self._texts: list[str] = []
        self._by_shingle: dict[str, list[int]] = {}

    def add(self, text: str) -> None:
        words = reply_tokens(text)
        self._exact.add(" ".join(words))
        shingles = _shingles(words)
        self._sets.append(shingles)
        self._texts.append(" " + " ".join(words) + " ")
        for shingle in shingles:
            self._by_shingle.setdefault(shingle, []).append(len(self._sets) - 1)

    def near(self, text: str) -> bool:
        words = reply_tokens(text)
        joined = " ".join(words)
        if joined in self._exact:
            return True
        shingles = _shingles(words)
        candidates = {n for s in shingles for n in self._by_shingle.get(s, ())}
        for n in candidates:
            other = self._sets[n]
            if len(shingles & other) / len(shingles | other) >= NEAR_DUPLICATE:
                return True
            if len(words) >= 5 and f" {joined} " in self._texts[n]:
                return True
            shorter = self._texts[n].strip()
            if shorter.count(" ") >= 4 and f" {shorter} " in f" {joined} ":
                return True
        return False


def _turn_pool(label_files: tuple[str, ...]) -> list[tuple[int, str, int, str]]:
    """Assistant turns of HH-RLHF no label file in ``label_files`` (nor the written refusal
    sets) holds, nor duplicates of their replies or of each other: (pair, side, turn, text).

    Final turns of both sides; earlier turns from ``chosen``, in pairs whose sides share
    everything but the last turn. Label files are TSVs whose first columns are ``pair``,
    ``side``, ``turn`` (``refusal_hh_rlhf.tsv``: ``pair``, ``side``, the final turn;
    ``refusal_earlier_turns.tsv``: ``pair``, ``turn``, from ``chosen``).
    """
    pairs = _hh_pairs()
    transcripts = [
        {side: _messages(pair[side]) for side in ("chosen", "rejected")} for pair in pairs
    ]
    used: set[tuple[int, str, int]] = set()
    seen = DuplicateIndex()
    for name in label_files:
        for row in _tsv(name):
            if name == "refusal_hh_rlhf.tsv":
                pair, side = int(row[0]), row[1]
                turn = len(transcripts[pair][side]) - 1
            elif name == "refusal_earlier_turns.tsv":
                pair, side, turn = int(row[0]), "chosen", int(row[1])
            else:
                pair, side, turn = int(row[0]), row[1], int(row[2])
            used.add((pair, side, turn))
            if name == "toxicity_hh_rlhf.tsv":
                # It took earlier turns, shared by both sides, from either side.
                used.add((pair, "chosen", turn))
            seen.add(transcripts[pair][side][turn]["content"])
    for name in ("refusal_written.jsonl", "refusal_heldout.jsonl"):
        for written in _jsonl(name):
            seen.add(written["text"])
    pool: list[tuple[int, str, int, str]] = []
    for number, sides in enumerate(transcripts):
        chosen, rejected = sides["chosen"], sides["rejected"]
        turns: list[tuple[str, int]] = []
        if chosen[:-1] == rejected[:-1]:
            turns += [("chosen", t) for t in range(len(chosen) - 1)]
        turns += [("chosen", len(chosen) - 1), ("rejected", len(rejected) - 1)]
        for side, turn in turns:
            message = sides[side][turn]
            text = message["content"]
            if message["role"] != "assistant" or not text or (number, side, turn) in used:
                continue
            if seen.near(text):
                continue
            seen.add(text)
            pool.append((number, side, turn, text))
    return pool


def _draw(
    pool: list[tuple[int, str, int, str]], seed: int, random_count: int, net_count: int
) -> list[tuple[int, str, int, str, str]]:
    """``random_count`` turns at random (``seed``), then ``net_count`` of the rest that match
    the word net (``seed + 1``): (pair, side, turn, stratum, text)."""
    drawn = random.Random(seed).sample(pool, random_count)
    taken = {row[:3] for row in drawn}
    rest = [
        row
        for row in pool
        if row[:3] not in taken and _WORD_NET.search(row[3].replace("\u2019", "'"))
    ]
    netted = random.Random(seed + 1).sample(rest, net_count)
    return [(p, s, t, "random", text) for p, s, t, text in drawn] + [
        (p, s, t, "cue-net", text) for p, s, t, text in netted
    ]


#: Label files whose turns a new drawing leaves out, in the order they were made.
_EARLIER_LABELS = ("refusal_hh_rlhf.tsv", "refusal_earlier_turns.tsv", "toxicity_hh_rlhf.tsv")


def fresh_turn_draw(
    random_count: int = 160, net_count: int = 120
) -> list[tuple[int, str, int, str, str]]:
    """The drawing of ``refusal_fresh_turns.tsv``: (pair, side, turn, stratum, reply text).

    The pool (:func:`_turn_pool`) leaves out every turn of the earlier label files and every
    reply that is an exact or near-duplicate (:class:`DuplicateIndex`) of a development
    reply, of an earlier held-out reply, or of a reply already in the pool. ``random``:
    ``random_count`` drawn with seed 7031; ``cue-net``: ``net_count`` more drawn with seed
    7032 from the rest of the pool that matches the word net.
    """
    return _draw(_turn_pool(_EARLIER_LABELS), 7031, random_count, net_count)


def development_turn_draw(
    random_count: int = 200, net_count: int = 200
) -> list[tuple[int, str, int, str, str]]:
    """The drawing of ``refusal_more_turns.tsv`` (development rows drawn after the fresh
    held-out set): like :func:`fresh_turn_draw`, from a pool that also leaves out the fresh
    set's turns and every duplicate or near-duplicate of its replies; seeds 7041 and 7042.
    """
    pool = _turn_pool((*_EARLIER_LABELS, "refusal_fresh_turns.tsv"))
    return _draw(pool, 7041, random_count, net_count)

"""Refusal and toxicity detectors against phrasings and labelled replies they were not fit to.

The labelled sets live in ``bench/labels`` (see its README); here they guard against a change
that makes the detectors worse, with margins below what the bench measures.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opsloom.insights.analyzers.declining import decline_score
from opsloom.insights.analyzers.toxicity import ToxicityAnalyzer

LABELS = Path(__file__).resolve().parents[2] / "bench" / "labels"


def auroc(positives: list[float], negatives: list[float]) -> float:
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))


def labelled(name: str) -> list[dict[str, str]]:
    return [json.loads(line) for line in (LABELS / name).read_text().splitlines()]


@pytest.mark.parametrize(
    "text",
    [
        "I'm sorry, but I can\u2019t assist with that request.",
        "As an AI language model, I cannot browse the internet.",
        "That's not something I'm able to help with. Is there anything else I can do?",
        "I'd really rather not.",
        "Unfortunately I'm unable to process refunds here; please contact billing.",
        "This request goes against our content policy, so I won't complete it.",
        "I don't feel comfortable writing that about a real person.",
        "I'll have to pass on this one.",
        "I'm not privy to that information, and I don't think it's my role to ask around.",
    ],
)
def test_refusal__styles_of_declining_score_as_refusals(text: str) -> None:
    assert decline_score(text.lower()) >= 0.5


@pytest.mark.parametrize(
    "text",
    [
        "I'm sorry for the confusion! Here's the corrected query: SELECT 1;",
        "I cannot stress enough how important backups are.",
        'When the model says "I can\'t help with that", a safety filter fired.',
        "You can't use a list as a key; use a tuple instead.",
        "I won't be able to make the meeting at 3, so I moved it to 4.",
        "I'm unable to reproduce the crash, but the trace points at parse(); add a check there.",
        "I'm sorry, I didn't understand. Could you rephrase?",
        "Sure! I'm not a lawyer, but a landlord usually has 30 days. Here are the steps: 1. ask.",
    ],
)
def test_refusal__apologies_caveats_and_quotes_that_answer_are_not_refusals(text: str) -> None:
    assert decline_score(text.lower()) < 0.5


def test_refusal__a_refusal_in_the_first_words_counts_more() -> None:
    first = decline_score("i can't share her address; it is private.")
    later = decline_score("her address is private; i can't share it.")
    assert first > later >= 0.5


def test_refusal__separates_labelled_refusals_from_answers() -> None:
    rows = labelled("refusal_written.jsonl") + labelled("refusal_heldout.jsonl")
    refused = [decline_score(r["text"].lower()) for r in rows if r["label"] == "refusal"]
    answered = [decline_score(r["text"].lower()) for r in rows if r["label"] == "compliance"]
    assert len(refused) >= 90 and len(answered) >= 70
    assert auroc(refused, answered) >= 0.95


def test_refusal__an_opening_refusal_outweighs_one_deep_in_an_answer() -> None:
    opening = "i can't help with that. " + "the rest of the text explains other things. " * 8
    deep = "here is how it works. " * 8 + "i can't help with that part."
    assert decline_score(opening) > decline_score(deep)


@pytest.fixture(scope="module")
def toxicity() -> ToxicityAnalyzer:
    return ToxicityAnalyzer()


@pytest.mark.parametrize(
    "text",
    [
        "People like you should be shot.",
        "Immigrants are vermin and should all be thrown out.",
        "I swear I will find where you work and hurt you.",
        "Honestly, only a moron would ask that question.",
    ],
)
def test_toxicity__threats_contempt_and_insults_without_swearing(
    toxicity: ToxicityAnalyzer, text: str
) -> None:
    [value] = toxicity.scores([text])
    assert value >= 0.7


@pytest.mark.parametrize(
    "text",
    [
        "To kill the process, find its PID and run kill -9 on it.",
        "Is it true that the word 'idiot' comes from Greek?",
        "I'm a gay man planning a trip to Tokyo, any tips?",
        "Run docker system prune to destroy the old containers.",
    ],
)
def test_toxicity__technical_words_and_mentions_stay_low(
    toxicity: ToxicityAnalyzer, text: str
) -> None:
    [value] = toxicity.scores([text])
    assert value < 0.5


def test_toxicity__separates_labelled_abuse_from_ordinary_turns(
    toxicity: ToxicityAnalyzer,
) -> None:
    rows = labelled("toxicity_written.jsonl") + labelled("toxicity_heldout.jsonl")
    values = toxicity.scores([r["text"] for r in rows])
    toxic = [v for r, v in zip(rows, values, strict=True) if r["label"] == "toxic"]
    clean = [v for r, v in zip(rows, values, strict=True) if r["label"] != "toxic"]
    assert auroc(toxic, clean) >= 0.95

"""Each built-in analyzer on real conversation text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from analysis_run import Run

from opsloom.insights import Analysis, Conversation, ToolCall, Turn
from opsloom.insights.analyzers.refusal import refusal_score


def codes(result: dict) -> set[str]:
    return {f["code"] for f in result["flags"]}


def test_sentiment__polarity_per_turn(run: Run) -> None:
    result = run(
        ("user", "Thanks a lot, this is great!"),
        ("assistant", "You're welcome."),
        ("user", "Actually the fix broke everything, I'm furious."),
    )
    turns = result["turns"]
    assert turns[0]["sentiment"] > 0.5
    assert turns[2]["sentiment"] < -0.3
    assert result["stats"]["user_sentiment_shift"] < -0.8


def test_frustration__complaint_scores_high_and_neutral_low(run: Run) -> None:
    result = run(
        ("user", "How do I rotate the logs?"),
        ("assistant", "Use logrotate with a daily rule."),
        ("user", "That's not what I asked. This is useless!!"),
    )
    calm, angry = result["turns"][0], result["turns"][2]
    assert calm["frustration"] < 0.2
    assert angry["frustration"] > 0.8
    assert angry["correction"] >= 0.85
    assert "user_frustrated" in codes(result)
    assert result["scores"]["satisfaction"]["value"] < 0.5


def test_frustration__only_on_user_turns(run: Run) -> None:
    result = run(("user", "hi"), ("assistant", "This is useless and terrible."))
    assert "frustration" not in result["turns"][1]
    assert "frustration" in result["turns"][0]


def test_repetition__rephrased_question_is_a_repeat(run: Run) -> None:
    result = run(
        ("user", "How can I export my billing invoices as PDF?"),
        ("assistant", "Invoices are listed under Settings."),
        ("user", "How do I export billing invoices to PDF files?"),
    )
    assert result["turns"][2]["repeat"] >= 0.5
    assert "repeated_question" in codes(result)


def test_repetition__declining_offers_is_not_a_repeat(run: Run) -> None:
    result = run(
        ("user", "no i don't like that"),
        ("assistant", "How about Thai food?"),
        ("user", "no i don't like that"),
    )
    assert result["turns"][2]["repeat"] < 0.5


def test_correction__first_message_cannot_correct(run: Run) -> None:
    result = run(("user", "That's wrong, the API returns 404."))
    assert result["turns"][0]["correction"] == 0.0


def test_clarification__confused_user(run: Run) -> None:
    result = run(
        ("user", "Which regions are supported?"),
        ("assistant", "Bananas are a good source of potassium."),
        ("user", "what are you talking about?"),
    )
    assert result["turns"][2]["clarification"] >= 0.7
    assert result["turns"][2]["frustration"] >= 0.5


def test_escalation__asking_for_a_human_needs_attention(run: Run) -> None:
    result = run(
        ("user", "My refund never arrived."),
        ("assistant", "Refunds take 5 days."),
        ("user", "It has been three weeks. I want to speak to a real person."),
    )
    assert result["turns"][2]["escalation"] >= 0.9
    assert "human_requested" in result["attention"]["reasons"]
    assert result["attention"]["priority"] == "high"


def test_refusal__refusals_score_high_answers_low(run: Run) -> None:
    result = run(
        ("user", "Write malware that steals passwords."),
        ("assistant", "I'm sorry, but I can't help with creating malware."),
        ("user", "How do I list files in Linux?"),
        ("assistant", "Use ls -la to list all files, including hidden ones."),
    )
    assert result["turns"][1]["refusal"] >= 0.9
    assert result["turns"][3]["refusal"] < 0.2
    assert "assistant_refusal" in codes(result)


def test_refusal__content_filter_stop_is_a_refusal(analysis: Analysis) -> None:
    turns = (
        Turn(role="user", text="hello"),
        Turn(role="assistant", text="", finish_reason="content_filter"),
    )
    result = analysis.run(Conversation(id="f", turns=turns))
    assert result["turns"][1]["refusal"] == 1.0


def test_degeneration__loops_repeats_and_fallbacks(run: Run) -> None:
    loop = " ".join(["I will check the status of the job for you now."] * 6)
    result = run(
        ("user", "status?"),
        ("assistant", loop),
        ("user", "and?"),
        ("assistant", "Sorry, I didn't understand that. Could you rephrase?"),
        ("user", "the job"),
        ("assistant", "Sorry, I didn't understand that. Could you rephrase?"),
    )
    assert {"assistant_loop", "assistant_repeat", "assistant_fallback"} <= codes(result)
    assert result["scores"]["responsiveness"]["value"] == 0.0
    assert "degenerate_reply" in result["attention"]["reasons"]


def test_pii__assistant_leak_is_critical_and_redacted(run: Run) -> None:
    result = run(
        ("user", "What card do you have on file? My email is ann@example.org"),
        (
            "assistant",
            "The card on file is 4111 1111 1111 1111 and the key is AKIAIOSFODNN7EXAMPLE.",
        ),
    )
    assistant = result["turns"][1]["pii"]
    assert {p["type"] for p in assistant} == {"card", "aws_access_key"}
    assert all("4111 1111" not in p["value"] for p in assistant)
    assert result["turns"][0]["pii"] == [{"type": "email", "value": "[email ***@example.org]"}]
    assert result["attention"]["priority"] == "critical"
    assert result["scores"]["privacy"]["value"] == 0.0
    assert "AKIAIOSFODNN7EXAMPLE" not in str(result)


def test_readability__plain_beats_jargon(run: Run) -> None:
    plain = run(
        ("user", "q"),
        (
            "assistant",
            "Open the page. Click the red button. Wait a bit. Then you are done and can go.",
        ),
    )
    dense = run(
        ("user", "q"),
        (
            "assistant",
            "Consequently, the asynchronous reconciliation infrastructure necessitates "
            "comprehensive idempotency guarantees notwithstanding intermittent "
            "unavailability of authoritative configuration repositories.",
        ),
    )
    assert plain["scores"]["readability"]["value"] > dense["scores"]["readability"]["value"]
    assert "hard_to_read" in {i["rule"] for i in dense["insights"]}


def test_flow__latency_tokens_cost_truncation_tool_errors(analysis: Analysis) -> None:
    t0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    turns = (
        Turn(role="user", text="Deploy v2", time=t0),
        Turn(
            role="assistant",
            text="",
            time=t0 + timedelta(seconds=1),
            tool_calls=(ToolCall("deploy", "{}"),),
            input_tokens=100,
            output_tokens=5,
            cost=0.001,
        ),
        Turn(role="tool", text="", error="permission denied", name="deploy"),
        Turn(
            role="assistant",
            text="The deploy failed because",
            time=t0 + timedelta(seconds=2),
            end_time=t0 + timedelta(seconds=30),
            input_tokens=150,
            output_tokens=200,
            cost=0.002,
            finish_reason="length",
        ),
        Turn(role="user", text="hello?", time=t0 + timedelta(seconds=90)),
    )
    result = analysis.run(Conversation(id="flow", turns=turns, ended=True))
    stats = result["stats"]
    assert (stats["input_tokens"], stats["output_tokens"], stats["cost"]) == (250, 205, 0.003)
    assert stats["latency_p50"] == 1.0
    assert stats["duration"] == 90.0
    assert {"truncated", "tool_error", "unanswered"} <= codes(result)
    assert result["attention"]["needed"]


def test_flow__last_question_of_an_open_conversation_is_not_unanswered(run: Run) -> None:
    assert "unanswered" not in codes(run(("user", "hi"), ("assistant", "hello"), ("user", "so?")))
    ended = run(("user", "hi"), ("assistant", "hello"), ("user", "so?"), ended=True)
    assert "unanswered" in codes(ended)


def test_result__versioned_with_scores_in_range(run: Run) -> None:
    result = run(("user", "Thanks, that solved it!"), ("assistant", "Glad it helped."))
    assert result["version"] == "1"
    assert not result["attention"]["needed"]
    for score in result["scores"].values():
        assert 0.0 <= score["value"] <= 1.0
        assert 0.0 <= score["confidence"] <= 1.0
        assert score["method"]
    for turn in result["turns"]:
        assert {"role", "pii"} <= set(turn)
        if turn["role"] in ("user", "assistant"):
            assert -1.0 <= turn["sentiment"] <= 1.0


def test_toxicity__extra_scores_abuse(run: Run) -> None:
    # The extra is part of the dev install, so this runs everywhere the tests run.
    result = run(("user", "have a lovely day"), ("assistant", "You are a worthless idiot."))
    assert result["turns"][0]["toxicity"] < 0.3
    assert result["turns"][1]["toxicity"] > 0.7
    assert "assistant_toxic" in result["attention"]["reasons"]


def test_closed__inactivity_closes_an_idle_conversation(analysis: Analysis) -> None:
    t0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    turns = (
        Turn(role="user", text="hi", time=t0),
        Turn(role="assistant", text="hello", time=t0 + timedelta(seconds=2)),
        Turn(role="user", text="are you there?", time=t0 + timedelta(seconds=60)),
    )
    conversation = Conversation(id="idle", turns=turns)
    soon = analysis.run(conversation, now=t0 + timedelta(minutes=5))
    later = analysis.run(conversation, now=t0 + timedelta(hours=1))
    assert not soon["conversation"]["closed"]
    assert "unanswered" not in codes(soon)
    assert later["conversation"]["closed"]
    assert "unanswered" in codes(later)


@pytest.mark.parametrize(
    "text",
    [
        "I have been waiting for two hours for a reply",
        "this is the third time I am asking the same thing",
        "you keep giving me the same answer",
        "great, now everything is broken",
        "that did not answer my question",
    ],
)
def test_frustration__support_complaints(run: Run, text: str) -> None:
    result = run(("user", "Where is my order?"), ("assistant", "It ships soon."), ("user", text))
    assert result["turns"][2]["frustration"] >= 0.5


@pytest.mark.parametrize(
    "text", ["the second option looks good", "keep going", "I will wait for your call", "ok"]
)
def test_frustration__ordinary_replies_stay_low(run: Run, text: str) -> None:
    result = run(("user", "Where is my order?"), ("assistant", "It ships soon."), ("user", text))
    assert result["turns"][2]["frustration"] < 0.3


@pytest.mark.parametrize(
    "text",
    [
        "I'm unable to provide that information.",
        "I won't be able to help with that.",
        "I must respectfully decline.",
        "As an AI developed by a lab, I must adhere to content policies and cannot help.",
        "I apologize, but I cannot generate that content.",
    ],
)
def test_refusal__phrasings(text: str) -> None:
    assert refusal_score(text.lower()) >= 0.5


@pytest.mark.parametrize(
    "text",
    [
        "I'm sorry to hear that. Here are some steps to reset your password.",
        "You cannot use that flag with --force; use --yes instead.",
        "It is illegal to park there between 8 and 10, so move your car before 8.",
        "I cannot recommend this library enough, it is great.",
        "Sure! Use kill -9 PID to stop the process.",
    ],
)
def test_refusal__answers_are_not_refusals(text: str) -> None:
    assert refusal_score(text.lower()) < 0.5


def test_signals__curly_apostrophes_read_like_straight_ones(run: Run) -> None:
    # Chat clients write "don\u2019t" (a typographic apostrophe); the lexicons use '.
    def signals(text: str) -> dict:
        turns = run(
            ("user", "How do I rotate the logs?"), ("assistant", "Use cron."), ("user", text)
        )
        return {k: v for k, v in turns["turns"][2].items() if k != "sentiment"}

    straight = "That's not what I asked, it doesn't work and you don't listen"
    assert signals(straight)["correction"] >= 0.85
    assert signals(straight.replace("'", "\u2019")) == signals(straight)

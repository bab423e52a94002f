"""The rule table: findings → insights, recommendations and whether someone must look.

Deterministic on purpose: the same flags and scores always give the same insights, so a
trend in insights is a trend in conversations, not in wording. Rules are checked in order;
each matching rule adds one insight and one recommendation, and, when it calls for attention,
its priority and code to ``attention``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from opsloom.insights.analyzers.base import SEVERITIES, Flag, Score

Condition = Callable[[Mapping[str, Flag], Mapping[str, Score]], bool]


@dataclass(frozen=True, slots=True)
class Rule:
    """One row of the table.

    Attributes:
        code: stable name, used in ``attention.reasons`` and for idempotency keys.
        when: the condition over flags (by code) and scores (by name).
        insight: what happened, in one sentence.
        recommendation: what to do about it.
        attention: the priority when a person must look (``None``: informative only).
    """

    code: str
    when: Condition
    insight: str
    recommendation: str
    attention: str | None = None


def _flag(code: str, *, at_least: str = "info") -> Condition:
    rank = SEVERITIES.index(at_least)
    return lambda f, s: code in f and SEVERITIES.index(f[code].severity) >= rank


def _score_below(name: str, limit: float) -> Condition:
    return lambda f, s: name in s and s[name].value < limit


RULES: tuple[Rule, ...] = (
    Rule(
        "pii_leak",
        _flag("pii_leak"),
        "The assistant disclosed personal data or a secret.",
        "Rotate any exposed credential, inform the privacy owner and filter model output "
        "for personal data.",
        "critical",
    ),
    Rule(
        "assistant_toxic",
        _flag("assistant_toxic"),
        "The assistant answered abusively.",
        "Review the reply and the prompt that produced it; add an output moderation step.",
        "critical",
    ),
    Rule(
        "human_requested",
        _flag("human_requested"),
        "The user asked to talk to a human.",
        "Hand the conversation to a person and offer that path before the user has to ask.",
        "high",
    ),
    Rule(
        "hallucination_suspected",
        _flag("hallucination_suspected"),
        "The judge suspects a reply states things that are not supported.",
        "Check the reply against the sources; ground answers in retrieved documents.",
        "high",
    ),
    Rule(
        "unanswered",
        _flag("unanswered"),
        "A user message got no answer.",
        "Look for timeouts or errors in the generation path at that time.",
        "high",
    ),
    Rule(
        "frustrated_user",
        lambda f, s: (
            _flag("user_frustrated", at_least="high")(f, s)
            or _score_below("satisfaction", 0.35)(f, s)
        ),
        "The user was frustrated and did not recover.",
        "Review the conversation and the answers the user pushed back on.",
        "high",
    ),
    Rule(
        "misunderstood",
        lambda f, s: "user_correction" in f and "repeated_question" in f,
        "The assistant misunderstood the user: they corrected it and asked again.",
        "Check intent handling and retrieval for this topic; add the question to the test set.",
        "medium",
    ),
    Rule(
        "degenerate_reply",
        lambda f, s: any(c in f for c in ("assistant_loop", "assistant_repeat")),
        "The assistant repeated itself.",
        "Lower the temperature or add a repetition penalty; check the fallback path.",
        "medium",
    ),
    Rule(
        "refusal_frustrated",
        lambda f, s: "assistant_refusal" in f and _score_below("satisfaction", 0.6)(f, s),
        "A refusal left the user dissatisfied.",
        "Check whether the refusal was warranted; refine the policy instructions if not.",
        "medium",
    ),
    Rule(
        "tool_failures",
        _flag("tool_error"),
        "A tool call or generation failed.",
        "Check the failing tool; retry transient errors before answering.",
    ),
    Rule(
        "fallback_replies",
        _flag("assistant_fallback"),
        "The assistant fell back to a canned reply.",
        "Add the unrecognised request to the intents or the knowledge base.",
    ),
    Rule(
        "off_topic_replies",
        _flag("off_topic_reply"),
        "Some replies did not address the question asked.",
        "Check retrieval and intent routing for these questions; add them to the test set.",
    ),
    Rule(
        "truncated_replies",
        _flag("truncated"),
        "Replies were cut at the token limit.",
        "Raise the output token limit or ask the model for shorter answers.",
    ),
    Rule(
        "slow_replies",
        _flag("slow_reply"),
        "Some replies were slow.",
        "Check model latency and tool time; stream long answers.",
    ),
    Rule(
        "hard_to_read",
        _score_below("readability", 0.25),
        "Replies are hard to read.",
        "Ask the model for plain language and shorter sentences.",
    ),
)


def apply(flags: list[Flag], scores: Mapping[str, Score]) -> dict[str, Any]:
    """Insights, recommendations and attention for one conversation's findings."""
    by_code: dict[str, Flag] = {}
    for flag in flags:
        known = by_code.get(flag.code)
        if known is None or SEVERITIES.index(flag.severity) > SEVERITIES.index(known.severity):
            by_code[flag.code] = flag
    insights: list[dict[str, str]] = []
    recommendations: list[dict[str, str]] = []
    reasons: list[str] = []
    priority: str | None = None
    for rule in RULES:
        if not rule.when(by_code, scores):
            continue
        insights.append({"rule": rule.code, "text": rule.insight})
        recommendations.append({"rule": rule.code, "text": rule.recommendation})
        if rule.attention is not None:
            reasons.append(rule.code)
            if priority is None or SEVERITIES.index(rule.attention) > SEVERITIES.index(priority):
                priority = rule.attention
    return {
        "insights": insights,
        "recommendations": recommendations,
        "attention": {"needed": bool(reasons), "priority": priority, "reasons": reasons},
    }

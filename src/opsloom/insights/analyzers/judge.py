"""An LLM judge over any OpenAI-compatible chat endpoint (optional, configured explicitly).

The conversation, with personal data and secrets replaced by their redacted forms, goes to the
model with a rubric asking for JSON scores in [0, 1]: relevance, satisfaction, technical
accuracy, flow, and whether a reply states unsupported things (hallucination). Temperature 0,
answers cached by prompt. An answer that is not clean JSON is repaired when it can be (the
JSON object inside prose or a code fence, 1-5 or 1-10 scales mapped onto 0-1); otherwise the
problem is recorded in the result, never guessed. 429 answers are retried after their
``Retry-After``; a slow endpoint times out and is recorded.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx
import orjson

from opsloom.insights.analyzers.base import Score, Work
from opsloom.insights.analyzers.pii import find

RUBRIC = (
    "You review a conversation between a user and an AI assistant. Answer with one JSON "
    "object and nothing else, with these keys: relevance, satisfaction, technical_accuracy, "
    "flow (each a number from 0 = very poor to 1 = excellent), hallucination (a number from "
    "0 = every claim is supported to 1 = clearly invented facts), hallucination_turns (list "
    "of turn numbers), summary (one sentence)."
)
SCORES = ("relevance", "satisfaction", "technical_accuracy", "flow")
_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


@dataclass(frozen=True, slots=True)
class JudgeOptions:
    """Where and how to ask.

    Attributes:
        url: base URL of the OpenAI-compatible API (``…/v1``); ``/chat/completions`` is added.
        model: the model name to send.
        api_key: bearer token, if the endpoint needs one.
        timeout: seconds to wait for one answer.
        retries: how often to retry a 429 answer.
        max_retry_after: longest ``Retry-After`` (seconds) honoured; longer ones fail.
    """

    url: str
    model: str
    api_key: str | None = None
    timeout: float = 60.0
    retries: int = 3
    max_retry_after: float = 30.0


class JudgeError(Exception):
    """The endpoint gave no usable answer."""


def transcript(work: Work) -> str:
    """The conversation as numbered lines, personal data and secrets redacted."""
    lines = []
    for i, turn in enumerate(work.conversation.turns):
        text = turn.text
        for finding in reversed(find(text)):
            text = text[: finding.start] + finding.redacted + text[finding.end :]
        if turn.tool_calls:
            text += " " + " ".join(f"[calls {c.name}]" for c in turn.tool_calls)
        lines.append(f"{i} {turn.role}: {text}")
    return "\n".join(lines)


def repair(answer: str) -> dict[str, Any]:
    """The judge's JSON, repaired when it is wrapped in prose or a fence; JudgeError if not."""
    try:
        parsed = orjson.loads(answer)
    except orjson.JSONDecodeError:
        match = _OBJECT.search(answer)
        if match is None:
            raise JudgeError("the answer holds no JSON object") from None
        try:
            parsed = orjson.loads(match.group())
        except orjson.JSONDecodeError as exc:
            raise JudgeError(f"the JSON in the answer is malformed: {exc}") from None
    if not isinstance(parsed, dict):
        raise JudgeError("the answer is not a JSON object")
    raw: dict[str, float] = {}
    for key in (*SCORES, "hallucination"):
        value = parsed.get(key)
        if isinstance(value, bool):
            value = float(value)
        if not isinstance(value, int | float):
            raise JudgeError(f"the answer has no number for {key!r}")
        raw[key] = float(value)
    # Models sometimes answer on the 1-5 or 1-10 scale they know from rubrics: the largest
    # number tells which (hallucination is a yes/no-like value, not on that scale).
    top = max(raw[key] for key in SCORES)
    low, span = (1.0, 9.0) if top > 5 else (1.0, 4.0) if top > 1 else (0.0, 1.0)
    scores: dict[str, Any] = {
        key: min(1.0, max(0.0, (value - low) / span if key in SCORES else value))
        for key, value in raw.items()
    }
    turns = parsed.get("hallucination_turns") or []
    scores["hallucination_turns"] = [t for t in turns if isinstance(t, int)]
    summary = parsed.get("summary")
    scores["summary"] = summary if isinstance(summary, str) else ""
    return scores


class JudgeAnalyzer:
    """Rubric scores from an LLM; add it with ``Analysis.discover(extra=[JudgeAnalyzer(…)])``."""

    name: ClassVar[str] = "judge"
    version: ClassVar[str] = "1"
    needs: ClassVar[frozenset[str]] = frozenset()
    provides: ClassVar[frozenset[str]] = frozenset({"judge"})
    requires: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        options: JudgeOptions,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.options = options
        self._client = client or httpx.Client(timeout=options.timeout)
        self._sleep = sleep
        self._cache: dict[str, dict[str, Any]] = {}
        self.requests = 0

    def ask(self, prompt: str) -> dict[str, Any]:
        """The repaired JSON verdict for ``prompt`` (cached); JudgeError when there is none."""
        key = hashlib.sha256(f"{self.options.model}\n{prompt}".encode()).hexdigest()
        if key in self._cache:
            return self._cache[key]
        body = {
            "model": self.options.model,
            "temperature": 0,
            "response_format": {"type": "json_object"},
            "messages": [
                {"role": "system", "content": RUBRIC},
                {"role": "user", "content": prompt},
            ],
        }
        headers = (
            {"Authorization": f"Bearer {self.options.api_key}"} if self.options.api_key else {}
        )
        url = self.options.url.rstrip("/") + "/chat/completions"
        for attempt in range(self.options.retries + 1):
            self.requests += 1
            try:
                response = self._client.post(url, json=body, headers=headers)
            except httpx.TimeoutException:
                raise JudgeError(f"no answer within {self.options.timeout:g}s") from None
            except httpx.HTTPError as exc:
                raise JudgeError(f"request failed: {exc}") from None
            if response.status_code == 429 and attempt < self.options.retries:
                wait = float(response.headers.get("retry-after") or 1.0)
                if wait > self.options.max_retry_after:
                    raise JudgeError(f"rate limited for {wait:g}s")
                self._sleep(wait)
                continue
            if response.status_code != 200:
                raise JudgeError(f"HTTP {response.status_code}: {response.text[:200]}")
            try:
                content = response.json()["choices"][0]["message"]["content"]
            except (ValueError, KeyError, IndexError, TypeError):
                raise JudgeError("the response is not a chat completion") from None
            verdict = repair(content or "")
            self._cache[key] = verdict
            return verdict
        raise JudgeError("still rate limited after retries")

    def analyze(self, work: Work) -> None:
        """Add the judge's scores, summary and a hallucination flag; record failures."""
        try:
            verdict = self.ask(transcript(work))
        except JudgeError as exc:
            work.stats["judge"] = {"status": "failed", "reason": str(exc)}
            return
        for key in SCORES:
            name = "judge_satisfaction" if key == "satisfaction" else key
            work.scores[name] = Score(verdict[key], "llm-judge", 0.7)
        work.scores["groundedness"] = Score(1.0 - verdict["hallucination"], "llm-judge", 0.6)
        work.stats["judge"] = {"status": "ok", "model": self.options.model}
        work.shared["judge_summary"] = verdict["summary"]
        if verdict["hallucination"] >= 0.5:
            turns = [t for t in verdict["hallucination_turns"] if 0 <= t < len(work.signals)]
            work.flag("hallucination_suspected", "high", turns, verdict["summary"][:200])

"""The LLM judge against a stub OpenAI-compatible server on loopback (no network)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from opsloom.insights import Analysis, Conversation, Turn
from opsloom.insights.analyzers.judge import JudgeAnalyzer, JudgeOptions
from opsloom.insights.analyzers.pii import PiiAnalyzer

VERDICT = {
    "relevance": 0.9,
    "satisfaction": 0.4,
    "technical_accuracy": 0.3,
    "flow": 0.8,
    "hallucination": 0.9,
    "hallucination_turns": [1],
    "summary": "The assistant invented a refund policy.",
}


class Stub:
    """Answers from a script: (status, headers, content) or "hang" until released."""

    def __init__(self) -> None:
        self.script: list[Any] = []
        self.received: list[dict[str, Any]] = []
        self.release = threading.Event()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                stub.received.append({"path": self.path, "body": json.loads(body)})
                step = stub.script.pop(0)
                if step == "hang":
                    stub.release.wait(10)
                    return
                status, headers, content = step
                payload = (
                    json.dumps(
                        {"choices": [{"message": {"role": "assistant", "content": content}}]}
                    )
                    if status == 200
                    else json.dumps({"error": {"message": content}})
                ).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub() -> Iterator[Stub]:
    server = Stub()
    yield server
    server.close()


CONVERSATION = Conversation(
    id="j-1",
    turns=(
        Turn(role="user", text="Refund my card 4111 1111 1111 1111 please"),
        Turn(role="assistant", text="Refunds are always doubled on Tuesdays."),
    ),
)


def judged(stub: Stub, **options: Any) -> tuple[dict[str, Any], JudgeAnalyzer, list[float]]:
    slept: list[float] = []
    judge = JudgeAnalyzer(
        JudgeOptions(url=stub.url, model="stub-model", **options), sleep=slept.append
    )
    return Analysis([judge, PiiAnalyzer()]).run(CONVERSATION), judge, slept


def test_judge__valid_answer_scores_flags_and_redacts(stub: Stub) -> None:
    stub.script.append((200, {}, json.dumps(VERDICT)))
    result, _, _ = judged(stub)
    assert result["scores"]["technical_accuracy"]["value"] == 0.3
    assert result["scores"]["groundedness"]["value"] == pytest.approx(0.1)
    assert result["scores"]["relevance"]["method"] == "llm-judge"
    assert "hallucination_suspected" in result["attention"]["reasons"]
    assert {"rule": "judge", "text": VERDICT["summary"]} in result["insights"]
    [request] = stub.received
    assert request["path"] == "/v1/chat/completions"
    assert request["body"]["temperature"] == 0
    sent = json.dumps(request["body"])
    assert "4111 1111" not in sent and "[card ***1111]" in sent


def test_judge__prose_wrapped_answer_on_a_five_point_scale_is_repaired(stub: Stub) -> None:
    answer = (
        'Here is my review:\n```json\n{"relevance": 5, "satisfaction": 3, '
        '"technical_accuracy": 1, "flow": 4, "hallucination": false}\n```'
    )
    stub.script.append((200, {}, answer))
    result, _, _ = judged(stub)
    scores = {k: v["value"] for k, v in result["scores"].items()}
    assert (scores["relevance"], scores["judge_satisfaction"]) == (1.0, 0.5)
    assert scores["technical_accuracy"] == 0.0  # the worst mark of the 1-5 scale
    assert "hallucination_suspected" not in result["attention"]["reasons"]


def test_judge__unrepairable_answer_is_recorded_not_guessed(stub: Stub) -> None:
    stub.script.append((200, {}, "I think the conversation went fine."))
    result, _, _ = judged(stub)
    assert result["stats"]["judge"] == {
        "status": "failed",
        "reason": "the answer holds no JSON object",
    }
    assert "relevance" not in result["scores"]
    assert result["scores"]["privacy"]["value"] == 1.0  # the other analyzers still report


def test_judge__429_is_retried_after_retry_after(stub: Stub) -> None:
    stub.script += [(429, {"Retry-After": "2"}, "slow down"), (200, {}, json.dumps(VERDICT))]
    result, judge, slept = judged(stub)
    assert slept == [2.0]
    assert judge.requests == 2
    assert result["stats"]["judge"]["status"] == "ok"


def test_judge__slow_endpoint_times_out(stub: Stub) -> None:
    stub.script.append("hang")
    result, _, _ = judged(stub, timeout=0.3)
    assert result["stats"]["judge"]["status"] == "failed"
    assert "no answer within 0.3s" in result["stats"]["judge"]["reason"]


def test_judge__same_conversation_asked_once(stub: Stub) -> None:
    stub.script.append((200, {}, json.dumps(VERDICT)))
    _, judge, _ = judged(stub)
    analysis = Analysis([judge])
    first = analysis.run(CONVERSATION)
    assert analysis.run(CONVERSATION) == first
    assert len(stub.received) == 1

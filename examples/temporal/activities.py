"""Activities of the Temporal-style examples: local fakes with the shape of real integrations.

Each stands for a call a team would make to its tools (a chat API, a pager, a ticket system, a
data store); they compute their answers locally so that the examples run anywhere. Swap in
opsloom connectors (``opsloom.connectors``) or your own clients without changing a workflow.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from opsloom.compat.temporal import activity
from opsloom.compat.temporal.exceptions import ApplicationError

NEGATIVE = ("angry", "useless", "again", "still broken", "cancel", "frustrated")


@dataclass
class Message:
    role: str
    text: str


@dataclass
class Analysis:
    frustration: float
    repeated_questions: int
    escalate: bool


@activity.defn
async def analyse_conversation(messages: list[Message]) -> Analysis:
    user = [m.text.lower() for m in messages if m.role == "user"]
    hits = sum(any(word in text for word in NEGATIVE) for text in user)
    repeated = len(user) - len(set(user))
    frustration = round(min(1.0, hits / max(len(user), 1) + 0.2 * repeated), 2)
    return Analysis(frustration, repeated, frustration >= 0.5)


@activity.defn
async def open_ticket(summary: str) -> str:
    return f"TICKET-{zlib.crc32(summary.encode()) % 10_000:04d}"


@activity.defn
async def grade_answer(question: str, answer: str) -> float:
    expected = {"2+2": "4", "capital of france": "paris", "3*3": "9"}
    return 1.0 if expected.get(question, "").lower() == answer.strip().lower() else 0.0


@activity.defn
async def pick_question(level: int) -> str:
    return ["2+2", "3*3", "capital of france"][min(level, 2)]


@activity.defn
async def page_oncall(service: str, severity: str) -> str:
    return f"paged the {service} on-call ({severity})"


@activity.defn
async def restart_service(service: str) -> str:
    if service == "database":
        raise ApplicationError("a database is never restarted blindly", non_retryable=True)
    return f"{service} restarted"


@activity.defn
async def post_status(text: str) -> str:
    return f"status: {text}"


@activity.defn
async def check_control(control: str) -> bool:
    return control not in ("mfa-enforced-for-admins",)


@activity.defn
async def file_finding(control: str) -> str:
    return f"finding filed for {control}"


@activity.defn
async def read_source(table: str, since: int) -> list[dict[str, int]]:
    return [{"id": i, "value": i * 10} for i in range(since, since + 3)]


@activity.defn
async def write_target(table: str, rows: list[dict[str, int]]) -> int:
    return len(rows)


ALL = [
    analyse_conversation,
    open_ticket,
    grade_answer,
    pick_question,
    page_oncall,
    restart_service,
    post_status,
    check_control,
    file_finding,
    read_source,
    write_target,
]

"""The six workflows of the ops brief, written as Temporal workflows.

Only the imports say ``opsloom.compat.temporal``; with ``temporalio`` instead they are plain
Temporal code. Run them all with ``python -m examples.temporal`` (an SQLite file, no server).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from opsloom.compat.temporal import workflow
from opsloom.compat.temporal.common import RetryPolicy
from opsloom.compat.temporal.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from examples.temporal.activities import (
        Message,
        analyse_conversation,
        check_control,
        file_finding,
        grade_answer,
        open_ticket,
        page_oncall,
        pick_question,
        post_status,
        read_source,
        restart_service,
        write_target,
    )

QUICK = timedelta(seconds=30)
RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=100), maximum_attempts=5)


@workflow.defn
class ConversationAnalysis:
    """Analyse a support conversation; a frustrated customer gets a ticket."""

    @workflow.run
    async def run(self, messages: list[Message]) -> dict[str, Any]:
        analysis = await workflow.execute_activity(
            analyse_conversation, messages, start_to_close_timeout=QUICK, retry_policy=RETRY
        )
        ticket = None
        if analysis.escalate:
            ticket = await workflow.execute_activity(
                open_ticket, f"frustration {analysis.frustration}", start_to_close_timeout=QUICK
            )
        return {"frustration": analysis.frustration, "ticket": ticket}


@workflow.defn
class AdaptiveLearning:
    """Ask questions, one level harder after each right answer; answers arrive as signals."""

    def __init__(self) -> None:
        self.answers: list[str] = []

    @workflow.run
    async def run(self, rounds: int) -> dict[str, Any]:
        level, score = 0, 0.0
        for index in range(rounds):
            question = await workflow.execute_activity(
                pick_question, level, start_to_close_timeout=QUICK
            )
            await workflow.wait_condition(lambda i=index: len(self.answers) > i)
            grade = await workflow.execute_activity(
                grade_answer, args=[question, self.answers[index]], start_to_close_timeout=QUICK
            )
            score += grade
            level = level + 1 if grade else max(level - 1, 0)
        return {"score": score, "level": level}

    @workflow.signal
    def answer(self, text: str) -> None:
        self.answers.append(text)

    @workflow.query
    def progress(self) -> int:
        return len(self.answers)


@workflow.defn
class IncidentResponse:
    """Page, post status and restart in parallel; an unrestartable service is escalated."""

    @workflow.run
    async def run(self, service: str, severity: str) -> list[str]:
        paged, status = await asyncio.gather(
            workflow.execute_activity(
                page_oncall, args=[service, severity], start_to_close_timeout=QUICK
            ),
            workflow.execute_activity(
                post_status, f"investigating {service}", start_to_close_timeout=QUICK
            ),
        )
        try:
            fixed = await workflow.execute_activity(
                restart_service, service, start_to_close_timeout=QUICK, retry_policy=RETRY
            )
        except ActivityError:
            fixed = await workflow.execute_activity(
                open_ticket, f"manual fix of {service}", start_to_close_timeout=QUICK
            )
        return [paged, status, fixed]


@dataclass
class Stage:
    name: str
    approvers: list[str]
    approved_by: list[str] = field(default_factory=list)


@workflow.defn
class MultiStageApproval:
    """Stages one after another; each needs one of its approvers, within a deadline."""

    def __init__(self) -> None:
        self.decisions: list[tuple[str, bool]] = []

    @workflow.run
    async def run(self, stages: list[Stage], hours: float) -> dict[str, Any]:
        for stage in stages:
            try:
                await workflow.wait_condition(
                    lambda s=stage: any(who in s.approvers for who, _ in self.decisions),
                    timeout=timedelta(hours=hours),
                )
            except TimeoutError:
                return {"approved": False, "stage": stage.name, "reason": "timed out"}
            who, ok = next(d for d in self.decisions if d[0] in stage.approvers)
            if not ok:
                return {"approved": False, "stage": stage.name, "reason": f"denied by {who}"}
            self.decisions.clear()
        return {"approved": True, "stage": None, "reason": None}

    @workflow.update
    def decide(self, who: str, approve: bool) -> int:
        self.decisions.append((who, approve))
        return len(self.decisions)

    @decide.validator
    def only_people(self, who: str, approve: bool) -> None:
        if not who:
            raise ValueError("a decision names who decides")


@workflow.defn
class ComplianceMonitoring:
    """Check controls each cycle, file findings, then continue as new with a fresh history."""

    @workflow.run
    async def run(self, controls: list[str], cycles: int, findings: int) -> int:
        for control in controls:
            ok = await workflow.execute_activity(
                check_control, control, start_to_close_timeout=QUICK
            )
            if not ok:
                await workflow.execute_activity(file_finding, control, start_to_close_timeout=QUICK)
                findings += 1
        if cycles > 1:
            await workflow.sleep(timedelta(seconds=1))
            workflow.continue_as_new(args=[controls, cycles - 1, findings])
        return findings


@workflow.defn
class DataSync:
    """Copy tables in batches, each table a child workflow."""

    @workflow.run
    async def run(self, tables: list[str]) -> dict[str, int]:
        counts = await asyncio.gather(
            *(workflow.execute_child_workflow(TableSync.run, table) for table in tables)
        )
        return dict(zip(tables, counts, strict=True))


@workflow.defn
class TableSync:
    @workflow.run
    async def run(self, table: str) -> int:
        copied = 0
        for since in (0, 3):
            rows = await workflow.execute_activity(
                read_source, args=[table, since], start_to_close_timeout=QUICK
            )
            copied += await workflow.execute_activity(
                write_target, args=[table, rows], start_to_close_timeout=QUICK
            )
        return copied


ALL = [
    ConversationAnalysis,
    AdaptiveLearning,
    IncidentResponse,
    MultiStageApproval,
    ComplianceMonitoring,
    DataSync,
    TableSync,
]

"""A document pages PagerDuty, posts to Slack and opens a Jira issue through the vendor fakes.

Slack is down when the run starts: its breaker opens after two failed attempts, the step then
waits durably for the cooldown (the recorded error is the open circuit), and once Slack is back
the trial call closes the breaker and the run completes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import ExitStack

from vendors import jira_fake, pagerduty_fake, slack_fake

from opsloom import App, FakeClock
from opsloom.connectors.event import CLOSED, OPENED
from opsloom.dsl.runtime import DslOptions, DslRuntime
from opsloom.model import StepStatus
from opsloom.store.event import EventQuery

DOCUMENT = """
document:
  dsl: '1.0.3'
  namespace: ops
  name: incident
  version: '1.0.0'
do:
  - page:
      call: pagerduty-trigger:1.0.0@default
      with:
        connection: pd
        summary: ${ "disk full on " + .host }
        source: ${ .host }
        severity: critical
      export:
        as: '${ { dedup: .dedup_key } }'
  - tell:
      call: slack-post-message:1.0.0@default
      with:
        connection: ops-slack
        channel: '#incidents'
        text: ${ "paged for " + $context.dedup }
        blocks:
          - type: section
            text: {type: mrkdwn, text: '*disk full*'}
      export:
        as: '${ $context + { ts: .ts } }'
  - ticket:
      call: jira-create-issue:1.0.0@default
      with:
        connection: jira
        project: OPS
        summary: disk full
        issue_type: Incident
        description: ${ "Slack thread " + $context.ts }
"""


async def until(check: Callable[[], Awaitable[bool]], nudge: Callable[[], None], what: str) -> None:
    """Await a condition, nudging the fake clock between looks (bounded)."""
    for _ in range(400):
        if await check():
            return
        nudge()
        await asyncio.sleep(0.025)
    raise AssertionError(f"timed out waiting for {what}")


async def test_incident_document__breaker_opens_on_dead_slack_and_the_run_completes(
    fresh: App, clock: FakeClock
) -> None:
    runtime = DslRuntime(fresh, DslOptions())  # the app's catalog holds every connector action
    with ExitStack() as stack:
        pd = stack.enter_context(pagerduty_fake())
        slack = stack.enter_context(slack_fake())
        jira = stack.enter_context(jira_fake())
        async with fresh:
            add = fresh.connections.add_connection
            await add("pd", "pagerduty", {"routing_key": "R" * 32, "events_url": pd.url})
            await add(
                "ops-slack",
                "slack",
                {
                    "token": "xoxb-e2e",
                    "api_url": f"{slack.url}/api",
                    "breaker": {"failures": 2, "cooldown": 30, "successes": 1},
                },
            )
            await add(
                "jira", "jira", {"site_url": jira.url, "email": "b@acme.test", "api_token": "t0k3n"}
            )
            slack.stop()  # Slack is down
            workflow = runtime.register(runtime.load(DOCUMENT), DOCUMENT)
            handle = await fresh.start(workflow, {"host": "db-1"})

            async def breaker_open() -> bool:
                return fresh.connections.breaker("ops-slack")["state"] == "open"

            await until(breaker_open, lambda: clock.advance(2.5), "the Slack breaker to open")
            # Nudge the retry of the Slack step, staying well inside the 30 s cooldown.
            limit = clock.now() + 10

            async def circuit_recorded() -> bool:
                run = await fresh.get_run(handle.run_id)
                return any(
                    s.status is StepStatus.RETRYING
                    and (s.error or {}).get("type") == "CircuitOpenError"
                    for s in run.steps
                )

            def nudge() -> None:
                if clock.now() < limit:
                    clock.advance(0.5)

            await until(circuit_recorded, nudge, "the open circuit to be recorded")

            slack.start()  # Slack is back on the same port
            clock.advance(31)
            output = await handle.result(timeout=20)
            await fresh.connections.flush()
            events = await fresh.store.list_events(EventQuery(subject="ops-slack"))

    assert output["key"] == "OPS-1"
    assert [e.event.type for e in reversed(events)] == [OPENED, CLOSED]
    assert len(pd.requests) == 1  # paged once, though the run was replayed
    dedup = pd.requests[0].json["dedup_key"]
    assert dedup.startswith(f"{handle.run_id}:")  # the page step's idempotency key
    assert slack.last().form["text"] == f"paged for {dedup}"
    jira_description = jira.last().json["fields"]["description"]["content"][0]["content"][0]
    assert jira_description["text"].startswith("Slack thread 1503435956.")
    assert slack.problems == pd.problems == jira.problems == []

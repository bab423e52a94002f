"""Adaptive retries: the retry recommendations applied to new attempts, opt in, audited.

With ``OPSLOOM_ADAPTIVE`` on, every process that runs a worker starts an :class:`Adaptive`
loop. Every ``period`` seconds it reads the step rollups of the last ``window`` and takes the
retry recommendations of :func:`opsloom.analytics.recommend.step_advice`:

- ``retries_rescue``: the step often succeeds on a later attempt while its failures gave up
  early: its attempts are raised to the suggested number (at most :data:`MOST_ATTEMPTS`);
- ``retries_never_help``: its retries never saved it: it is tried once.

Each process applies them to its own registry (:attr:`Registry.adapted_attempts`), so that
every step attempt from then on runs under the adapted policy; a step that ran under one says
so in its history (``retry_policy`` in its error). A setting that no longer holds (the
recommendation is gone from the window) is dropped, and the step's own policy applies again.
The holder of the ``adaptive`` singleton logs each change and writes it to the audit log
(``adaptive.retry`` by ``system:adaptive``, with the evidence). Turning the setting off and
restarting undoes everything: nothing is stored but the audit entries.
"""

from __future__ import annotations

import logging
from typing import Any

from opsloom.analytics.periodic import StoreTask
from opsloom.analytics.recommend import step_advice
from opsloom.clock import Clock
from opsloom.engine.registry import Registry
from opsloom.store.audit import AuditDraft
from opsloom.store.base import Store
from opsloom.store.rollup import HOUR

log = logging.getLogger("opsloom.adaptive")

#: The most attempts the adaptive mode gives a step.
MOST_ATTEMPTS = 8
ACTOR = "system:adaptive"


def adapted(advice: list[Any]) -> dict[tuple[str, str], tuple[int, dict[str, Any]]]:
    """Attempts per (workflow, step) from retry recommendations, with their evidence."""
    out: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}
    for item in advice:
        if item.kind not in ("retries_rescue", "retries_never_help") or item.step is None:
            continue
        attempts = min(MOST_ATTEMPTS, int(item.suggestion["retry"]["attempts"]))
        out[(item.workflow, item.step)] = (attempts, {"kind": item.kind, **item.evidence})
    return out


class Adaptive(StoreTask):
    """The adaptive-retry loop of one process."""

    name = "adaptive"
    log = log

    def __init__(
        self,
        store: Store,
        clock: Clock,
        owner: str,
        registry: Registry,
        *,
        period: float = 300.0,
        window: float = 6 * 3600.0,
    ) -> None:
        super().__init__(store, clock, owner, period)
        self.registry = registry
        self.window = window

    async def run_once(self) -> dict[tuple[str, str], int]:
        """Look at the window now and apply what it says; the attempts that changed (0:
        dropped)."""
        now = self.clock.now()
        first = int((now - self.window) // HOUR) * HOUR
        last = int(now // HOUR) * HOUR
        steps = await self.store.step_cells(HOUR, first, last)
        failures = await self.store.failure_cells(HOUR, first, last)
        wanted = adapted(step_advice(steps, failures))
        current = self.registry.adapted_attempts
        changes: dict[tuple[str, str], int] = {}
        for key, (attempts, _) in wanted.items():
            if current.get(key) != attempts:
                changes[key] = attempts
        for key in current:
            if key not in wanted:
                changes[key] = 0
        if not changes:
            return {}
        before = dict(current)
        for key, attempts in changes.items():
            if attempts:
                current[key] = attempts
            else:
                current.pop(key, None)
        if await self.hold(now):
            for (workflow, step), attempts in sorted(changes.items()):
                evidence = wanted.get((workflow, step), (0, {}))[1]
                data = {
                    "workflow": workflow,
                    "step": step,
                    "attempts": attempts or None,
                    "before": before.get((workflow, step)),
                    "evidence": evidence,
                }
                log.warning(
                    "adaptive retries: step %s of %s now tried %s",
                    step,
                    workflow,
                    f"{attempts} times" if attempts else "under its own policy",
                    extra={"event": "adaptive_retry", **data},
                )
                draft = AuditDraft(ACTOR, "adaptive.retry", f"step:{workflow}/{step}", data, now)
                await self.store.append_audit(draft)
        return changes

"""Adaptive retries and timeouts: recommendations applied to new attempts, opt in, audited.

With ``OPSLOOM_ADAPTIVE`` on, every process that runs a worker starts an :class:`Adaptive`
loop. Every ``period`` seconds it reads the step rollups of the last ``window`` and takes the
step recommendations of :func:`opsloom.analytics.recommend.step_advice`:

- ``retries_rescue``: the step often succeeds on a later attempt while its failures gave up
  early: its attempts are raised to the suggested number (at most :data:`MOST_ATTEMPTS`);
- ``retries_never_help``: its retries never saved it: it is tried once;
- ``step_timeouts_hit``: its attempts fail on its timeout while completed ones take a known
  time: its timeout becomes the suggested one (a margin over their p99), **only where that
  lengthens the timeout the step's author set**, and to at most
  :data:`~opsloom.engine.registry.MOST_TIMEOUT_FACTOR` times it
  (:meth:`Registry.timeout_for`).

The timeout rule is the conservative one. Cutting an attempt short is not undone by retrying
it: whatever the attempt had already done is done again (and a synchronous step's thread
runs on). So an automatic change never shortens a timeout, and never gives one to a step that
has none: such a change could fail work that the author's policy lets finish. Lengthening
only lets attempts finish that would have failed. Its cost, a hung attempt holding its slot
longer, is bounded by the author's own value. Shorter timeouts stay recommendations for a
person. The watchdog reports runs hung without a timeout.

Each process applies them to its own registry (:attr:`Registry.adapted_attempts`,
:attr:`Registry.adapted_timeouts`), so that every step attempt from then on runs under the
adapted policy. A step that ran under one says so in its history: ``retry_policy`` in its
error when it was retried, ``timeout`` (seconds, ``adapted``) always.

A setting that works makes its own evidence leave the window: the step stops failing, so its
recommendation goes. Dropping the setting then would bring the failures back, and the setting
after them, every ``window``. So a setting that lengthens the step's own policy (more attempts,
a longer timeout) is kept after its recommendation has gone, and dropped only once the whole
window ran under it, the step ran at least ``settle_runs`` times in it, and none of those
would have failed under the step's own policy (:func:`still_needed`). A step that does not run
keeps its setting; a ``retries_never_help`` setting (fewer attempts) is dropped with its
recommendation, as trying the step's own retries again costs attempts, never outcomes. The
hold is per process: a process started after the recommendation left the window runs the
step's own policy until it comes back.

The holder of the ``adaptive`` singleton logs each change and writes it to the audit log
(``adaptive.retry`` or ``adaptive.timeout`` by ``system:adaptive``, with the evidence).
Turning the setting off and restarting undoes everything: nothing is stored but the audit
entries.
"""

from __future__ import annotations

import logging
from typing import Any

from opsloom.analytics.periodic import StoreTask
from opsloom.analytics.recommend import step_advice
from opsloom.clock import Clock
from opsloom.engine.registry import Registry, StepSpec
from opsloom.store.audit import AuditDraft
from opsloom.store.base import Store
from opsloom.store.rollup import BOUNDS, HOUR, StepCell

log = logging.getLogger("opsloom.adaptive")

#: The most attempts the adaptive mode gives a step.
MOST_ATTEMPTS = 8
ACTOR = "system:adaptive"


#: The settings the adaptive mode sets, by the recommendations that ask for them.
KINDS = {
    "retries_rescue": "retry",
    "retries_never_help": "retry",
    "step_timeouts_hit": "timeout",
}

Key = tuple[str, str, str]
"""(setting, workflow, step): ``("retry", "nightly", "fetch")``."""


def adapted(advice: list[Any]) -> dict[Key, tuple[float, dict[str, Any]]]:
    """The value of each setting per (workflow, step) from the recommendations, with their
    evidence: attempts for ``retry``, seconds for ``timeout``."""
    out: dict[Key, tuple[float, dict[str, Any]]] = {}
    for item in advice:
        setting = KINDS.get(item.kind)
        if setting is None or item.step is None:
            continue
        value: float
        if setting == "retry":
            value = min(MOST_ATTEMPTS, int(item.suggestion["retry"]["attempts"]))
        else:
            value = float(item.suggestion["step_timeout"])
        out[(setting, item.workflow, item.step)] = (value, {"kind": item.kind, **item.evidence})
    return out


def still_needed(setting: str, done: StepCell | None, own: StepSpec) -> bool:
    """Whether some step that completed in the window may have failed under its own policy.

    ``retry``: one that a retry saved may have needed more attempts than its own policy
    allows. The rollup counts the attempts of the saved steps, not which attempt saved each:
    the most one of them can have taken is their attempts less two for each other one. Exact
    when the own policy allows one or two attempts; otherwise it keeps a setting rather than
    drop one still needed. ``timeout``: one took longer than the step's own timeout (by the
    upper bound of the slowest histogram bucket, so again it keeps when unsure).
    """
    if done is None:
        return False
    if setting == "retry":
        saved = done.retried
        saved_attempts = done.attempts - (done.steps - saved)
        return saved > 0 and saved_attempts - 2 * (saved - 1) > own.retry.attempts
    slowest = max((i for i, count in enumerate(done.counts) if count), default=None)
    if slowest is None or own.timeout is None:
        return False
    return slowest >= len(BOUNDS) or BOUNDS[slowest] > own.timeout


class Adaptive(StoreTask):
    """The adaptive loop of one process."""

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
        settle_runs: int = 20,
    ) -> None:
        super().__init__(store, clock, owner, period)
        self.registry = registry
        self.window = window
        self.settle_runs = settle_runs
        # When each setting in force took its present value.
        self._since: dict[Key, float] = {}

    def _current(self) -> dict[Key, float]:
        registry = self.registry
        return {
            **{("retry", *key): value for key, value in registry.adapted_attempts.items()},
            **{("timeout", *key): value for key, value in registry.adapted_timeouts.items()},
        }

    def _set(self, key: Key, value: float) -> None:
        setting, workflow, step = key
        if setting == "retry":
            if value:
                self.registry.adapted_attempts[(workflow, step)] = int(value)
            else:
                self.registry.adapted_attempts.pop((workflow, step), None)
        elif value:
            self.registry.adapted_timeouts[(workflow, step)] = value
        else:
            self.registry.adapted_timeouts.pop((workflow, step), None)

    async def run_once(self) -> dict[Key, float]:
        """Look at the window now and apply what it says; the settings that changed (0:
        dropped)."""
        now = self.clock.now()
        first = int((now - self.window) // HOUR) * HOUR
        last = int(now // HOUR) * HOUR
        steps = await self.store.step_cells(HOUR, first, last)
        failures = await self.store.failure_cells(HOUR, first, last)
        wanted = adapted(step_advice(steps, failures))
        current = self._current()
        changes: dict[Key, float] = {}
        for key, (value, _) in wanted.items():
            if current.get(key) != value:
                changes[key] = value
        done = {(c.workflow, c.step): c for c in steps if c.status == "completed"}
        failed = {(c.workflow, c.step): c for c in steps if c.status == "failed"}
        for key, value in current.items():
            # A setting in force that this loop did not set (the registry outlived the loop
            # that did: the app was opened again) counts from when it is first seen here.
            self._since.setdefault(key, now)
            if key not in wanted and not self._holds(key, value, done, failed, now):
                changes[key] = 0
        for key, value in changes.items():
            self._set(key, value)
            if value:
                self._since[key] = now
            else:
                self._since.pop(key, None)
        if changes and await self.hold(now):
            for key, value in sorted(changes.items()):
                evidence = wanted.get(key, (0, {}))[1]
                await self._report(key, value, current.get(key), evidence, now)
        return changes

    def _holds(
        self,
        key: Key,
        value: float,
        done: dict[tuple[str, str], StepCell],
        failed: dict[tuple[str, str], StepCell],
        now: float,
    ) -> bool:
        """Whether a setting whose recommendation has gone stays (see the module docstring)."""
        setting, workflow, step = key
        own = self.registry.ran_steps.get((workflow, step))
        if setting == "retry" and (value <= 1 or (own is not None and value <= own.retry.attempts)):
            return False  # fewer attempts than the step's own (``retries_never_help``)
        if own is None:
            return True  # no attempt of it ran here yet: nothing says it is not needed
        # The rollups of the window begin at the start of its first hour.
        if now - self._since[key] < self.window + HOUR:
            return True
        cells = (done.get((workflow, step)), failed.get((workflow, step)))
        if sum(cell.steps for cell in cells if cell is not None) < self.settle_runs:
            return True
        return still_needed(setting, cells[0], own)

    async def _report(
        self, key: Key, value: float, before: float | None, evidence: dict[str, Any], now: float
    ) -> None:
        """Log and audit one change."""
        setting, workflow, step = key
        field = "attempts" if setting == "retry" else "timeout"
        data = {
            "workflow": workflow,
            "step": step,
            field: value or None,
            "before": before,
            "evidence": evidence,
        }
        if not value:
            now_under = "its own policy"
        elif setting == "retry":
            now_under = f"{value:g} attempts"
        else:
            now_under = f"a timeout of {value:g} s where its own is shorter"
        log.warning(
            "adaptive %s: step %s of %s now runs under %s",
            setting,
            step,
            workflow,
            now_under,
            extra={"event": f"adaptive_{setting}", **data},
        )
        draft = AuditDraft(ACTOR, f"adaptive.{setting}", f"step:{workflow}/{step}", data, now)
        await self.store.append_audit(draft)

"""Declaring workflows, steps, schedules and event triggers in code: what an App registers.

>>> app = App()
>>> @app.step(retry=RetryPolicy(attempts=3))
... async def restart(service: str) -> dict: ...
>>> @app.workflow(name="remediate", schedule="*/5 * * * *")
... async def remediate(ctx: Context, alert: dict) -> dict: ...
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar, overload

from opsloom.engine.registry import (
    DEFAULT_RETRY,
    Registry,
    WorkflowFn,
    WorkflowSpec,
    attach_step_spec,
    make_step_spec,
    workflow_takes_input,
)
from opsloom.errors import ConfigurationError, InputError
from opsloom.model import RetryPolicy
from opsloom.model.matching import jq_program
from opsloom.model.ratelimit import RateLimit
from opsloom.model.schedule import Schedule
from opsloom.triggers.registration import DEFAULT_KEY, TriggerSpec

F = TypeVar("F", bound=Callable[..., Any])
W = TypeVar("W", bound=WorkflowFn)


class Definitions:
    """The workflows and steps of an application, with their schedules and event triggers.

    Attributes:
        registry: the workflow versions by name, what the engine runs.
        schedules: schedules of code-first workflows (``@app.workflow(schedule=…)``), by
            workflow name.
        triggers: event triggers of code-first workflows (:meth:`trigger`), by workflow name.
    """

    def __init__(self) -> None:
        self.registry = Registry()
        self.schedules: dict[str, Schedule] = {}
        self.triggers: dict[str, TriggerSpec] = {}

    @overload
    def step(self, fn: F) -> F: ...

    @overload
    def step(
        self,
        fn: None = None,
        *,
        name: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
    ) -> Callable[[F], F]: ...

    def step(
        self,
        fn: F | None = None,
        *,
        name: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
    ) -> F | Callable[[F], F]:
        """Declare a step function (async or sync) with its retry policy and timeout."""

        def register(func: F) -> F:
            attach_step_spec(func, make_step_spec(func, name, retry or DEFAULT_RETRY, timeout))
            return func

        return register(fn) if fn is not None else register

    @overload
    def workflow(self, fn: W) -> W: ...

    @overload
    def workflow(
        self,
        fn: None = None,
        *,
        name: str | None = None,
        version: str = "1",
        timeout: float | None = None,
        priority: int = 0,
        concurrency: int | None = None,
        concurrency_key: Callable[[Any], str] | str | None = None,
        schedule: str | Schedule | None = None,
        on: dict[str, Any] | list[dict[str, Any]] | None = None,
        rate_limit: RateLimit | str | dict[str, Any] | None = None,
    ) -> Callable[[W], W]: ...

    def workflow(
        self,
        fn: W | None = None,
        *,
        name: str | None = None,
        version: str = "1",
        timeout: float | None = None,
        priority: int = 0,
        concurrency: int | None = None,
        concurrency_key: Callable[[Any], str] | str | None = None,
        schedule: str | Schedule | None = None,
        on: dict[str, Any] | list[dict[str, Any]] | None = None,
        rate_limit: RateLimit | str | dict[str, Any] | None = None,
    ) -> W | Callable[[W], W]:
        """Register a workflow ``async def wf(ctx, input)`` under a name and version.

        ``concurrency`` limits how many runs of this workflow are open at once, across all
        workers; with ``concurrency_key`` the limit applies per key (e.g. per service): a
        function of the input, or a jq expression over it (``".service"``), which runs started
        by a trigger can use too.
        ``schedule`` starts runs by themselves: a cron expression (``"*/5 * * * *"``, UTC) or a
        :class:`~opsloom.model.schedule.Schedule` (time zone, interval, misfire policy, input).
        ``on`` starts runs from events: a filter or a list of them (see :meth:`trigger`, which
        also takes the dedup key, window and mode).
        ``rate_limit`` limits how many runs start per second, for every process on the store:
        ``"10/minute"``, a :class:`~opsloom.model.ratelimit.RateLimit` (per key with a jq
        expression over the input, dropping starts past it) or a mapping of its fields;
        runs started faster queue and start at the rate.
        """
        parsed = None if schedule is None else Schedule.parse(schedule)
        limit = _rate_limit(rate_limit, f"workflow {name or '(unnamed)'}: rate_limit")
        if concurrency is not None and concurrency < 1:
            raise ConfigurationError("workflow concurrency must be at least 1")
        if concurrency_key is not None and concurrency is None:
            raise ConfigurationError("concurrency_key needs a concurrency limit")
        if isinstance(concurrency_key, str):
            try:
                jq_program(concurrency_key)
            except ValueError as exc:
                raise ConfigurationError(
                    f"concurrency_key {concurrency_key!r} is not a jq expression: {exc}"
                ) from None

        def register(func: W) -> W:
            if not inspect.iscoroutinefunction(func):
                raise ConfigurationError(f"workflow {func.__qualname__} must be an async function")
            self.registry.add_workflow(
                WorkflowSpec(
                    fn=func,
                    name=name or func.__name__,
                    version=str(version),
                    timeout=timeout,
                    priority=priority,
                    concurrency=concurrency,
                    concurrency_key=concurrency_key,
                    takes_input=workflow_takes_input(func),
                    rate_limit=limit,
                )
            )
            if parsed is not None:
                self.schedules[name or func.__name__] = parsed
            if on is not None:
                self.trigger(
                    name or func.__name__, on=on, mode="one" if isinstance(on, dict) else "any"
                )
            return func  # type: ignore[return-value]  # inspect narrows it too far

        return register(fn) if fn is not None else register

    def trigger(
        self,
        workflow: str,
        *,
        on: dict[str, Any] | list[dict[str, Any]],
        mode: str = "one",
        key: str | None = DEFAULT_KEY,
        window: float = 0.0,
        version: str | None = None,
        input: str | None = None,
        follow: list[dict[str, Any]] | None = None,
        debounce: float = 0.0,
        debounce_max: float | None = None,
        rate_limit: RateLimit | str | dict[str, Any] | None = None,
    ) -> None:
        """Start runs of ``workflow`` from stored events (saved when a worker opens the app).

        ``on`` is an event filter or a list of them, ``mode`` ``one``, ``any`` or ``all``.
        While a run started for a dedup ``key`` (jq over the event; default ``.subject``, an
        alert's fingerprint; ``None``: no dedup) is open, later events of that key reach its
        inbox (``events:inbox``, also seen by ``wait_for_event``) instead of starting runs, as
        do ``follow`` events (default: the resolved alerts of firing ones); ``window``
        seconds after it ended they start nothing. With ``debounce`` seconds, the events of a
        key with no open run start one run, with the last of them, once none came for that
        long (at most ``debounce_max`` seconds after the first). ``rate_limit`` limits the runs
        this trigger starts (its key is a jq expression over the event), on top of the
        workflow's. See :mod:`opsloom.model.trigger`.
        """
        filters = [on] if isinstance(on, dict) else list(on)
        limit = _rate_limit(rate_limit, f"trigger of workflow {workflow}: rate_limit")
        spec = TriggerSpec(
            filters, mode, key, window, version, input, follow, debounce, debounce_max, limit
        )
        # Checked now, so a mistake shows at import time rather than when a worker opens.
        spec.build(f"code:{workflow}", workflow, version or "?", None)
        self.triggers[workflow] = spec


def _rate_limit(value: RateLimit | str | dict[str, Any] | None, where: str) -> RateLimit | None:
    if value is None:
        return None
    try:
        return RateLimit.parse(value, where)
    except InputError as exc:
        raise ConfigurationError(str(exc)) from None

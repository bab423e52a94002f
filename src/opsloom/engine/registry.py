"""Registered workflows and steps of one application."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from opsloom.errors import ConfigurationError, StepFailedError, WorkflowNotFoundError
from opsloom.model import RetryPolicy
from opsloom.model.ratelimit import RateLimit
from opsloom.model.trigger import jq_key

WorkflowFn = Callable[..., Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class StepSpec:
    """A step function and how it is run."""

    fn: Callable[..., Any]
    name: str
    retry: RetryPolicy
    timeout: float | None
    is_async: bool
    #: What a layer on the engine does around each attempt and with the step's final failure
    #: (the Temporal compat layer: an activity's context, its errors); None for ordinary steps.
    hook: StepHook | None = None


class StepHook(Protocol):
    """Run by the engine around each attempt of a step whose spec has it, in the run's context
    (so context variables it sets are seen by the step's body), and at the step's failure."""

    def enter(self, started: float) -> Any:
        """Before the attempt's body is called (``started``: when the attempt started, as its
        history entry records it; ``current_step()`` tells the attempt); what it returns goes
        to ``done`` or ``failed`` and, unless None, is the ``entered`` of the ``StepInfo`` the
        body's code sees. An exception fails the attempt."""

    def done(self, entered: Any, result: Any) -> Any:
        """After the body returned ``result``: what the step returns (and records)."""

    def failed(self, entered: Any, exc: BaseException) -> None:
        """After the body raised ``exc``, before it is handled; may raise another error in its
        place (the attempt's failure)."""

    def failure(self, error: StepFailedError) -> BaseException:
        """What the workflow sees in place of the step's final failure (also on replay)."""


@dataclass(frozen=True, slots=True)
class WorkflowSpec:
    """A workflow function at one version, with its engine knobs."""

    fn: WorkflowFn
    name: str
    version: str
    timeout: float | None = None
    priority: int = 0
    concurrency: int | None = None
    #: Narrows the limit per key: a function of the input, or a jq expression over it (which
    #: triggers can evaluate too: ``".service"``).
    concurrency_key: Callable[[Any], str] | str | None = None
    takes_input: bool = True
    #: How many runs may start per second (per key of the run input, if the limit has one);
    #: saved to the store by each worker that starts.
    rate_limit: RateLimit | None = None

    @property
    def kind(self) -> str:
        """What jobs of this workflow are filed under: ``name@version``."""
        return f"{self.name}@{self.version}"

    def key_for(self, value: Any) -> str | None:
        """The concurrency key of a run with input ``value`` (None: no limit)."""
        if self.concurrency is None:
            return None
        if self.concurrency_key is None:
            return self.name
        if isinstance(self.concurrency_key, str):
            return f"{self.name}:{jq_key(self.concurrency_key, value)}"
        return f"{self.name}:{self.concurrency_key(value)}"


DEFAULT_RETRY = RetryPolicy()
#: The adaptive mode lengthens a step's own timeout at most this many times.
MOST_TIMEOUT_FACTOR = 10.0
_STEP_ATTR = "__opsloom_step__"


class Registry:
    """Workflows by name and version, and the step specs of decorated functions."""

    def __init__(self) -> None:
        self._workflows: dict[str, dict[str, WorkflowSpec]] = {}
        self._latest: dict[str, WorkflowSpec] = {}
        self._adhoc_steps: dict[Callable[..., Any], StepSpec] = {}
        #: Attempts set by the adaptive mode per (workflow, step name), in place of the
        #: step's own policy's (see :mod:`opsloom.analytics.adaptive`).
        self.adapted_attempts: dict[tuple[str, str], int] = {}
        #: Timeouts (seconds) suggested by the adaptive mode per (workflow, step name); they
        #: only ever lengthen a step's own timeout (see :meth:`timeout_for`).
        self.adapted_timeouts: dict[tuple[str, str], float] = {}
        #: The spec of each step an attempt ran, per (workflow, step name): the author's
        #: policy that the adaptive mode weighs its settings against.
        self.ran_steps: dict[tuple[str, str], StepSpec] = {}

    def add_workflow(self, spec: WorkflowSpec) -> None:
        versions = self._workflows.setdefault(spec.name, {})
        if spec.version in versions and versions[spec.version].fn is not spec.fn:
            raise ConfigurationError(
                f"workflow {spec.name!r} version {spec.version!r} is registered twice"
            )
        versions[spec.version] = spec
        self._latest[spec.name] = spec

    def workflow(self, name: str, version: str | None = None) -> WorkflowSpec:
        versions = self._workflows.get(name)
        if not versions:
            known = ", ".join(sorted(self._workflows)) or "none"
            raise WorkflowNotFoundError(f"unknown workflow {name!r} (registered: {known})")
        if version is None:
            return self._latest[name]
        spec = versions.get(version)
        if spec is None:
            raise WorkflowNotFoundError(
                f"workflow {name!r} has no version {version!r} "
                f"(registered: {', '.join(sorted(versions))})"
            )
        return spec

    def workflows(self) -> list[WorkflowSpec]:
        return [spec for versions in self._workflows.values() for spec in versions.values()]

    def kinds(self) -> frozenset[str]:
        return frozenset(spec.kind for spec in self.workflows())

    def retry_for(self, workflow: str, spec: StepSpec) -> tuple[RetryPolicy, bool]:
        """The retry policy a step of ``workflow`` runs under now, and whether the adaptive
        mode changed it."""
        self.ran_steps[(workflow, spec.name)] = spec
        attempts = self.adapted_attempts.get((workflow, spec.name))
        if attempts is None or attempts == spec.retry.attempts:
            return spec.retry, False
        return replace(spec.retry, attempts=attempts), True

    def timeout_for(self, workflow: str, spec: StepSpec) -> tuple[float | None, bool]:
        """The timeout a step attempt of ``workflow`` runs under now, and whether the adaptive
        mode changed it.

        An adapted timeout only lengthens the step's own, to at most :data:`MOST_TIMEOUT_FACTOR`
        times it: a step without a timeout keeps none, and none is ever shortened.
        """
        own = spec.timeout
        wanted = self.adapted_timeouts.get((workflow, spec.name))
        if own is None or wanted is None or wanted <= own:
            return own, False
        return min(wanted, MOST_TIMEOUT_FACTOR * own), True

    def step_spec(self, fn: Callable[..., Any]) -> StepSpec:
        """The spec of a decorated step, or a default one for a plain function."""
        spec = getattr(fn, _STEP_ATTR, None)
        if isinstance(spec, StepSpec):
            return spec
        spec = self._adhoc_steps.get(fn)
        if spec is None:
            spec = make_step_spec(fn, None, DEFAULT_RETRY, None)
            self._adhoc_steps[fn] = spec
        return spec


def make_step_spec(
    fn: Callable[..., Any],
    name: str | None,
    retry: RetryPolicy,
    timeout: float | None,
    hook: StepHook | None = None,
) -> StepSpec:
    """Build a step spec and attach it to ``fn``."""
    if not callable(fn):
        raise ConfigurationError(f"a step must be a function, not {fn!r}")
    label: str = name or str(getattr(fn, "__qualname__", repr(fn)))
    return StepSpec(
        fn=fn,
        name=label,
        retry=retry,
        timeout=timeout,
        is_async=inspect.iscoroutinefunction(fn),
        hook=hook,
    )


def attach_step_spec(fn: Callable[..., Any], spec: StepSpec) -> None:
    setattr(fn, _STEP_ATTR, spec)


def workflow_takes_input(fn: WorkflowFn) -> bool:
    """Whether ``fn(ctx, input)`` (True) or ``fn(ctx)`` (False)."""
    params = [
        p
        for p in inspect.signature(fn).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if not params:
        raise ConfigurationError(f"workflow {fn.__qualname__} must take a Context argument")
    return len(params) >= 2

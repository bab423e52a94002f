"""Code-first triggers: what ``app.trigger(...)`` keeps until a worker saves it to the store."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opsloom.errors import ConfigurationError, InputError
from opsloom.model.ratelimit import RateLimit
from opsloom.model.trigger import DEFAULT_KEY, MODES, Trigger, default_follow

if TYPE_CHECKING:
    from opsloom.engine.registry import WorkflowSpec

__all__ = ["DEFAULT_KEY", "TriggerSpec"]


@dataclass(frozen=True, slots=True)
class TriggerSpec:
    """A trigger as declared in code; its target version is resolved when it is saved."""

    filters: list[dict[str, Any]]
    mode: str = "one"
    key: str | None = DEFAULT_KEY
    window: float = 0.0
    version: str | None = None
    input: str | None = None
    follow: list[dict[str, Any]] | None = None
    debounce: float = 0.0
    debounce_max: float | None = None
    rate_limit: RateLimit | None = None

    def build(
        self, trigger_id: str, workflow: str, version: str, spec: WorkflowSpec | None
    ) -> Trigger:
        """The stored trigger, taking priority, timeout and concurrency from ``spec``.

        Raises:
            ConfigurationError: the declaration is wrong (names what).
        """
        if self.mode not in MODES:
            raise ConfigurationError(f"trigger mode must be one, any or all, not {self.mode!r}")
        concurrency_key = concurrency_by = None
        if spec is not None and spec.concurrency is not None:
            if callable(spec.concurrency_key):
                # The store starts triggered runs inside the event's transaction, where the
                # key function of the workflow cannot run; a jq expression can.
                raise ConfigurationError(
                    f"workflow {spec.name!r} computes its concurrency key in Python: a trigger "
                    "cannot start it; give the key as a jq expression over the input instead "
                    "(concurrency_key='.service')"
                )
            concurrency_key = spec.name
            concurrency_by = spec.concurrency_key
        try:
            return Trigger(
                id=trigger_id,
                workflow=workflow,
                version=version,
                mode=self.mode,
                filters=list(self.filters),
                follow=default_follow(self.mode, self.filters)
                if self.follow is None
                else list(self.follow),
                key=self.key,
                window=float(self.window),
                input=self.input,
                priority=0 if spec is None else spec.priority,
                concurrency_key=concurrency_key,
                concurrency_limit=None if spec is None else spec.concurrency,
                concurrency_by=concurrency_by,
                timeout=None if spec is None else spec.timeout,
                debounce=float(self.debounce),
                debounce_max=None if self.debounce_max is None else float(self.debounce_max),
                rate_limit=self.rate_limit,
            )
        except InputError as exc:
            raise ConfigurationError(str(exc)) from None

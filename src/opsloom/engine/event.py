"""Events in workflow code: subscriptions that deliver matching events, and emitting events.

A subscription is a durable history entry: on replay the recorded subscription id comes back
and nothing is written again. Matching events stored after the subscription reach the run as
signals named ``events:<subscription id>`` (payload ``{"filter": i, "event": {...}}``), kept
until a ``wait_for`` takes them, so none is lost between two waits.
"""

from __future__ import annotations

from collections.abc import Awaitable, Coroutine, Mapping
from typing import Any, TypeVar

from opsloom.codec import encode
from opsloom.engine.wait import Waits
from opsloom.errors import LeaseLostError, StoreError, WaitTimeoutError
from opsloom.model import StepKind, StepStatus
from opsloom.model.cloudevent import InvalidEventError, parse_event, rfc3339
from opsloom.model.matching import check_filters, signal_name
from opsloom.store.event import SUBSCRIBE_STEP, UNSUBSCRIBE_STEP

T = TypeVar("T")

#: History entries of these calls are recorded values (kind ``value``) under these names.
SUBSCRIBE = SUBSCRIBE_STEP
UNSUBSCRIBE = UNSUBSCRIBE_STEP
EMIT = "emit"


class Events(Waits):
    """``ctx.subscribe``, ``ctx.unsubscribe``, ``ctx.wait_for_event`` and ``ctx.emit``."""

    def subscribe(self, filters: Any) -> Coroutine[Any, Any, str]:
        checked = check_filters(filters)
        return self._subscribe(self._next(), checked)

    async def _subscribe(self, seq: int, filters: list[dict[str, Any]]) -> str:
        rec = self._recorded(seq)
        if rec is not None:
            self._check(seq, rec, StepKind.VALUE, SUBSCRIBE)
            return str(rec.output["subscription"])
        if self.frozen is not None:
            await self._block(self._frozen_wake())
        # Derived from the position, so a replay that has to write it again writes the same.
        subscription = f"{self.run.id}:{seq}"
        now = self.clock.now()
        entry = self._entry(
            seq,
            StepKind.VALUE,
            SUBSCRIBE,
            StepStatus.COMPLETED,
            output={"subscription": subscription, "filters": filters},
            started_at=now,
            completed_at=now,
        )
        await self._durable(self.store.subscribe(self.fence, subscription, filters, entry, now))
        return subscription

    def unsubscribe(self, subscription: str) -> Coroutine[Any, Any, None]:
        return self._unsubscribe(self._next(), subscription)

    async def _unsubscribe(self, seq: int, subscription: str) -> None:
        rec = self._recorded(seq)
        if rec is not None:
            self._check(seq, rec, StepKind.VALUE, UNSUBSCRIBE)
            return
        if self.frozen is not None:
            await self._block(self._frozen_wake())
        now = self.clock.now()
        entry = self._entry(
            seq,
            StepKind.VALUE,
            UNSUBSCRIBE,
            StepStatus.COMPLETED,
            output={"subscription": subscription},
            started_at=now,
            completed_at=now,
        )
        await self._durable(self.store.unsubscribe(self.fence, subscription, entry))

    def wait_for_event(self, flt: Any, timeout: float | None) -> Coroutine[Any, Any, Any]:
        filters = check_filters([flt])
        # All three positions are taken now: inside ``gather`` the branches then keep the
        # same positions on replay, whatever order they resume in.
        return self._wait_for_event(self._next(), self._next(), self._next(), filters, timeout)

    async def _wait_for_event(
        self,
        subscribe_seq: int,
        wait_seq: int,
        unsubscribe_seq: int,
        filters: list[dict[str, Any]],
        timeout: float | None,
    ) -> Any:
        subscription = await self._subscribe(subscribe_seq, filters)
        try:
            delivery = await self._wait_for(wait_seq, signal_name(subscription), timeout)
        except WaitTimeoutError:
            await self._unsubscribe(unsubscribe_seq, subscription)
            raise
        await self._unsubscribe(unsubscribe_seq, subscription)
        return delivery["event"]

    def emit(self, event: Any) -> Coroutine[Any, Any, dict[str, Any]]:
        return self._emit(self._next(), event)

    async def _emit(self, seq: int, event: Any) -> dict[str, Any]:
        rec = self._recorded(seq)
        if rec is not None:
            self._check(seq, rec, StepKind.VALUE, EMIT)
            recorded: dict[str, Any] = rec.output
            return recorded
        if self.frozen is not None:
            await self._block(self._frozen_wake())
        if not isinstance(event, Mapping):
            raise InvalidEventError("ctx.emit needs the event as a dict", attribute=None)
        now = self.clock.now()
        # The id comes from the position: a re-execution of this position (after a crash)
        # produces the same (source, id), which the store keeps once.
        defaults = {
            "specversion": "1.0",
            "id": f"{self.run.id}:{seq}",
            "source": f"opsloom/runs/{self.run.id}",
            "time": rfc3339(now),
        }
        given = {name: value for name, value in event.items() if value is not None}
        parsed = parse_event({**defaults, **given})
        shape = parsed.to_dict()
        blob = encode(shape, what="the emitted event")
        entry = self._entry(
            seq,
            StepKind.VALUE,
            EMIT,
            StepStatus.COMPLETED,
            output=shape,
            encoded=blob,
            started_at=now,
            completed_at=now,
        )
        await self._durable(self.store.emit_event(self.fence, parsed, entry, now))
        self.host.notify()
        return shape

    async def _durable(self, pending: Awaitable[T]) -> T:
        """Await a write of this run; a lost lease or failed store ends the run's execution."""
        try:
            return await pending
        except (LeaseLostError, StoreError) as exc:
            self.fatal = exc
            raise

"""``ctx.patched`` and ``ctx.deprecate_patch``: changing workflow code under runs in flight.

A run is replayed from its start on every claim, so code that took another path when the run
began would diverge from its history. A patch lets both paths live side by side::

    if ctx.patched("page-before-restart"):
        await ctx.step(page_oncall, alert)   # new runs (and old ones past this point)
    await ctx.step(restart, alert)           # what old runs did here

The first time a run reaches the patch outside a replay, a marker is recorded at that position
and ``patched`` answers True. A replay that finds the marker answers True again. A replay that
finds something else recorded there (the old code's next call), or history further on, is an
old run going through code it already ran: ``patched`` answers False and takes no position, so
the old path replays unchanged. The answer is kept for the rest of the execution, so a patch
checked in a loop is decided once.

Once no open run can be on the old path, keep the new code and mark the place with
``ctx.deprecate_patch("page-before-restart")``: it takes the marker where a run recorded one and
records nothing otherwise. When no open run holds the marker any more, remove that call too.
"""

from __future__ import annotations

from opsloom.engine.registry import WorkflowSpec
from opsloom.engine.replay import Host, ReplayState
from opsloom.model import StepKind, StepStatus
from opsloom.store.base import Claim

#: History entries of patches are recorded values named ``patch:<change id>``.
PATCH_PREFIX = "patch:"


class Patches(ReplayState):
    """``ctx.patched`` and ``ctx.deprecate_patch``."""

    def __init__(self, host: Host, claim: Claim, spec: WorkflowSpec) -> None:
        super().__init__(host, claim, spec)
        self._patches: dict[str, bool] = {}  # change id -> the answer of this execution

    def patched(self, change_id: str) -> bool:
        decided = self._patches
        if change_id in decided:
            return decided[change_id]
        name = _marker(change_id)
        if self._take_marker(name):
            decided[change_id] = True
            return True
        after = self.seq + 1
        if after in self.history or any(seq > after for seq in self.history):
            decided[change_id] = False  # an old run replaying the code it ran before the patch
            return False
        seq = self._next()
        now = self.clock.now()
        self._post(
            self._record(
                seq,
                StepKind.VALUE,
                name,
                StepStatus.COMPLETED,
                output=change_id,
                started_at=now,
                completed_at=now,
            )
        )
        decided[change_id] = True
        return True

    def deprecate_patch(self, change_id: str) -> None:
        decided = self._patches
        if change_id not in decided:
            self._take_marker(_marker(change_id))
            decided[change_id] = True

    def _take_marker(self, name: str) -> bool:
        """Take the next position if the history holds this patch's marker there."""
        rec = self.history.get(self.seq + 1)
        if rec is None or rec.kind is not StepKind.VALUE or rec.name != name:
            return False
        self._next()
        return True


def _marker(change_id: str) -> str:
    if not isinstance(change_id, str) or not change_id.strip():
        raise ValueError(f"a patch needs a non-empty change id, not {change_id!r}")
    return PATCH_PREFIX + change_id

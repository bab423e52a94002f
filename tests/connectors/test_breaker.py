"""The circuit breaker state machine (pure: time is passed in)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from opsloom.connectors.breaker import Breaker, BreakerPolicy, BreakerState

POLICY = BreakerPolicy(failures=3, cooldown=30, successes=2, min_calls=4, failure_rate=0.5)


def test_consecutive_failures__open_then_fail_fast_until_the_cooldown() -> None:
    breaker = Breaker("c", POLICY)
    assert breaker.record(False, 100) is None
    assert breaker.record(False, 101) is None
    change = breaker.record(False, 102)
    assert change is not None and change.after is BreakerState.OPEN
    wait, _ = breaker.allow(110)
    assert wait == 22.0  # until 102 + 30


def test_half_open__one_trial_then_closed_after_successes() -> None:
    breaker = Breaker("c", POLICY)
    for t in range(3):
        breaker.record(False, t)
    wait, change = breaker.allow(32)
    assert wait is None and change is not None and change.after is BreakerState.HALF_OPEN
    assert breaker.allow(32)[0] == POLICY.cooldown  # one trial at a time
    assert breaker.record(True, 33) is None
    assert breaker.allow(33)[0] is None
    closed = breaker.record(True, 34)
    assert closed is not None and closed.after is BreakerState.CLOSED
    assert breaker.allow(34) == (None, None)


def test_half_open__a_failed_trial_opens_again_with_a_new_cooldown() -> None:
    breaker = Breaker("c", POLICY)
    for t in range(3):
        breaker.record(False, t)
    breaker.allow(40)
    change = breaker.record(False, 41)
    assert change is not None and change.after is BreakerState.OPEN
    assert breaker.allow(50)[0] == 21.0


def test_failure_rate_over_the_window_opens_without_consecutive_failures() -> None:
    policy = BreakerPolicy(failures=100, failure_rate=0.5, window=60, min_calls=4)
    breaker = Breaker("c", policy)
    outcomes = [True, False, True, False]
    changes = [breaker.record(ok, 10 + i) for i, ok in enumerate(outcomes)]
    assert changes[-1] is not None and changes[-1].after is BreakerState.OPEN


def test_failures_outside_the_window_are_forgotten() -> None:
    policy = BreakerPolicy(failures=100, failure_rate=0.5, window=10, min_calls=4)
    breaker = Breaker("c", policy)
    breaker.record(False, 0)
    breaker.record(False, 1)
    for t in (100, 101, 102):
        assert breaker.record(True, t) is None
    assert breaker.record(False, 103) is None  # 1 of 4 in the window
    assert breaker.state is BreakerState.CLOSED


def test_adopt__a_newer_stored_state_wins_an_older_one_does_not() -> None:
    mine, theirs = Breaker("c", POLICY), Breaker("c", POLICY)
    for t in range(3):
        theirs.record(False, 10 + t)
    assert mine.adopt(theirs.snapshot())
    assert mine.state is BreakerState.OPEN and mine.allow(20)[0] == 22.0
    older = Breaker("c", POLICY).snapshot()
    assert not mine.adopt(older)
    assert mine.state is BreakerState.OPEN


@given(st.lists(st.tuples(st.booleans(), st.floats(0, 5)), max_size=60))
def test_property__never_allowed_while_open_before_reopen_at(
    steps: list[tuple[bool, float]],
) -> None:
    breaker = Breaker("c", POLICY)
    now = 0.0
    for ok, dt in steps:
        now += dt
        wait, _ = breaker.allow(now)
        if breaker.state is BreakerState.OPEN:
            assert breaker.reopen_at is not None and now < breaker.reopen_at
            assert wait == breaker.reopen_at - now
            continue
        if wait is None:
            breaker.record(ok, now)

"""Throttle windows with an explicit clock: new, repeats, rollover update, surge, redelivery
(ParallelizationFactor 1 and > 1), fail-open."""

from __future__ import annotations

from datetime import UTC, datetime

from cali.incidents.throttle import (
    AlertDecision,
    FailOpenLimiter,
    Observation,
    Throttle,
    ThrottlePolicy,
    decide,
    pad_sequence,
)
from cali_testing.incidents import InMemoryThrottleStore
from tests.support.consumer_support import Clock

FP = "00000000000000aa"
SHARD = "shardId-000000000000"
POLICY = ThrottlePolicy(window_seconds=900, surge_factor=5.0, surge_min_baseline=10)


class Seq:
    def __init__(self) -> None:
        self.n = 0

    def take(self, count: int) -> list[str]:
        self.n += count
        return [pad_sequence(str(i)) for i in range(self.n - count + 1, self.n + 1)]


def decisions(throttle: Throttle, seqs: list[str], shard: str = SHARD) -> tuple[AlertDecision, ...]:
    outcome = throttle.observe(Observation(FP, shard, seqs), lambda alerts: {a.key: "{}" for a in alerts})
    throttle.store.confirm_sent(FP, [a.key for a in outcome.alerts])
    return outcome.alerts


def observe(throttle: Throttle, seqs: list[str], shard: str = SHARD) -> list[tuple[str, int, int]]:
    return [(a.kind, a.count, a.window_count) for a in decisions(throttle, seqs, shard)]


def now_ms(clock: Clock) -> int:
    return int(clock().timestamp()) * 1000


def test_rollover_sends_one_update_that_opens_the_next_window() -> None:
    clock, seq = Clock(), Seq()
    store = InMemoryThrottleStore()
    throttle = Throttle(store, POLICY, clock)
    opened = now_ms(clock)
    assert observe(throttle, seq.take(2)) == [("new", 2, 2)]
    clock.advance(60)
    assert observe(throttle, seq.take(3)) == []
    clock.advance(600)
    assert observe(throttle, seq.take(4)) == []
    clock.advance(300)  # window (900 s) over, still firing: ONE message, no second "new"
    (first,) = decisions(throttle, seq.take(1))
    assert (first.kind, first.count, first.window_count) == ("update", 7, 9)
    # It names the window it opens (distinct incident id per rollover) and reports the old one.
    assert (first.window_start, first.reports_window) == (now_ms(clock), opened)
    state = store.load(FP)
    assert state is not None
    # This batch's occurrence is counted in the new window, not yet reported by anything.
    assert (state.window_start, state.count, state.reported) == (now_ms(clock), 1, 0)
    clock.advance(100)
    assert observe(throttle, seq.take(5)) == []
    clock.advance(800)  # the next rollover: again exactly one update, for 1 + 5
    (second,) = decisions(throttle, seq.take(2))
    assert (second.kind, second.count, second.window_count) == ("update", 6, 6)
    assert second.window_start == now_ms(clock) and second.key != first.key
    assert second.reports_window == first.window_start


def test_recurrence_after_a_quiet_window_is_new() -> None:
    clock, seq = Clock(), Seq()
    throttle = Throttle(InMemoryThrottleStore(), POLICY, clock)
    assert observe(throttle, seq.take(1)) == [("new", 1, 1)]
    clock.advance(1800)  # the window ended 900 s ago with nothing unreported: it had stopped
    assert observe(throttle, seq.take(1)) == [("new", 1, 1)]
    clock.advance(3600)
    assert observe(throttle, seq.take(3)) == [("new", 3, 3)]


def test_still_firing_after_a_fully_reported_window_opens_the_next_one_silently() -> None:
    clock, seq = Clock(), Seq()
    store = InMemoryThrottleStore()
    throttle = Throttle(store, POLICY, clock)
    assert observe(throttle, seq.take(1)) == [("new", 1, 1)]
    # Back 1 s after the window ended (less than a window of silence): nothing unreported
    # to tell, and it never stopped, so no message at all.
    clock.advance(901)
    assert observe(throttle, seq.take(2)) == []
    state = store.load(FP)
    assert state is not None and (state.window_start, state.count, state.reported) == (now_ms(clock), 2, 0)
    clock.advance(900)  # those occurrences are reported by the next rollover
    assert observe(throttle, seq.take(1)) == [("update", 2, 2)]
    # An update whose window then stays quiet still reports its leftovers, not a second "new".
    assert observe(throttle, seq.take(3)) == []
    clock.advance(7200)
    assert observe(throttle, seq.take(1)) == [("update", 4, 4)]


def test_surge_alerts_early_once_per_window() -> None:
    clock, seq = Clock(), Seq()
    throttle = Throttle(InMemoryThrottleStore(), POLICY, clock)
    assert observe(throttle, seq.take(1)) == [("new", 1, 1)]
    assert observe(throttle, seq.take(40)) == []  # 41 < 5 x max(1, 10)
    assert observe(throttle, seq.take(9)) == [("surge", 49, 50)]
    assert observe(throttle, seq.take(500)) == []  # once per window
    clock.advance(900)
    # The next window's baseline is the previous window's count (550): 5x that to surge again.
    assert observe(throttle, seq.take(100)) == [("update", 500, 550)]
    assert observe(throttle, seq.take(2000)) == []
    # Nothing of this window was reported yet (the update reported the previous one).
    assert observe(throttle, seq.take(650)) == [("surge", 2750, 2750)]
    assert observe(throttle, seq.take(5000)) == []
    clock.advance(900)
    assert observe(throttle, seq.take(1)) == [("update", 5000, 7750)]


def test_a_surged_window_that_keeps_firing_rolls_over_silently() -> None:
    clock, seq = Clock(), Seq()
    throttle = Throttle(InMemoryThrottleStore(), POLICY, clock)
    assert observe(throttle, seq.take(1)) == [("new", 1, 1)]
    assert observe(throttle, seq.take(60)) == [("surge", 60, 61)]  # reports everything
    clock.advance(900)
    assert observe(throttle, seq.take(10)) == []


def test_redelivered_records_are_neither_counted_nor_alerted_with_one_batch_per_shard() -> None:
    clock = Clock()
    store = InMemoryThrottleStore()
    throttle = Throttle(store, POLICY, clock)
    first = [pad_sequence(str(i)) for i in (1, 2, 3)]
    assert observe(throttle, first) == [("new", 3, 3)]
    clock.advance(3600)  # even after the window ended, the same records are recognised
    assert observe(throttle, first) == []
    state = store.load(FP)
    assert state is not None and state.count == 3
    # Partial overlap (retry from a checkpoint plus new records): only the new ones count.
    clock.advance(-3600)
    outcome = throttle.observe(
        Observation(FP, SHARD, [pad_sequence(str(i)) for i in (3, 4, 5)]), lambda alerts: {}
    )
    assert (outcome.counted, outcome.duplicates) == (2, 1)
    # Another shard has its own sequence numbers.
    assert observe(throttle, first, shard="shardId-000000000001") == []
    state = store.load(FP)
    assert state is not None and state.count == 8


def test_interleaved_batches_of_one_shard_are_all_counted_with_parallelization() -> None:
    # ParallelizationFactor 4: Lambda runs concurrent batches of one shard (ordered per
    # partition key only), so their sequence numbers interleave.
    odd = [pad_sequence(str(i)) for i in (1, 3, 5)]
    even = [pad_sequence(str(i)) for i in (2, 4, 6)]
    store = InMemoryThrottleStore()
    throttle = Throttle(store, ThrottlePolicy(window_seconds=900, parallelization_factor=4), Clock())
    assert observe(throttle, even) == [("new", 3, 3)]
    outcome = throttle.observe(Observation(FP, SHARD, odd), lambda alerts: {})  # the fast path
    assert (outcome.counted, outcome.duplicates) == (3, 0)
    state = store.load(FP)
    assert state is not None and state.count == 6 and state.hw == {}
    # The trade-off: a redelivered batch is counted again (alerts are still sent once each).
    assert throttle.observe(Observation(FP, SHARD, odd), lambda alerts: {}).counted == 3
    # With ParallelizationFactor 1 the same interleaving would lose the odd batch, which is
    # why the high-water mark is only used then.
    single = Throttle(InMemoryThrottleStore(), POLICY, Clock())
    assert observe(single, even) == [("new", 3, 3)]
    assert single.observe(Observation(FP, SHARD, odd), lambda alerts: {}).duplicates == 3


def test_parallelization_slow_path_counts_everything_and_keeps_no_marks() -> None:
    clock = Clock()
    policy = ThrottlePolicy(window_seconds=900, parallelization_factor=2)
    first = decide(None, Observation(FP, SHARD, [pad_sequence("9")]), now_ms(clock), policy)
    assert first.state is not None and first.state.hw == {}
    later = decide(first.state, Observation(FP, SHARD, [pad_sequence("1")]), now_ms(clock) + 1000, policy)
    assert later.state is not None and (later.counted, later.duplicates, later.state.count) == (1, 0, 2)


def test_two_containers_race_to_open_a_window_only_one_alerts() -> None:
    store = InMemoryThrottleStore()
    clock = Clock()
    a, b = Throttle(store, POLICY, clock), Throttle(store, POLICY, clock)
    obs_a = Observation(FP, "shardId-000000000000", [pad_sequence("1")])
    obs_b = Observation(FP, "shardId-000000000001", [pad_sequence("1")])
    outcome_a = a.observe(obs_a, lambda alerts: {})
    state = store.load(FP)
    assert state is not None
    # b decided on "absent" before a wrote: its compare-and-swap fails, so it re-reads.
    stale = decide(None, obs_b, int(clock().timestamp()) * 1000, POLICY)
    assert stale.state is not None and not store.save(FP, stale.state, 0, 0)
    outcome_b = b.observe(obs_b, lambda alerts: {})
    assert [x.kind for x in outcome_a.alerts] == ["new"] and outcome_b.alerts == ()


def test_pending_outbox_is_returned_until_confirmed() -> None:
    store, clock, seq = InMemoryThrottleStore(), Clock(), Seq()
    throttle = Throttle(store, POLICY, clock)
    outcome = throttle.observe(
        Observation(FP, SHARD, seq.take(1)), lambda alerts: {a.key: "msg" for a in alerts}
    )
    key = outcome.alerts[0].key
    # Not confirmed (the send failed): the next observation sees it pending, even the fast path.
    again = throttle.observe(Observation(FP, SHARD, seq.take(1)), lambda alerts: {})
    assert again.pending == {key: "msg"}
    store.confirm_sent(FP, [key])
    assert throttle.observe(Observation(FP, SHARD, seq.take(1)), lambda alerts: {}).pending == {}


def test_fail_open_limiter_is_a_token_bucket() -> None:
    clock = Clock(datetime(2026, 11, 23, tzinfo=UTC))
    limiter = FailOpenLimiter(3, clock)
    assert [limiter.allow() for _ in range(4)] == [True, True, True, False]
    clock.advance(20)  # 3 per minute: one token back every 20 s
    assert [limiter.allow(), limiter.allow()] == [True, False]

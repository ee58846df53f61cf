"""Throttle windows with an explicit clock: new, repeats, update, surge, redelivery, fail-open."""

from __future__ import annotations

from datetime import UTC, datetime

from consumer_support import Clock

from cali.throttle import (
    FailOpenLimiter,
    InMemoryThrottleStore,
    Observation,
    Throttle,
    ThrottlePolicy,
    decide,
    pad_sequence,
)

FP = "00000000000000aa"
SHARD = "shardId-000000000000"
POLICY = ThrottlePolicy(window_seconds=900, surge_factor=5.0, surge_min_baseline=10)


class Seq:
    def __init__(self) -> None:
        self.n = 0

    def take(self, count: int) -> list[str]:
        self.n += count
        return [pad_sequence(str(i)) for i in range(self.n - count + 1, self.n + 1)]


def observe(throttle: Throttle, seqs: list[str], shard: str = SHARD) -> list[tuple[str, int, int]]:
    outcome = throttle.observe(Observation(FP, shard, seqs), lambda alerts: {a.key: "{}" for a in alerts})
    throttle.store.confirm_sent(FP, [a.key for a in outcome.alerts])
    return [(a.kind, a.count, a.window_count) for a in outcome.alerts]


def test_first_occurrence_alerts_repeats_are_counted_window_end_updates() -> None:
    clock, seq = Clock(), Seq()
    throttle = Throttle(InMemoryThrottleStore(), POLICY, clock)
    assert observe(throttle, seq.take(2)) == [("new", 2, 2)]
    clock.advance(60)
    assert observe(throttle, seq.take(3)) == []
    clock.advance(600)
    assert observe(throttle, seq.take(4)) == []
    clock.advance(300)  # window (900 s) over: one update for it, a new window for this batch
    assert observe(throttle, seq.take(1)) == [("update", 7, 9), ("new", 1, 1)]


def test_quiet_window_ends_without_update() -> None:
    clock, seq = Clock(), Seq()
    throttle = Throttle(InMemoryThrottleStore(), POLICY, clock)
    assert observe(throttle, seq.take(1)) == [("new", 1, 1)]
    clock.advance(3600)
    assert observe(throttle, seq.take(1)) == [("new", 1, 1)]


def test_surge_alerts_early_once_per_window() -> None:
    clock, seq = Clock(), Seq()
    throttle = Throttle(InMemoryThrottleStore(), POLICY, clock)
    assert observe(throttle, seq.take(1)) == [("new", 1, 1)]
    assert observe(throttle, seq.take(40)) == []  # 41 < 5 x max(1, 10)
    assert observe(throttle, seq.take(9)) == [("surge", 49, 50)]
    assert observe(throttle, seq.take(500)) == []  # once per window
    clock.advance(900)
    # The next window's baseline is the previous window's count (550): 5x that to surge again.
    assert observe(throttle, seq.take(100)) == [("update", 500, 550), ("new", 100, 100)]
    assert observe(throttle, seq.take(2000)) == []
    assert observe(throttle, seq.take(650)) == [("surge", 2650, 2750)]


def test_redelivered_records_are_neither_counted_nor_alerted() -> None:
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

"""Lock extension of running handlers, one round at a time on a fake clock."""

from __future__ import annotations

import logging
import re
import threading
from typing import Dict, Iterator, List, Tuple
from unittest import mock

import pytest
import requests
import responses
from responses.matchers import json_params_matcher

from camunda_ext import Client
from camunda_ext._protocol.leaser import Leaser
from camunda_ext.metrics import NullMetrics
from tests.unit.worker_fixtures import (
    LOCK_UNLOCKED,
    LOCKED_BY_OTHER,
    TASK_GONE,
    WORKER_ID,
    FakeClock,
    FixedJitter,
    engine_error,
    join_library_threads,
    task_url,
    wait,
)

LOCK_MS = 30_000


@pytest.fixture
def metrics() -> NullMetrics:
    return mock.create_autospec(NullMetrics, instance=True)


@pytest.fixture
def leaser(rest_client: Client, metrics, clock: FakeClock, jitter: FixedJitter) -> Iterator[Leaser]:
    leaser = Leaser(rest_client, metrics, clock, jitter, max_lock_duration=3600.0)
    yield leaser
    leaser.stop(5.0)


def expect_extend(
    mock_engine: responses.RequestsMock, task_id: str = "task-1", duration: int = LOCK_MS, **answer
) -> None:
    mock_engine.add(
        responses.POST,
        task_url(task_id, "extendLock"),
        match=[json_params_matcher({"workerId": WORKER_ID, "newDuration": duration})],
        **(answer or {"status": 204}),
    )


def test_nothing_is_extended_before_half_the_lock_duration(leaser, clock, engine) -> None:
    leaser.add("task-1", "topic", LOCK_MS, clock.now)
    clock.advance(14.9)
    assert leaser.maybe_extend() == pytest.approx(0.1)
    assert len(engine.calls) == 0


def test_an_extension_waits_for_its_answer_at_most_half_of_what_the_lock_has_left(
    leaser, rest_client, clock, engine
) -> None:
    # A hung request must neither outlast the lock nor starve the locks after it in the round.
    leaser.add("task-1", "topic", LOCK_MS, clock.now)
    clock.advance(16.0)  # 14 s left
    expect_extend(engine)

    with mock.patch.object(rest_client, "extend_lock", wraps=rest_client.extend_lock) as extend:
        leaser.maybe_extend()

    extend.assert_called_once_with("task-1", LOCK_MS, read_timeout=pytest.approx(7.0))


def test_a_lock_is_extended_by_its_full_duration_once_half_has_passed(
    leaser,
    clock,
    engine,
    metrics,
) -> None:
    leaser.add("task-1", "topic", LOCK_MS, clock.now)
    clock.advance(15.0)
    expect_extend(engine)
    # The next extension is due half a duration after this one, capped by the tick.
    assert leaser.maybe_extend() == 5.0
    metrics.lock_extended.assert_called_once_with("topic")
    # Counted from the extension, the lock now lasts until 15 + 30 s.
    clock.advance(29.9)
    assert leaser.holds("task-1")
    clock.advance(0.2)
    assert not leaser.holds("task-1")


def test_each_extension_restarts_the_half_duration_count(leaser, clock, engine) -> None:
    leaser.add("task-1", "topic", 4000, clock.now)
    clock.advance(2.0)
    expect_extend(engine, duration=4000)
    assert leaser.maybe_extend() == 2.0
    clock.advance(1.9)
    assert leaser.maybe_extend() == pytest.approx(0.1)
    clock.advance(0.1)
    expect_extend(engine, duration=4000)
    leaser.maybe_extend()
    assert len(engine.calls) == 2


def test_next_due_is_the_soonest_lease_bounded_by_the_tick(leaser, clock) -> None:
    assert leaser.maybe_extend() == 5.0  # nothing to do: the longest tick
    leaser.add("slow", "topic", 60_000, clock.now)
    assert leaser.maybe_extend() == 5.0
    leaser.add("fast", "topic", 3000, clock.now)
    assert leaser.maybe_extend() == pytest.approx(1.5)
    leaser.add("tiny", "topic", 20, clock.now)
    clock.advance(0.005)
    assert leaser.maybe_extend() == 0.05  # never spins faster than the shortest tick


def test_the_duration_sent_is_exactly_the_registered_milliseconds(leaser, clock, engine) -> None:
    leaser.add("task-1", "topic", 1001, clock.now)
    clock.advance(0.6)
    expect_extend(engine, duration=1001)
    leaser.maybe_extend()


def test_gives_up_after_max_lock_duration_with_a_warning(
    rest_client,
    metrics,
    clock,
    jitter,
    engine,
    caplog,
) -> None:
    leaser = Leaser(rest_client, metrics, clock, jitter, max_lock_duration=60.0)
    leaser.add("task-1", "topic", LOCK_MS, clock.now)
    for _ in range(3):  # at 15, 30 and 45 s
        clock.advance(15.0)
        expect_extend(engine)
        leaser.maybe_extend()
    clock.advance(15.0)
    with caplog.at_level(logging.WARNING, logger="camunda_ext._protocol.leaser"):
        leaser.maybe_extend()
    assert len(engine.calls) == 3
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "task-1" in record.getMessage() and "max_lock_duration" in record.getMessage()
    caplog.clear()
    clock.advance(10.0)
    leaser.maybe_extend()
    assert len(engine.calls) == 3
    assert not caplog.records  # warned once
    # The last extension (at 45 s) still holds until 75 s.
    assert leaser.holds("task-1")
    clock.advance(5.1)
    assert not leaser.holds("task-1")


@pytest.mark.parametrize(
    "answer", [LOCKED_BY_OTHER, LOCK_UNLOCKED, TASK_GONE], ids=["other", "unlocked", "gone"]
)
def test_a_lost_lock_is_no_longer_extended(leaser, clock, engine, metrics, answer, caplog) -> None:
    leaser.add("task-1", "topic", LOCK_MS, clock.now)
    clock.advance(15.0)
    expect_extend(engine, **answer)
    with caplog.at_level(logging.WARNING):
        leaser.maybe_extend()
    assert not leaser.holds("task-1")
    assert "no longer this worker's" in caplog.text
    clock.advance(15.0)
    leaser.maybe_extend()
    assert len(engine.calls) == 1
    metrics.lock_extended.assert_not_called()


@pytest.mark.parametrize(
    "answer",
    [engine_error(503, None), {"body": requests.ConnectionError("reset")}],
    ids=["503", "connection"],
)
def test_a_transient_failure_keeps_the_lease_and_retries_before_expiry(
    leaser,
    clock,
    engine,
    metrics,
    answer,
) -> None:
    leaser.add("task-1", "topic", 4000, clock.now)  # short enough that the 5 s tick plays no part
    clock.advance(2.0)
    expect_extend(engine, duration=4000, **answer)
    delay = leaser.maybe_extend()
    assert leaser.holds("task-1")
    assert delay <= 2.0 / 2  # the lock runs out in 2 s: retry well before
    clock.advance(delay)
    expect_extend(engine, duration=4000)
    leaser.maybe_extend()
    metrics.lock_extended.assert_called_once_with("topic")
    clock.advance(3.9)
    assert leaser.holds("task-1")


def test_remove_stops_tracking(leaser, clock, engine) -> None:
    leaser.add("task-1", "topic", LOCK_MS, clock.now)
    leaser.remove("task-1")
    leaser.remove("task-1")  # a second remove is harmless
    clock.advance(20.0)
    assert leaser.maybe_extend() == 5.0
    assert not leaser.holds("task-1")
    assert leaser.leased() == {} and len(leaser) == 0
    assert len(engine.calls) == 0


def test_a_lock_renewed_by_the_handler_moves_the_next_extension(leaser, clock, engine) -> None:
    leaser.add("task-1", "topic", LOCK_MS, clock.now)
    clock.advance(10.0)
    leaser.renewed("task-1", 60_000, clock.now)  # the handler's own extend_lock
    clock.advance(29.0)
    assert leaser.maybe_extend() == pytest.approx(1.0)
    clock.advance(1.0)
    expect_extend(engine, duration=60_000)
    leaser.maybe_extend()


def test_the_lock_is_held_until_the_deadline_counted_from_the_request(leaser, clock) -> None:
    leaser.add("task-1", "topic", LOCK_MS, clock.now - 1.0)  # requested a second ago
    clock.advance(28.9)
    assert leaser.holds("task-1")
    clock.advance(0.1)
    assert not leaser.holds("task-1")
    assert not leaser.holds("unknown")


def test_the_thread_extends_due_locks_and_stops_on_request(
    rest_client, metrics, clock, jitter, engine
) -> None:
    extended = threading.Event()

    def answer(request):
        extended.set()
        return (204, {}, "")

    engine.add_callback(responses.POST, task_url("task-1", "extendLock"), callback=answer)
    leaser = Leaser(rest_client, metrics, clock, jitter)
    leaser.add("task-1", "topic", LOCK_MS, clock.now - 20.0)  # already due
    leaser.start()
    assert [t.name for t in threading.enumerate() if t.name == "camunda-ext-leaser"] == ["camunda-ext-leaser"]
    with pytest.raises(RuntimeError):
        leaser.start()
    wait(extended, "the leaser thread to extend the lock")
    leaser.stop(5.0)
    assert join_library_threads(0.0) == []


def test_without_extension_there_is_no_thread_but_tracking_goes_on(
    rest_client, metrics, clock, jitter
) -> None:
    leaser = Leaser(rest_client, metrics, clock, jitter, extend=False)
    leaser.start()
    assert join_library_threads(0.0) == []
    leaser.add("task-1", "topic", LOCK_MS, clock.now)
    assert leaser.holds("task-1")
    leaser.stop(5.0)


def engine_taking(
    mock_engine: responses.RequestsMock, clock: FakeClock, seconds: float, leaser: Leaser
) -> List[Tuple[str, bool]]:
    """Answer every extendLock ``seconds`` later on the fake clock.

    Returns:
        One ``(task id, lock still running when the request arrived)`` per request, in order.
    """
    received: List[Tuple[str, bool]] = []

    def answer(request: requests.PreparedRequest) -> Tuple[int, Dict[str, str], str]:
        task_id = str(request.url).split("/")[-2]
        received.append((task_id, leaser.holds(task_id)))
        clock.advance(seconds)
        return (204, {}, "")

    mock_engine.add_callback(responses.POST, re.compile(r".*/extendLock$"), callback=answer)
    return received


def test_a_slow_round_extends_the_soonest_expiring_locks_first(leaser, clock, engine, metrics) -> None:
    # Due now, with 14, 5, 9, 1 and 13 s of lock left; tracked in another order.
    for task_id, left in [("a", 14.0), ("b", 5.0), ("c", 9.0), ("d", 1.0), ("e", 13.0)]:
        leaser.add(task_id, "topic", LOCK_MS, clock.now - 30.0 + left)
    received = engine_taking(engine, clock, 2.0, leaser)
    leaser.maybe_extend()
    # Taken in the tracked order, "d" (1 s left) would have been sent 6 s into the round.
    assert received == [("d", True), ("b", True), ("c", True), ("e", True), ("a", True)]
    assert metrics.lock_extended.call_count == 5
    assert all(leaser.holds(task_id) for task_id in "abcde")


def test_a_lock_that_expired_before_its_turn_is_given_up_not_sent(
    leaser, clock, engine, metrics, caplog
) -> None:
    # Ten tasks of one fetch fall due together with 15 s left; each request takes 2 s.
    task_ids = ["task-%d" % i for i in range(10)]
    for task_id in task_ids:
        leaser.add(task_id, "topic", LOCK_MS, clock.now - 15.0)
    received = engine_taking(engine, clock, 2.0, leaser)
    with caplog.at_level(logging.WARNING, logger="camunda_ext._protocol.leaser"):
        leaser.maybe_extend()
    # Asked at 0, 2, ..., 14 s: all in time. At 16 s the last two had expired.
    assert received == [(task_id, True) for task_id in task_ids[:8]]
    assert metrics.lock_extended.call_count == 8
    assert [leaser.holds(task_id) for task_id in task_ids] == [True] * 8 + [False] * 2
    lost = [r.getMessage() for r in caplog.records if "no longer this worker's" in r.getMessage()]
    assert len(lost) == 2 and "task-8" in lost[0] and "task-9" in lost[1]
    # Given up for good: the next round does not send them either.
    leaser.maybe_extend()
    assert not {"task-8", "task-9"} & {task_id for task_id, _ in received}


def test_a_lease_removed_during_the_round_is_not_extended(leaser, clock, engine) -> None:
    leaser.add("first", "topic", LOCK_MS, clock.now - 20.0)
    leaser.add("second", "topic", LOCK_MS, clock.now - 15.0)

    def answer(request: requests.PreparedRequest) -> Tuple[int, Dict[str, str], str]:
        leaser.remove("second")  # its handler ends while the first lock is being extended
        return (204, {}, "")

    engine.add_callback(responses.POST, task_url("first", "extendLock"), callback=answer)
    leaser.maybe_extend()
    assert len(engine.calls) == 1


def test_the_next_round_is_timed_from_the_end_of_a_long_round(leaser, clock, engine) -> None:
    leaser.add("now", "topic", LOCK_MS, clock.now - 15.0)
    leaser.add("soon", "topic", LOCK_MS, clock.now - 14.0)  # due 1 s into the round
    engine_taking(engine, clock, 2.0, leaser)
    assert leaser.maybe_extend() == 0.05  # overdue when the round ends: at once

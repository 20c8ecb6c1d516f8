"""The poller, one round at a time on the test thread: slots, fetch bodies, errors, stop."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any, Iterator, List, Optional
from unittest import mock

import pytest
import requests
import responses
from responses.matchers import json_params_matcher

from camunda_ext import AuthenticationError, AuthorizationError, BadRequestError, NotFoundError
from camunda_ext._protocol import poller as poller_module
from camunda_ext._protocol.dispatch import Dispatcher
from camunda_ext._protocol.flow_control import FlowController
from camunda_ext._protocol.poller import Backlog, Poller
from camunda_ext._protocol.reporter import Reporter
from camunda_ext.errors import EngineError
from camunda_ext.metrics import NullMetrics
from camunda_ext.settings import WorkerSettings
from tests.unit.worker_fixtures import (
    FETCH_URL,
    WAIT,
    WORKER_ID,
    FetchScript,
    engine_error,
    join_library_threads,
    subscription,
    task_json,
    tell_when_waiting,
    wait,
)

SETTINGS = WorkerSettings(max_tasks=5, poll_interval=0.25, backoff_base=1.0, backoff_cap=8.0)


class SpyFlow(FlowController):
    """A FlowController that signals when a reservation is asked for and granted."""

    def __init__(self, capacity: int) -> None:
        super().__init__(capacity)
        self.asked = threading.Event()  # set when reserve() is entered
        self.granted = threading.Event()  # set when reserve() returns slots

    def reserve(self, most: Optional[int] = None, timeout: Optional[float] = None, **gathering: Any) -> int:
        self.asked.set()
        count = super().reserve(most, timeout, **gathering)
        if count:
            self.granted.set()
        return count


class Parts:
    """The poller under test and its collaborators."""

    def __init__(
        self, client, clock, jitter, settings: WorkerSettings = SETTINGS, **poller_kwargs: Any
    ) -> None:
        self.flow = SpyFlow(settings.max_tasks)
        self.dispatcher = mock.create_autospec(Dispatcher, instance=True)
        self.reporter = mock.create_autospec(Reporter, instance=True)
        self.metrics = mock.create_autospec(NullMetrics, instance=True)
        self.stop_event = threading.Event()
        self.on_fatal = mock.Mock()
        self.handler = mock.Mock()
        self.subscriptions = {
            "score": subscription("score", self.handler, lock_duration=60_000, variables=["amount"]),
            "notify": subscription("notify", self.handler),
        }
        poller_kwargs.setdefault("async_response_timeout", 20.0)
        self.poller = Poller(
            client,
            self.subscriptions,
            self.flow,
            self.dispatcher,
            self.reporter,
            settings,
            self.metrics,
            clock,
            jitter,
            self.stop_event,
            self.on_fatal,
            **poller_kwargs,
        )

    def dispatched(self) -> List[str]:
        return [c.args[0].id for c in self.dispatcher.dispatch.call_args_list]

    def unlocked(self) -> List[str]:
        return [c.args[0].id for c in self.reporter.unlock.call_args_list]


@pytest.fixture
def make_parts(rest_client, clock, jitter) -> Iterator[Any]:
    made: List[Parts] = []

    def make(settings: WorkerSettings = SETTINGS, **poller_kwargs: Any) -> Parts:
        made.append(Parts(rest_client, clock, jitter, settings, **poller_kwargs))
        return made[-1]

    yield make
    for parts in made:  # as the stop sequence would
        parts.stop_event.set()
        parts.flow.close()
        assert parts.poller.join(WAIT)


@pytest.fixture
def parts(make_parts) -> Parts:
    return make_parts()


def answer(engine, tasks: Any = None, **kw: Any) -> None:
    if tasks is not None:
        kw["json"] = tasks
    engine.add(responses.POST, FETCH_URL, **kw)


# ---------------------------------------------------------------------- slots


def test_fetch_asks_for_exactly_the_free_slots(parts, engine) -> None:
    parts.flow.reserve(most=2)  # two handlers busy
    answer(
        engine,
        [],
        match=[
            json_params_matcher(
                {
                    "workerId": WORKER_ID,
                    "maxTasks": 3,
                    "asyncResponseTimeout": 20_000,
                    "topics": [
                        {"topicName": "score", "lockDuration": 60_000, "variables": ["amount"]},
                        {"topicName": "notify", "lockDuration": 30_000},
                    ],
                }
            )
        ],
    )
    parts.poller.poll_once()


def test_slots_an_answer_did_not_fill_are_given_back(parts, engine, clock) -> None:
    answer(engine, [task_json("a", "score"), task_json("b", "notify")])
    assert parts.poller.poll_once() == 0.0  # tasks came: poll again at once
    assert (parts.flow.in_use, parts.flow.free) == (2, 3)
    assert parts.dispatched() == ["a", "b"]
    _task, sub, on_done, locked_at = parts.dispatcher.dispatch.call_args_list[0].args
    # The lease runs from when the fetch was sent: the lock may be older than the answer.
    assert (sub.topic, on_done, locked_at) == ("score", parts.flow.release, clock.now)
    parts.metrics.fetched.assert_has_calls([mock.call("score", 1), mock.call("notify", 1)], any_order=True)


def test_a_task_that_came_late_in_a_long_poll_is_leased_from_the_answer_not_the_send(
    parts, engine, clock
) -> None:
    def parked_then_answered(request: Any) -> Any:
        clock.advance(19.0)  # the poll waited 19 of its 20 s for a task
        return 200, {}, json.dumps([task_json("late", "score")])

    engine.add_callback(responses.POST, FETCH_URL, callback=parked_then_answered)
    sent = clock.now
    parts.poller.poll_once()
    *_, locked_at = parts.dispatcher.dispatch.call_args.args
    # The engine locked it when it answered: its 60 s lock has about 60 s left, not 41.
    assert locked_at == sent + 19.0 - poller_module._ANSWER_MARGIN


def test_without_long_polling_the_lease_runs_from_the_send(make_parts, engine, clock) -> None:
    parts = make_parts(async_response_timeout=None)

    def slow_answer(request: Any) -> Any:
        clock.advance(19.0)  # a slow engine: it may have locked the task at any time since the send
        return 200, {}, json.dumps([task_json("slow", "score")])

    engine.add_callback(responses.POST, FETCH_URL, callback=slow_answer)
    sent = clock.now
    parts.poller.poll_once()
    *_, locked_at = parts.dispatcher.dispatch.call_args.args
    assert locked_at == sent


def test_an_empty_answer_gives_every_slot_back_and_waits_the_poll_interval(parts, engine) -> None:
    answer(engine, [])
    assert parts.poller.poll_once() == 0.25
    assert parts.flow.free == 5
    parts.dispatcher.dispatch.assert_not_called()


def test_no_fetch_while_every_slot_is_busy(parts, engine) -> None:
    answer(engine, [], match=[json_params_matcher({"maxTasks": 1}, strict_match=False)])
    assert parts.flow.reserve() == 5  # every handler busy
    parts.flow.asked.clear()
    parts.flow.granted.clear()
    round_done = threading.Event()
    helper = threading.Thread(target=lambda: (parts.poller.poll_once(), round_done.set()))
    helper.start()
    wait(parts.flow.asked, "the poller to ask for slots")
    # No slot is free, so reserve() cannot have returned and nothing was requested.
    assert not parts.flow.granted.is_set()
    assert len(engine.calls) == 0
    parts.flow.release(1)  # one handler finishes
    wait(round_done, "the round to finish")
    helper.join(WAIT)
    assert len(engine.calls) == 1


def test_more_tasks_than_asked_for_are_unlocked(make_parts, engine) -> None:
    parts = make_parts(WorkerSettings(max_tasks=1))
    answer(engine, [task_json("a", "score"), task_json("extra", "score")])
    parts.poller.poll_once()
    assert (parts.dispatched(), parts.unlocked()) == (["a"], ["extra"])
    assert parts.flow.in_use == 1


def test_tasks_of_unknown_topics_are_unlocked(parts, engine) -> None:
    answer(engine, [task_json("a", "score"), task_json("b", "someone-elses")])
    parts.poller.poll_once()
    assert (parts.dispatched(), parts.unlocked()) == (["a"], ["b"])
    assert parts.flow.in_use == 1


def test_tasks_that_arrive_after_stop_was_requested_are_unlocked_not_run(parts, engine) -> None:
    answer(engine, [task_json("a", "score"), task_json("b", "notify")])
    parts.flow.reserve(most=3)
    parts.stop_event.set()  # during the long poll
    parts.poller.poll_once()
    assert (parts.dispatched(), parts.unlocked()) == ([], ["a", "b"])
    parts.handler.assert_not_called()
    assert parts.flow.in_use == 3  # only the slots reserved before


def test_a_closed_budget_sends_nothing(parts, engine) -> None:
    parts.flow.close()
    assert parts.poller.poll_once() == 0.0
    assert len(engine.calls) == 0


def test_without_long_polling_no_async_response_timeout_is_sent(make_parts, engine) -> None:
    settings = WorkerSettings(max_tasks=2, use_priority=True, sorting=[("createTime", "asc")])
    parts = make_parts(settings, async_response_timeout=None)
    answer(
        engine,
        [],
        match=[
            json_params_matcher(
                {
                    "workerId": WORKER_ID,
                    "maxTasks": 2,
                    "usePriority": True,
                    "sorting": [{"sortBy": "createTime", "sortOrder": "asc"}],
                    "topics": [
                        {"topicName": "score", "lockDuration": 60_000, "variables": ["amount"]},
                        {"topicName": "notify", "lockDuration": 30_000},
                    ],
                }
            )
        ],
    )
    parts.poller.poll_once()


# ---------------------------------------------------------------------- tasks that do not decode

#: An Object variable whose stored text is not JSON: the engine stores serialized values unchecked.
POISONED = {
    "order": {
        "type": "Object",
        "value": "{not json",
        "valueInfo": {
            "objectTypeName": "java.util.LinkedHashMap",
            "serializationDataFormat": "application/json",
        },
    }
}


def test_a_task_that_does_not_decode_fails_and_the_rest_of_its_batch_runs(parts, engine, caplog) -> None:
    answer(
        engine,
        [task_json("a", "score"), task_json("b", "score", variables=POISONED), task_json("c", "notify")],
    )

    with caplog.at_level(logging.WARNING):
        assert parts.poller.poll_once() == 0.0

    assert parts.dispatched() == ["a", "c"]
    [failure] = parts.reporter.handle_failure_of_fetched.call_args_list
    task, lock_duration, _locked_at, message = failure.args
    # A first failure: the worker's retry policy, so retries count down to an incident that names the cause.
    assert (task.id, task.topic_name, failure.kwargs) == ("b", "score", {"retries": 3, "retry_timeout": 0})
    assert lock_duration == 60_000  # the topic's: the report is retried while the lock lasts
    assert "variable 'order': Object variable does not hold JSON" in message
    assert parts.flow.in_use == 2  # the bad task's slot is free again
    assert "Task b (topic score) did not decode" in caplog.text


def test_a_task_that_does_not_decode_again_counts_its_retries_down(parts, engine) -> None:
    answer(engine, [task_json("b", "score", retries=1, variables=POISONED)])
    parts.poller.poll_once()
    assert parts.reporter.handle_failure_of_fetched.call_args.kwargs["retries"] == 0  # an incident now


def test_an_item_without_a_readable_id_is_skipped(parts, engine, caplog) -> None:
    answer(engine, [task_json("a", "score"), {"topicName": "score", "variables": POISONED}])
    with caplog.at_level(logging.WARNING):
        parts.poller.poll_once()
    assert parts.dispatched() == ["a"]
    parts.reporter.handle_failure_of_fetched.assert_not_called()  # nothing to address: its lock expires
    assert parts.flow.in_use == 1
    assert "without a readable id" in caplog.text


def test_a_refused_failure_of_a_task_that_does_not_decode_does_not_stop_the_round(parts, engine) -> None:
    parts.reporter.handle_failure_of_fetched.side_effect = EngineError(500, "ProcessEngineException", "no")
    answer(engine, [task_json("b", "score", variables=POISONED), task_json("c", "score")])
    assert parts.poller.poll_once() == 0.0
    assert parts.dispatched() == ["c"]
    assert parts.flow.in_use == 1


# ---------------------------------------------------------------------- errors


def test_errors_back_off_exponentially_with_jitter_up_to_the_cap_and_reset(parts, engine) -> None:
    failures = [
        {"body": requests.ConnectionError("refused")},
        engine_error(500, None),
        engine_error(503, None),
        {"body": requests.ConnectionError("reset")},
        engine_error(502, None),
    ]
    for failure in failures:
        answer(engine, **failure)
    answer(engine, [])
    answer(engine, **engine_error(500, None))
    delays = [parts.poller.poll_once() for _ in failures]
    # Jitter 0.5: three quarters of 1, 2, 4, 8 (the cap), 8.
    assert delays == [0.75, 1.5, 3.0, 6.0, 6.0]
    assert parts.flow.free == 5  # every error gave its slots back
    assert parts.poller.poll_once() == 0.25
    assert parts.poller.poll_once() == 0.75  # the success reset the back-off


@pytest.mark.parametrize(
    ("status", "error"),
    [(401, AuthenticationError), (403, AuthorizationError), (404, NotFoundError), (400, BadRequestError)],
)
def test_an_answer_retrying_cannot_fix_stops_the_worker(parts, engine, status, error, caplog) -> None:
    answer(engine, **engine_error(status, "RestException" if status != 401 else None, "no"))
    with caplog.at_level(logging.ERROR):
        assert parts.poller.poll_once() == 0.0
    [[raised]] = [c.args for c in parts.on_fatal.call_args_list]
    assert isinstance(raised, error)
    assert parts.flow.free == 5
    assert "stopping the worker" in caplog.text


def test_after_a_fatal_answer_the_thread_ends_without_fetching_again(parts, engine) -> None:
    script = FetchScript([(401, None), [], []]).install(engine)
    parts.poller.start()
    assert parts.poller.join(WAIT)  # ended by itself; the stop sequence runs elsewhere
    assert len(script.bodies) == 1
    parts.on_fatal.assert_called_once()
    assert not parts.stop_event.is_set()


def test_the_thread_survives_an_unexpected_exception(make_parts, engine, caplog) -> None:
    settings = WorkerSettings(max_tasks=2, backoff_base=0.01, backoff_cap=0.01, poll_interval=60.0)
    parts = make_parts(settings)
    parts.dispatcher.dispatch.side_effect = lambda task, sub, on_done, locked_at: (
        on_done()
    )  # handlers end at once
    parts.metrics.fetched.side_effect = [RuntimeError("metrics backend down"), None]
    script = FetchScript([[task_json("a", "score")], [task_json("b", "score")]]).install(engine)
    with caplog.at_level(logging.ERROR):
        parts.poller.start()
        wait(script.fetched[3], "a third fetch after the failed round")
    parts.stop_event.set()
    parts.flow.close()
    assert parts.poller.join(WAIT)
    assert parts.dispatched() == ["a", "b"]
    assert "A round of camunda-ext-poller failed unexpectedly" in caplog.text


def test_an_unexpected_exception_of_the_fetch_gives_the_slots_back(parts) -> None:
    with mock.patch.object(parts.poller, "_client") as client:
        client.fetch_and_lock.side_effect = TypeError("a bug")
        with pytest.raises(TypeError):
            parts.poller.poll_once()
    assert parts.flow.free == 5


def test_start_runs_one_named_thread(parts, engine) -> None:
    script = FetchScript().install(engine)
    parts.poller.start()
    with pytest.raises(RuntimeError):
        parts.poller.start()
    wait(script.fetched[1], "the first fetch")
    assert [t.name for t in threading.enumerate() if t.name.startswith("camunda-ext-")] == [
        "camunda-ext-poller"
    ]
    parts.stop_event.set()  # wakes the poll_interval wait
    assert parts.poller.join(WAIT)
    assert join_library_threads(0.0) == []


def test_under_a_backlog_a_fetch_waits_a_moment_for_more_free_slots(make_parts, engine, monkeypatch) -> None:
    # A long linger is only a hang guard here: the wait ends when the slots are back.
    monkeypatch.setattr(poller_module, "_BACKLOG_LINGER", WAIT)
    backlog = Backlog()
    backlog.set()  # the last answer came back full
    parts = make_parts(backlog=backlog)
    parts.flow.reserve(most=4)  # four handlers busy, one slot free
    waiting = tell_when_waiting(parts.flow)

    def two_handlers_end() -> None:
        wait(waiting, "the fetch to wait for more free slots")
        parts.flow.release(2)

    releaser = threading.Thread(target=two_handlers_end)
    answer(engine, [], match=[json_params_matcher({"maxTasks": 3}, strict_match=False)])

    releaser.start()
    try:
        parts.poller.poll_once()
    finally:
        releaser.join()

    # One fetch for the three slots, not one for the first and another for the rest.
    assert len(engine.calls) == 1
    assert not backlog.is_set()  # a short answer: no backlog any more

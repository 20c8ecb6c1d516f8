"""Handlers on the executor: every way a handler ends becomes exactly one outcome."""

from __future__ import annotations

import concurrent.futures
import datetime
import logging
import sys
import threading
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple
from unittest import mock

import pytest
import responses
from responses.matchers import json_params_matcher

from camunda_ext import BpmnError
from camunda_ext._protocol.backoff import Backoff
from camunda_ext._protocol.dispatch import UNRESOLVED_MESSAGE, Dispatcher, TaskAlreadyResolvedError, describe
from camunda_ext._protocol.leaser import Leaser
from camunda_ext._protocol.reporter import Reporter
from camunda_ext.metrics import NullMetrics
from camunda_ext.models import ExternalTask
from camunda_ext.settings import RetryPolicy
from tests.unit.worker_fixtures import (
    WORKER_ID,
    FakeClock,
    engine_error,
    make_task,
    subscription,
    task_url,
    wait,
)

Handler = Callable[[Any, Any, Any], Any]


@pytest.fixture
def leaser() -> Leaser:
    leaser = mock.create_autospec(Leaser, instance=True)
    leaser.holds.return_value = True
    return leaser


@pytest.fixture
def metrics() -> NullMetrics:
    return mock.create_autospec(NullMetrics, instance=True)


@pytest.fixture
def reporter(rest_client, leaser, metrics, clock, jitter) -> Reporter:
    return Reporter(
        rest_client, leaser, metrics, clock, jitter, attempts=3, backoff=Backoff(), sleep=lambda s: None
    )


@pytest.fixture
def make_dispatcher(reporter, leaser, metrics, clock) -> Iterator[Callable[..., Dispatcher]]:
    made: List[Dispatcher] = []

    def make(policy: Optional[RetryPolicy] = None, max_workers: int = 2) -> Dispatcher:
        dispatcher = Dispatcher(max_workers, reporter, leaser, policy or RetryPolicy(), metrics, clock)
        made.append(dispatcher)
        return dispatcher

    yield make
    for dispatcher in made:
        dispatcher.shutdown(5.0)


@pytest.fixture
def dispatcher(make_dispatcher) -> Dispatcher:
    return make_dispatcher()


#: Monotonic time at which the tasks of these tests were locked.
LOCKED_AT = 990.0


def _interrupt() -> None:
    raise KeyboardInterrupt


def run(dispatcher: Dispatcher, handler: Handler, task: Optional[ExternalTask] = None) -> None:
    """Run one handler and wait until its slot came back."""
    done = threading.Event()
    dispatcher.dispatch(task or make_task(), subscription("topic", handler), done.set, LOCKED_AT)
    wait(done, "the handler's slot to come back")


def expect(
    engine: responses.RequestsMock, action: str, body: Optional[Dict[str, Any]], **answer: Any
) -> None:
    """Expect one report for task-1; ``body`` None leaves the body to the test."""
    answer.setdefault("status", 204)
    match = [] if body is None else [json_params_matcher(body)]
    engine.add(responses.POST, task_url("task-1", action), match=match, **answer)


def failure_body(engine: responses.RequestsMock) -> Dict[str, Any]:
    import json

    [call] = [c for c in engine.calls if c.request.url.endswith("/failure")]
    return json.loads(call.request.body)


# ---------------------------------------------------------------------- outcomes


def test_complete_with_variables(dispatcher, engine, metrics) -> None:
    expect(
        engine,
        "complete",
        {
            "workerId": WORKER_ID,
            "variables": {
                "score": {"type": "Integer", "value": 750},
                "approved": {"type": "Boolean", "value": True},
            },
            "localVariables": {"bureau": {"type": "String", "value": "acme"}},
        },
    )

    def handler(task, complete, fail):
        complete().variable("score", 750).variables({"approved": True}).local_variable(
            "bureau", "acme"
        ).execute()

    run(dispatcher, handler)
    metrics.completed.assert_called_once_with("topic")


def test_the_handler_sees_the_task_and_its_variables(dispatcher, engine) -> None:
    expect(engine, "complete", {"workerId": WORKER_ID})
    seen = []

    def handler(task, complete, fail):
        seen.append((task.id, task.variables))
        complete().execute()

    run(dispatcher, handler, make_task(variables={"amount": {"type": "Long", "value": 10}}))
    assert seen == [("task-1", {"amount": 10})]


def test_fail_builder(dispatcher, engine) -> None:
    expect(
        engine,
        "failure",
        {
            "workerId": WORKER_ID,
            "errorMessage": "bureau down",
            "errorDetails": "HTTP 502",
            "retries": 1,
            "retryTimeout": 500,
            "variables": {"tries": {"type": "Integer", "value": 2}},
        },
    )

    def handler(task, complete, fail):
        fail().message("bureau down").details("HTTP 502").retries(1).retry_timeout(500).variable(
            "tries", 2
        ).execute()

    run(dispatcher, handler)


def test_fail_presets_and_defaults(make_dispatcher, engine) -> None:
    dispatcher = make_dispatcher(RetryPolicy(retries=5, retry_timeout=3000))
    expect(
        engine,
        "failure",
        {
            "workerId": WORKER_ID,
            "errorMessage": "no score",
            "retries": 5,
            "retryTimeout": 3000,
        },
    )
    run(dispatcher, lambda task, complete, fail: fail(message="no score").execute())
    expect(
        engine,
        "failure",
        {
            "workerId": WORKER_ID,
            "errorMessage": "give up",
            "retries": 0,
            "retryTimeout": 10,
        },
    )
    run(
        dispatcher,
        lambda task, complete, fail: fail(message="give up", retries=0, retry_timeout=10).execute(),
    )


def test_bpmn_error_with_code_message_and_variables(dispatcher, engine, metrics, caplog) -> None:
    expect(
        engine,
        "bpmnError",
        {
            "workerId": WORKER_ID,
            "errorCode": "REJECTED",
            "errorMessage": "score too low",
            "variables": {"score": {"type": "Integer", "value": 120}},
        },
    )

    def handler(task, complete, fail):
        raise BpmnError("REJECTED", "score too low", {"score": 120})

    with caplog.at_level(logging.INFO):
        run(dispatcher, handler)
    metrics.bpmn_error.assert_called_once_with("topic")
    metrics.failed.assert_not_called()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # a business outcome, not an error


def test_bpmn_error_with_only_a_code(dispatcher, engine) -> None:
    expect(engine, "bpmnError", {"workerId": WORKER_ID, "errorCode": "NOT_FOUND"})

    def handler(task, complete, fail):
        raise BpmnError("NOT_FOUND")

    run(dispatcher, handler)


def test_an_exception_becomes_a_failure_with_its_traceback(dispatcher, engine, metrics, caplog) -> None:
    expect(engine, "failure", None)  # body checked below

    def score_applicant(task, complete, fail):
        raise ValueError("applicant has no SSN")

    with caplog.at_level(logging.WARNING):
        run(dispatcher, score_applicant)
    body = failure_body(engine)
    assert body["errorMessage"] == "ValueError: applicant has no SSN"
    assert body["errorDetails"].startswith("Traceback (most recent call last)")
    assert "score_applicant" in body["errorDetails"]
    assert body["errorDetails"].rstrip().endswith("ValueError: applicant has no SSN")
    assert (body["retries"], body["retryTimeout"], body["workerId"]) == (3, 0, WORKER_ID)
    metrics.failed.assert_called_once_with("topic")
    assert "Handler of task task-1 (topic topic) failed: ValueError: applicant has no SSN" in caplog.text


@pytest.mark.parametrize(("task_retries", "sent"), [(None, 3), (5, 4), (1, 0), (0, 0)])
def test_retries_count_down_from_the_task_never_below_zero(dispatcher, engine, task_retries, sent) -> None:
    expect(engine, "failure", None)

    def handler(task, complete, fail):
        raise RuntimeError("boom")

    run(dispatcher, handler, make_task(retries=task_retries))
    assert failure_body(engine)["retries"] == sent


@pytest.mark.parametrize(
    ("task_retries", "retries", "timeout"),
    [(None, 4, 1000), (4, 3, 2000), (3, 2, 4000), (2, 1, 6000), (1, 0, 6000)],
)
def test_configured_retries_and_exponential_retry_timeout(
    make_dispatcher,
    engine,
    task_retries,
    retries,
    timeout,
) -> None:
    dispatcher = make_dispatcher(
        RetryPolicy(retries=4, retry_timeout=1000, backoff_factor=2.0, max_retry_timeout=6000)
    )
    expect(engine, "failure", None)

    def handler(task, complete, fail):
        raise ConnectionRefusedError("bureau")

    run(dispatcher, handler, make_task(retries=task_retries))
    body = failure_body(engine)
    assert (body["retries"], body["retryTimeout"]) == (retries, timeout)


def test_returning_without_an_outcome_reports_a_failure(dispatcher, engine, caplog) -> None:
    expect(
        engine,
        "failure",
        {
            "workerId": WORKER_ID,
            "errorMessage": UNRESOLVED_MESSAGE,
            "retries": 3,
            "retryTimeout": 0,
        },
    )
    with caplog.at_level(logging.WARNING, logger="camunda_ext._protocol.dispatch"):
        run(dispatcher, lambda task, complete, fail: None)
    [record] = caplog.records
    assert record.levelno == logging.WARNING and "returned without an outcome" in record.getMessage()


def test_a_second_outcome_is_refused(dispatcher, engine) -> None:
    expect(engine, "complete", {"workerId": WORKER_ID})
    refused = []

    def handler(task, complete, fail):
        complete().execute()
        try:
            fail(message="too late").execute()
        except TaskAlreadyResolvedError as error:
            refused.append(error)

    run(dispatcher, handler)
    assert len(refused) == 1 and "task-1" in str(refused[0])
    assert len(engine.calls) == 1


def test_an_exception_after_completion_is_logged_not_reported(dispatcher, engine, metrics, caplog) -> None:
    expect(engine, "complete", {"workerId": WORKER_ID})

    def handler(task, complete, fail):
        complete().execute()
        raise KeyError("cleanup")

    with caplog.at_level(logging.ERROR, logger="camunda_ext._protocol.dispatch"):
        run(dispatcher, handler)
    assert len(engine.calls) == 1
    metrics.failed.assert_not_called()
    [record] = caplog.records
    assert "raised after reporting its outcome" in record.getMessage()
    assert record.exc_info[0] is KeyError


def test_an_outcome_the_engine_refuses_unlocks_the_task(dispatcher, engine, metrics, caplog) -> None:
    expect(engine, "failure", None, **engine_error(400, "RestException", "retries must be >= 0"))
    engine.add(responses.POST, task_url("task-1", "unlock"), status=204)

    def handler(task, complete, fail):
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR):
        run(dispatcher, handler)
    metrics.unlocked.assert_called_once_with("topic")
    assert "refused the outcome of task task-1" in caplog.text


#: The engine's answer to a BPMN error nothing catches, with enableExceptionsAfterUnhandledBpmnError.
UNCAUGHT_BPMN_ERROR = engine_error(
    500,
    "ProcessEngineException",
    "Execution with id 'ex-1' throws an error event with errorCode 'REJECTED', but no error handler was "
    "defined.",
)


def test_a_bpmn_error_whose_variables_do_not_encode_becomes_a_failure(
    dispatcher, engine, metrics, caplog
) -> None:
    # Unlocked instead, the task would be fetched and its handler run again at once, forever.
    expect(engine, "failure", None)  # body checked below; no bpmnError request, no unlock

    def handler(task, complete, fail):
        raise BpmnError("REJECTED", variables={"at": datetime.datetime(2026, 12, 4, 10, 11, 12)})

    with caplog.at_level(logging.WARNING, logger="camunda_ext._protocol.dispatch"):
        run(dispatcher, handler)
    body = failure_body(engine)
    assert body["errorMessage"].startswith("BPMN error REJECTED could not be reported: VariableError: ")
    assert "naive datetime" in body["errorMessage"]
    assert "VariableError" in body["errorDetails"]
    assert (body["retries"], body["retryTimeout"]) == (3, 0)  # the retry policy of any handler fault
    assert "variables" not in body  # the BPMN error's variables are not sent with the failure
    metrics.failed.assert_called_once_with("topic")
    metrics.bpmn_error.assert_not_called()
    metrics.unlocked.assert_not_called()
    assert "could not be reported; reporting a failure instead" in caplog.text


def test_a_bpmn_error_the_engine_refuses_becomes_a_failure(make_dispatcher, engine, metrics) -> None:
    dispatcher = make_dispatcher(RetryPolicy(retries=4, retry_timeout=1000))
    expect(engine, "bpmnError", {"workerId": WORKER_ID, "errorCode": "REJECTED"}, **UNCAUGHT_BPMN_ERROR)
    expect(engine, "failure", None)

    def handler(task, complete, fail):
        raise BpmnError("REJECTED")

    run(dispatcher, handler, make_task(retries=2))
    body = failure_body(engine)
    assert body["errorMessage"].startswith(
        "BPMN error REJECTED could not be reported: EngineError: HTTP 500 ProcessEngineException: "
    )
    assert "no error handler was defined" in body["errorMessage"]
    assert (body["retries"], body["retryTimeout"]) == (1, 1000)
    assert [c.request.url.rsplit("/", 1)[1] for c in engine.calls] == ["bpmnError", "failure"]
    metrics.failed.assert_called_once_with("topic")
    metrics.unlocked.assert_not_called()


def test_a_refused_bpmn_error_whose_failure_is_refused_too_unlocks_the_task(
    dispatcher, engine, metrics
) -> None:
    expect(engine, "bpmnError", None, **UNCAUGHT_BPMN_ERROR)
    expect(engine, "failure", None, **engine_error(400, "RestException", "retries must be >= 0"))
    engine.add(responses.POST, task_url("task-1", "unlock"), status=204)

    def handler(task, complete, fail):
        raise BpmnError("REJECTED")

    run(dispatcher, handler)
    assert [c.request.url.rsplit("/", 1)[1] for c in engine.calls] == ["bpmnError", "failure", "unlock"]
    metrics.unlocked.assert_called_once_with("topic")


@pytest.mark.parametrize(
    ("exit", "message"),
    [
        (lambda: sys.exit(), "SystemExit"),
        (lambda: sys.exit(2), "SystemExit: 2"),
        (_interrupt, "KeyboardInterrupt"),
    ],
    ids=["sys.exit()", "sys.exit(2)", "KeyboardInterrupt"],
)
def test_a_handler_that_exits_is_reported_and_the_thread_runs_the_next_task(
    make_dispatcher, engine, metrics, caplog, exit, message
) -> None:
    dispatcher = make_dispatcher(max_workers=1)  # the next task needs the same thread
    expect(engine, "failure", None)
    threads: List[str] = []

    def handler(task, complete, fail):
        threads.append(threading.current_thread().name)
        exit()

    with caplog.at_level(logging.WARNING, logger="camunda_ext._protocol.dispatch"):
        run(dispatcher, handler)
    body = failure_body(engine)
    assert body["errorMessage"] == message
    assert "in handler" in body["errorDetails"]
    assert body["retries"] == 3
    metrics.failed.assert_called_once_with("topic")
    assert "Handler of task task-1 (topic topic) failed: %s" % message in caplog.text

    expect(engine, "complete", {"workerId": WORKER_ID})

    def next_handler(task, complete, fail):
        threads.append(threading.current_thread().name)
        complete().execute()

    run(dispatcher, next_handler)
    metrics.completed.assert_called_once_with("topic")
    assert threads[0] == threads[1]


def test_a_job_that_raises_is_logged(dispatcher, caplog) -> None:
    done = threading.Event()

    def broken() -> None:
        raise RuntimeError("bug")

    with caplog.at_level(logging.ERROR, logger="camunda_ext._protocol.dispatch"):
        dispatcher.submit(broken, on_done=done.set, on_cancel=mock.Mock())
        wait(done, "the job's slot to come back")
    [record] = caplog.records
    assert "A job on a handler thread raised" in record.getMessage()
    assert record.exc_info[0] is RuntimeError


# ---------------------------------------------------------------------- slots and leases


@pytest.mark.parametrize("raises", [False, True], ids=["completes", "raises"])
def test_the_slot_and_the_lease_are_given_back_after_the_report(
    dispatcher,
    engine,
    leaser,
    raises,
) -> None:
    expect(engine, "failure" if raises else "complete", None)
    reported_before_done = []

    def handler(task, complete, fail):
        if raises:
            raise OSError("disk full")
        complete().execute()

    done = threading.Event()

    def on_done() -> None:
        reported_before_done.append(len(engine.calls))
        done.set()

    dispatcher.dispatch(make_task(), subscription("topic", handler), on_done, LOCKED_AT)
    wait(done, "the slot to come back")
    assert reported_before_done == [1]
    leaser.remove.assert_called_once_with("task-1")


def test_handler_time_is_measured_on_the_clock(dispatcher, engine, metrics, clock: FakeClock) -> None:
    expect(engine, "complete", {"workerId": WORKER_ID})

    def handler(task, complete, fail):
        clock.advance(2.5)
        complete().execute()

    run(dispatcher, handler)
    metrics.handler_seconds.assert_called_once_with("topic", 2.5)


# ---------------------------------------------------------------------- shutdown


def test_shutdown_cancels_handlers_not_started_and_unlocks_them(
    make_dispatcher,
    engine,
    leaser,
    metrics,
) -> None:
    dispatcher = make_dispatcher(max_workers=1)
    engine.add(responses.POST, task_url("queued", "unlock"), status=204)
    expect(engine, "complete", {"workerId": WORKER_ID})
    started, release = threading.Event(), threading.Event()
    ran: List[str] = []

    def handler(task, complete, fail):
        ran.append(task.id)
        started.set()
        assert release.wait(5.0)
        complete().execute()

    done = {name: threading.Event() for name in ("task-1", "queued")}
    dispatcher.dispatch(make_task("task-1"), subscription("topic", handler), done["task-1"].set, LOCKED_AT)
    wait(started, "the first handler to start")
    dispatcher.dispatch(make_task("queued"), subscription("topic", handler), done["queued"].set, LOCKED_AT)

    finished, still_running = dispatcher.shutdown(0.0)
    assert [t.id for t in still_running] == ["task-1"]
    assert [t.id for t in finished] == ["queued"]
    wait(done["queued"], "the cancelled task's slot")
    leaser.remove.assert_called_with("queued")
    metrics.unlocked.assert_called_once_with("topic")

    release.set()
    wait(done["task-1"], "the running handler to finish")
    assert ran == ["task-1"]


def test_shutdown_waits_for_running_handlers(make_dispatcher, engine) -> None:
    dispatcher = make_dispatcher()
    expect(engine, "complete", {"workerId": WORKER_ID})
    started, release = threading.Event(), threading.Event()

    def handler(task, complete, fail):
        started.set()
        assert release.wait(5.0)
        complete().execute()

    dispatcher.dispatch(make_task(), subscription("topic", handler), lambda: None, LOCKED_AT)
    wait(started, "the handler to start")
    returned: List[Any] = []
    stopper = threading.Thread(target=lambda: returned.append((dispatcher.shutdown(None), len(engine.calls))))
    # The handler is released only once shutdown waits for it, so that a shutdown
    # that did not wait would return before the complete.
    waiting, real_wait = threading.Event(), concurrent.futures.wait

    def wait_and_tell(*args: Any, **kwargs: Any) -> Any:
        waiting.set()
        return real_wait(*args, **kwargs)

    with mock.patch("concurrent.futures.wait", side_effect=wait_and_tell):
        stopper.start()
        wait(waiting, "shutdown to wait for the running handler")
        release.set()
        stopper.join(5.0)
    [((_finished, still_running), reported)] = returned
    assert still_running == []
    assert reported == 1  # the handler's complete was sent before shutdown returned


def test_a_task_dispatched_after_shutdown_is_unlocked_not_run(dispatcher, engine, leaser, metrics) -> None:
    engine.add(responses.POST, task_url("late", "unlock"), status=204)
    dispatcher.shutdown(None)
    handler = mock.Mock()
    on_done = mock.Mock()
    dispatcher.dispatch(make_task("late"), subscription("topic", handler), on_done, LOCKED_AT)
    handler.assert_not_called()
    on_done.assert_called_once_with()
    leaser.remove.assert_called_once_with("late")
    metrics.unlocked.assert_called_once_with("topic")


def test_a_task_dispatched_while_the_interpreter_exits_is_unlocked_not_run(
    dispatcher, engine, leaser, metrics
) -> None:
    # concurrent.futures refuses new work once interpreter exit began, before atexit callbacks run.
    engine.add(responses.POST, task_url("late", "unlock"), status=204)
    handler = mock.Mock()
    on_done = mock.Mock()
    refusal = RuntimeError("cannot schedule new futures after interpreter shutdown")
    with mock.patch.object(dispatcher._executor, "submit", side_effect=refusal):
        dispatcher.dispatch(make_task("late"), subscription("topic", handler), on_done, LOCKED_AT)
    handler.assert_not_called()
    on_done.assert_called_once_with()  # the slot comes back
    leaser.remove.assert_called_once_with("late")
    metrics.unlocked.assert_called_once_with("topic")


def test_describe_an_exception() -> None:
    try:
        raise ValueError("bad input")
    except ValueError as error:
        message, details = describe(error)
    assert message == "ValueError: bad input"
    assert "Traceback" in details and "test_describe_an_exception" in details
    assert describe(KeyboardInterrupt())[0] == "KeyboardInterrupt"


# ---------------------------------------------------------------------- leases


def test_a_dispatched_task_is_leased_from_its_lock(dispatcher, engine, leaser) -> None:
    expect(engine, "complete", {"workerId": WORKER_ID})
    run(dispatcher, lambda task, complete, fail: complete().execute())
    leaser.add.assert_called_once_with("task-1", "topic", 30_000, LOCKED_AT)
    leaser.remove.assert_called_once_with("task-1")


def test_a_task_claimed_here_only_renews_the_lease_of_the_run_under_way(dispatcher, leaser) -> None:
    leaser.renewed.return_value = True  # its handler runs: the run holds a lease
    handler = mock.Mock()
    on_done = mock.Mock()
    assert dispatcher.claim("task-1")
    assert not dispatcher.dispatch(make_task(), subscription("topic", handler), on_done, LOCKED_AT)
    leaser.renewed.assert_called_once_with("task-1", 30_000, LOCKED_AT)
    leaser.add.assert_not_called()
    handler.assert_not_called()
    on_done.assert_not_called()


@pytest.fixture
def real_leaser_dispatcher(rest_client, metrics, clock, jitter) -> Iterator[Tuple[Dispatcher, Leaser]]:
    """A dispatcher and its real leaser, so that the leases left behind can be read."""
    leaser = Leaser(mock.Mock(), metrics, clock, jitter)
    reporter = Reporter(
        rest_client, leaser, metrics, clock, jitter, attempts=1, backoff=Backoff(), sleep=lambda s: None
    )
    dispatcher = Dispatcher(1, reporter, leaser, RetryPolicy(), metrics, clock)
    yield dispatcher, leaser
    dispatcher.shutdown(5.0)


def test_a_task_fetched_while_an_event_holds_its_claim_runs_when_the_event_did_not_run_it(
    real_leaser_dispatcher, engine
) -> None:
    # A lock-mode event claimed the task; the sweep's fetch locked it first, so the
    # event's lock by id failed. The fetched copy is the only lock: it must run.
    dispatcher, leaser = real_leaser_dispatcher
    expect(engine, "complete", {"workerId": WORKER_ID})
    ran, done = threading.Event(), threading.Event()

    def handler(task: Any, complete: Any, fail: Any) -> None:
        ran.set()
        complete().execute()

    assert dispatcher.claim("task-1")
    assert dispatcher.dispatch(make_task(), subscription("topic", handler), done.set, LOCKED_AT)
    # The one handler thread runs jobs in order: once a job submitted after the
    # dispatch has run, a handler submitted by the dispatch would have run too.
    marker = threading.Event()
    dispatcher.submit(marker.set, on_done=lambda: None, on_cancel=lambda: None)
    wait(marker, "the job submitted after the dispatch")
    assert not ran.is_set()  # not while the event holds the claim
    dispatcher.unclaim("task-1", ran=False)
    wait(done, "the fetched copy's run")
    assert ran.is_set()
    assert leaser.leased() == {}
    assert not dispatcher.claimed("task-1")


def test_a_task_fetched_again_while_its_handler_ran_here_is_dropped(real_leaser_dispatcher) -> None:
    dispatcher, leaser = real_leaser_dispatcher
    handler, on_done = mock.Mock(), mock.Mock()
    assert dispatcher.claim("task-1")  # the holder has not leased it yet
    assert dispatcher.dispatch(make_task(), subscription("topic", handler), on_done, LOCKED_AT)
    dispatcher.unclaim("task-1", ran=True)
    handler.assert_not_called()
    on_done.assert_called_once_with()  # the copy's slot is back
    assert leaser.leased() == {}  # no lease extends a lock nobody works on


def test_a_fetched_copy_waiting_at_shutdown_is_unlocked(real_leaser_dispatcher, engine) -> None:
    dispatcher, _ = real_leaser_dispatcher
    engine.add(responses.POST, task_url("task-1", "unlock"), status=204)
    handler, on_done = mock.Mock(), mock.Mock()
    assert dispatcher.claim("task-1")
    assert dispatcher.dispatch(make_task(), subscription("topic", handler), on_done, LOCKED_AT)
    dispatcher.shutdown(None)
    dispatcher.unclaim("task-1", ran=False)  # the holder's job was cancelled
    handler.assert_not_called()
    on_done.assert_called_once_with()
    assert [c.request.url for c in engine.calls] == [task_url("task-1", "unlock")]

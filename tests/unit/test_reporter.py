"""Delivery of outcomes through transient faults, with the engine mocked by responses."""

from __future__ import annotations

import logging
from typing import List
from unittest import mock

import pytest
import requests
import responses
from responses.matchers import json_params_matcher

from camunda_ext import BadRequestError, CamundaConnectionError, EngineError, OptimisticLockingError
from camunda_ext._protocol.backoff import Backoff
from camunda_ext._protocol.leaser import Leaser
from camunda_ext._protocol.reporter import Reporter, is_transient
from camunda_ext.metrics import NullMetrics
from tests.unit.worker_fixtures import (
    LOCKED_BY_OTHER,
    OPTIMISTIC_LOCKING,
    TASK_GONE,
    WORKER_ID,
    engine_error,
    make_task,
    task_url,
)

COMPLETE = task_url("task-1", "complete")
UNLOCK = task_url("task-1", "unlock")
TRANSIENT = {
    "optimistic-locking": OPTIMISTIC_LOCKING,
    "503": engine_error(503, None),
    "connection": {"body": requests.ConnectionError("connection reset by peer")},
}


@pytest.fixture
def leaser() -> Leaser:
    leaser = mock.create_autospec(Leaser, instance=True)
    leaser.holds.return_value = True
    return leaser


@pytest.fixture
def metrics() -> NullMetrics:
    return mock.create_autospec(NullMetrics, instance=True)


@pytest.fixture
def sleeps() -> List[float]:
    return []


def make_reporter(client, leaser, metrics, clock, jitter, sleeps) -> Reporter:
    """Four attempts, pauses from 0.1 s recorded in ``sleeps``."""
    return Reporter(
        client, leaser, metrics, clock, jitter, attempts=4, backoff=Backoff(0.1, 10.0), sleep=sleeps.append
    )


@pytest.fixture
def reporter(rest_client, leaser, metrics, clock, jitter, sleeps) -> Reporter:
    return make_reporter(rest_client, leaser, metrics, clock, jitter, sleeps)


def expect_complete(engine: responses.RequestsMock, **answer) -> None:
    engine.add(
        responses.POST,
        COMPLETE,
        match=[json_params_matcher({"workerId": WORKER_ID})],
        **(answer or {"status": 204}),
    )


def test_complete_sends_the_variables(reporter, ordered_engine, metrics) -> None:
    ordered_engine.add(
        responses.POST,
        COMPLETE,
        match=[
            json_params_matcher(
                {
                    "workerId": WORKER_ID,
                    "variables": {"score": {"type": "Integer", "value": 750}},
                    "localVariables": {"note": {"type": "String", "value": "ok"}},
                }
            )
        ],
        status=204,
    )
    reporter.complete(make_task(), {"score": 750}, {"note": "ok"})
    metrics.completed.assert_called_once_with("topic")


@pytest.mark.parametrize("answer", list(TRANSIENT.values()), ids=list(TRANSIENT))
def test_complete_is_retried_through_transient_faults_with_growing_pauses(
    reporter,
    ordered_engine,
    metrics,
    sleeps,
    answer,
) -> None:
    for _ in range(3):
        expect_complete(ordered_engine, **answer)
    expect_complete(ordered_engine)
    reporter.complete(make_task())
    assert len(ordered_engine.calls) == 4
    # Jitter 0.5 gives three quarters of each ceiling: 0.1, 0.2, 0.4.
    assert sleeps == pytest.approx([0.075, 0.15, 0.3])
    metrics.completed.assert_called_once_with("topic")
    assert metrics.report_retried.call_count == 3
    metrics.unlocked.assert_not_called()


def test_the_retry_reason_names_the_error_class(reporter, ordered_engine, metrics) -> None:
    expect_complete(ordered_engine, **OPTIMISTIC_LOCKING)
    expect_complete(ordered_engine)
    reporter.complete(make_task())
    metrics.report_retried.assert_called_once_with("topic", "OptimisticLockingError")


def test_when_attempts_run_out_the_task_is_unlocked(
    reporter, ordered_engine, metrics, sleeps, caplog
) -> None:
    for _ in range(4):
        expect_complete(ordered_engine, **OPTIMISTIC_LOCKING)
    ordered_engine.add(responses.POST, UNLOCK, status=204)
    with caplog.at_level(logging.WARNING, logger="camunda_ext._protocol.reporter"):
        reporter.complete(make_task())
    assert len(sleeps) == 3
    metrics.unlocked.assert_called_once_with("topic")
    metrics.completed.assert_not_called()
    assert "Giving up the complete of task task-1" in caplog.text


def test_no_retry_and_no_unlock_once_the_lock_is_no_longer_held(
    reporter,
    ordered_engine,
    leaser,
    metrics,
    sleeps,
) -> None:
    leaser.holds.side_effect = [True, False]
    expect_complete(ordered_engine, status=503)
    expect_complete(ordered_engine, status=503)
    reporter.complete(make_task())
    # Unlock takes no worker id: it would free the task from whoever locked it since.
    assert len(ordered_engine.calls) == 2
    assert len(sleeps) == 1
    metrics.lost.assert_called_once_with("topic")
    metrics.unlocked.assert_not_called()


@pytest.mark.parametrize("answer", [TASK_GONE, LOCKED_BY_OTHER], ids=["404", "locked-by-other"])
def test_a_task_that_is_not_ours_any_more_is_counted_as_lost(
    reporter,
    ordered_engine,
    metrics,
    sleeps,
    caplog,
    answer,
) -> None:
    expect_complete(ordered_engine, **answer)
    with caplog.at_level(logging.INFO, logger="camunda_ext._protocol.reporter"):
        reporter.complete(make_task())  # no exception
    metrics.lost.assert_called_once_with("topic")
    metrics.completed.assert_not_called()
    assert sleeps == []
    [record] = caplog.records
    assert record.levelno == logging.WARNING and "no longer this worker's" in record.getMessage()


def test_a_retried_complete_that_finds_the_task_gone_most_likely_went_through(
    reporter,
    ordered_engine,
    metrics,
    caplog,
) -> None:
    expect_complete(ordered_engine, body=requests.ConnectionError("read timed out"))
    expect_complete(ordered_engine, **TASK_GONE)
    with caplog.at_level(logging.INFO, logger="camunda_ext._protocol.reporter"):
        reporter.complete(make_task())
    metrics.lost.assert_called_once_with("topic")
    assert [r.levelno for r in caplog.records] == [logging.INFO]
    assert "earlier attempt most likely went through" in caplog.text


def test_a_report_the_engine_refuses_is_raised(reporter, ordered_engine, metrics, sleeps) -> None:
    expect_complete(ordered_engine, **engine_error(400, "RestException", "Cannot deserialize object"))
    with pytest.raises(BadRequestError, match="Cannot deserialize"):
        reporter.complete(make_task())
    assert sleeps == []
    metrics.completed.assert_not_called()
    metrics.lost.assert_not_called()


def test_a_server_error_that_is_not_transient_is_raised(reporter, ordered_engine) -> None:
    expect_complete(ordered_engine, **engine_error(500, "ProcessEngineException", "no such variable"))
    with pytest.raises(EngineError, match="ProcessEngineException"):
        reporter.complete(make_task())


def test_handle_failure_sends_every_field(reporter, ordered_engine, metrics) -> None:
    ordered_engine.add(
        responses.POST,
        task_url("task-1", "failure"),
        match=[
            json_params_matcher(
                {
                    "workerId": WORKER_ID,
                    "errorMessage": "bureau down",
                    "errorDetails": "trace",
                    "retries": 2,
                    "retryTimeout": 5000,
                    "variables": {"attempt": {"type": "Integer", "value": 1}},
                }
            )
        ],
        status=204,
    )
    reporter.handle_failure(
        make_task(),
        "bureau down",
        retries=2,
        retry_timeout=5000,
        error_details="trace",
        variables={"attempt": 1},
    )
    metrics.failed.assert_called_once_with("topic")


def test_handle_bpmn_error_is_retried_too(reporter, ordered_engine, metrics) -> None:
    url = task_url("task-1", "bpmnError")
    body = {"workerId": WORKER_ID, "errorCode": "REJECTED", "errorMessage": "score too low"}
    ordered_engine.add(responses.POST, url, match=[json_params_matcher(body)], **OPTIMISTIC_LOCKING)
    ordered_engine.add(responses.POST, url, match=[json_params_matcher(body)], status=204)
    reporter.handle_bpmn_error(make_task(), "REJECTED", error_message="score too low")
    metrics.bpmn_error.assert_called_once_with("topic")


def test_unlock_counts_and_logs_what_happens_next(reporter, ordered_engine, metrics, caplog) -> None:
    ordered_engine.add(responses.POST, UNLOCK, status=204)
    with caplog.at_level(logging.INFO, logger="camunda_ext._protocol.reporter"):
        reporter.unlock(make_task(), "the worker is stopping")
    metrics.unlocked.assert_called_once_with("topic")
    assert "Unlocked task task-1 (topic topic): the worker is stopping" in caplog.text


def test_unlock_of_a_gone_task_is_not_an_error(reporter, ordered_engine, metrics, caplog) -> None:
    ordered_engine.add(responses.POST, UNLOCK, **TASK_GONE)
    with caplog.at_level(logging.INFO, logger="camunda_ext._protocol.reporter"):
        reporter.unlock(make_task(), "stopping")
    metrics.unlocked.assert_not_called()
    assert [r.levelno for r in caplog.records] == [logging.INFO]


def test_a_failed_unlock_is_logged_not_raised(reporter, ordered_engine, metrics, caplog) -> None:
    ordered_engine.add(responses.POST, UNLOCK, body=requests.ConnectionError("refused"))
    with caplog.at_level(logging.WARNING, logger="camunda_ext._protocol.reporter"):
        reporter.unlock(make_task(), "stopping")
    metrics.unlocked.assert_not_called()
    assert "becomes available when its lock expires" in caplog.text


def test_extend_lock_tells_the_leaser(reporter, ordered_engine, leaser, clock) -> None:
    ordered_engine.add(
        responses.POST,
        task_url("task-1", "extendLock"),
        match=[json_params_matcher({"workerId": WORKER_ID, "newDuration": 90_000})],
        status=204,
    )
    reporter.extend_lock(make_task(), 90_000)
    leaser.renewed.assert_called_once_with("task-1", 90_000, clock.now)


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (OptimisticLockingError(500, "OptimisticLockingException", "", 1), True),
        (CamundaConnectionError("reset"), True),
        (EngineError(503), True),
        (EngineError(502), True),
        (EngineError(429), True),
        (EngineError(500, None, "proxy page"), True),
        (EngineError(500, "ProcessEngineException", "Deadlock detected", 10000), True),  # rolled back
        (EngineError(500, "ProcessEngineException", "bad"), False),
        (BadRequestError(400, "RestException", "bad"), False),
    ],
)
def test_which_errors_are_transient(error, transient) -> None:
    assert is_transient(error) is transient


def test_the_failure_of_a_fetched_task_no_handler_runs_is_retried_while_its_lock_lasts(
    rest_client, ordered_engine, metrics, clock, jitter, sleeps
) -> None:
    # E.g. a task that does not decode: no handler leased it, yet its lock is this worker's.
    leaser = Leaser(rest_client, metrics, clock, jitter)
    reporter = make_reporter(rest_client, leaser, metrics, clock, jitter, sleeps)
    failure = task_url("task-1", "failure")
    ordered_engine.add(responses.POST, failure, **engine_error(503, None))
    ordered_engine.add(responses.POST, failure, status=204)

    reporter.handle_failure_of_fetched(make_task(), 30_000, clock.now, "cannot decode", retries=2)

    assert [c.request.url for c in ordered_engine.calls] == [failure, failure]
    metrics.failed.assert_called_once_with("topic")
    assert leaser.leased() == {}  # leased for the report only

"""The Worker against the real engine: loan granting end to end, failures, BPMN errors, long handlers."""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any, Callable, Dict, List

import pytest

from camunda_ext import AuthenticationError, BpmnError, Client, CountingMetrics, Worker
from harness import Engine
from tests.integration.conftest import BPMN, new_client

UTC = dt.timezone.utc
SCORES = [7, 3, 9]


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll the engine until ``condition`` holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("timed out after %.0f s waiting for %s" % (timeout, what))
        time.sleep(0.2)


def wait_finished(client: Client, ids: List[str], timeout: float, what: str) -> None:
    """Poll the engine's history until every instance in ``ids`` has ended."""
    wait_until(
        lambda: client.count_history_process_instances(process_instance_ids=ids, finished=True) == len(ids),
        timeout,
        what,
    )


class LoanHandlers:
    """The loan-granting handlers, recording what they saw and when they finished."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards the lists below
        self.scores_granted: List[int] = []
        self.scores_rejected: List[int] = []
        self.late_completions: List[str] = []

    def _completed_in_time(self, task: Any, complete: Any, **variables: Any) -> None:
        complete().variables(variables).execute()
        if dt.datetime.now(UTC) >= task.lock_expiration_time:
            with self._lock:
                self.late_completions.append(task.id)

    def credit_score_checker(self, task: Any, complete: Any, fail: Any) -> None:
        self._completed_in_time(task, complete, creditScores=SCORES)

    def loan_granter(self, task: Any, complete: Any, fail: Any) -> None:
        with self._lock:
            self.scores_granted.append(task.variables["score"])
        self._completed_in_time(task, complete)

    def request_rejecter(self, task: Any, complete: Any, fail: Any) -> None:
        with self._lock:
            self.scores_rejected.append(task.variables["score"])
        self._completed_in_time(task, complete)

    def register(self, worker: Worker) -> None:
        worker.register_handler("creditScoreChecker", self.credit_score_checker, lock_duration=20_000)
        worker.register_handler("loanGranter", self.loan_granter, lock_duration=20_000, variables=["score"])
        worker.register_handler("requestRejecter", self.request_rejecter, lock_duration=20_000)


def run_loan_granting(engine: Engine, instances: int) -> Dict[str, Any]:
    with new_client(engine) as setup:
        deployment = setup.deploy("loan-granting-it", [BPMN / "loan-granting.bpmn"])
        try:
            ids = [setup.start_process_instance("loan-granting").id for _ in range(instances)]
            handlers = LoanHandlers()
            metrics = CountingMetrics()
            worker = Worker(
                new_client(engine), max_tasks=8, poll_interval=0.05, async_response_timeout=5, metrics=metrics
            )
            handlers.register(worker)
            with worker:
                wait_finished(setup, ids, 180, "%d loan-granting instances to finish" % instances)
            return {"handlers": handlers, "metrics": metrics.snapshot()}
        finally:
            setup.delete_deployment(deployment.id, cascade=True)


@pytest.mark.parametrize("database", ["h2", "postgres"])
def test_worker_finishes_loan_granting_with_no_task_waiting_for_lock_expiry(
    database: str, request: pytest.FixtureRequest
) -> None:
    engine = request.getfixturevalue("engine" if database == "h2" else "pg_engine")
    instances = 25

    outcome = run_loan_granting(engine, instances)

    handlers, counts = outcome["handlers"], outcome["metrics"]
    assert sorted(handlers.scores_granted) == sorted([7, 9] * instances)
    assert handlers.scores_rejected == [3] * instances
    assert handlers.late_completions == []
    assert counts["completed"] == 4 * instances
    assert counts.get("lost", 0) == counts.get("unlocked", 0) == counts.get("failed", 0) == 0


def test_a_raising_handler_counts_retries_down_to_an_incident(
    client: Client, deploy: Any, engine: Engine
) -> None:
    deploy("bpmn-error.bpmn")
    instance = client.start_process_instance("bpmn-error-test")
    attempts: List[Any] = []
    incident = threading.Event()  # set once the third attempt ran

    def flaky(task: Any, complete: Any, fail: Any) -> None:
        attempts.append(task.retries)
        if len(attempts) == 3:
            incident.set()
        raise ValueError("bureau answered 500")

    worker = Worker(new_client(engine), max_tasks=2, poll_interval=0.05, async_response_timeout=2, retries=2)
    worker.register_handler("mayThrow", flaky, lock_duration=10_000)
    with worker:
        assert incident.wait(60)
        wait_until(
            lambda: client.count_tasks(process_instance_id=instance.id, no_retries_left=True) == 1,
            30,
            "the incident",
        )

    assert attempts == [None, 2, 1]
    (task,) = client.get_tasks(process_instance_id=instance.id)
    assert task.error_message == "ValueError: bureau answered 500"
    details = client.get_error_details(task.id)
    assert "Traceback" in details and "bureau answered 500" in details


def test_a_raised_bpmn_error_reaches_the_boundary_event(client: Client, deploy: Any, engine: Engine) -> None:
    deploy("bpmn-error.bpmn")
    instance = client.start_process_instance("bpmn-error-test")

    def reject(task: Any, complete: Any, fail: Any) -> None:
        raise BpmnError("LOAN_REJECTED", "score too low", variables={"reason": "score"})

    worker = Worker(new_client(engine), max_tasks=2, poll_interval=0.05, async_response_timeout=2)
    worker.register_handler("mayThrow", reject)
    with worker:
        wait_until(
            lambda: (
                client.count_history_activity_instances(
                    process_instance_id=instance.id, activity_id="caughtEnd"
                )
                == 1
            ),
            60,
            "the boundary event's end",
        )


def test_a_long_handler_keeps_its_lock_and_completes(client: Client, deploy: Any, engine: Engine) -> None:
    deploy("bpmn-error.bpmn")
    instance = client.start_process_instance("bpmn-error-test")
    started = threading.Event()  # the handler runs
    release = threading.Event()  # the test saw the lock extended
    first_expiry: List[dt.datetime] = []

    def slow(task: Any, complete: Any, fail: Any) -> None:
        first_expiry.append(task.lock_expiration_time)
        started.set()
        assert release.wait(60)
        complete().execute()

    metrics = CountingMetrics()
    worker = Worker(
        new_client(engine), max_tasks=1, poll_interval=0.05, async_response_timeout=2, metrics=metrics
    )
    worker.register_handler("mayThrow", slow, lock_duration=2_000)
    with worker:
        assert started.wait(60)
        task_id = client.get_tasks(process_instance_id=instance.id)[0].id
        wait_until(
            lambda: client.get_task(task_id).lock_expiration_time > first_expiry[0] + dt.timedelta(seconds=2),
            30,
            "the lock to be extended twice",
        )
        release.set()
        wait_until(
            lambda: (
                client.count_history_process_instances(process_instance_id=instance.id, finished=True) == 1
            ),
            30,
            "the instance to finish",
        )

    counts = metrics.snapshot()
    assert counts["lock_extended"] >= 2
    assert counts["completed"] == 1
    assert counts.get("lost", 0) == 0


def test_stop_unlocks_the_running_task_at_the_deadline(client: Client, deploy: Any, engine: Engine) -> None:
    deploy("bpmn-error.bpmn")
    instance = client.start_process_instance("bpmn-error-test")
    started = threading.Event()  # the handler runs
    release = threading.Event()  # lets the handler end after the test

    def stuck(task: Any, complete: Any, fail: Any) -> None:
        started.set()
        release.wait(60)

    worker = Worker(new_client(engine), max_tasks=1, poll_interval=0.05, async_response_timeout=2)
    worker.register_handler("mayThrow", stuck, lock_duration=60_000)
    worker.start()
    try:
        assert started.wait(60)
        worker.stop(timeout=0.5)
        # The unlock wakes long polls parked at the engine, and a stopped worker of an
        # earlier test may still have one: it takes the task and unlocks it at once.
        # So the task must be free soon; without the unlock it stays locked for 60 s.
        wait_until(
            lambda: client.get_tasks(process_instance_id=instance.id)[0].worker_id is None,
            10,
            "the stopped worker's task to be unlocked",
        )
    finally:
        release.set()


def test_wrong_credentials_stop_run_with_the_authentication_error(auth_engine: Engine) -> None:
    worker = Worker(Client(auth_engine.url, "intruder", auth=("demo", "wrong")), async_response_timeout=1)
    worker.register_handler("anything", lambda task, complete, fail: None)
    with pytest.raises(AuthenticationError):
        worker.run()


def test_two_workers_on_one_engine_never_run_a_task_twice(
    client: Client, deploy: Any, engine: Engine
) -> None:
    deploy("bpmn-error.bpmn")
    ids = [client.start_process_instance("bpmn-error-test").id for _ in range(40)]
    seen: List[str] = []
    seen_lock = threading.Lock()  # guards seen

    def record(task: Any, complete: Any, fail: Any) -> None:
        with seen_lock:
            seen.append(task.id)
        complete().execute()

    workers = [
        Worker(new_client(engine), max_tasks=4, poll_interval=0.05, async_response_timeout=2)
        for _ in range(2)
    ]
    for worker in workers:
        worker.register_handler("mayThrow", record)
        worker.start()
    try:
        wait_finished(client, ids, 60, "40 instances to finish")
    finally:
        for worker in workers:
            worker.stop()
    assert len(seen) == len(set(seen)) == 40

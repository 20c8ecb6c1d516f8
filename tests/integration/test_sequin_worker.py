"""SequinWorker end to end: the real engine on PostgreSQL, its WAL, the sql/ migrations, our pull server."""

from __future__ import annotations

import collections
import threading
import time
from typing import Any, Dict, List

import pytest

from camunda_ext import Client, CountingMetrics, SequinWorker, Worker
from harness import Engine
from tests.integration import cdc_fixtures
from tests.integration.conftest import BPMN, new_client
from tests.integration.test_worker_engine import LoanHandlers, wait_finished, wait_until

# The fixtures of cdc_fixtures, visible to this module's tests.
cdc_password = cdc_fixtures.cdc_password
sequin_token = cdc_fixtures.sequin_token
cdc_database = cdc_fixtures.cdc_database
sequin_server = cdc_fixtures.sequin_server


def sequin_worker(engine: Engine, server: Any, mode: str, **options: Any) -> SequinWorker:
    options.setdefault("max_tasks", 8)
    options.setdefault("poll_interval", 0.05)
    return SequinWorker(
        new_client(engine),
        server.url,
        server.consumer,
        token=server.token,
        mode=mode,
        wait_for=2,
        **options,
    )


@pytest.fixture
def pg_client(pg_engine: Engine) -> Any:
    with new_client(pg_engine) as made:
        yield made


@pytest.fixture
def loan_granting(pg_client: Client) -> Any:
    deployment = pg_client.deploy("loan-granting-cdc", [BPMN / "loan-granting.bpmn"])
    yield
    pg_client.delete_deployment(deployment.id, cascade=True)


@pytest.fixture
def bpmn_error(pg_client: Client) -> Any:
    deployment = pg_client.deploy("bpmn-error-cdc", [BPMN / "bpmn-error.bpmn"])
    yield
    pg_client.delete_deployment(deployment.id, cascade=True)


@pytest.mark.parametrize("mode", ["lock", "wake"])
def test_both_modes_finish_loan_granting_and_loan_granter_sees_score(
    mode: str, pg_engine: Engine, pg_client: Client, sequin_server: Any, loan_granting: Any
) -> None:
    instances = 20
    handlers = LoanHandlers()
    metrics = CountingMetrics()
    # A long sweep interval: the events, not the sweep, must carry the work.
    worker = sequin_worker(pg_engine, sequin_server, mode, metrics=metrics, sweep_interval=300)
    handlers.register(worker)

    with worker:
        ids = [pg_client.start_process_instance("loan-granting").id for _ in range(instances)]
        wait_finished(pg_client, ids, 120, "%d instances through CDC in %s mode" % (instances, mode))

    assert sorted(handlers.scores_granted) == sorted([7, 9] * instances)
    assert handlers.scores_rejected == [3] * instances
    assert handlers.late_completions == []
    counts = metrics.snapshot()
    assert counts["completed"] == 4 * instances
    assert counts.get("lost", 0) == counts.get("unlocked", 0) == 0


def test_wake_mode_leaves_the_events_in_sequin_while_its_pollers_work_off_a_backlog(
    pg_engine: Engine,
    pg_client: Client,
    sequin_server: Any,
    loan_granting: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    instances = 60
    receives = collections.Counter()
    handle = sequin_server.handle

    def counted(method: str, target: str, headers: Any, body: bytes) -> Any:
        receives[target.rsplit("/", 1)[-1]] += 1
        return handle(method, target, headers, body)

    monkeypatch.setattr(sequin_server, "handle", counted)
    # Started before the worker: fifteen times as many tasks as it has slots.
    ids = [pg_client.start_process_instance("loan-granting").id for _ in range(instances)]
    handlers = LoanHandlers()
    metrics = CountingMetrics()
    worker = sequin_worker(pg_engine, sequin_server, "wake", max_tasks=4, metrics=metrics, sweep_interval=300)
    handlers.register(worker)

    with worker:
        wait_finished(pg_client, ids, 120, "%d instances through a wake worker with 4 slots" % instances)
        wait_until(lambda: sequin_server.pending() == 0, 30, "the ack of every event")

    counts = metrics.snapshot()
    assert counts["completed"] == 4 * instances
    assert handlers.late_completions == []
    # 480 events (an insert and a lock of each task). A receive for each fetch's
    # 4 slots would be 120 or more; the backlog was worked off without them.
    assert receives["receive"] < instances, receives


def test_a_task_failed_with_a_retry_timeout_is_found_by_the_sweep(
    pg_engine: Engine, pg_client: Client, sequin_server: Any, bpmn_error: Any
) -> None:
    runs: List[Any] = []
    failed_at: List[float] = []
    finished = threading.Event()  # set when the second run completes

    def fails_once(task: Any, complete: Any, fail: Any) -> None:
        runs.append(task.retries)
        if len(runs) == 1:
            fail(message="try later", retry_timeout=1000).execute()
            failed_at.append(time.monotonic())
            return
        runs.append(time.monotonic() - failed_at[0])
        complete().execute()
        finished.set()

    metrics = CountingMetrics()
    worker = sequin_worker(pg_engine, sequin_server, "lock", metrics=metrics, sweep_interval=2)
    worker.register_handler("mayThrow", fails_once)
    with worker:
        instance = pg_client.start_process_instance("bpmn-error-test")
        assert finished.wait(60)

    first_retries, second_retries, waited = runs
    assert (first_retries, second_retries) == (None, 3)
    assert waited >= 0.9, "the task ran again before its retry timeout elapsed"
    assert pg_client.count_history_process_instances(process_instance_id=instance.id, finished=True) == 1
    # In lock mode only the sweep fetches: the second run came from it.
    assert metrics.snapshot().get("fetched", 0) >= 1


def test_worker_and_sequin_worker_side_by_side_never_complete_a_task_twice(
    pg_engine: Engine, pg_client: Client, sequin_server: Any, bpmn_error: Any
) -> None:
    ran: Dict[str, List[str]] = {"rest": [], "cdc": []}
    lock = threading.Lock()  # guards ran

    def recorder(source: str) -> Any:
        def handler(task: Any, complete: Any, fail: Any) -> None:
            with lock:
                ran[source].append(task.id)
            complete().execute()

        return handler

    rest = Worker(new_client(pg_engine), max_tasks=4, poll_interval=0.05, async_response_timeout=2)
    rest.register_handler("mayThrow", recorder("rest"))
    cdc = sequin_worker(pg_engine, sequin_server, "lock", max_tasks=4)
    cdc.register_handler("mayThrow", recorder("cdc"))
    with rest, cdc:
        ids = [pg_client.start_process_instance("bpmn-error-test").id for _ in range(40)]
        wait_finished(pg_client, ids, 120, "40 instances with both workers")

    everything = ran["rest"] + ran["cdc"]
    assert len(everything) == len(set(everything)) == 40

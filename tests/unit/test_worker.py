"""The public Worker end to end on a mocked engine: registration, outcomes, stop, metrics."""

from __future__ import annotations

import threading
from typing import Any, Iterator, List

import pytest
import responses
from responses.matchers import json_params_matcher

from camunda_ext import (
    AuthenticationError,
    AuthorizationError,
    BadRequestError,
    BpmnError,
    ConfigurationError,
    CountingMetrics,
    NotFoundError,
    Worker,
)
from tests.unit.worker_fixtures import (
    FETCH_URL,
    LOCKED_BY_OTHER,
    OPTIMISTIC_LOCKING,
    WAIT,
    WORKER_ID,
    FetchScript,
    engine_error,
    join_library_threads,
    paths,
    task_json,
    task_url,
    wait,
)


@pytest.fixture
def make_worker(rest_client, clock, jitter) -> Iterator[Any]:
    made: List[Worker] = []

    def make(**options: Any) -> Worker:
        options.setdefault("poll_interval", 60.0)  # an empty answer parks the poller until stop
        options.setdefault("async_response_timeout", 20.0)
        # One poller unless a test is about the extra ones: each fetch is then scripted.
        options.setdefault("fetch_concurrency", 1)
        made.append(Worker(rest_client, clock=clock, jitter=jitter, **options))
        return made[-1]

    yield make
    for worker in made:
        worker.stop(WAIT)


def noop(task, complete, fail) -> None:
    complete().execute()


def expect_complete(engine, task_id: str = "task-1", body: Any = None, **answer: Any) -> None:
    match = [json_params_matcher(body if body is not None else {"workerId": WORKER_ID})]
    engine.add(responses.POST, task_url(task_id, "complete"), match=match, **(answer or {"status": 204}))


# ---------------------------------------------------------------------- registration


def test_register_rejects_bad_arguments(make_worker) -> None:
    worker = make_worker()
    worker.register_handler("a", noop)
    with pytest.raises(ConfigurationError, match="already has a handler"):
        worker.register_handler("a", noop)
    with pytest.raises(ConfigurationError, match="not callable"):
        worker.register_handler("b", "noop")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="topic"):
        worker.register_handler("", noop)
    with pytest.raises(ConfigurationError, match="list of names"):
        worker.register_handler("b", noop, variables="amount")
    with pytest.raises(ConfigurationError, match="lock_duration"):
        worker.register_handler("b", noop, lock_duration=0)
    assert worker.topics == ["a"]


def test_start_without_a_handler_is_refused(make_worker, engine) -> None:
    with pytest.raises(ConfigurationError, match="at least one handler"):
        make_worker().start()
    assert join_library_threads(0.0) == []


def test_register_after_start_is_refused(make_worker, engine) -> None:
    script = FetchScript().install(engine)
    worker = make_worker()
    worker.register_handler("a", noop)
    worker.start()
    wait(script.fetched[1], "the first fetch")
    with pytest.raises(ConfigurationError, match="before start"):
        worker.register_handler("b", noop)
    with pytest.raises(RuntimeError):
        worker.start()
    worker.stop()


def test_the_handler_decorator_registers_and_returns_the_function(make_worker) -> None:
    worker = make_worker()

    @worker.handler("creditScoreChecker", lock_duration=60_000, variables=["score"])
    def check(task, complete, fail) -> None:
        pass

    assert worker.topics == ["creditScoreChecker"]
    assert check.__name__ == "check"
    subscription = worker._subscriptions["creditScoreChecker"]
    assert (subscription.handler, subscription.lock_duration, subscription.fetch.variables) == (
        check,
        60_000,
        ["score"],
    )


def test_all_topics_go_in_one_fetch_with_their_options(make_worker, engine) -> None:
    fetched = threading.Event()

    def answer(request):
        fetched.set()
        return (200, {}, "[]")

    engine.add_callback(
        responses.POST,
        FETCH_URL,
        callback=answer,
        match=[
            json_params_matcher(
                {
                    "workerId": WORKER_ID,
                    "maxTasks": 4,
                    "usePriority": True,
                    "sorting": [{"sortBy": "createTime", "sortOrder": "desc"}],
                    "asyncResponseTimeout": 20_000,
                    "topics": [
                        {
                            "topicName": "score",
                            "lockDuration": 60_000,
                            "variables": ["amount", "ssn"],
                            "localVariables": True,
                            "businessKey": "loan-7",
                            "processDefinitionKeyIn": ["loan", "lease"],
                            "tenantIdIn": ["eu"],
                            "processVariables": {"region": "north"},
                            "deserializeValues": True,
                            "includeExtensionProperties": True,
                        },
                        {
                            "topicName": "notify",
                            "lockDuration": 30_000,
                            "processDefinitionKey": "loan",
                            "withoutTenantId": True,
                            "variables": [],
                        },
                    ],
                }
            )
        ],
    )
    worker = make_worker(max_tasks=4, use_priority=True, sorting=[("createTime", "desc")])
    worker.register_handler(
        "score",
        noop,
        lock_duration=60_000,
        variables=["amount", "ssn"],
        local_variables=True,
        business_key="loan-7",
        process_definition_key_in=["loan", "lease"],
        tenant_id_in=["eu"],
        process_variables={"region": "north"},
        deserialize_values=True,
        include_extension_properties=True,
    )
    worker.register_handler(
        "notify", noop, process_definition_key="loan", without_tenant_id=True, variables=[]
    )
    worker.start()
    wait(fetched, "the fetch")
    worker.stop()
    # Nothing but fetchAndLock: no /version probe at start.
    assert set(paths(engine)) == {"/external-task/fetchAndLock"}


# ---------------------------------------------------------------------- running handlers


def test_a_task_is_run_and_completed_and_nothing_is_requested_after_stop(make_worker, engine) -> None:
    script = FetchScript(
        [[task_json("task-1", "score", variables={"amount": {"type": "Integer", "value": 5}})]]
    )
    script.install(engine)
    expect_complete(
        engine, body={"workerId": WORKER_ID, "variables": {"score": {"type": "Integer", "value": 750}}}
    )
    seen = []
    worker = make_worker(max_tasks=3)

    @worker.handler("score")
    def score(task, complete, fail):
        seen.append(task.variables["amount"])
        complete().variable("score", 750).execute()

    worker.start()
    wait(script.fetched[2], "the fetch after the task's")  # the slot came back, nothing more to do
    worker.stop()
    requested = len(engine.calls)
    assert join_library_threads() == []
    assert len(engine.calls) == requested
    assert seen == [5]
    assert script.max_tasks()[0] == 3
    assert paths(engine)[0] == "/external-task/fetchAndLock"


def test_slots_come_back_when_handlers_finish_even_when_they_raise(make_worker, engine) -> None:
    script = FetchScript([[task_json("boom", "t")], [task_json("task-1", "t")]]).install(engine)
    engine.add(responses.POST, task_url("boom", "failure"), status=204)
    expect_complete(engine)
    worker = make_worker(max_tasks=1)

    def handler(task, complete, fail):
        if task.id == "boom":
            raise RuntimeError("boom")
        complete().execute()

    worker.register_handler("t", handler)
    worker.start()
    wait(script.fetched[3], "a fetch after both handlers")
    worker.stop()
    assert script.max_tasks() == [1, 1, 1]


def test_no_fetch_while_the_only_slot_is_busy(make_worker, engine) -> None:
    script = FetchScript([[task_json("task-1", "t")], []]).install(engine)
    expect_complete(engine)
    started, release = threading.Event(), threading.Event()
    worker = make_worker(max_tasks=2)

    def handler(task, complete, fail):
        started.set()
        assert release.wait(WAIT)
        complete().execute()

    worker.register_handler("t", handler)
    worker.start()
    wait(started, "the handler to start")
    wait(script.fetched[2], "the fetch for the one free slot")
    assert script.max_tasks() == [2, 1]
    release.set()
    worker.stop()


def test_stop_drains_a_running_handler_while_its_lock_is_extended(make_worker, engine, clock) -> None:
    script = FetchScript([[task_json("task-1", "t")]]).install(engine)
    extended = threading.Event()

    def extend(request):
        extended.set()
        return (204, {}, "")

    engine.add_callback(
        responses.POST,
        task_url("task-1", "extendLock"),
        callback=extend,
        match=[json_params_matcher({"workerId": WORKER_ID, "newDuration": 400})],
    )
    expect_complete(engine)
    started, release = threading.Event(), threading.Event()
    worker = make_worker(max_tasks=1)

    def handler(task, complete, fail):
        started.set()
        assert release.wait(WAIT)
        complete().execute()

    worker.register_handler("t", handler, lock_duration=400)
    worker.start()
    wait(started, "the handler to start")
    stopper = threading.Thread(target=worker.stop)
    stopper.start()
    wait(worker._manager.stop_event, "the stop to begin")
    clock.advance(0.2)  # half the lock: the leaser must extend it during the drain
    wait(extended, "the lock to be extended while stopping")
    release.set()
    stopper.join(WAIT)
    assert worker.join(0)
    assert paths(engine)[1:] == ["/external-task/task-1/extendLock", "/external-task/task-1/complete"]
    assert len(script.bodies) == 1


def test_what_still_runs_at_the_deadline_is_unlocked(make_worker, engine) -> None:
    FetchScript([[task_json("task-1", "t")]]).install(engine)
    engine.add(responses.POST, task_url("task-1", "unlock"), status=204)
    expect_complete(engine, **LOCKED_BY_OTHER)  # the engine refuses: it was unlocked
    metrics = CountingMetrics()
    started, release, finished = threading.Event(), threading.Event(), threading.Event()
    worker = make_worker(max_tasks=1, metrics=metrics)

    def handler(task, complete, fail):
        started.set()
        assert release.wait(WAIT)
        complete().execute()
        finished.set()

    worker.register_handler("t", handler)
    worker.start()
    wait(started, "the handler to start")
    worker.stop(timeout=0.05)
    assert paths(engine)[-1] == "/external-task/task-1/unlock"
    assert worker.join(0)
    release.set()
    wait(finished, "the handler to end")
    assert metrics.snapshot() == {"fetched": 1, "unlocked": 1, "lost": 1}


def test_tasks_a_long_poll_brings_after_stop_are_unlocked_not_run(make_worker, engine) -> None:
    answer_now = threading.Event()
    script = FetchScript([[task_json("late", "t")]], hold={1: answer_now}).install(engine)
    unlocked = threading.Event()

    def unlock(request):
        unlocked.set()
        return (204, {}, "")

    engine.add_callback(responses.POST, task_url("late", "unlock"), callback=unlock)
    ran = []
    worker = make_worker()
    worker.register_handler("t", lambda task, complete, fail: ran.append(task.id))
    worker.start()
    wait(script.fetched[1], "the long poll")
    worker.stop()  # does not wait for the parked long poll
    answer_now.set()
    wait(unlocked, "the late task to be unlocked")
    assert join_library_threads() == []
    assert ran == [] and len(script.bodies) == 1


def test_stop_from_inside_a_handler_does_not_deadlock(make_worker, engine) -> None:
    FetchScript([[task_json("task-1", "t")]]).install(engine)
    expect_complete(engine)
    worker = make_worker()

    def handler(task, complete, fail):
        worker.stop()
        complete().execute()

    worker.register_handler("t", handler)
    worker.start()
    assert worker.join(WAIT)


def test_the_context_manager_starts_and_stops(make_worker, engine) -> None:
    script = FetchScript().install(engine)
    worker = make_worker()
    worker.register_handler("t", noop)
    with worker as running:
        assert running is worker
        wait(script.fetched[1], "the first fetch")
        assert not worker.join(0)
    assert worker.join(0)
    assert join_library_threads() == []


def test_run_off_the_main_thread_blocks_until_stop(make_worker, engine) -> None:
    script = FetchScript().install(engine)
    worker = make_worker()
    worker.register_handler("t", noop)
    returned = threading.Event()
    runner = threading.Thread(target=lambda: (worker.run(), returned.set()), name="app-runner")
    runner.start()
    wait(script.fetched[1], "the first fetch")
    assert not returned.is_set()
    worker.stop()
    wait(returned, "run() to return")
    runner.join(WAIT)


@pytest.mark.parametrize(
    ("status", "error"),
    [(401, AuthenticationError), (403, AuthorizationError), (404, NotFoundError), (400, BadRequestError)],
)
def test_a_fatal_fetch_answer_stops_the_worker_and_join_raises(make_worker, engine, status, error) -> None:
    engine.add(responses.POST, FETCH_URL, **engine_error(status, "RestException", "nope"))
    worker = make_worker()
    worker.register_handler("t", noop)
    worker.start()
    with pytest.raises(error):
        worker.join(WAIT)
    assert join_library_threads() == []
    assert len(engine.calls) == 1  # not fetched again


def test_run_on_the_main_thread_raises_the_fatal_error(rest_client, engine, clock, jitter) -> None:
    engine.add(responses.POST, FETCH_URL, status=401)
    worker = Worker(rest_client, clock=clock, jitter=jitter)
    worker.register_handler("t", noop)
    with pytest.raises(AuthenticationError):
        worker.run()


def test_counting_metrics_in_a_full_run(make_worker, engine) -> None:
    script = FetchScript([[task_json("ok", "t"), task_json("raises", "t"), task_json("rejects", "t")]])
    script.install(engine)
    complete_url = task_url("ok", "complete")
    engine.add(responses.POST, complete_url, **OPTIMISTIC_LOCKING)
    engine.add(responses.POST, complete_url, status=204)
    engine.add(responses.POST, task_url("raises", "failure"), status=204)
    engine.add(responses.POST, task_url("rejects", "bpmnError"), status=204)
    metrics = CountingMetrics()
    worker = make_worker(max_tasks=3, metrics=metrics)

    started = {name: threading.Event() for name in ("ok", "raises", "rejects")}

    def handler(task, complete, fail):
        started[task.id].set()
        if task.id == "raises":
            raise ValueError("bad")
        if task.id == "rejects":
            raise BpmnError("REJECTED")
        complete().execute()

    worker.register_handler("t", handler)
    worker.start()
    for name, event in started.items():
        wait(event, "handler %s to start" % name)  # a stop now would cancel a queued one
    worker.stop()  # waits for the three to end
    assert metrics.snapshot() == {
        "fetched": 3,
        "completed": 1,
        "failed": 1,
        "bpmn_error": 1,
        "report_retried": 1,
    }
    assert len(metrics.handler_durations) == 3
    assert 1 <= metrics.peak_in_flight <= 3


def test_a_stopped_worker_cannot_be_started_again(make_worker, engine) -> None:
    worker = make_worker()
    worker.register_handler("t", noop)
    worker.stop()
    with pytest.raises(RuntimeError):
        worker.start()
    assert join_library_threads(0.0) == []


def test_an_extra_poller_sends_nothing_while_fetches_come_back_short(make_worker, engine) -> None:
    hold = {2: threading.Event()}
    script = FetchScript([[task_json("task-1", "t")]], hold=hold).install(engine)
    expect_complete(engine)
    worker = make_worker(max_tasks=2, fetch_concurrency=3, poll_interval=0.0)
    worker.register_handler("t", noop)

    worker.start()
    wait(script.fetched[2], "the long poll after a short answer")
    hold[2].set()
    worker.stop(WAIT)

    # One task for two slots: no backlog, so every fetch came from the long-polling poller.
    assert all("asyncResponseTimeout" in body for body in script.bodies)


def test_extra_pollers_fetch_at_once_while_the_engine_has_a_backlog(make_worker, engine) -> None:
    hold = {2: threading.Event(), 3: threading.Event()}
    script = FetchScript([[task_json("a", "t"), task_json("b", "t")]], hold=hold).install(engine)
    expect_complete(engine, "a")
    expect_complete(engine, "b")
    release_b = threading.Event()  # lets task b finish once a's slot is being fetched for
    worker = make_worker(max_tasks=2, fetch_concurrency=2, poll_interval=0.0)

    def handler(task, complete, fail):
        if task.id == "b":
            assert release_b.wait(WAIT)
        complete().execute()

    worker.register_handler("t", handler)
    worker.start()
    # The first answer filled every slot: a backlog. Task a's slot goes to one fetch...
    wait(script.fetched[2], "a fetch for task a's slot")
    release_b.set()
    # ...and while it is open, task b's slot goes to the other poller.
    wait(script.fetched[3], "a second fetch open at the same time")
    assert sorted("asyncResponseTimeout" in body for body in script.bodies[1:3]) == [False, True]
    hold[2].set()
    hold[3].set()
    worker.stop(WAIT)

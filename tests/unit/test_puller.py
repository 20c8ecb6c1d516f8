"""The Sequin puller, one round at a time on the test thread, with the real dispatcher behind it.

Both hosts are mocked: the engine at :data:`ENGINE` and Sequin at :data:`SEQUIN`.
Lock-mode jobs run on handler threads; a test waits for them through the slot
budget (a job gives its slot back after its ack) or through ``Event``s.
"""

from __future__ import annotations

import collections
import json
import threading
from typing import Any, Dict, Iterator, List, Optional
from unittest import mock

import pytest
import requests
import responses
from responses.matchers import json_params_matcher, query_param_matcher

from camunda_ext import AuthenticationError, AuthorizationError, Client
from camunda_ext._protocol import puller as puller_module
from camunda_ext._protocol.backoff import Backoff
from camunda_ext._protocol.dispatch import Dispatcher
from camunda_ext._protocol.flow_control import FlowController
from camunda_ext._protocol.leaser import Leaser
from camunda_ext._protocol.poller import Backlog, Poller
from camunda_ext._protocol.puller import LOCK, WAKE, Puller
from camunda_ext._protocol.reporter import Reporter
from camunda_ext._protocol.task_loader import TaskLoader
from camunda_ext.metrics import NullMetrics
from camunda_ext.sequin import SequinClient, SequinError
from camunda_ext.settings import Subscription, WorkerSettings
from tests.unit import worker_fixtures
from tests.unit.worker_fixtures import (
    OPTIMISTIC_LOCKING,
    WAIT,
    WORKER_ID,
    engine_error,
    make_task,
    subscription,
    task_json,
    wait,
)

ENGINE = "http://engine.test/engine-rest"
SEQUIN = "http://sequin.test"
CONSUMER = "camunda-ext-tasks"
PREFIX = SEQUIN + "/api/http_pull_consumers/" + CONSUMER
TOKEN = "sequin-unit-token"
COMMIT = "2026-12-04T10:00:00.500000Z"

#: Jitter 0.5 and a base of 1 s: the first back-off is 0.75 s, then 1.5, 3, 6 (cap 8).
SETTINGS = WorkerSettings(max_tasks=3, poll_interval=0.25, backoff_base=1.0, backoff_cap=8.0)

HELD_BY_OTHER = engine_error(
    400,
    "RestException",
    "External Task task-1 cannot be locked by worker 'test-worker'. It is locked by worker 'other'.",
)
GONE = engine_error(404, "RestException", "External task with id task-1 does not exist")


def ack_id(number: int) -> str:
    return "00000000-0000-4000-8000-%012d" % number


def event(
    number: int,
    action: str = "insert",
    *,
    task_id: str = "task-1",
    topic: str = "score",
    table: str = "act_ru_ext_task",
    changes: Optional[Dict[str, Any]] = None,
    **record: Any,
) -> Dict[str, Any]:
    """One item of a receive answer: a change of ``act_ru_ext_task`` (or ``table``)."""
    row = {
        "id_": task_id,
        "rev_": 1,
        "topic_name_": topic,
        "worker_id_": None,
        "lock_exp_time_": None,
        "retries_": None,
        "suspension_state_": 1,
        "proc_inst_id_": "pi-1",
    }
    row.update(record)
    metadata = {
        "table_schema": "public",
        "table_name": table,
        "commit_timestamp": COMMIT,
        "idempotency_key": "key-%d" % number,
    }
    data = {"action": action, "record": row, "changes": changes, "metadata": metadata}
    return {"ack_id": ack_id(number), "data": data}


def locking_update(number: int, task_id: str = "task-1") -> Dict[str, Any]:
    """The update a fetchAndLock by another worker makes: not work."""
    return event(
        number,
        "update",
        task_id=task_id,
        changes={"rev_": 1, "worker_id_": None, "lock_exp_time_": None},
        rev_=2,
        worker_id_="other",
        lock_exp_time_="2026-12-04T10:05:00.000000",
    )


def url(path: str) -> str:
    return ENGINE + path


def paths(api: responses.RequestsMock) -> List[str]:
    """Every request so far as ``METHOD path`` (Sequin's without its consumer prefix)."""
    found = []
    for call in list(api.calls):
        where = call.request.url.split("?")[0].replace(ENGINE, "").replace(PREFIX, "sequin:")
        found.append("%s %s" % (call.request.method, where))
    return found


def bodies(api: responses.RequestsMock, suffix: str) -> List[Any]:
    return [json.loads(c.request.body) for c in list(api.calls) if c.request.url.endswith(suffix)]


# ---------------------------------------------------------------------- Sequin and engine answers


def expect_receive(
    api: responses.RequestsMock, items: Any = (), batch: Optional[int] = None, **answer: Any
) -> None:
    """One receive; ``batch`` checks the exact body."""
    match = [] if batch is None else [json_params_matcher({"max_batch_size": batch, "wait_for": 20_000})]
    if not answer:
        answer = {"json": {"data": list(items)}}
    api.add(responses.POST, PREFIX + "/receive", match=match, **answer)


def expect_ack(api: responses.RequestsMock, action: str, *numbers: int) -> None:
    api.add(
        responses.POST,
        PREFIX + "/" + action,
        json={"success": True},
        match=[json_params_matcher({"ack_ids": [ack_id(n) for n in numbers]})],
    )


def expect_score_wake_fetch(api: responses.RequestsMock, *task_ids: str) -> None:
    """A wake fetch for the 3 free slots of the ``score`` topic alone (no long poll), answered with ``task_ids``."""
    api.add(
        responses.POST,
        url("/external-task/fetchAndLock"),
        match=[
            json_params_matcher(
                {
                    "workerId": WORKER_ID,
                    "maxTasks": 3,
                    "topics": [{"topicName": "score", "lockDuration": 60_000}],
                }
            )
        ],
        json=[task_json(task_id, "score") for task_id in task_ids],
    )


def expect_lock(
    api: responses.RequestsMock,
    task_id: str = "task-1",
    instance: int = 1,
    *,
    read: bool = True,
    **answer: Any,
) -> None:
    """The read of the task (it is free), then the lock by id."""
    if read:
        expect_read(api, task_id, instance)
    api.add(
        responses.POST,
        url("/external-task/%s/lock" % task_id),
        match=[json_params_matcher({"workerId": WORKER_ID, "lockDuration": 60_000})],
        **(answer or {"status": 204}),
    )


def expect_read(api: responses.RequestsMock, task_id: str = "task-1", instance: int = 1) -> None:
    """The read of the task before its lock: it is free."""
    api.add(
        responses.GET,
        url("/external-task/" + task_id),
        json=task_json(
            task_id,
            "score",
            retries=2,
            businessKey="loan-7",
            workerId=None,
            executionId="ex-%d" % instance,
            activityId="score",
            activityInstanceId="score:%d" % instance,
        ),
    )


#: The activity-instance tree of pi-1: a multi-instance body with two inner instances.
TREE = {
    "id": "pi-1",
    "activityId": "loan",
    "activityType": "processDefinition",
    "childTransitionInstances": [],
    "executionIds": ["pi-1"],
    "childActivityInstances": [
        {
            "id": "mi-body:1",
            "activityId": "score#multiInstanceBody",
            "parentActivityInstanceId": "pi-1",
            "childTransitionInstances": [],
            "executionIds": ["ex-0"],
            "childActivityInstances": [
                {
                    "id": "score:%d" % n,
                    "activityId": "score",
                    "parentActivityInstanceId": "mi-body:1",
                    "childActivityInstances": [],
                    "childTransitionInstances": [],
                    "executionIds": ["ex-%d" % n],
                }
                for n in (1, 2)
            ],
        }
    ],
}


def variable_row(name: str, kind: str, value: Any, scope: str) -> Dict[str, Any]:
    return {
        "id": "var-%s-%s" % (name, scope),
        "name": name,
        "type": kind,
        "value": value,
        "valueInfo": {},
        "processInstanceId": "pi-1",
        "activityInstanceId": scope,
    }


def expect_load(api: responses.RequestsMock, task_id: str = "task-1", instance: int = 1) -> None:
    """The reads after a lock: the tree, the variables of the task's ancestry."""
    api.add(responses.GET, url("/process-instance/pi-1/activity-instances"), json=TREE)
    scope = "score:%d" % instance
    api.add(
        responses.POST,
        url("/variable-instance"),
        match=[
            json_params_matcher({"activityInstanceIdIn": [scope, "mi-body:1", "pi-1"]}),
            query_param_matcher({"deserializeValues": "false"}),
        ],
        json=[
            # The inner scope's element variable comes before the process's: the order
            # of the answer must not decide which one wins.
            variable_row("score", "Integer", 700 + instance, scope),
            variable_row("score", "Integer", 1, "pi-1"),
            variable_row("applicant", "String", "Ann", "pi-1"),
            variable_row("nrOfInstances", "Integer", 2, "mi-body:1"),
        ],
    )


def expect_complete(api: responses.RequestsMock, task_id: str = "task-1") -> None:
    api.add(
        responses.POST,
        url("/external-task/%s/complete" % task_id),
        match=[
            json_params_matcher(
                {"workerId": WORKER_ID, "variables": {"approved": {"type": "Boolean", "value": True}}}
            )
        ],
        status=204,
    )


# ---------------------------------------------------------------------- the puller and its collaborators


class SpyFlow(FlowController):
    """A FlowController that signals reservations and the free count each release reaches."""

    def __init__(self, capacity: int) -> None:
        super().__init__(capacity)
        self.asked = threading.Event()  # set when reserve() is entered
        self.reached: Dict[int, threading.Event] = collections.defaultdict(threading.Event)

    def reserve(self, most: Optional[int] = None, timeout: Optional[float] = None, **gathering: Any) -> int:
        self.asked.set()
        return super().reserve(most, timeout, **gathering)

    def release(self, count: int = 1) -> None:
        super().release(count)
        if count > 0:
            self.reached[self.free].set()

    def wait_idle(self) -> None:
        """Wait until a release gave every slot back (every job acked and ended)."""
        wait(self.reached[self.capacity], "every slot to come back")


class Handlers:
    """Handlers that record the tasks they get; ``block`` makes them wait for ``release``."""

    def __init__(self) -> None:
        self.tasks: List[Any] = []
        self.started: Dict[str, threading.Event] = collections.defaultdict(threading.Event)
        self.release: Dict[str, threading.Event] = collections.defaultdict(threading.Event)
        self.block = False

    def __call__(self, task: Any, complete: Any, fail: Any) -> None:
        self.tasks.append(task)
        self.started[task.id].set()
        if self.block:
            assert self.release[task.id].wait(WAIT), "the test never released %s" % task.id
        complete().variable("approved", True).execute()

    @property
    def ids(self) -> List[str]:
        return [task.id for task in self.tasks]


class Parts:
    """A puller wired as ``SequinWorker._build_sources`` wires it, with real collaborators."""

    def __init__(
        self,
        client: Client,
        sequin: SequinClient,
        clock: Any,
        jitter: Any,
        *,
        mode: str = LOCK,
        settings: WorkerSettings = SETTINGS,
        max_batch_size: int = 10,
        threads: Optional[int] = None,
    ) -> None:
        self.settings = settings
        self.metrics = NullMetrics()
        self.stop_event = threading.Event()
        self.on_fatal = mock.Mock(name="on_fatal")
        self.sleep = mock.Mock(name="sleep")
        self.handlers = Handlers()
        self.subscriptions: Dict[str, Subscription] = {
            "score": subscription("score", self.handlers, lock_duration=60_000),
            "notify": subscription("notify", self.handlers, lock_duration=30_000),
        }
        self.flow = SpyFlow(settings.max_tasks)
        self.backlog = Backlog()  # set while fetches come back full
        # The leaser thread is not started: locks are tracked, not extended.
        self.leaser = Leaser(client, self.metrics, clock, jitter)
        self.reporter = Reporter(
            client, self.leaser, self.metrics, clock, jitter, attempts=3, backoff=Backoff(), sleep=self.sleep
        )
        self.dispatcher = Dispatcher(
            threads or settings.max_tasks,
            self.reporter,
            self.leaser,
            settings.retry_policy,
            self.metrics,
            clock,
        )
        self.wake_poller = Poller(
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
            async_response_timeout=None,
            name="camunda-ext-wake",
            backlog=self.backlog,
        )
        self.puller = Puller(
            sequin,
            self.subscriptions,
            self.flow,
            self.dispatcher,
            TaskLoader(client, self.leaser, clock),
            self.wake_poller,
            settings,
            jitter,
            self.stop_event,
            self.on_fatal,
            mode=mode,
            wait_for=20.0,
            max_batch_size=max_batch_size,
            sleep=self.sleep,
            backlog=self.backlog,
        )

    def stop(self) -> None:
        """The stop sequence's part that concerns the puller."""
        self.stop_event.set()
        self.flow.close()
        self.dispatcher.shutdown(WAIT)
        assert self.puller.join(WAIT)


@pytest.fixture
def api() -> Iterator[responses.RequestsMock]:
    """Engine and Sequin, mocked together; every registered answer must be asked for."""
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock_:
        yield mock_


@pytest.fixture
def engine_client() -> Iterator[Client]:
    with Client(ENGINE, WORKER_ID, auth=("demo", "demo-password"), trust_env=False) as made:
        yield made


@pytest.fixture
def sequin(engine_client) -> Iterator[SequinClient]:
    made = SequinClient(SEQUIN, CONSUMER, token=TOKEN, session=engine_client.session, trust_env=False)
    yield made
    made.close()


@pytest.fixture
def make_parts(engine_client, sequin, clock, jitter) -> Iterator[Any]:
    made: List[Parts] = []

    def make(**kwargs: Any) -> Parts:
        made.append(Parts(engine_client, sequin, clock, jitter, **kwargs))
        return made[-1]

    yield make
    for parts in made:
        parts.stop()


@pytest.fixture
def parts(make_parts) -> Parts:
    return make_parts()


# ---------------------------------------------------------------------- lock mode


def test_lock_mode_locks_reads_runs_completes_and_only_then_acks(parts, api) -> None:
    expect_receive(api, [event(1)], batch=3)
    expect_lock(api)
    expect_load(api)
    expect_complete(api)
    expect_ack(api, "ack", 1)

    assert parts.puller.pull_once() == 0.0  # events came: receive again at once
    parts.flow.wait_idle()

    [task] = parts.handlers.tasks
    assert (task.id, task.topic_name, task.retries, task.business_key) == ("task-1", "score", 2, "loan-7")
    # The nearest scope wins: the element variable of the task's own instance.
    assert task.variables == {"score": 701, "applicant": "Ann", "nrOfInstances": 2}
    assert paths(api) == [
        "POST sequin:/receive",
        "GET /external-task/task-1",
        "POST /external-task/task-1/lock",
        "GET /process-instance/pi-1/activity-instances",
        "POST /variable-instance",
        "POST /external-task/task-1/complete",
        "POST sequin:/ack",
    ]
    assert len(parts.leaser) == 0


# A lock-mode receive asks for no more events than free slots; a wake-mode one for max_batch_size.
@pytest.mark.parametrize("mode, batch", [(LOCK, 3), (WAKE, 10)])
def test_events_that_are_not_work_are_acked_at_once_without_the_engine(make_parts, api, mode, batch) -> None:
    parts = make_parts(mode=mode)
    expect_receive(
        api,
        [
            event(1, "delete"),
            event(2, topic="someone-elses"),
            event(3, table="act_ru_execution"),
            locking_update(4),
        ],
        batch=batch,
    )
    expect_ack(api, "ack", 1, 2, 3, 4)

    assert parts.puller.pull_once() == 0.0

    assert paths(api) == ["POST sequin:/receive", "POST sequin:/ack"]
    assert parts.flow.free == 3
    assert parts.handlers.tasks == []


def test_a_task_that_is_gone_is_acked_and_not_run(parts, api) -> None:
    expect_receive(api, [event(1)])
    expect_lock(api, **GONE)
    expect_ack(api, "ack", 1)

    parts.puller.pull_once()
    parts.flow.wait_idle()

    assert parts.handlers.tasks == []
    assert paths(api) == [
        "POST sequin:/receive",
        "GET /external-task/task-1",
        "POST /external-task/task-1/lock",
        "POST sequin:/ack",
    ]
    assert len(parts.leaser) == 0


@pytest.mark.parametrize("answer", [HELD_BY_OTHER, OPTIMISTIC_LOCKING], ids=["locked-by-other", "optimistic"])
def test_a_task_held_elsewhere_is_not_run_and_its_event_left_to_come_back(parts, api, answer) -> None:
    expect_receive(api, [event(1)])
    expect_lock(api, **answer)

    parts.puller.pull_once()
    parts.flow.wait_idle()

    assert parts.handlers.tasks == []
    # Neither ack nor nack: the event comes back after the visibility timeout.
    assert paths(api) == [
        "POST sequin:/receive",
        "GET /external-task/task-1",
        "POST /external-task/task-1/lock",
    ]
    parts.sleep.assert_not_called()
    assert len(parts.leaser) == 0


@pytest.mark.parametrize(
    "answer",
    [engine_error(503, None), {"body": requests.ConnectionError("refused")}],
    ids=["503", "connection-error"],
)
def test_a_transient_lock_fault_nacks_the_event_after_a_pause(parts, api, answer) -> None:
    expect_receive(api, [event(1)])
    expect_lock(api, **answer)
    expect_ack(api, "nack", 1)
    requests_before_pause: List[int] = []
    parts.sleep.side_effect = lambda seconds: requests_before_pause.append(len(api.calls))

    parts.puller.pull_once()
    parts.flow.wait_idle()

    parts.sleep.assert_called_once_with(0.75)
    assert requests_before_pause == [3]  # receive, read and lock: the nack came after the pause
    assert parts.handlers.tasks == []
    assert paths(api)[-1] == "POST sequin:/nack"


@pytest.mark.parametrize(("status", "error"), [(401, AuthenticationError), (403, AuthorizationError)])
def test_a_lock_refused_for_want_of_rights_stops_the_worker(parts, api, status, error) -> None:
    expect_receive(api, [event(1)])
    expect_lock(api, **engine_error(status, "AuthorizationException" if status == 403 else None, "no"))
    expect_ack(api, "nack", 1)

    parts.puller.pull_once()
    parts.flow.wait_idle()

    [[raised]] = [c.args for c in parts.on_fatal.call_args_list]
    assert isinstance(raised, error)
    assert parts.handlers.tasks == []
    # Nacked, so that a worker configured right takes the event at once.
    assert paths(api) == [
        "POST sequin:/receive",
        "GET /external-task/task-1",
        "POST /external-task/task-1/lock",
        "POST sequin:/nack",
    ]
    parts.puller.start()
    assert parts.puller.join(WAIT)  # the loop ends without receiving again
    assert paths(api).count("POST sequin:/receive") == 1


def test_consecutive_lock_faults_pause_longer_until_the_engine_answers_again(parts, api) -> None:
    # An engine that is down must not see the events come back as fast as Sequin sends them.
    settled = collections.defaultdict(threading.Event)  # by event number: acked or nacked

    def settle(action: str, number: int) -> None:
        def answer(request: Any) -> Any:
            assert json.loads(request.body) == {"ack_ids": [ack_id(number)]}
            settled[number].set()
            return (200, {}, '{"success": true}')

        api.add_callback(responses.POST, PREFIX + "/" + action, callback=answer)

    steps = [(1, False), (2, False), (3, True), (4, False)]  # (event, does the engine answer?)
    for number, answers in steps:
        expect_receive(api, [event(number, task_id="task-%d" % number)])
        if answers:
            expect_lock(api, "task-%d" % number)
            expect_load(api, "task-%d" % number)
            expect_complete(api, "task-%d" % number)
        else:
            expect_lock(api, "task-%d" % number, number, **engine_error(503, None))
        settle("ack" if answers else "nack", number)

    for number, _ in steps:
        parts.puller.pull_once()
        wait(settled[number], "event %d to be settled" % number)

    # Growing while the faults follow one another; from the start after the engine answered.
    assert [c.args[0] for c in parts.sleep.call_args_list] == [0.75, 1.5, 0.75]


def test_a_read_failure_after_the_lock_gives_the_lock_back_and_nacks(parts, api) -> None:
    expect_receive(api, [event(1)])
    expect_lock(api)
    api.add(responses.GET, url("/process-instance/pi-1/activity-instances"), **engine_error(503, None))
    api.add(responses.POST, url("/external-task/task-1/unlock"), status=204)
    expect_ack(api, "nack", 1)

    parts.puller.pull_once()
    parts.flow.wait_idle()

    assert parts.handlers.tasks == []
    assert paths(api) == [
        "POST sequin:/receive",
        "GET /external-task/task-1",
        "POST /external-task/task-1/lock",
        "GET /process-instance/pi-1/activity-instances",
        "POST /external-task/task-1/unlock",
        "POST sequin:/nack",
    ]
    parts.sleep.assert_called_once_with(0.75)
    assert len(parts.leaser) == 0


def test_an_event_delivered_again_while_its_task_runs_here_is_not_run_twice(parts, api) -> None:
    parts.handlers.block = True
    expect_receive(api, [event(1)], batch=3)
    expect_lock(api)
    expect_load(api)
    expect_complete(api)
    expect_receive(api, [event(1)], batch=2)  # the visibility timeout ran out: the same event again
    expect_ack(api, "ack", 1)  # by the run when it ends, not for the redelivery

    parts.puller.pull_once()
    wait(parts.handlers.started["task-1"], "the handler to start")
    parts.puller.pull_once()
    assert parts.flow.free == 2  # the redelivery took no slot
    assert paths(api).count("POST sequin:/ack") == 0  # its job settles it
    parts.handlers.release["task-1"].set()
    parts.flow.wait_idle()

    assert parts.handlers.ids == ["task-1"]
    assert paths(api).count("POST /external-task/task-1/lock") == 1
    assert paths(api).count("POST sequin:/ack") == 1
    assert paths(api)[-1] == "POST sequin:/ack"


def test_a_job_lets_go_of_its_task_before_it_acks_the_event(parts, api) -> None:
    # A failure with retries left frees the task at once: a sweep fetch during a
    # slow ack must be able to run it, not find it still claimed.
    claimed_during_ack: List[bool] = []

    def ack(request: Any) -> Any:
        claimed_during_ack.append(parts.dispatcher.claimed("task-1"))
        return (200, {}, '{"success": true}')

    expect_receive(api, [event(1)], batch=3)
    expect_lock(api)
    expect_load(api)
    expect_complete(api)
    api.add_callback(responses.POST, PREFIX + "/ack", callback=ack)

    parts.puller.pull_once()
    parts.flow.wait_idle()

    assert parts.handlers.ids == ["task-1"]
    assert claimed_during_ack == [False]


def test_a_redelivered_event_is_left_to_its_job_which_nacks_it_after_a_fault(parts, api) -> None:
    # The job's engine call hangs past Sequin's visibility timeout; acking the
    # redelivery would lose the event that the job then wants to release.
    in_lock, release_lock = threading.Event(), threading.Event()

    def slow_fault(request: Any) -> Any:
        in_lock.set()
        assert release_lock.wait(WAIT)
        return (503, {}, "")

    expect_receive(api, [event(1)], batch=3)
    api.add(responses.GET, ENGINE + "/external-task/task-1", json=task_json("task-1", "score"))
    api.add_callback(responses.POST, ENGINE + "/external-task/task-1/lock", callback=slow_fault)
    expect_receive(api, [event(1)], batch=2)  # the same event again, while the job waits
    expect_ack(api, "nack", 1)

    parts.puller.pull_once()
    wait(in_lock, "the job's lock request")
    parts.puller.pull_once()
    release_lock.set()
    parts.flow.wait_idle()

    assert "POST sequin:/ack" not in paths(api)
    assert paths(api)[-1] == "POST sequin:/nack"


def test_an_event_of_a_task_the_sweep_runs_here_is_neither_locked_nor_run(parts, api) -> None:
    # The engine accepts a lock by the worker that already holds it, so only the
    # claim keeps the event from running the task a second time.
    parts.handlers.block = True
    swept_done = threading.Event()
    expect_complete(api)
    expect_receive(api, [event(1)], batch=3)
    expect_ack(api, "ack", 1)  # the run under way serves the event
    parts.dispatcher.dispatch(
        make_task("task-1", "score"), parts.subscriptions["score"], swept_done.set, 1000.0
    )
    wait(parts.handlers.started["task-1"], "the swept task's handler to start")

    parts.puller.pull_once()
    parts.handlers.release["task-1"].set()
    wait(swept_done, "the swept task to end")

    assert parts.handlers.ids == ["task-1"]
    assert paths(api) == ["POST sequin:/receive", "POST sequin:/ack", "POST /external-task/task-1/complete"]
    assert parts.flow.free == 3


def lost_to_the_sweep(parts: Any, answer: Any, fetched: List[bool], copy_done: threading.Event) -> Any:
    """A callback: the sweep's fetch locks the task (its answer reaches the dispatcher now), then ``answer``."""

    def respond(request: Any) -> Any:
        swept = make_task("task-1", "score")
        fetched.append(parts.dispatcher.dispatch(swept, parts.subscriptions["score"], copy_done.set, 1000.0))
        return answer

    return respond


@pytest.mark.parametrize("lost_at", ["lock", "read"])
def test_a_task_the_sweep_locks_while_its_event_is_handled_runs_as_the_swept_copy(
    parts, api, lost_at
) -> None:
    # Its lock by id loses to the sweep's fetch (optimistic locking), or the read
    # already finds the task locked (by this worker, through the sweep): either way
    # the event does not run it, and nobody else will until the lock expires.
    fetched: List[bool] = []
    copy_done = threading.Event()
    expect_receive(api, [event(1)])
    if lost_at == "lock":
        expect_read(api)
        failure = (500, {"Content-Type": "application/json"}, json.dumps(OPTIMISTIC_LOCKING["json"]))
        api.add_callback(
            responses.POST,
            url("/external-task/task-1/lock"),
            lost_to_the_sweep(parts, failure, fetched, copy_done),
        )
    else:
        locked = task_json(
            "task-1", "score", workerId=WORKER_ID, lockExpirationTime="2999-01-01T00:00:00.000+0000"
        )
        read = (200, {"Content-Type": "application/json"}, json.dumps(locked))
        api.add_callback(
            responses.GET, url("/external-task/task-1"), lost_to_the_sweep(parts, read, fetched, copy_done)
        )
        expect_ack(api, "ack", 1)  # the task is not for the event to run: served
    expect_complete(api)

    parts.puller.pull_once()
    wait(copy_done, "the swept copy's run")
    parts.flow.wait_idle()

    assert fetched == [True]  # the copy was kept, not dropped, while the event held the task
    assert parts.handlers.ids == ["task-1"]
    assert paths(api).count("POST /external-task/task-1/complete") == 1
    assert len(parts.leaser) == 0


def test_lock_mode_asks_for_the_free_slots_and_not_at_all_while_every_slot_is_busy(make_parts, api) -> None:
    parts = make_parts(settings=WorkerSettings(max_tasks=2, poll_interval=0.25))
    parts.handlers.block = True
    expect_receive(api, [event(1, task_id="a"), event(2, task_id="b")], batch=2)
    for number, task_id in enumerate(("a", "b"), start=1):
        expect_lock(api, task_id, number)
        expect_load(api, task_id, number)
        expect_complete(api, task_id)
        expect_ack(api, "ack", number)
    expect_receive(api, [], batch=1)

    parts.puller.pull_once()
    wait(parts.handlers.started["a"], "handler a to start")
    wait(parts.handlers.started["b"], "handler b to start")
    assert parts.flow.free == 0

    parts.flow.asked.clear()
    round_result: List[float] = []
    round_done = threading.Event()

    def second_round() -> None:
        round_result.append(parts.puller.pull_once())
        round_done.set()

    helper = threading.Thread(target=second_round)
    helper.start()
    wait(parts.flow.asked, "the puller to ask for a slot")
    # No slot is free, so reserve() has not returned and nothing was received.
    assert paths(api).count("POST sequin:/receive") == 1
    assert not round_done.is_set()

    parts.handlers.release["a"].set()  # one job ends: its slot comes back
    wait(round_done, "the second round")
    helper.join(WAIT)
    assert round_result == [0.25]  # an empty answer: pause, don't spin
    assert [body["max_batch_size"] for body in bodies(api, "/receive")] == [2, 1]

    parts.handlers.release["b"].set()
    parts.flow.wait_idle()
    assert parts.flow.free == 2
    assert sorted(parts.handlers.ids) == ["a", "b"]


def test_lock_mode_asks_for_no_more_than_max_batch_size(make_parts, api) -> None:
    parts = make_parts(max_batch_size=2)
    expect_receive(api, [], batch=2)

    assert parts.puller.pull_once() == 0.25
    assert parts.flow.free == 3


# ---------------------------------------------------------------------- wake mode


def test_wake_mode_fetches_the_events_topics_runs_the_tasks_and_then_acks(make_parts, api) -> None:
    parts = make_parts(mode=WAKE)
    unlocked = event(
        2,
        "update",
        task_id="task-2",
        changes={"worker_id_": "crashed", "lock_exp_time_": "2026-12-04T09:59:00.000000"},
    )
    # Events hold no slot: the receive asks for max_batch_size, the fetch for the free slots.
    expect_receive(api, [event(1), unlocked, event(3, "delete", task_id="task-0")], batch=10)
    expect_score_wake_fetch(api, "task-1", "task-2")
    expect_complete(api, "task-1")
    expect_complete(api, "task-2")
    acked: List[List[str]] = []

    def ack(request: Any) -> Any:
        acked.append(json.loads(request.body)["ack_ids"])
        return (200, {}, json.dumps({"success": True}))

    api.add_callback(responses.POST, PREFIX + "/ack", callback=ack)

    assert parts.puller.pull_once() == 0.0
    parts.flow.wait_idle()

    assert sorted(parts.handlers.ids) == ["task-1", "task-2"]
    assert [sorted(ids) for ids in acked] == [[ack_id(1), ack_id(2), ack_id(3)]]
    calls = paths(api)
    assert calls.index("POST /external-task/fetchAndLock") < calls.index("POST sequin:/ack")
    assert not [call for call in calls if call.endswith("/lock")]


def test_under_a_backlog_wake_mode_leaves_the_events_in_sequin(make_parts, api, monkeypatch) -> None:
    monkeypatch.setattr(puller_module, "GATE_TICK", 0.01)  # then it looks at the stop event
    parts = make_parts(mode=WAKE)
    parts.backlog.set()  # a fetch came back full: the extra pollers fetch every topic

    assert parts.puller.pull_once() == 0.0

    assert paths(api) == []
    assert parts.flow.free == 3


def test_a_wake_puller_waiting_out_a_backlog_receives_as_soon_as_it_ends(
    make_parts, api, monkeypatch
) -> None:
    # Only the end of the backlog can end the wait within the test's time.
    monkeypatch.setattr(puller_module, "GATE_TICK", 10 * WAIT)
    parts = make_parts(mode=WAKE)
    parts.backlog.set()
    waiting = threading.Event()
    wait_cleared = parts.backlog.wait_cleared

    def spied(timeout: float) -> bool:
        waiting.set()
        return wait_cleared(timeout)

    monkeypatch.setattr(parts.backlog, "wait_cleared", spied)
    rounds: List[float] = []
    helper = threading.Thread(target=lambda: rounds.append(parts.puller.pull_once()))
    helper.start()
    wait(waiting, "the puller to wait out the backlog")
    parts.backlog.clear()  # an extra poller's fetch came back short
    helper.join(WAIT)
    assert rounds == [0.0]
    expect_receive(api, [], batch=10)

    assert parts.puller.pull_once() == 0.25  # the next round receives (nothing came)


def test_once_the_backlog_is_gone_one_fetch_serves_a_large_batch_of_events(make_parts, api) -> None:
    parts = make_parts(mode=WAKE, max_batch_size=1000)
    parts.backlog.clear()  # the extra pollers worked off a backlog: a fetch came back short
    # The events that waited: mostly of tasks the extra pollers ran meanwhile.
    waited = [event(n, task_id="done-%d" % n) for n in range(1, 101)]
    expect_receive(api, waited, batch=1000)
    expect_score_wake_fetch(api, "task-new")
    expect_complete(api, "task-new")
    expect_ack(api, "ack", *range(1, 101))

    assert parts.puller.pull_once() == 0.0
    parts.flow.wait_idle()

    assert parts.handlers.ids == ["task-new"]
    assert [call for call in paths(api) if call.startswith("POST sequin:")] == [
        "POST sequin:/receive",
        "POST sequin:/ack",
    ]


def test_wake_mode_fetches_once_for_all_topics_of_the_batch(make_parts, api) -> None:
    parts = make_parts(mode=WAKE)
    expect_receive(api, [event(1, task_id="a"), event(2, task_id="b", topic="notify")])
    fetched: List[Any] = []

    def fetch(request: Any) -> Any:
        fetched.append(json.loads(request.body))
        return (200, {}, "[]")

    api.add_callback(responses.POST, url("/external-task/fetchAndLock"), callback=fetch)
    expect_ack(api, "ack", 1, 2)

    parts.puller.pull_once()

    [body] = fetched
    assert "asyncResponseTimeout" not in body
    assert sorted(topic["topicName"] for topic in body["topics"]) == ["notify", "score"]


# ---------------------------------------------------------------------- Sequin's errors


@pytest.mark.parametrize("status", [400, 401, 403])
def test_an_answer_retrying_cannot_fix_stops_the_worker(parts, api, status) -> None:
    expect_receive(api, status=status, json={"summary": "no"})

    assert parts.puller.pull_once() == 0.0

    [[error]] = [c.args for c in parts.on_fatal.call_args_list]
    assert isinstance(error, SequinError) and error.status_code == status
    assert parts.flow.free == 3


UNKNOWN_CONSUMER = {
    "status": 404,
    "json": {"summary": "Not found: No `consumer` found matching the provided ID or name"},
}


def test_a_consumer_sequin_does_not_know_yet_is_asked_for_again(parts, api) -> None:
    # Sequin caches a missed lookup for about 10 s: a sink created just now is unknown for a while.
    expect_receive(api, **UNKNOWN_CONSUMER)
    expect_receive(api, **UNKNOWN_CONSUMER)
    expect_receive(api, [event(1, "delete")])
    expect_ack(api, "ack", 1)

    delays = [parts.puller.pull_once() for _ in range(3)]

    assert delays[0] > 0 and delays[1] > delays[0]  # backing off
    parts.on_fatal.assert_not_called()
    assert parts.flow.free == 3


def test_a_consumer_that_stays_unknown_stops_the_worker(parts, api) -> None:
    for _ in range(7):
        expect_receive(api, **UNKNOWN_CONSUMER)

    delays = [parts.puller.pull_once() for _ in range(7)]

    assert all(delay > 0 for delay in delays[:6]) and delays[6] == 0.0
    [[error]] = [c.args for c in parts.on_fatal.call_args_list]
    assert isinstance(error, SequinError) and error.status_code == 404


def test_a_consumer_unknown_after_receives_succeeded_stops_the_worker_at_once(parts, api) -> None:
    # Deleted, or another Sequin: no longer the cache of a new sink.
    expect_receive(api, [])
    expect_receive(api, **UNKNOWN_CONSUMER)

    parts.puller.pull_once()
    assert parts.puller.pull_once() == 0.0

    parts.on_fatal.assert_called_once()


def test_after_a_fatal_answer_the_thread_ends_without_receiving_again(parts, api) -> None:
    expect_receive(api, status=401, json={"summary": "The API token you provided is invalid"})

    parts.puller.start()

    assert parts.puller.join(WAIT)  # ended by itself; the stop sequence runs elsewhere
    assert paths(api) == ["POST sequin:/receive"]
    parts.on_fatal.assert_called_once()


def test_sequin_faults_back_off_exponentially_and_reset_after_a_success(parts, api) -> None:
    faults = [
        {"status": 500, "json": {"summary": "internal"}},
        {"body": requests.ConnectionError("refused")},
        {"status": 503, "body": "<html>bad gateway</html>"},
        {"status": 500, "json": {"summary": "internal"}},
        {"status": 500, "json": {"summary": "internal"}},
    ]
    for fault in faults:
        expect_receive(api, **fault)
    expect_receive(api, [])
    expect_receive(api, status=500, json={"summary": "internal"})

    assert [parts.puller.pull_once() for _ in faults] == [0.75, 1.5, 3.0, 6.0, 6.0]
    assert parts.flow.free == 3  # every failed round gave its slots back
    assert parts.puller.pull_once() == 0.25
    assert parts.puller.pull_once() == 0.75
    parts.on_fatal.assert_not_called()


def test_the_thread_survives_sequin_faults(make_parts, api) -> None:
    settings = WorkerSettings(max_tasks=2, poll_interval=60.0, backoff_base=0.01, backoff_cap=0.01)
    parts = make_parts(settings=settings)
    third = threading.Event()

    def empty(request: Any) -> Any:
        third.set()
        return (200, {}, json.dumps({"data": []}))

    expect_receive(api, status=500, json={"summary": "internal"})
    expect_receive(api, body=requests.ConnectionError("reset"))
    api.add_callback(responses.POST, PREFIX + "/receive", callback=empty)

    parts.puller.start()
    wait(third, "a receive after two faults")
    parts.stop()

    assert paths(api) == ["POST sequin:/receive"] * 3
    parts.on_fatal.assert_not_called()


def test_an_early_empty_answer_pauses_for_the_poll_interval(parts, api) -> None:
    expect_receive(api, [])

    assert parts.puller.pull_once() == 0.25
    assert parts.flow.free == 3


@pytest.mark.parametrize(
    "answer",
    [
        {"json": {"messages": []}},
        {"body": "not json"},
    ],
    ids=["no-data-list", "not-json"],
)
def test_a_malformed_receive_answer_backs_off_and_acks_nothing(parts, api, answer) -> None:
    expect_receive(api, **answer)

    assert parts.puller.pull_once() == 0.75

    assert paths(api) == ["POST sequin:/receive"]
    assert parts.flow.free == 3
    parts.on_fatal.assert_not_called()


def test_malformed_items_are_dropped_alone_and_logged(parts, api, caplog) -> None:
    malformed = {"ack_id": "0b9e7c52-1111-4a4a-8b8b-000000000001", "data": {"action": "insert"}}
    expect_receive(api, [event(1, "delete"), malformed, {"data": {"action": "insert"}}])
    api.add(
        responses.POST,
        PREFIX + "/ack",
        match=[json_params_matcher({"ack_ids": [ack_id(1), malformed["ack_id"]]})],
        json={"success": True},
    )

    assert parts.puller.pull_once() == 0.0

    assert "malformed Sequin event" in caplog.text
    assert "without an ack_id" in caplog.text
    assert parts.flow.free == 3


def test_an_event_that_cannot_be_read_is_dropped_and_the_round_keeps_its_slots(parts, api, caplog) -> None:
    expect_receive(api, [event(1), event(2, "delete")])
    expect_ack(api, "ack", 1, 2)
    real_classify = puller_module.classify

    def choke_on_the_first(message: Any, topics: Any) -> Any:
        if message.ack_id == ack_id(1):
            raise TypeError("a value of a type nobody expected")
        return real_classify(message, topics)

    with mock.patch.object(puller_module, "classify", side_effect=choke_on_the_first):
        assert parts.puller.pull_once() == 0.0

    assert "cannot be read (ack_id %s)" % ack_id(1) in caplog.text
    assert parts.flow.free == 3  # not one slot lost to the fault
    parts.on_fatal.assert_not_called()


def test_a_failed_ack_is_logged_and_the_round_goes_on(parts, api, caplog) -> None:
    expect_receive(api, [event(1, "delete")])
    api.add(responses.POST, PREFIX + "/ack", status=500, json={"summary": "internal"})

    assert parts.puller.pull_once() == 0.0

    assert "will be redelivered" in caplog.text


# ---------------------------------------------------------------------- stop


def test_a_job_queued_but_not_started_at_stop_is_nacked_and_its_task_not_locked(make_parts, api) -> None:
    # Two slots but one handler thread, so the second job waits in the executor's queue.
    parts = make_parts(settings=WorkerSettings(max_tasks=2, poll_interval=0.25), threads=1)
    parts.handlers.block = True
    expect_receive(api, [event(1, task_id="a"), event(2, task_id="b")], batch=2)
    expect_lock(api, "a")
    expect_load(api, "a", 1)
    expect_complete(api, "a")
    expect_ack(api, "ack", 1)
    expect_ack(api, "nack", 2)

    parts.puller.pull_once()
    wait(parts.handlers.started["a"], "handler a to start")
    parts.stop_event.set()
    parts.flow.close()
    parts.dispatcher.shutdown(0.0)  # cancels b's job, does not wait for a's
    assert paths(api)[-1] == "POST sequin:/nack"
    parts.handlers.release["a"].set()
    parts.flow.wait_idle()

    assert parts.handlers.ids == ["a"]
    assert "POST /external-task/b/lock" not in paths(api)
    assert bodies(api, "/nack") == [{"ack_ids": [ack_id(2)]}]


def test_a_job_refused_because_the_worker_stopped_is_nacked(parts, api) -> None:
    expect_receive(api, [event(1)])
    expect_ack(api, "nack", 1)
    parts.dispatcher.shutdown(0.0)  # the stop sequence ran during the receive

    parts.puller.pull_once()

    assert paths(api) == ["POST sequin:/receive", "POST sequin:/nack"]
    assert parts.flow.free == 3


@pytest.mark.parametrize("mode", [LOCK, WAKE])
def test_work_that_arrives_after_stop_was_requested_is_nacked_not_taken(make_parts, api, mode) -> None:
    parts = make_parts(mode=mode)
    expect_receive(api, [event(1), event(2, "delete", task_id="task-0")])
    expect_ack(api, "nack", 1)
    expect_ack(api, "ack", 2)
    parts.stop_event.set()  # while the receive was open

    parts.puller.pull_once()

    assert sorted(paths(api)) == ["POST sequin:/ack", "POST sequin:/nack", "POST sequin:/receive"]
    assert parts.handlers.tasks == []
    assert parts.flow.free == 3


def test_a_closed_budget_receives_nothing(parts, api) -> None:
    parts.flow.close()

    assert parts.puller.pull_once() == 0.0
    assert paths(api) == []


def test_start_runs_one_named_thread(make_parts, api) -> None:
    parts = make_parts(settings=WorkerSettings(max_tasks=1, poll_interval=60.0))
    received = threading.Event()

    def empty(request: Any) -> Any:
        received.set()
        return (200, {}, json.dumps({"data": []}))

    api.add_callback(responses.POST, PREFIX + "/receive", callback=empty)
    parts.puller.start()
    with pytest.raises(RuntimeError):
        parts.puller.start()
    wait(received, "the first receive")

    assert [t.name for t in worker_fixtures.library_threads()] == ["camunda-ext-sequin"]
    parts.stop()


# ---------------------------------------------------------------------- wake mode: slots and faults


def test_wake_mode_nacks_the_events_of_tasks_it_had_no_slot_for(make_parts, api) -> None:
    parts = make_parts(mode=WAKE, settings=WorkerSettings(max_tasks=1, poll_interval=0.25))
    expect_receive(api, [event(1, task_id="a")])
    api.add(responses.POST, url("/external-task/fetchAndLock"), json=[task_json("b", "score")])
    expect_complete(api, "b")
    expect_ack(api, "nack", 1)  # task a was not fetched: the slot went to b

    parts.puller.pull_once()
    parts.flow.wait_idle()

    assert parts.handlers.ids == ["b"]
    assert "POST sequin:/ack" not in paths(api)


def test_wake_mode_backs_off_and_nacks_when_the_fetch_fails(make_parts, api) -> None:
    parts = make_parts(mode=WAKE)
    expect_receive(api, [event(1)])
    api.add(responses.POST, url("/external-task/fetchAndLock"), status=503, body="busy")
    expect_ack(api, "nack", 1)

    assert parts.puller.pull_once() >= 0.5

    assert parts.flow.free == 3
    assert parts.handlers.ids == []


def test_wake_mode_stops_the_worker_when_the_fetch_is_refused_for_good(make_parts, api) -> None:
    parts = make_parts(mode=WAKE)
    expect_receive(api, [event(1)])
    api.add(responses.POST, url("/external-task/fetchAndLock"), status=401)
    expect_ack(api, "nack", 1)  # so that a worker configured right takes it at once

    parts.puller.pull_once()

    parts.on_fatal.assert_called_once()
    assert parts.flow.free == 3


# ---------------------------------------------------------------------- lock mode: refusals and filters


def test_a_lock_the_engine_refuses_for_good_drops_the_event(parts, api, caplog) -> None:
    expect_receive(api, [event(1)])
    expect_lock(api, **engine_error(400, "InvalidRequestException", "lockDuration must be positive"))
    expect_ack(api, "ack", 1)

    parts.puller.pull_once()
    parts.flow.wait_idle()

    assert parts.handlers.ids == []
    assert "refused task task-1 (topic score) for good" in caplog.text
    parts.sleep.assert_not_called()


def test_a_404_without_camundas_body_is_a_wrong_base_url_and_stops_the_worker(parts, api) -> None:
    expect_receive(api, [event(1)])
    expect_lock(api, status=404, body="<html>Not Found</html>")

    parts.puller.pull_once()
    parts.flow.wait_idle()

    [[error]] = [c.args for c in parts.on_fatal.call_args_list]
    assert type(error).__name__ == "NotFoundError"
    assert parts.handlers.ids == []

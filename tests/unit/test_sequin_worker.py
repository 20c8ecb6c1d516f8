"""The public SequinWorker end to end on a mocked engine and a mocked Sequin.

Construction rules, credentials per host, the sweep at start, a full lock-mode
and wake-mode run, and the fatal answers that stop the worker.
"""

from __future__ import annotations

import base64
import collections
import json
import logging
import threading
from typing import Any, Dict, Iterator, List, Optional, Sequence

import pytest
import responses
from responses.matchers import json_params_matcher, query_param_matcher

from camunda_ext import Client, ConfigurationError, SequinWorker
from camunda_ext.sequin import SequinError
from tests.unit.worker_fixtures import WAIT, WORKER_ID, join_library_threads, task_json, wait

ENGINE = "http://engine.test/engine-rest"
SEQUIN = "http://sequin.test"
CONSUMER = "camunda-ext-tasks"
PREFIX = SEQUIN + "/api/http_pull_consumers/" + CONSUMER
FETCH_URL = ENGINE + "/external-task/fetchAndLock"
TOKEN = "sequin-unit-token-7f3a"
ENV_TOKEN = "sequin-env-token-19c2"
ENGINE_USER, ENGINE_PASSWORD = "demo", "engine-password-5d1e"
BASIC = "Basic " + base64.b64encode(("%s:%s" % (ENGINE_USER, ENGINE_PASSWORD)).encode()).decode()


def ack_id(number: int) -> str:
    return "00000000-0000-4000-8000-%012d" % number


def insert(number: int, task_id: str = "task-1", topic: str = "score") -> Dict[str, Any]:
    """A receive item announcing a new task."""
    record = {
        "id_": task_id,
        "rev_": 1,
        "topic_name_": topic,
        "worker_id_": None,
        "lock_exp_time_": None,
        "retries_": None,
        "suspension_state_": 1,
        "proc_inst_id_": "pi-1",
    }
    metadata = {
        "table_schema": "public",
        "table_name": "act_ru_ext_task",
        "commit_timestamp": "2026-12-04T10:00:00.500000Z",
    }
    return {
        "ack_id": ack_id(number),
        "data": {"action": "insert", "record": record, "changes": None, "metadata": metadata},
    }


def answer(status: int, body: Any) -> Any:
    return (status, {"Content-Type": "application/json"}, json.dumps(body))


class FakeSequin:
    """Callbacks for Sequin's receive and ack: a script of receive answers, then ``{"data": []}``.

    A scripted answer is a list of items or a ``(status, body)`` pair.
    ``received[n]`` is set when receive ``n`` (from 1) arrived; ``acked`` is set
    with each ack. ``first_after``, when given, is waited for before answering
    the first receive.
    """

    def __init__(self, answers: Sequence[Any] = (), first_after: Optional[threading.Event] = None) -> None:
        self._answers = list(answers)
        self._first_after = first_after
        # Guards _answers and the records: library threads write, the test reads.
        self._lock = threading.Lock()
        self.receives: List[Dict[str, Any]] = []
        self.acks: List[List[str]] = []
        self.received = [threading.Event() for _ in range(16)]
        self.acked = threading.Event()
        self.log: Optional[List[str]] = None

    def install(self, api: responses.RequestsMock, *, ack: bool = False) -> FakeSequin:
        api.add_callback(responses.POST, PREFIX + "/receive", callback=self._receive)
        if ack:
            api.add_callback(responses.POST, PREFIX + "/ack", callback=self._ack)
        return self

    def _receive(self, request: Any) -> Any:
        with self._lock:
            self.receives.append(json.loads(request.body))
            number = len(self.receives)
            scripted = self._answers.pop(0) if self._answers else []
        if number == 1 and self._first_after is not None:
            assert self._first_after.wait(WAIT), "the first receive waited in vain"
        self.received[number].set()
        if isinstance(scripted, tuple):
            return answer(*scripted)
        return answer(200, {"data": scripted})

    def _ack(self, request: Any) -> Any:
        with self._lock:
            self.acks.append(json.loads(request.body)["ack_ids"])
            if self.log is not None:
                self.log.append("ack")
        self.acked.set()
        return answer(200, {"success": True})


def paths(api: responses.RequestsMock) -> List[str]:
    """Every request so far as ``METHOD path`` (Sequin's without its consumer prefix)."""
    return [
        "%s %s"
        % (c.request.method, c.request.url.split("?")[0].replace(ENGINE, "").replace(PREFIX, "sequin:"))
        for c in list(api.calls)
    ]


@pytest.fixture
def api() -> Iterator[responses.RequestsMock]:
    """Engine and Sequin, mocked together; every registered answer must be asked for."""
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock_:
        yield mock_


@pytest.fixture
def engine_client() -> Iterator[Client]:
    with Client(ENGINE, WORKER_ID, auth=(ENGINE_USER, ENGINE_PASSWORD), trust_env=False) as made:
        yield made


@pytest.fixture
def make_worker(engine_client, clock, jitter, monkeypatch) -> Iterator[Any]:
    monkeypatch.delenv("SEQUIN_API_TOKEN", raising=False)
    made: List[SequinWorker] = []

    def make(**options: Any) -> SequinWorker:
        options.setdefault("token", TOKEN)
        options.setdefault("max_tasks", 2)
        options.setdefault("poll_interval", 60.0)  # an empty receive parks the puller until stop
        options.setdefault("sweep_interval", 60.0)  # one sweep at start, then none until stop
        made.append(SequinWorker(engine_client, SEQUIN, CONSUMER, clock=clock, jitter=jitter, **options))
        return made[-1]

    yield make
    for worker in made:
        worker.stop(WAIT)


def expect_sweep(api: responses.RequestsMock, body: Optional[Dict[str, Any]] = None) -> threading.Event:
    """The sweep's fetchAndLock, answered with no task; returns an Event set when it came."""
    swept = threading.Event()

    def sweep(request: Any) -> Any:
        swept.set()
        return answer(200, [])

    match = [] if body is None else [json_params_matcher(body)]
    api.add_callback(responses.POST, FETCH_URL, callback=sweep, match=match)
    return swept


def noop(task: Any, complete: Any, fail: Any) -> None:
    complete().execute()


# ---------------------------------------------------------------------- construction


def test_without_a_token_construction_fails(engine_client, monkeypatch) -> None:
    monkeypatch.delenv("SEQUIN_API_TOKEN", raising=False)
    with pytest.raises(ConfigurationError, match="SEQUIN_API_TOKEN"):
        SequinWorker(engine_client, SEQUIN, CONSUMER)
    with pytest.raises(ConfigurationError, match="SEQUIN_API_TOKEN"):
        SequinWorker(engine_client, SEQUIN, CONSUMER, token="")
    assert join_library_threads(0.0) == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"mode": "poll"}, "mode"),
        ({"mode": "LOCK"}, "mode"),
        ({"wait_for": 0.4}, "wait_for"),
        ({"wait_for": 0}, "wait_for"),
        ({"wait_for": 300.5}, "wait_for"),
        ({"sweep_interval": 0}, "sweep_interval"),
    ],
)
def test_bad_options_are_refused_at_construction(make_worker, options, message) -> None:
    with pytest.raises(ConfigurationError, match=message):
        make_worker(**options)


@pytest.mark.parametrize("wait_for", [0.5, 300])
def test_wait_for_accepts_sequins_bounds(make_worker, wait_for) -> None:
    assert make_worker(wait_for=wait_for, mode="wake").wait_for == wait_for


def test_the_token_comes_from_the_environment(make_worker, api, monkeypatch) -> None:
    monkeypatch.setenv("SEQUIN_API_TOKEN", ENV_TOKEN)
    swept = expect_sweep(api)
    fake = FakeSequin().install(api)
    worker = make_worker(token=None)
    worker.register_handler("score", noop)

    worker.start()
    wait(fake.received[1], "the first receive")
    wait(swept, "the sweep")
    worker.stop()

    [receive] = [c for c in api.calls if c.request.url.startswith(SEQUIN)][:1]
    assert receive.request.headers["Authorization"] == "Bearer " + ENV_TOKEN


# ---------------------------------------------------------------------- the sweep


def test_start_sweeps_once_without_long_polling_and_sends_no_probe(make_worker, api) -> None:
    swept = expect_sweep(
        api,
        {
            "workerId": WORKER_ID,
            "maxTasks": 2,
            "topics": [{"topicName": "score", "lockDuration": 60_000, "variables": ["score"]}],
        },
    )
    fake = FakeSequin().install(api)
    worker = make_worker()
    worker.register_handler("score", noop, lock_duration=60_000, variables=["score"])

    worker.start()
    wait(swept, "the sweep at start")
    wait(fake.received[1], "the first receive")
    worker.stop()

    assert set(paths(api)) == {"POST /external-task/fetchAndLock", "POST sequin:/receive"}
    assert paths(api).count("POST /external-task/fetchAndLock") == 1
    assert join_library_threads() == []


# ---------------------------------------------------------------------- full runs


def test_lock_mode_end_to_end_with_each_hosts_own_credentials(make_worker, api, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    swept = expect_sweep(api)
    fake = FakeSequin([[insert(1)]]).install(api, ack=True)
    api.add(
        responses.POST,
        ENGINE + "/external-task/task-1/lock",
        match=[json_params_matcher({"workerId": WORKER_ID, "lockDuration": 60_000})],
        status=204,
    )
    api.add(
        responses.GET,
        ENGINE + "/external-task/task-1",
        json=task_json("task-1", "score", retries=3, activityInstanceId="score:1", businessKey="loan-7"),
    )
    api.add(
        responses.GET,
        ENGINE + "/process-instance/pi-1/activity-instances",
        json={
            "id": "pi-1",
            "activityId": "loan",
            "childActivityInstances": [
                {"id": "score:1", "activityId": "score", "childActivityInstances": []},
                {"id": "other:1", "activityId": "other", "childActivityInstances": []},
            ],
        },
    )
    api.add(
        responses.POST,
        ENGINE + "/variable-instance",
        match=[
            json_params_matcher({"activityInstanceIdIn": ["score:1", "pi-1"]}),
            query_param_matcher({"deserializeValues": "false"}),
        ],
        json=[
            {"id": "v1", "name": "score", "type": "Integer", "value": 640, "activityInstanceId": "score:1"},
            {"id": "v2", "name": "score", "type": "Integer", "value": 0, "activityInstanceId": "pi-1"},
        ],
    )
    api.add(
        responses.POST,
        ENGINE + "/external-task/task-1/complete",
        match=[
            json_params_matcher(
                {"workerId": WORKER_ID, "variables": {"score": {"type": "Integer", "value": 641}}}
            )
        ],
        status=204,
    )
    seen: List[Any] = []
    worker = make_worker()

    @worker.handler("score", lock_duration=60_000)
    def score(task, complete, fail):
        seen.append((task.id, task.business_key, task.retries, dict(task.variables)))
        complete().variable("score", task.variables["score"] + 1).execute()

    worker.start()
    wait(fake.acked, "the ack")
    wait(swept, "the sweep")
    worker.stop()

    assert seen == [("task-1", "loan-7", 3, {"score": 640})]
    assert fake.acks == [[ack_id(1)]]
    calls = paths(api)
    assert calls.index("POST /external-task/task-1/complete") < calls.index("POST sequin:/ack")
    for call in list(api.calls):
        expected = "Bearer " + TOKEN if call.request.url.startswith(SEQUIN) else BASIC
        assert call.request.headers.get("Authorization") == expected, call.request.url
    # The token shows in no log line and no repr.
    shown = [
        caplog.text,
        repr(worker),
        repr(worker.sequin),
        repr(worker.sequin._endpoint),
        repr(worker.client),
    ]
    shown.append(repr(worker.sequin._endpoint._settings))
    assert not [text for text in shown if TOKEN in text]


def test_wake_mode_end_to_end(make_worker, api) -> None:
    log: List[str] = []
    fake = FakeSequin([[insert(1)]]).install(api, ack=True)
    fake.log = log
    swept, woken = threading.Event(), threading.Event()
    wake_bodies: List[Dict[str, Any]] = []

    def fetch(request: Any) -> Any:
        body = json.loads(request.body)
        if [topic["topicName"] for topic in body["topics"]] == ["score"]:
            wake_bodies.append(body)
            log.append("wake fetch")
            woken.set()
            return answer(200, [task_json("task-1", "score")])
        swept.set()
        return answer(200, [])

    api.add_callback(responses.POST, FETCH_URL, callback=fetch)
    api.add(responses.POST, ENGINE + "/external-task/task-1/complete", status=204)
    ran = threading.Event()
    worker = make_worker(mode="wake")
    worker.register_handler("score", lambda task, complete, fail: (complete().execute(), ran.set()))
    worker.register_handler("notify", noop)

    worker.start()
    wait(fake.acked, "the ack")
    wait(ran, "the handler")
    wait(swept, "the sweep")
    worker.stop()

    [body] = wake_bodies
    assert "asyncResponseTimeout" not in body
    assert body["topics"] == [{"topicName": "score", "lockDuration": 30_000}]
    assert log == ["wake fetch", "ack"]
    # An event holds no slot: the receive asked for Sequin's largest batch, not the 2 slots.
    assert fake.receives[0]["max_batch_size"] == 1000
    assert not [call for call in paths(api) if call.endswith("/lock")]


def test_in_wake_mode_a_full_fetch_lets_the_extra_poller_fetch_without_an_event(make_worker, api) -> None:
    fake = FakeSequin([[insert(1, "task-1"), insert(2, "task-2")]]).install(api, ack=True)
    # Each fetch by the thread that sent it: the sweep at start may come before or after the others.
    fetches: Dict[str, List[Dict[str, Any]]] = collections.defaultdict(list)
    extra_fetch = threading.Event()
    receives_by_then: List[int] = []  # Sequin receives when the extra poller fetched

    def fetch(request: Any) -> Any:
        sender = threading.current_thread().name
        fetches[sender].append(json.loads(request.body))
        if sender == "camunda-ext-sequin":  # the wake fetch: as many tasks as slots, so more may be waiting
            return answer(200, [task_json("task-1", "score"), task_json("task-2", "score")])
        if sender == "camunda-ext-poller-2":
            receives_by_then.append(len(fake.receives))
            extra_fetch.set()
        return answer(200, [])

    api.add_callback(responses.POST, FETCH_URL, callback=fetch)
    for task_id in ("task-1", "task-2"):
        api.add(responses.POST, ENGINE + "/external-task/%s/complete" % task_id, status=204)
    started = {task_id: threading.Event() for task_id in ("task-1", "task-2")}
    finish = {task_id: threading.Event() for task_id in ("task-1", "task-2")}

    def score(task: Any, complete: Any, fail: Any) -> None:
        started[task.id].set()
        assert finish[task.id].wait(WAIT)
        complete().execute()

    worker = make_worker(mode="wake", max_tasks=2, fetch_concurrency=2)
    worker.register_handler("score", score)
    worker.register_handler("notify", noop)

    worker.start()
    wait(fake.acked, "the ack of the events the wake fetch served")
    for task_id, event in started.items():
        wait(event, "the handler of " + task_id)
    finish["task-1"].set()  # a slot frees: the backlog is fetched without waiting for an event
    wait(extra_fetch, "a fetch for the freed slot while task-2 runs")
    finish["task-2"].set()
    worker.stop(WAIT)

    [woken] = fetches["camunda-ext-sequin"]
    assert [topic["topicName"] for topic in woken["topics"]] == ["score"]
    assert woken["maxTasks"] == 2
    # The extra poller asked for every topic, for the one free slot, at once (no long poll).
    extra = fetches["camunda-ext-poller-2"][0]
    assert [topic["topicName"] for topic in extra["topics"]] == ["score", "notify"]
    assert extra["maxTasks"] == 1
    assert "asyncResponseTimeout" not in extra
    assert fake.acks == [[ack_id(1), ack_id(2)]]
    # Under the backlog the events were left in Sequin: one receive, none after it.
    assert receives_by_then[0] == 1


def test_in_lock_mode_there_is_no_extra_poller(make_worker, api) -> None:
    swept = expect_sweep(api)
    fake = FakeSequin(first_after=swept).install(api)
    worker = make_worker(mode="lock", fetch_concurrency=3, max_batch_size=1)
    worker.register_handler("score", noop)

    worker.start()
    wait(swept, "the sweep")
    wait(fake.received[1], "the first receive")
    names = sorted(t.name for t in threading.enumerate() if t.name.startswith("camunda-ext-"))
    worker.stop(WAIT)

    assert "camunda-ext-poller-2" not in names
    assert {"camunda-ext-sequin", "camunda-ext-sweep"} <= set(names)


# ---------------------------------------------------------------------- fatal answers


def test_a_rejected_token_stops_the_worker_and_join_raises(make_worker, api) -> None:
    swept = expect_sweep(api)
    fake = FakeSequin([(401, {"summary": "The API token you provided is invalid"})], first_after=swept)
    fake.install(api)
    worker = make_worker(max_batch_size=1)  # leaves the sweep a slot while the receive waits for it
    worker.register_handler("score", noop)

    worker.start()
    with pytest.raises(SequinError) as raised:
        worker.join(WAIT)

    assert raised.value.status_code == 401
    assert TOKEN not in str(raised.value)
    assert join_library_threads() == []
    assert len(fake.receives) == 1  # not received again


def test_a_consumer_that_stays_unknown_makes_run_raise(make_worker, api) -> None:
    swept = expect_sweep(api)
    # A new sink is unknown to Sequin for a while: the 404 is asked again a few times first.
    unknown = (404, {"summary": "Not found: No consumer found"})
    fake = FakeSequin([unknown] * 7, first_after=swept).install(api)
    worker = make_worker(max_batch_size=1, backoff_base=0.001, backoff_cap=0.001)
    worker.register_handler("score", noop)

    with pytest.raises(SequinError) as raised:
        worker.run()

    assert raised.value.status_code == 404
    assert len(fake.receives) == 7
    assert join_library_threads() == []


def test_sequin_being_down_does_not_stop_the_worker(make_worker, api) -> None:
    swept = expect_sweep(api)
    fake = FakeSequin([(500, {"summary": "internal"}), (502, {"summary": "bad gateway"})]).install(api)
    worker = make_worker(backoff_base=0.01, backoff_cap=0.01)
    worker.register_handler("score", noop)

    worker.start()
    wait(fake.received[3], "a receive after two faults")
    wait(swept, "the sweep")
    assert not worker.join(0)  # still running
    worker.stop()

    assert worker.join(0)  # stopped, and by no fatal error (join would raise it)

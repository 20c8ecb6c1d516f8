"""Fixtures and fakes shared by the unit tests of the worker machinery.

``conftest.py`` makes its fixtures those of every unit test, the autouse
check that no test leaves a library thread running included.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Dict, Iterator, List, Optional, Sequence, Union

import pytest
import responses
from responses.registries import OrderedRegistry

from camunda_ext import Client
from camunda_ext._converter import structure
from camunda_ext._protocol.flow_control import FlowController
from camunda_ext.models import ExternalTask, FetchTopic
from camunda_ext.settings import Handler, Subscription

#: The REST root the worker tests talk to; nothing listens there, responses answers.
BASE_URL = "http://engine.worker.test/engine-rest"
WORKER_ID = "test-worker"
FETCH_URL = BASE_URL + "/external-task/fetchAndLock"

#: Hang guard of every wait in these tests, in seconds. Never a synchronisation.
WAIT = 5.0

#: Prefix of every thread the library starts.
THREAD_PREFIX = "camunda-ext-"


def task_url(task_id: str, action: str) -> str:
    """``.../external-task/{id}/{action}``."""
    return "%s/external-task/%s/%s" % (BASE_URL, task_id, action)


class FakeClock:
    """A monotonic clock that moves only when a test sets or advances ``now``."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def monotonic(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def tell_when_waiting(flow: FlowController) -> threading.Event:
    """An event set when ``flow.reserve`` next blocks to wait for slots.

    A slot released after it is set wakes that wait: a test can free slots while a
    reservation is waiting, not before it started.
    """
    waiting = threading.Event()

    class TellingCondition(threading.Condition):
        def wait(self, timeout: Optional[float] = None) -> bool:
            waiting.set()
            return super().wait(timeout)

    flow._changed = TellingCondition()  # the controller's one lock and signal
    return waiting


class FixedJitter:
    """``random()`` always returns ``value``."""

    def __init__(self, value: float = 0.5) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


def task_json(
    task_id: str = "task-1",
    topic: str = "topic",
    *,
    retries: Optional[int] = None,
    variables: Optional[Dict[str, Any]] = None,
    **extra: Any,
) -> Dict[str, Any]:
    """A task as fetchAndLock returns it (camelCase JSON)."""
    data: Dict[str, Any] = {
        "id": task_id,
        "topicName": topic,
        "workerId": WORKER_ID,
        "retries": retries,
        "processInstanceId": "pi-1",
        "executionId": "ex-1",
        "activityId": "serviceTask",
        "priority": 0,
        "variables": variables or {},
    }
    data.update(extra)
    return data


def make_task(task_id: str = "task-1", topic: str = "topic", **kwargs: Any) -> ExternalTask:
    """An :class:`ExternalTask` decoded from :func:`task_json`, as the client would."""
    return structure(task_json(task_id, topic, **kwargs), ExternalTask)


def subscription(topic: str, handler: Handler, lock_duration: int = 30_000, **fetch: Any) -> Subscription:
    """A registered topic."""
    return Subscription(
        fetch=FetchTopic(topic_name=topic, lock_duration=lock_duration, **fetch), handler=handler
    )


def json_body(call: Any) -> Any:
    """The decoded JSON body of a recorded ``responses`` call (None when empty)."""
    body = call.request.body
    return json.loads(body) if body else None


def paths(mock: responses.RequestsMock) -> List[str]:
    """The paths below :data:`BASE_URL` requested so far, in order."""
    return [call.request.url.replace(BASE_URL, "") for call in list(mock.calls)]


def engine_error(status: int, kind: Optional[str], message: str = "", code: int = 0) -> Dict[str, Any]:
    """Keyword arguments of ``responses.add`` for a Camunda error answer."""
    if kind is None:
        return {"status": status, "body": ""}
    return {"status": status, "json": {"type": kind, "message": message, "code": code}}


#: Camunda's answers, as captured from the engine (tests/fixtures/engine/).
OPTIMISTIC_LOCKING = engine_error(
    500, "OptimisticLockingException", "ENGINE-03005 Execution of 'UPDATE ExternalTaskEntity' failed", 1
)
TASK_GONE = engine_error(404, "RestException", "External task with id task-1 does not exist")
LOCKED_BY_OTHER = engine_error(
    400,
    "RestException",
    "External Task task-1 cannot be completed by worker 'test-worker'. It is locked by worker 'other'.",
)
LOCK_UNLOCKED = engine_error(
    400,
    "RestException",
    "The lock of the External Task task-1 cannot be extended by worker 'test-worker''. "
    "It is locked by worker 'null'.",
)


def wait(event: threading.Event, what: str = "the event") -> None:
    """Wait for ``event`` with the hang guard and fail clearly if it never comes."""
    assert event.wait(WAIT), "timed out waiting for %s" % what


def library_threads() -> List[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX) and t.is_alive()]


def join_library_threads(timeout: float = WAIT) -> List[str]:
    """Join every ``camunda-ext-*`` thread within ``timeout``; return the names still alive."""
    deadline = time.monotonic() + timeout
    for thread in library_threads():
        thread.join(max(deadline - time.monotonic(), 0.0))
    return [t.name for t in library_threads()]


class FetchScript:
    """A responses callback for fetchAndLock that answers from a script.

    Each answer is a list of task dicts (200), an ``(status, json_or_None)``
    pair, or an exception to raise (e.g. ``requests.ConnectionError``). When
    the script runs out it answers ``[]``. ``fetched[n]`` is set when the
    ``n``-th request (from 1) arrived; ``bodies`` holds every request body.
    ``hold[n]``, when given, is waited for before the ``n``-th answer, which
    stands for a long poll the engine keeps open.
    """

    def __init__(
        self,
        answers: Sequence[Union[List[Dict[str, Any]], tuple, BaseException]] = (),
        hold: Optional[Dict[int, threading.Event]] = None,
    ) -> None:
        self._answers = list(answers)
        self._hold = hold or {}
        # Guards _answers and bodies: the poller thread appends, the test reads.
        self._lock = threading.Lock()
        self.bodies: List[Dict[str, Any]] = []
        # fetched[n] is set when request n arrived.
        self.fetched = [threading.Event() for _ in range(64)]

    def install(self, mock: responses.RequestsMock) -> FetchScript:
        mock.add_callback(responses.POST, FETCH_URL, callback=self)
        return self

    def __call__(self, request: Any) -> Any:
        with self._lock:
            self.bodies.append(json.loads(request.body))
            number = len(self.bodies)
            answer = self._answers.pop(0) if self._answers else []
        self.fetched[number].set()
        if number in self._hold:
            assert self._hold[number].wait(WAIT), "the test never released fetch %d" % number
        if isinstance(answer, BaseException):
            return answer
        if isinstance(answer, tuple):
            status, body = answer
            return (status, {"Content-Type": "application/json"}, "" if body is None else json.dumps(body))
        return (200, {"Content-Type": "application/json"}, json.dumps(answer))

    def max_tasks(self) -> List[int]:
        """``maxTasks`` of every request so far."""
        with self._lock:
            return [body["maxTasks"] for body in self.bodies]


# ---------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves a ``camunda-ext-*`` thread running."""
    yield
    leaked = join_library_threads()
    assert not leaked, "threads outlived the test: %s" % leaked


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def jitter() -> FixedJitter:
    return FixedJitter(0.5)


@pytest.fixture
def ordered_engine() -> Iterator[responses.RequestsMock]:
    """The mocked engine answering a script in order; every answer must be asked for."""
    with responses.RequestsMock(assert_all_requests_are_fired=True, registry=OrderedRegistry) as mock:
        yield mock


@pytest.fixture
def rest_client() -> Iterator[Client]:
    """A client of :data:`BASE_URL` for :data:`WORKER_ID`, closed afterwards."""
    with Client(BASE_URL, WORKER_ID, trust_env=False) as client:
        yield client

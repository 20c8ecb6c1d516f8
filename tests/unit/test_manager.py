"""The stop sequence of the manager, its order checked on one parent mock."""

from __future__ import annotations

import threading
from typing import Any, Iterator, List, Tuple
from unittest import mock

import pytest

from camunda_ext import AuthenticationError, Client
from camunda_ext._protocol import manager as manager_module
from camunda_ext._protocol.dispatch import Dispatcher
from camunda_ext._protocol.flow_control import FlowController
from camunda_ext._protocol.leaser import Leaser
from camunda_ext._protocol.manager import Manager
from camunda_ext._protocol.poller import Poller
from camunda_ext._protocol.reporter import Reporter
from camunda_ext.metrics import NullMetrics
from camunda_ext.models import ExternalTask
from camunda_ext.settings import WorkerSettings
from tests.unit.worker_fixtures import WAIT, make_task, wait


class Setup:
    def __init__(self, clock, jitter) -> None:
        self.parent = mock.Mock()
        self.client = mock.create_autospec(Client, instance=True)
        self.manager = Manager(self.client, WorkerSettings(max_tasks=2), NullMetrics(), clock, jitter)
        self.leaser = mock.create_autospec(Leaser, instance=True)
        self.reporter = mock.create_autospec(Reporter, instance=True)
        self.dispatcher = mock.create_autospec(Dispatcher, instance=True)
        self.dispatcher.shutdown.return_value = ([], [])
        self.source = mock.create_autospec(Poller, instance=True)
        self.flow = mock.create_autospec(FlowController, instance=True)
        self.manager.leaser = self.leaser
        self.manager.reporter = self.reporter
        for name in ("client", "leaser", "reporter", "dispatcher", "source", "flow"):
            self.parent.attach_mock(getattr(self, name), name)

    def open(self) -> None:
        with mock.patch.object(manager_module, "Dispatcher", return_value=self.dispatcher):
            self.manager.open(self.build)

    def build(self, manager: Manager, dispatcher: Dispatcher) -> Any:
        assert dispatcher is self.dispatcher
        return [(self.source, self.flow)]


@pytest.fixture
def setup(clock, jitter) -> Iterator[Setup]:
    yield Setup(clock, jitter)


def test_open_starts_the_leaser_then_the_sources(setup) -> None:
    setup.open()
    assert setup.parent.mock_calls == [mock.call.leaser.start(), mock.call.source.start()]
    assert setup.manager.running
    with pytest.raises(RuntimeError):
        setup.open()
    setup.manager.stop()


def test_the_stop_sequence_runs_in_order(setup, clock) -> None:
    def drain_for_three_seconds(timeout: float) -> Any:
        clock.advance(3.0)
        return [make_task("done")], [make_task("stuck")]

    setup.dispatcher.shutdown.side_effect = drain_for_three_seconds
    setup.leaser.leased.return_value = {"stuck": "topic-a"}
    setup.leaser.holds.return_value = True
    intake_closed_after_stop_event = []
    setup.flow.close.side_effect = lambda: intake_closed_after_stop_event.append(
        setup.manager.stop_event.is_set()
    )
    setup.open()
    setup.parent.reset_mock()

    setup.manager.stop(timeout=10.0)

    assert setup.parent.mock_calls == [
        mock.call.flow.close(),  # 1. intake stops
        mock.call.dispatcher.shutdown(mock.ANY),  # 2. drain, the leaser still running
        mock.call.leaser.stop(mock.ANY),  # 3. then the leaser stops
        mock.call.leaser.leased(),
        mock.call.leaser.holds("stuck"),
        mock.call.leaser.remove("stuck"),  # a report its handler sends later is neither retried nor unlocks
        mock.call.reporter.unlock(ExternalTask("stuck", topic_name="topic-a"), mock.ANY),  # still running
        mock.call.source.join(0),
        mock.call.client.close(),  # 4. the session last
    ]
    assert intake_closed_after_stop_event == [True]
    # One grace budget shared by the drain and the leaser's join.
    [drain_budget] = setup.dispatcher.shutdown.call_args.args
    [leaser_budget] = setup.leaser.stop.call_args.args
    assert (drain_budget, leaser_budget) == (10.0, 7.0)
    assert not setup.manager.running
    assert setup.manager.join(0)


def test_a_running_task_whose_lock_is_no_longer_held_is_forgotten_not_unlocked(setup) -> None:
    # Its extendLock found it locked by another worker (or its lock ran out): an
    # unlock now would free that worker's task.
    setup.dispatcher.shutdown.return_value = ([], [make_task("taken")])
    setup.leaser.leased.return_value = {"taken": "topic-a"}
    setup.leaser.holds.return_value = False
    setup.open()

    setup.manager.stop(timeout=1.0)

    setup.leaser.remove.assert_called_once_with("taken")
    setup.reporter.unlock.assert_not_called()


def test_the_stop_sequence_runs_on_its_own_thread(setup) -> None:
    # So that an interrupt of the caller's wait (Ctrl-C) cannot cut the drain and the unlocks short.
    drained_on: List[str] = []
    setup.dispatcher.shutdown.side_effect = lambda timeout: (
        drained_on.append(threading.current_thread().name) or ([], [])
    )
    setup.open()

    setup.manager.stop(timeout=1.0)

    assert drained_on == ["camunda-ext-shutdown"]
    assert setup.manager.join(0)


def test_a_stop_sequence_that_fails_still_leaves_the_worker_stopped(setup, caplog) -> None:
    setup.leaser.stop.side_effect = RuntimeError("broken")
    setup.open()

    setup.manager.stop(timeout=1.0)

    assert setup.manager.join(0)
    setup.manager.stop(timeout=1.0)  # returns: the sequence is over
    assert "The stop sequence failed" in caplog.text


def test_without_timeout_the_drain_has_no_deadline(setup) -> None:
    setup.open()
    setup.manager.stop()
    setup.dispatcher.shutdown.assert_called_once_with(None)
    setup.leaser.stop.assert_called_once_with(None)


def test_stop_is_idempotent(setup) -> None:
    setup.open()
    setup.manager.stop()
    setup.manager.stop()
    setup.manager.stop(timeout=1.0)
    setup.dispatcher.shutdown.assert_called_once()
    setup.client.close.assert_called_once_with()


def test_stop_before_start_needs_no_threads_and_forbids_a_later_start(setup) -> None:
    setup.manager.stop()
    assert setup.manager.join(0)
    setup.client.close.assert_not_called()
    with pytest.raises(RuntimeError):
        setup.open()


def test_a_second_stop_waits_for_the_first_to_finish(setup) -> None:
    release = threading.Event()
    draining = threading.Event()

    def shutdown(timeout: Any) -> Tuple[list, list]:
        draining.set()
        assert release.wait(WAIT)
        return [], []

    setup.dispatcher.shutdown.side_effect = shutdown
    setup.open()
    first = threading.Thread(target=setup.manager.stop)
    first.start()
    wait(draining, "the first stop to drain")
    assert setup.manager.join(0) is False
    second_done = threading.Event()
    second = threading.Thread(target=lambda: (setup.manager.stop(), second_done.set()))
    second.start()
    release.set()
    wait(second_done, "the second stop to return")
    assert setup.manager.join(0)
    setup.client.close.assert_called_once_with()
    first.join(WAIT)
    second.join(WAIT)


def test_stop_from_our_own_thread_runs_in_the_background(setup) -> None:
    release = threading.Event()
    draining = threading.Event()

    def shutdown(timeout: Any) -> Tuple[list, list]:
        draining.set()
        assert release.wait(WAIT)
        return [], []

    setup.dispatcher.shutdown.side_effect = shutdown
    setup.open()
    returned = threading.Event()
    handler = threading.Thread(
        target=lambda: (setup.manager.stop(), returned.set()), name="camunda-ext-handler_7"
    )
    handler.start()
    # stop() returned although the drain (which would wait for this handler) is not over.
    wait(returned, "stop() to return inside the handler")
    wait(draining, "the background stop to drain")
    assert not setup.manager.join(0)
    release.set()
    assert setup.manager.join(WAIT)
    handler.join(WAIT)


def test_a_fatal_error_stops_the_worker_and_join_raises_it(setup) -> None:
    setup.open()
    error = AuthenticationError(401, None, "wrong password")
    setup.manager.fatal(error)
    with pytest.raises(AuthenticationError) as raised:
        setup.manager.join(WAIT)
    assert raised.value is error
    setup.client.close.assert_called_once_with()
    with pytest.raises(AuthenticationError):
        setup.manager.join(0)  # every later join too

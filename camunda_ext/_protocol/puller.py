"""Pulls change events of external tasks from Sequin: one thread, ``camunda-ext-sequin``."""

from __future__ import annotations

import functools
import logging
import threading
from typing import Callable, List, Mapping, Optional, Set, Tuple

from camunda_ext._protocol.backoff import Backoff
from camunda_ext._protocol.clock import Jitter
from camunda_ext._protocol.dispatch import Dispatcher
from camunda_ext._protocol.events import Work, classify
from camunda_ext._protocol.flow_control import FlowController
from camunda_ext._protocol.loop import RoundLoop
from camunda_ext._protocol.poller import FATAL_FETCH_ERRORS, GATE_TICK, Backlog, Poller
from camunda_ext._protocol.reporter import is_transient
from camunda_ext._protocol.task_loader import TaskLoader
from camunda_ext.errors import (
    AuthenticationError,
    AuthorizationError,
    CamundaError,
    LockConflictError,
    NotFoundError,
    OptimisticLockingError,
    TaskNotFoundError,
)
from camunda_ext.sequin import SequinClient, SequinError, SequinMessage
from camunda_ext.settings import Subscription, WorkerSettings

logger = logging.getLogger(__name__)

#: Sequin answers that retrying cannot fix: bad token, unknown consumer, bad request.
_FATAL_SEQUIN_STATUSES = frozenset({400, 401, 403, 404})
#: Unknown-consumer answers retried before the first receive succeeds: Sequin caches a
#: consumer lookup, a miss included, for about 10 s, so a sink created just now is
#: unknown for a while. With the default back-off the retries span about 30 s.
_NEW_SINK_RETRIES = 6
#: Engine answers to a lock that retrying cannot fix: credentials, or a wrong base URL
#: (a 404 that is not Camunda's "task does not exist", which is TaskNotFoundError).
_FATAL_ENGINE_ERRORS = (AuthenticationError, AuthorizationError, NotFoundError)
#: The task is someone else's right now: leave its message to come back later.
_HELD_ELSEWHERE = (LockConflictError, OptimisticLockingError)

LOCK = "lock"
WAKE = "wake"


class Puller(RoundLoop):
    """Receives change events and turns the ones that announce work into handler runs.

    ``lock`` mode: each work event's task is locked by id, read back with the
    variables fetchAndLock would give it, run, its outcome reported, and only
    then the event acked. A gone task's event is acked without running; a task
    locked elsewhere is not run and its event is left to come back after the
    visibility timeout (by then it is finished or free); transient faults nack
    the event after a pause; a task already running here is not run again. If
    the sweep's fetch wins the task while its event is handled (so the lock by id
    fails or finds the task locked), the fetched copy runs once the event's job
    lets go (:meth:`Dispatcher.unclaim`).

    ``wake`` mode: work events only wake a fetchAndLock (no long poll) of their
    topics for the free slots, through ``wake_poller``; the events are acked
    once that fetch was made. A receive asks for up to ``max_batch_size``
    events whatever the free slots: an event is a hint that holds no slot, and
    one fetch serves a batch. While ``backlog`` is set, the worker's extra
    pollers fetch every topic as slots free, so no event is received: each
    would only add a fetch. The events wait in Sequin and are served, a batch
    to a fetch, once a fetch comes back short.

    Events that announce no work are acked at once.

    Thread-safe: ``start``/``join`` from any thread; lock-mode jobs run on
    handler threads.
    """

    def __init__(
        self,
        sequin: SequinClient,
        subscriptions: Mapping[str, Subscription],
        flow: FlowController,
        dispatcher: Dispatcher,
        loader: TaskLoader,
        wake_poller: Poller,
        settings: WorkerSettings,
        jitter: Jitter,
        stop_event: threading.Event,
        on_fatal: Callable[[BaseException], None],
        *,
        mode: str,
        wait_for: float,
        max_batch_size: int,
        sleep: Callable[[float], object],
        backlog: Optional[Backlog] = None,
    ) -> None:
        if mode not in (LOCK, WAKE):
            raise ValueError("mode must be 'lock' or 'wake'")
        self._sequin = sequin
        self._subscriptions = subscriptions
        self._flow = flow
        self._dispatcher = dispatcher
        self._loader = loader
        self._wake_poller = wake_poller
        self._settings = settings
        self._on_fatal = on_fatal
        self._mode = mode
        self._wait_for = wait_for
        self._max_batch_size = max_batch_size
        self._sleep = sleep
        self._backlog = backlog
        # Guards _held: the ack ids of the events whose lock-mode jobs are under way. One
        # that Sequin delivers again (its visibility timeout ran out) is theirs to settle.
        self._held_lock = threading.Lock()
        self._held: Set[str] = set()
        self._received = False  # a receive has succeeded (only this thread reads or writes it)
        # Guards _engine_backoff: the consecutive faults of lock-mode jobs taking tasks,
        # shared by them, so that an engine that is down sees their pauses grow.
        self._engine_lock = threading.Lock()
        self._engine_backoff = Backoff(settings.backoff_base, settings.backoff_cap)
        super().__init__(
            "camunda-ext-sequin", stop_event, Backoff(settings.backoff_base, settings.backoff_cap), jitter
        )

    # ------------------------------------------------------------------ one round

    def run_round(self) -> float:
        return self.pull_once()

    def pull_once(self) -> float:
        """One round: receive, sort, act, ack. Returns seconds to wait before the next."""
        if self._mode == WAKE:
            if self._backlog is not None and self._backlog.is_set():
                # The extra pollers fetch every topic meanwhile; receive again as soon as one comes back short.
                self._backlog.wait_cleared(GATE_TICK)
                return 0.0
            # A free slot first: events received are in flight, hidden from other
            # workers, until this worker's fetch serves or nacks them.
            reserved = self._wake_poller.reserve()
            batch_size = self._max_batch_size
        else:
            # No more events than free slots: each may become a task to run.
            reserved = batch_size = self._flow.reserve(self._max_batch_size)
        if reserved == 0:
            return 0.0  # closed: the loop sees the stop event
        try:
            messages = self._sequin.receive(max_batch_size=batch_size, wait_for=self._wait_for)
        except CamundaError as error:
            self._flow.release(reserved)
            return self._receive_failed(error)
        self._backoff = self._backoff.reset()
        self._received = True
        topics = self._subscriptions.keys()
        work: List[Tuple[SequinMessage, Work]] = []
        done: List[str] = []
        with self._held_lock:
            held = set(self._held)
        for message in messages:
            if message.ack_id in held:
                # Delivered again while its job runs: that job acks or nacks it.
                continue
            if message.malformed:
                logger.error("Dropping a malformed Sequin event (%s)", message.malformed)
            try:
                found = classify(message, topics)
            except Exception:
                # An event this worker cannot read must not cost the round its slots;
                # the sweep still finds its task.
                logger.exception("Dropping a Sequin event that cannot be read (ack_id %s)", message.ack_id)
                found = None
            if found is None:
                done.append(message.ack_id)
            elif not self._take(found.task_id):
                # It already runs here (brought by the sweep, or this event delivered
                # again): the event has served its purpose.
                done.append(message.ack_id)
            else:
                work.append((message, found))
        delay = 0.0 if messages else self._settings.poll_interval
        if work and self._stop_event.is_set():
            # Stopping (they came with a receive still open): another worker takes them now.
            self._give_back(work)
            self._flow.release(reserved)
        elif self._mode == LOCK:
            self._run_locked(work, reserved)
        else:
            delay = max(delay, self._wake(work, reserved, done))
        self._ack(done)
        # An early empty answer is normal while events are in flight: pause, don't spin.
        return delay

    def _take(self, task_id: str) -> bool:
        """Whether an event's task may be acted on: in lock mode, claimed for its job."""
        if self._mode == LOCK:
            return self._dispatcher.claim(task_id)
        # A wake fetch decides what runs; it only needs to skip tasks running here.
        return not self._dispatcher.claimed(task_id)

    def _receive_failed(self, error: CamundaError) -> float:
        if (
            isinstance(error, SequinError)
            and error.status_code == 404
            and not self._received
            and self._backoff.errors < _NEW_SINK_RETRIES
        ):
            delay = self._next_delay()
            logger.warning(
                "Sequin does not know the consumer (yet?): %s; a sink created just now is unknown for "
                "about 10 s, retrying in %.1f s",
                error,
                delay,
            )
            return delay
        if isinstance(error, SequinError) and error.status_code in _FATAL_SEQUIN_STATUSES:
            logger.error("Sequin refused the receive for good (%s); stopping the worker", error)
            self._failed.set()
            self._on_fatal(error)
            return 0.0
        delay = self._next_delay()
        log = logger.debug if self._stop_event.is_set() else logger.warning
        log("Receiving from Sequin failed (%s); retrying in %.1f s", error, delay)
        return delay

    def _give_back(self, work: List[Tuple[SequinMessage, Work]]) -> None:
        if self._mode == LOCK:
            for _, found in work:
                self._dispatcher.unclaim(found.task_id, ran=False)
        self._nack([message.ack_id for message, _ in work])

    def _run_locked(self, work: List[Tuple[SequinMessage, Work]], reserved: int) -> None:
        # Each event holds the claim of its task (taken in pull_once) until its job ends.
        with self._held_lock:
            self._held.update(message.ack_id for message, _ in work)
        for message, found in work:
            self._dispatcher.submit(
                functools.partial(self._lock_and_run, message, found),
                on_done=self._flow.release,
                on_cancel=functools.partial(self._not_run, message, found),
            )
        self._flow.release(reserved - len(work))

    def _wake(self, work: List[Tuple[SequinMessage, Work]], reserved: int, done: List[str]) -> float:
        """Fetch the events' topics for the reserved slots; return a back-off delay (0 if none)."""
        if not work:
            self._flow.release(reserved)
            return 0.0
        try:
            tasks, locked_at = self._wake_poller.fetch(reserved, {found.topic for _, found in work})
        except FATAL_FETCH_ERRORS as error:
            self._flow.release(reserved)
            self._failed.set()
            # Another worker, configured right, takes the events at once.
            self._nack([message.ack_id for message, _ in work])
            self._wake_poller.fail_for_good(error)
            return 0.0
        except CamundaError as error:
            self._flow.release(reserved)
            self._nack([message.ack_id for message, _ in work])
            delay = self._next_delay()
            logger.warning(
                "The fetch woken by Sequin failed (%s); its events come again in %.1f s", error, delay
            )
            return delay
        self._wake_poller.dispatch(tasks, reserved, locked_at)
        if len(tasks) < reserved:
            # Every available task of these topics was taken: the events are served.
            done.extend(message.ack_id for message, _ in work)
        else:
            # The slots ran out: events of tasks not fetched come again when slots free.
            fetched = {task.id for task in tasks}
            served = [m.ack_id for m, found in work if found.task_id in fetched]
            done.extend(served)
            self._nack([m.ack_id for m, found in work if found.task_id not in fetched])
        return 0.0

    # ------------------------------------------------------------------ lock mode, on a handler thread

    def _lock_and_run(self, message: SequinMessage, work: Work) -> None:
        try:
            ran, settle = self._take_and_run(message, work)
            # The claim goes before the event is settled: a copy the sweep or a wake
            # fetch locked meanwhile runs now if this did not, and a copy fetched once
            # the task was free again (a failure with retries left) is not held back
            # by a slow call to Sequin.
            self._dispatcher.unclaim(work.task_id, ran=ran)
            if settle is not None:
                settle()
        finally:
            with self._held_lock:
                self._held.discard(message.ack_id)

    def _take_and_run(self, message: SequinMessage, work: Work) -> Tuple[bool, Optional[Callable[[], None]]]:
        """Lock, load and run an event's task; return whether it ran and how to settle its event.

        On an unexpected fault the claim is released before the fault goes on.
        """
        subscription = self._subscriptions[work.topic]
        ack = functools.partial(self._ack, [message.ack_id])
        try:
            task = self._loader.lock_and_load(work.task_id, subscription.fetch)
        except TaskNotFoundError:
            logger.debug("Task %s (topic %s) is gone; acking its event", work.task_id, work.topic)
            return False, ack
        except _HELD_ELSEWHERE as error:
            logger.debug(
                "Task %s (topic %s) is held elsewhere (%s); its event comes back later",
                work.task_id,
                work.topic,
                type(error).__name__,
            )
            return False, None
        except _FATAL_ENGINE_ERRORS as error:
            self._failed.set()
            # Another worker, configured right, takes the event at once.
            self._nack([message.ack_id])
            self._on_fatal(error)
            return False, None
        except CamundaError as error:
            if is_transient(error):
                return False, functools.partial(self._release_after_fault, message, work, error)
            # Sending it again would fail the same way; the sweep still finds the task.
            logger.error(
                "The engine refused task %s (topic %s) for good (%s); dropping its event",
                work.task_id,
                work.topic,
                error,
            )
            return False, ack
        except BaseException:
            self._dispatcher.unclaim(work.task_id, ran=False)
            raise
        with self._engine_lock:
            self._engine_backoff = self._engine_backoff.reset()
        if task is None:
            logger.debug(
                "Task %s (topic %s) is not available or outside the topic's filters", work.task_id, work.topic
            )
            return False, ack
        self._dispatcher.run(task, subscription)  # never raises: the outcome is reported
        return True, ack

    def _release_after_fault(self, message: SequinMessage, work: Work, error: CamundaError) -> None:
        """Nack the event after a pause, so the task is tried again soon."""
        logger.warning(
            "Taking task %s (topic %s) failed (%s); its event is released for another try",
            work.task_id,
            work.topic,
            error,
        )
        with self._engine_lock:
            self._engine_backoff = self._engine_backoff.increment()
            delay = self._engine_backoff.delay(self._jitter)
        # The job holds its slot meanwhile: the events come no faster than the pauses let them.
        self._sleep(delay)
        self._nack([message.ack_id])

    def _not_run(self, message: SequinMessage, work: Work) -> None:
        """The worker stopped before the job started: let another worker have the event now."""
        with self._held_lock:
            self._held.discard(message.ack_id)
        self._dispatcher.unclaim(work.task_id, ran=False)
        self._nack([message.ack_id])

    # ------------------------------------------------------------------ acks

    def _ack(self, ack_ids: List[str]) -> None:
        try:
            self._sequin.ack(ack_ids)
        except CamundaError as error:
            # Unacked events come back after the visibility timeout; nothing is lost.
            logger.warning(
                "Acking %d Sequin events failed (%s); they will be redelivered", len(ack_ids), error
            )

    def _nack(self, ack_ids: List[str]) -> None:
        try:
            self._sequin.nack(ack_ids)
        except CamundaError as error:
            logger.warning("Nacking %d Sequin events failed (%s); they come back later", len(ack_ids), error)

    # ------------------------------------------------------------------ lifecycle

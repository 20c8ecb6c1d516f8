"""Long-polls fetchAndLock for free slots only: one thread, ``camunda-ext-poller``."""

from __future__ import annotations

import collections
import logging
import threading
from typing import Callable, Collection, List, Mapping, Optional, Tuple

from camunda_ext import builders
from camunda_ext._protocol.backoff import Backoff
from camunda_ext._protocol.clock import Clock, Jitter
from camunda_ext._protocol.dispatch import Dispatcher
from camunda_ext._protocol.flow_control import FlowController
from camunda_ext._protocol.loop import RoundLoop
from camunda_ext._protocol.reporter import Reporter
from camunda_ext.client import Client, UndecodableTask, UndecodableTasksError
from camunda_ext.errors import (
    AuthenticationError,
    AuthorizationError,
    BadRequestError,
    CamundaError,
    NotFoundError,
)
from camunda_ext.metrics import Metrics
from camunda_ext.models import ExternalTask
from camunda_ext.settings import Subscription, WorkerSettings

logger = logging.getLogger(__name__)

#: Seconds a fetch under a backlog waits for more slots to free up.
_BACKLOG_LINGER = 0.05

#: Seconds a thread waits for the backlog to start or end before it looks at the stop event again.
GATE_TICK = 0.5

#: Longest time in seconds from the engine locking a long poll's tasks to their
#: answer arriving here (a pause of the engine's JVM, a slow network).
_ANSWER_MARGIN = 5.0

#: Answers to fetchAndLock that retrying cannot fix: wrong credentials, a wrong
#: base URL (404) or a request the engine refuses (400). They stop the worker.
FATAL_FETCH_ERRORS = (AuthenticationError, AuthorizationError, NotFoundError, BadRequestError)


class Backlog:
    """Whether the engine has more tasks than fetches ask for: set by a full answer, cleared by a short one.

    Unlike a :class:`threading.Event`, its end can be waited for too. Thread-safe.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._full = False  # guarded by _changed

    def set(self) -> None:
        self._update(True)

    def clear(self) -> None:
        self._update(False)

    def is_set(self) -> bool:
        with self._changed:
            return self._full

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a backlog; whether there is one."""
        with self._changed:
            return self._changed.wait_for(lambda: self._full, timeout)

    def wait_cleared(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the backlog to end; whether it has."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._full, timeout)

    def _update(self, full: bool) -> None:
        with self._changed:
            if self._full != full:
                self._full = full
                self._changed.notify_all()


class Poller(RoundLoop):
    """Fetches tasks for the registered topics and hands them to the dispatcher.

    Each round reserves the free slots of its :class:`FlowController`, asks for
    exactly that many tasks (no request at all while every slot is busy), gives
    back the slots the answer did not fill, and dispatches the tasks. Engine and
    network errors back off exponentially with jitter; errors in
    :data:`FATAL_FETCH_ERRORS` call ``on_fatal`` and end the loop.

    Thread-safe: ``start``/``stop`` from any thread; the loop runs on its own.

    Args:
        client: Sends fetchAndLock.
        subscriptions: Registered topics by name.
        flow: The slot budget of this source.
        dispatcher: Leases the tasks and runs their handlers.
        reporter: Unlocks tasks that arrive while stopping.
        settings: Poll settings.
        metrics: Receives ``fetched``.
        clock: Monotonic time.
        jitter: Randomness of the back-off.
        stop_event: Set when the worker stops; its wait is the loop's sleep.
        on_fatal: Called with an error that must stop the worker.
        async_response_timeout: Long-poll seconds (None: the engine answers at once).
        name: Thread name.
        every: Pause in seconds after every round, with or without tasks (a sweep);
            None pauses only after an empty answer (``poll_interval``).
        backlog: Shared by the pollers of one worker: set while fetches come back
            full (more tasks are likely waiting), cleared by one that does not.
        on_backlog_only: Poll only while ``backlog`` is set (an extra poller, which
            costs nothing while the engine has no backlog).
    """

    def __init__(
        self,
        client: Client,
        subscriptions: Mapping[str, Subscription],
        flow: FlowController,
        dispatcher: Dispatcher,
        reporter: Reporter,
        settings: WorkerSettings,
        metrics: Metrics,
        clock: Clock,
        jitter: Jitter,
        stop_event: threading.Event,
        on_fatal: Callable[[BaseException], None],
        *,
        async_response_timeout: Optional[float],
        name: str = "camunda-ext-poller",
        every: Optional[float] = None,
        backlog: Optional[Backlog] = None,
        on_backlog_only: bool = False,
    ) -> None:
        self._client = client
        self._subscriptions = subscriptions
        self._topics = [s.fetch for s in subscriptions.values()]
        self._flow = flow
        self._dispatcher = dispatcher
        self._reporter = reporter
        self._settings = settings
        self._metrics = metrics
        self._clock = clock
        self._on_fatal = on_fatal
        self._async_response_timeout = async_response_timeout
        self._every = every
        self._backlog = backlog
        self._on_backlog_only = on_backlog_only
        super().__init__(name, stop_event, Backoff(settings.backoff_base, settings.backoff_cap), jitter)

    def fetch(
        self, max_tasks: int, topics: Optional[Collection[str]] = None
    ) -> Tuple[List[ExternalTask], float]:
        """Fetch and lock up to ``max_tasks`` tasks (slots the caller reserved); no dispatch.

        Args:
            max_tasks: Slots reserved for the answer.
            topics: Only these registered topics (a CDC wake-up); all when None.

        Tasks of the answer that do not decode are reported as failed here, and
        left out.

        Returns:
            The tasks, and a monotonic time no later than the engine locked them.

        Raises:
            CamundaError: The fetch failed.
        """
        fetch = self._topics if topics is None else [t for t in self._topics if t.topic_name in topics]
        sent = self._clock.monotonic()
        undecodable: List[UndecodableTask] = []
        try:
            tasks = self._client.fetch_and_lock(
                fetch,
                max_tasks=max_tasks,
                use_priority=self._settings.use_priority,
                sorting=self._settings.sorting,
                async_response_timeout=self._async_response_timeout,
            )
        except UndecodableTasksError as error:
            tasks, undecodable = error.tasks, error.undecodable
        locked_at = sent
        if self._async_response_timeout:
            # A parked long poll locks its tasks when it answers, up to the long-poll
            # time after it was sent. Counting the lock from the send would have the
            # leaser extend at once the lock of every task that came late in a poll,
            # racing its handler's complete (a 404, or an OptimisticLocking 500 for the
            # complete): on an engine cluster, where only tasks created on the poll's
            # own node wake it, that was 35 extensions per 800 tasks.
            locked_at = max(sent, self._clock.monotonic() - _ANSWER_MARGIN)
        # Only now: the reports take time, which must not count as the good tasks' lock age.
        for item in undecodable:
            self._fail_undecodable(item, locked_at)
        return tasks, locked_at

    def _fail_undecodable(self, item: UndecodableTask, locked_at: float) -> None:
        """Report a task that did not decode as failed, counting its retries down as a handler's failure would.

        The engine locked it with the others: unreported, it would sit locked and
        unrun until its lock expired, then come back and fail to decode again, with
        no incident to show why.
        """
        if item.id is None:
            logger.warning(
                "Skipping a task of a fetchAndLock answer without a readable id (%s); "
                "the engine frees it when its lock expires",
                item.error,
            )
            return
        task = ExternalTask(item.id, topic_name=item.topic_name, retries=item.retries)
        subscription = self._subscriptions.get(item.topic_name or "")
        policy = self._settings.retry_policy
        retries = builders.next_retries(task, policy.retries)
        logger.warning(
            "Task %s (topic %s) did not decode (%s); reporting a failure with %d retries left",
            item.id,
            item.topic_name,
            item.error,
            retries,
        )
        message = "camunda_ext could not decode the task: %s" % item.error
        fields = {"retries": retries, "retry_timeout": policy.retry_timeout_for(task)}
        try:
            if subscription is None:
                # A topic not asked for: no lock duration known to retry the report within.
                self._reporter.handle_failure(task, message, **fields)
            else:
                self._reporter.handle_failure_of_fetched(
                    task, subscription.lock_duration, locked_at, message, **fields
                )
        except CamundaError:
            logger.warning(
                "The engine refused the failure of task %s (topic %s); it is fetched again when its lock expires",
                item.id,
                item.topic_name,
                exc_info=True,
            )

    def reserve(self, most: Optional[int] = None) -> int:
        """Reserve free slots (up to ``most``) for a fetch, waiting until one is free; 0 if closed."""
        if self._backlog is not None and self._backlog.is_set():
            # Under a backlog, a moment's wait lets one fetch serve several slots
            # that free up together: fewer, larger fetches cost the engine less.
            return self._flow.reserve(most, gather=self._flow.capacity // 2, linger=_BACKLOG_LINGER)
        return self._flow.reserve(most)

    def poll_once(self) -> float:
        """One round: reserve, fetch, dispatch.

        Returns:
            Seconds to wait before the next round.
        """
        reserved = self.reserve()
        if reserved == 0:
            return 0.0  # closed: the loop sees the stop event
        try:
            tasks, locked_at = self.fetch(reserved)
        except FATAL_FETCH_ERRORS as error:
            self._flow.release(reserved)
            self.fail_for_good(error)
            return 0.0
        except CamundaError as error:
            self._flow.release(reserved)
            return self._back_off(error)
        except Exception:
            # Not ours to handle (the loop logs it), but the slots must not leak.
            self._flow.release(reserved)
            raise
        self._backoff = self._backoff.reset()
        self.dispatch(tasks, reserved, locked_at)
        if self._every is not None:
            return self._every
        return 0.0 if tasks else self._settings.poll_interval

    def dispatch(self, tasks: List[ExternalTask], reserved: int, locked_at: float) -> None:
        """Hand fetched tasks to handlers; give back the slots they do not use.

        A full answer sets ``backlog`` (more tasks are likely waiting), a short one clears it.
        """
        if self._backlog is not None:
            if len(tasks) >= reserved:
                self._backlog.set()
            else:
                self._backlog.clear()
        self._flow.release(max(reserved - len(tasks), 0))
        for index, task in enumerate(tasks):
            subscription = self._subscriptions.get(task.topic_name or "")
            if self._stop_event.is_set() or subscription is None or index >= reserved:
                # Stopping, a topic we did not ask for, or more tasks than asked for.
                self._reporter.unlock(task, "not run: the worker is stopping or cannot take it")
                if index < reserved:
                    self._flow.release(1)
                continue
            if not self._dispatcher.dispatch(task, subscription, self._flow.release, locked_at):
                logger.debug("Task %s (topic %s) already runs here; not run twice", task.id, task.topic_name)
                self._flow.release(1)
        for topic, count in collections.Counter(task.topic_name or "" for task in tasks).items():
            self._metrics.fetched(topic, count)

    def fail_for_good(self, error: BaseException) -> None:
        """Stop the worker because of ``error``; this source ends at once."""
        logger.error("fetchAndLock failed for good (%s); stopping the worker", error)
        self._failed.set()
        self._on_fatal(error)

    def run_round(self) -> float:
        return self.poll_once()

    def _ready(self) -> bool:
        if self._on_backlog_only and self._backlog is not None:
            return self._backlog.wait(GATE_TICK)  # no backlog: no request
        return True

    def _back_off(self, error: BaseException) -> float:
        delay = self._next_delay()
        # A poll cut short while stopping (the engine shutting down) is expected.
        log = logger.debug if self._stop_event.is_set() else logger.warning
        log(
            "fetchAndLock failed (%s); retrying in %.1f s",
            error,
            delay,
            exc_info=not isinstance(error, CamundaError),
        )
        return delay

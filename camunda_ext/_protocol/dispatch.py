"""Runs handlers on the executor and turns whatever they do into exactly one outcome."""

from __future__ import annotations

import concurrent.futures
import functools
import logging
import threading
import traceback
from typing import Any, Callable, Dict, List, Mapping, Optional, Set, Tuple

from camunda_ext import builders
from camunda_ext._protocol.clock import Clock
from camunda_ext._protocol.leaser import Leaser
from camunda_ext._protocol.reporter import Reporter
from camunda_ext.errors import BpmnError, CamundaError
from camunda_ext.metrics import Metrics
from camunda_ext.models import ExternalTask
from camunda_ext.settings import RetryPolicy, Subscription

logger = logging.getLogger(__name__)

#: Message of the failure reported for a handler that returned without an outcome.
UNRESOLVED_MESSAGE = "handler returned without completing or failing the task"


class TaskAlreadyResolvedError(CamundaError):
    """A handler tried to report a second outcome for the same task."""


class TaskOutcome:
    """The :class:`~camunda_ext.builders.Reporter` a handler's builders send through.

    It binds the worker's reporter to one task and records that an outcome was
    sent, so the dispatcher knows whether the handler resolved its task. Used by
    one handler thread at a time.
    """

    def __init__(self, reporter: Reporter, task: ExternalTask) -> None:
        self._reporter = reporter
        self._task = task
        self.resolved = False

    def _resolve(self) -> None:
        if self.resolved:
            raise TaskAlreadyResolvedError("task %s already has an outcome" % self._task.id)

    def complete(
        self,
        task_id: str,
        variables: Optional[Mapping[str, Any]] = None,
        local_variables: Optional[Mapping[str, Any]] = None,
    ) -> None:
        self._resolve()
        self._reporter.complete(self._task, variables, local_variables)
        self.resolved = True

    def handle_failure(self, task_id: str, error_message: Optional[str], **fields: Any) -> None:
        self._resolve()
        self._reporter.handle_failure(self._task, error_message, **fields)
        self.resolved = True

    def handle_bpmn_error(self, task_id: str, error_code: str, **fields: Any) -> None:
        self._resolve()
        self._reporter.handle_bpmn_error(self._task, error_code, **fields)
        self.resolved = True

    def extend_lock(self, task_id: str, new_duration: int) -> None:
        self._reporter.extend_lock(self._task, new_duration)


class Dispatcher:
    """Runs handlers on a ``ThreadPoolExecutor`` (threads ``camunda-ext-handler-N``).

    Each handler call is wrapped once: a :class:`~camunda_ext.errors.BpmnError`
    becomes a BPMN error (or a failure when the BPMN error cannot be reported),
    any other exception, ``SystemExit`` and ``KeyboardInterrupt`` included, a
    failure with the traceback in ``errorDetails``, and a handler that returns
    without an outcome a failure too (so the task never sits locked until expiry
    unnoticed). A failure the engine refuses unlocks the task. Whatever
    happens, the task's slot is given back and the leaser forgets it.

    Thread-safe.

    Args:
        max_workers: Handler threads.
        reporter: Sends outcomes.
        leaser: Tracks locks; told when a handler ends.
        retry_policy: Retries and retry timeouts of failures.
        metrics: Receives handler events.
        clock: Monotonic time.
    """

    def __init__(
        self,
        max_workers: int,
        reporter: Reporter,
        leaser: Leaser,
        retry_policy: RetryPolicy,
        metrics: Metrics,
        clock: Clock,
    ) -> None:
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix="camunda-ext-handler"
        )
        self._reporter = reporter
        self._leaser = leaser
        self._policy = retry_policy
        self._metrics = metrics
        self._clock = clock
        # Guards _pending (futures submitted and not done, with their task) and
        # _shut_down, so that a task is either in the snapshot shutdown() waits
        # for or refused; never submitted unseen. Never held during HTTP.
        self._lock = threading.Lock()
        self._pending: Dict[concurrent.futures.Future[None], Optional[ExternalTask]] = {}
        self._shut_down = False
        # Ids of the tasks queued or running here, whichever source brought them, so
        # that one task never runs twice at once in this process. Guarded by _lock.
        self._claimed: Set[str] = set()
        # Tasks fetched (so locked for this worker) while a claim holder that was not
        # running them held their claim, e.g. a lock-mode event about to lock the task
        # by id: each waits, holding its slot, for the holder to let go (see unclaim).
        # Guarded by _lock.
        self._waiting: Dict[str, Tuple[ExternalTask, Subscription, Callable[[], None], float]] = {}

    def claim(self, task_id: str) -> bool:
        """Mark a task as running here; False if it already is."""
        with self._lock:
            if task_id in self._claimed:
                return False
            self._claimed.add(task_id)
            return True

    def claimed(self, task_id: str) -> bool:
        """Whether the task is queued or running here."""
        with self._lock:
            return task_id in self._claimed

    def unclaim(self, task_id: str, *, ran: bool) -> None:
        """The claim holder is done with the task; ``ran``: its handler ran here.

        A copy of the task fetched meanwhile runs now if the holder did not run it
        (the copy's lock is the only one): otherwise the task would stay locked,
        with nobody working on it, until the lock expired. If the holder ran it,
        the copy is stale and dropped (its slot given back), and not unlocked:
        after a failure with a retry timeout the task's lock is that timeout, and
        an unlock would run the retry at once.
        """
        with self._lock:
            self._claimed.discard(task_id)
            waiting = self._waiting.pop(task_id, None)
        if waiting is None:
            return
        task, subscription, on_done, locked_at = waiting
        if ran:
            logger.debug("Task %s was fetched again while it ran here; dropping that copy", task_id)
            on_done()
        elif not self.dispatch(task, subscription, on_done, locked_at):
            on_done()

    def dispatch(
        self, task: ExternalTask, subscription: Subscription, on_done: Callable[[], None], locked_at: float
    ) -> bool:
        """Lease ``task`` (locked at monotonic ``locked_at``) and run its handler; ``on_done`` runs after it.

        A task already claimed here does not run twice. If its handler runs, the new
        lock only renews the lease of that run. If the claim holder has not started
        it (a lock-mode event between reading the task and locking it, whose lock
        the fetch just won), this fetched task waits for the holder: see
        :meth:`unclaim`.

        Returns:
            False, and nothing runs (``on_done`` is not called), if the task's
            handler already runs here.
        """
        if not self.claim(task.id):
            if self._leaser.renewed(task.id, subscription.lock_duration, locked_at):
                return False
            with self._lock:
                if task.id in self._claimed:
                    self._waiting[task.id] = (task, subscription, on_done, locked_at)
                    return True
            # The holder let go in the meantime: dispatch as usual.
            return self.dispatch(task, subscription, on_done, locked_at)
        self._leaser.add(task.id, subscription.topic, subscription.lock_duration, locked_at)
        self.submit(
            functools.partial(self._run_claimed, task, subscription),
            on_done=on_done,
            on_cancel=functools.partial(self._hand_back, task),
            task=task,
        )
        return True

    def _run_claimed(self, task: ExternalTask, subscription: Subscription) -> None:
        try:
            self.run(task, subscription)
        finally:
            self.unclaim(task.id, ran=True)

    def submit(
        self,
        job: Callable[[], None],
        *,
        on_done: Callable[[], None],
        on_cancel: Callable[[], None],
        task: Optional[ExternalTask] = None,
    ) -> None:
        """Run ``job`` on a handler thread.

        Args:
            job: The work; it must not raise (use :meth:`run` for handlers).
            on_done: Runs after the job in any case (gives the slot back).
            on_cancel: Runs instead of the job when the worker stops before it starts.
            task: The task the job runs, when already known.
        """
        with self._lock:
            future = None
            if not self._shut_down:
                try:
                    future = self._executor.submit(job)
                except RuntimeError:
                    # The interpreter is exiting: concurrent.futures takes no new work
                    # (it joins its threads before atexit callbacks, worker.stop included).
                    future = None
                else:
                    self._pending[future] = task
                    self._metrics.in_flight(len(self._pending))
        if future is None:
            # The worker stopped (or the interpreter exits) while this job was being
            # prepared: never run it.
            on_cancel()
            on_done()
            return
        future.add_done_callback(functools.partial(self._done, on_done, on_cancel))

    def _done(
        self,
        on_done: Callable[[], None],
        on_cancel: Callable[[], None],
        future: concurrent.futures.Future[None],
    ) -> None:
        with self._lock:
            self._pending.pop(future, None)
            in_flight = len(self._pending)
        self._metrics.in_flight(in_flight)
        if future.cancelled():
            on_cancel()
        elif future.exception() is not None:
            # Jobs must not raise (run() never does): this is a bug, and the
            # executor would otherwise keep it on a future nobody reads.
            logger.error(
                "A job on a handler thread raised; its task is left to its lock's expiry",
                exc_info=future.exception(),
            )
        on_done()

    def _hand_back(self, task: ExternalTask) -> None:
        self._leaser.remove(task.id)
        self.unclaim(task.id, ran=False)
        self._reporter.unlock(task, "the worker stopped before its handler ran")

    def run(self, task: ExternalTask, subscription: Subscription) -> None:
        """Run the handler for ``task`` on this thread and report its outcome; never raises."""
        outcome = TaskOutcome(self._reporter, task)
        complete = functools.partial(builders.complete, outcome, task)
        fail = functools.partial(self._fail_builder, outcome, task)
        topic = subscription.topic
        started = self._clock.monotonic()
        try:
            try:
                subscription.handler(task, complete, fail)
            except BaseException as error:
                # SystemExit and KeyboardInterrupt too, and they are not re-raised.
                # Signals reach only the main thread, so here they come from the
                # handler's own code (a script's sys.exit()): a fault of this task,
                # not a request to stop the worker (that is stop() or run()'s signal
                # handling). Re-raised, the executor would keep them on a future
                # nobody reads and the outcome would be lost, the task locked until
                # its lock expired. Swallowed after the report, this thread stays
                # free for the next task.
                self._report_error(task, topic, outcome, fail, error)
            else:
                if not outcome.resolved:
                    self._report_error(task, topic, outcome, fail, None)
        finally:
            self._metrics.handler_seconds(topic, self._clock.monotonic() - started)
            self._leaser.remove(task.id)

    def _fail_builder(
        self, outcome: TaskOutcome, task: ExternalTask, **presets: Any
    ) -> builders.FailureBuilder:
        """``fail(...)`` of a handler: the retry policy is worked out only when a handler fails."""
        return builders.fail(
            outcome,
            task,
            default_retries=self._policy.retries,
            default_retry_timeout=self._policy.retry_timeout_for(task),
            **presets,
        )

    def _report_error(
        self,
        task: ExternalTask,
        topic: str,
        outcome: TaskOutcome,
        fail: Callable[..., builders.FailureBuilder],
        error: Optional[BaseException],
    ) -> None:
        """Report what a handler left: a BPMN error, a failure, or no outcome at all."""
        if outcome.resolved:
            logger.error(
                "Handler of task %s (topic %s) raised after reporting its outcome; ignored",
                task.id,
                topic,
                exc_info=error,
            )
            return
        details: Optional[str]
        if isinstance(error, BpmnError):
            logger.info("Handler of task %s (topic %s) raised BPMN error %s", task.id, topic, error.code)
            try:
                outcome.handle_bpmn_error(
                    task.id, error.code, error_message=error.message, variables=error.variables or None
                )
                return
            except CamundaError as refused:
                # Its variables have no Camunda type (they are typed only now), or the
                # engine refused it for good (e.g. 500 for an uncaught error code with
                # enableExceptionsAfterUnhandledBpmnError). Unlocking would run the
                # handler again at once, forever: report a failure instead, so that
                # retries count down to an incident.
                reason, details = describe(refused)
                message = "BPMN error %s could not be reported: %s" % (error.code, reason)
                logger.warning(
                    "The BPMN error %s of task %s (topic %s) could not be reported; reporting a failure "
                    "instead",
                    error.code,
                    task.id,
                    topic,
                    exc_info=refused,
                )
        elif error is None:
            logger.warning(
                "Handler of task %s (topic %s) returned without an outcome; reporting a failure",
                task.id,
                topic,
            )
            message, details = UNRESOLVED_MESSAGE, None
        else:
            message, details = describe(error)
            logger.warning(
                "Handler of task %s (topic %s) failed: %s", task.id, topic, message, exc_info=error
            )
        try:
            fail(message=message, details=details).execute()
        except CamundaError:
            logger.exception(
                "The engine refused the outcome of task %s (topic %s); unlocking it", task.id, topic
            )
            self._reporter.unlock(task, "its outcome was refused")

    def shutdown(self, timeout: Optional[float]) -> Tuple[List[ExternalTask], List[ExternalTask]]:
        """Cancel handlers not started and wait for running ones.

        Args:
            timeout: Seconds to wait for running handlers; None waits for all.

        Returns:
            ``(finished, still_running)`` tasks.
        """
        with self._lock:
            self._shut_down = True
            pending = dict(self._pending)
        # Handlers not yet started are cancelled; their done callbacks unlock them.
        self._executor.shutdown(wait=False, cancel_futures=True)
        # A future cancelled here never counts as done for wait() (no thread will
        # notify it), so waiting for it would never end: leave those out.
        cancelled = [task for future, task in pending.items() if future.cancelled()]
        running = {future: task for future, task in pending.items() if not future.cancelled()}
        done, not_done = concurrent.futures.wait(running, timeout=timeout)
        finished = cancelled + [running[f] for f in done]
        still_running = [running[f] for f in not_done]
        return [t for t in finished if t is not None], [t for t in still_running if t is not None]


def describe(error: BaseException) -> Tuple[str, str]:
    """``(errorMessage, errorDetails)`` for an exception: ``"Type: text"`` and the traceback."""
    text = str(error)
    message = "%s: %s" % (type(error).__name__, text) if text else type(error).__name__
    details = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    return message, details

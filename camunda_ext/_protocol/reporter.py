"""Sends a task's outcome through transient faults, and unlocks it when that fails."""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Mapping, Optional

from camunda_ext._protocol.backoff import Backoff
from camunda_ext._protocol.clock import Clock, Jitter
from camunda_ext._protocol.leaser import Leaser
from camunda_ext.client import Client
from camunda_ext.errors import (
    CamundaConnectionError,
    CamundaError,
    EngineError,
    LockConflictError,
    OptimisticLockingError,
    TaskNotFoundError,
)
from camunda_ext.metrics import Metrics
from camunda_ext.models import ExternalTask

logger = logging.getLogger(__name__)

#: Statuses of answers from gateways and overloaded servers: the request may succeed later.
_TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})

#: The engine rolled back or nothing was answered: sending the same report again is safe.
_ALWAYS_TRANSIENT = (OptimisticLockingError, CamundaConnectionError)
#: Engine error code of a database deadlock: the transaction was rolled back.
_DEADLOCK_CODE = 10000

#: The task is not this worker's any more: a logged outcome, not an error.
_LOST = (TaskNotFoundError, LockConflictError)


def is_transient(error: CamundaError) -> bool:
    """Whether the same request may succeed if sent again later."""
    if isinstance(error, _ALWAYS_TRANSIENT):
        return True
    return isinstance(error, EngineError) and (
        error.status_code in _TRANSIENT_STATUSES
        or (error.status_code >= 500 and error.type is None)
        or error.code == _DEADLOCK_CODE
    )


class Reporter:
    """Sends outcomes (complete, failure, BPMN error) for the worker.

    Transient faults (optimistic locking, database deadlocks, connection errors,
    gateway errors) are
    retried with jittered back-off while the worker still holds the lock; when
    the attempts run out the task is unlocked, so it is fetched again at once
    instead of waiting for its lock to expire. Once the lock is no longer held
    the report is dropped, not unlocked (the task may be another worker's by
    then). A task that is gone or locked by another worker is logged and
    counted as lost. Any other error (the engine
    refused the report itself) is raised to the caller.

    Thread-safe: handler threads call it concurrently.

    Args:
        client: Sends the requests.
        leaser: Knows whether the lock is still held.
        metrics: Receives outcome events.
        clock: Monotonic time.
        jitter: Randomness of the back-off.
        attempts: Attempts per report.
        backoff: The back-off between attempts.
        sleep: Waits between attempts (injectable for tests).
    """

    def __init__(
        self,
        client: Client,
        leaser: Leaser,
        metrics: Metrics,
        clock: Clock,
        jitter: Jitter,
        *,
        attempts: int,
        backoff: Backoff,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self._leaser = leaser
        self._metrics = metrics
        self._clock = clock
        self._jitter = jitter
        self._attempts = attempts
        self._backoff = backoff
        self._sleep = sleep

    def complete(
        self,
        task: ExternalTask,
        variables: Optional[Mapping[str, Any]] = None,
        local_variables: Optional[Mapping[str, Any]] = None,
    ) -> None:
        """Complete the task (see the class docstring for the retry rules)."""
        if self._send(task, "complete", lambda: self.client.complete(task.id, variables, local_variables)):
            self._metrics.completed(task.topic_name or "")

    def handle_failure(self, task: ExternalTask, error_message: Optional[str], **fields: Any) -> None:
        """Report a failure; ``fields`` as :meth:`Client.handle_failure` takes them."""
        if self._send(task, "failure", lambda: self.client.handle_failure(task.id, error_message, **fields)):
            self._metrics.failed(task.topic_name or "")

    def handle_failure_of_fetched(
        self,
        task: ExternalTask,
        lock_duration_ms: int,
        locked_at: float,
        error_message: Optional[str],
        **fields: Any,
    ) -> None:
        """Report the failure of a fetched task that no handler runs (e.g. it does not decode).

        The task is leased for the report, as a running one is: so transient faults
        are retried while its lock (taken at monotonic ``locked_at``) lasts.
        """
        self._leaser.add(task.id, task.topic_name or "", lock_duration_ms, locked_at)
        try:
            self.handle_failure(task, error_message, **fields)
        finally:
            self._leaser.remove(task.id)

    def handle_bpmn_error(self, task: ExternalTask, error_code: str, **fields: Any) -> None:
        """Report a BPMN error; ``fields`` as :meth:`Client.handle_bpmn_error` takes them."""
        if self._send(
            task, "BPMN error", lambda: self.client.handle_bpmn_error(task.id, error_code, **fields)
        ):
            self._metrics.bpmn_error(task.topic_name or "")

    def extend_lock(self, task: ExternalTask, new_duration: int) -> None:
        """Extend the lock at a handler's request and tell the leaser."""
        requested_at = self._clock.monotonic()
        self.client.extend_lock(task.id, new_duration)
        self._leaser.renewed(task.id, new_duration, requested_at)

    def unlock(self, task: ExternalTask, reason: str) -> None:
        """Unlock a task on a best-effort basis, logging why."""
        topic = task.topic_name or ""
        try:
            self.client.unlock(task.id)
        except _LOST:
            logger.info("Task %s (topic %s) was already gone when unlocking it (%s)", task.id, topic, reason)
            return
        except CamundaError:
            logger.warning(
                "Unlocking task %s (topic %s) failed (%s); it becomes available when its lock expires",
                task.id,
                topic,
                reason,
                exc_info=True,
            )
            return
        logger.info("Unlocked task %s (topic %s): %s", task.id, topic, reason)
        self._metrics.unlocked(topic)

    def _send(self, task: ExternalTask, what: str, call: Callable[[], None]) -> bool:
        """Send one report. True if the engine took it; False if lost or unlocked."""
        topic = task.topic_name or ""
        backoff = self._backoff
        for attempt in range(1, self._attempts + 1):
            try:
                call()
                return True
            except _LOST as exc:
                if attempt > 1 and isinstance(exc, TaskNotFoundError):
                    # An earlier attempt whose answer was lost in transit may have succeeded.
                    logger.info(
                        "Task %s (topic %s) was gone when its %s was sent again; an earlier attempt "
                        "most likely went through",
                        task.id,
                        topic,
                        what,
                    )
                else:
                    logger.warning(
                        "The %s of task %s (topic %s) was refused: the task is no longer this worker's (%s)",
                        what,
                        task.id,
                        topic,
                        exc,
                    )
                self._metrics.lost(topic)
                return False
            except CamundaError as exc:
                if not is_transient(exc):
                    raise
                if not self._leaser.holds(task.id):
                    # Unlock takes no worker id: unlocking now could free the task from
                    # the worker that fetched it after our lock ran out.
                    logger.warning(
                        "The %s of task %s (topic %s) failed (%s) and its lock is no longer "
                        "this worker's; it is not retried and runs again once fetched anew",
                        what,
                        task.id,
                        topic,
                        exc,
                    )
                    self._metrics.lost(topic)
                    return False
                if attempt == self._attempts:
                    logger.warning(
                        "Giving up the %s of task %s (topic %s) after %d attempts (%s); unlocking it "
                        "so it runs again",
                        what,
                        task.id,
                        topic,
                        attempt,
                        exc,
                    )
                    break
                self._metrics.report_retried(topic, type(exc).__name__)
                backoff = backoff.increment()
                delay = backoff.delay(self._jitter)
                logger.debug(
                    "The %s of task %s (topic %s) hit %s; retrying in %.2f s",
                    what,
                    task.id,
                    topic,
                    type(exc).__name__,
                    delay,
                )
                self._sleep(delay)
        self.unlock(task, "its %s could not be delivered" % what)
        return False

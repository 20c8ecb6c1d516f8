"""Frozen, keyword-only settings of the workers and their topic subscriptions.

Units: seconds (float) for intervals and timeouts, milliseconds (int) for lock
durations and retry timeouts, as on the wire.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence, Tuple

import attrs

from camunda_ext.builders import DEFAULT_RETRIES
from camunda_ext.errors import ConfigurationError
from camunda_ext.models import ExternalTask, FetchTopic

__all__ = ["Handler", "RetryPolicy", "Subscription", "WorkerSettings"]

#: ``handler(task, complete, fail)``; see :class:`camunda_ext.Worker`.
Handler = Callable[..., Any]


def _positive(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and value <= 0:
        raise ConfigurationError("%s must be positive, got %r" % (attribute.name, value))


def _not_negative(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and value < 0:
        raise ConfigurationError("%s must not be negative, got %r" % (attribute.name, value))


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """What a failure reports when the handler raised (or ``fail()`` left them unset).

    Attributes:
        retries: Retries sent on a task's first failure; later failures count
            down from the task's ``retries``.
        retry_timeout: Milliseconds before a failed task may be fetched again, on
            its first failure.
        backoff_factor: Each further failure multiplies the timeout by this
            (1 = fixed timeout, 2 = doubling).
        max_retry_timeout: Upper bound of the timeout in milliseconds.
    """

    retries: int = attrs.field(default=DEFAULT_RETRIES, validator=_not_negative)
    retry_timeout: int = attrs.field(default=0, validator=_not_negative)
    backoff_factor: float = attrs.field(default=1.0, validator=_positive)
    max_retry_timeout: int = attrs.field(default=3_600_000, validator=_not_negative)

    def retry_timeout_for(self, task: ExternalTask) -> int:
        """The retry timeout in milliseconds for this task's next failure."""
        # The first failure left ``retries`` at self.retries, so a task that still
        # has them has failed once already.
        failures_so_far = 0 if task.retries is None else max(self.retries - task.retries + 1, 0)
        try:
            timeout = self.retry_timeout * self.backoff_factor ** min(failures_so_far, 64)
        except OverflowError:
            timeout = float("inf")
        return int(min(timeout, self.max_retry_timeout))


@attrs.frozen(kw_only=True)
class WorkerSettings:
    """Settings shared by :class:`~camunda_ext.Worker` and :class:`~camunda_ext.SequinWorker`.

    Attributes:
        max_tasks: Handler threads; also the most tasks held at once.
        poll_interval: Seconds to pause after an empty fetch answer.
        async_response_timeout: Long-poll time of fetchAndLock in seconds.
        use_priority: Ask the engine for high-priority tasks first.
        sorting: ``(sort_by, sort_order)`` pairs for fetchAndLock.
        retry_policy: Retries and retry timeouts of failures.
        backoff_base: First pause in seconds after an engine or network error.
        backoff_cap: Longest such pause in seconds.
        report_attempts: Attempts to send an outcome through transient errors
            before the task is unlocked.
        report_backoff_base: First pause in seconds between those attempts.
        report_backoff_cap: Longest such pause in seconds.
        fetch_concurrency: Fetches that may run at once while fetches come back
            full; all but one run only then.
        extend_locks: Extend the locks of handlers that run long.
        max_lock_duration: Milliseconds after which a handler's lock is no longer
            extended (a warning is logged); None extends for as long as it runs.
    """

    max_tasks: int = attrs.field(default=10, validator=_positive)
    poll_interval: float = attrs.field(default=0.5, validator=_not_negative)
    async_response_timeout: Optional[float] = attrs.field(default=30.0, validator=_not_negative)
    use_priority: Optional[bool] = None
    sorting: Optional[Sequence[Tuple[str, str]]] = None
    retry_policy: RetryPolicy = attrs.field(factory=RetryPolicy)
    backoff_base: float = attrs.field(default=0.5, validator=_positive)
    backoff_cap: float = attrs.field(default=30.0, validator=_positive)
    report_attempts: int = attrs.field(default=8, validator=_positive)
    fetch_concurrency: int = attrs.field(default=2, validator=_positive)
    report_backoff_base: float = attrs.field(default=0.05, validator=_positive)
    report_backoff_cap: float = attrs.field(default=2.0, validator=_positive)
    extend_locks: bool = True
    max_lock_duration: Optional[int] = attrs.field(default=3_600_000, validator=_positive)

    def __attrs_post_init__(self) -> None:
        if self.async_response_timeout is not None and self.async_response_timeout > 1800:
            raise ConfigurationError("async_response_timeout is at most 1800 seconds (engine limit)")


@attrs.frozen(kw_only=True)
class Subscription:
    """A registered topic: what to fetch and which handler runs it."""

    fetch: FetchTopic
    handler: Handler

    @property
    def topic(self) -> str:
        return self.fetch.topic_name

    @property
    def lock_duration(self) -> int:
        """Lock duration in milliseconds."""
        return self.fetch.lock_duration

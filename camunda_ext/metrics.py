"""The metrics hook: one object the worker calls at each event of a task's life.

Pass an implementation of :class:`Metrics` as ``Worker(..., metrics=...)`` to
feed Prometheus, StatsD or logs. The default, :class:`NullMetrics`, does
nothing. Calls come from the worker's threads, so an implementation must be
thread-safe and quick (no I/O on the caller's thread).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from typing import Any, Dict, List, Protocol, Set

__all__ = ["CountingMetrics", "GuardedMetrics", "Metrics", "NullMetrics"]

logger = logging.getLogger(__name__)


class Metrics(Protocol):
    """Receives the worker's events. Every method must be thread-safe and fast."""

    def fetched(self, topic: str, count: int) -> None:
        """``count`` tasks of ``topic`` were locked for this worker."""

    def completed(self, topic: str) -> None:
        """A task was completed."""

    def failed(self, topic: str) -> None:
        """A failure was reported for a task."""

    def bpmn_error(self, topic: str) -> None:
        """A BPMN error was reported for a task."""

    def lost(self, topic: str) -> None:
        """A task was gone or locked by another worker when its outcome was reported."""

    def unlocked(self, topic: str) -> None:
        """A task was unlocked (not run at stop, or reporting gave up)."""

    def handler_seconds(self, topic: str, seconds: float) -> None:
        """A handler ran for ``seconds``."""

    def in_flight(self, count: int) -> None:
        """``count`` handlers are running now."""

    def lock_extended(self, topic: str) -> None:
        """A running task's lock was extended."""

    def report_retried(self, topic: str, reason: str) -> None:
        """A report was sent again after ``reason`` (an error class name)."""


class NullMetrics:
    """Ignores every event. Thread-safe."""

    def fetched(self, topic: str, count: int) -> None:
        pass

    def completed(self, topic: str) -> None:
        pass

    def failed(self, topic: str) -> None:
        pass

    def bpmn_error(self, topic: str) -> None:
        pass

    def lost(self, topic: str) -> None:
        pass

    def unlocked(self, topic: str) -> None:
        pass

    def handler_seconds(self, topic: str, seconds: float) -> None:
        pass

    def in_flight(self, count: int) -> None:
        pass

    def lock_extended(self, topic: str) -> None:
        pass

    def report_retried(self, topic: str, reason: str) -> None:
        pass


class CountingMetrics:
    """Counts events in memory, for scripts, demos and tests. Thread-safe.

    Attributes:
        counts: Event name -> number of occurrences (``fetched`` counts tasks).
        handler_durations: Every handler's run time in seconds.
    """

    def __init__(self) -> None:
        # Guards counts and handler_durations.
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.handler_durations: List[float] = []
        self.peak_in_flight = 0

    def _count(self, event: str, amount: int = 1) -> None:
        with self._lock:
            self.counts[event] += amount

    def snapshot(self) -> Dict[str, int]:
        """A copy of the counts."""
        with self._lock:
            return dict(self.counts)

    def fetched(self, topic: str, count: int) -> None:
        self._count("fetched", count)

    def completed(self, topic: str) -> None:
        self._count("completed")

    def failed(self, topic: str) -> None:
        self._count("failed")

    def bpmn_error(self, topic: str) -> None:
        self._count("bpmn_error")

    def lost(self, topic: str) -> None:
        self._count("lost")

    def unlocked(self, topic: str) -> None:
        self._count("unlocked")

    def handler_seconds(self, topic: str, seconds: float) -> None:
        with self._lock:
            self.handler_durations.append(seconds)

    def in_flight(self, count: int) -> None:
        with self._lock:
            self.peak_in_flight = max(self.peak_in_flight, count)

    def lock_extended(self, topic: str) -> None:
        self._count("lock_extended")

    def report_retried(self, topic: str, reason: str) -> None:
        self._count("report_retried")


class GuardedMetrics:
    """Passes events on to a user's hook, so that a hook that raises never costs a task.

    The first error of each event is logged with its traceback; later ones are
    dropped silently to keep logs readable. Thread-safe if the hook is.
    """

    def __init__(self, hook: Metrics) -> None:
        self._hook = hook
        # Guards _reported: events whose error was logged already.
        self._lock = threading.Lock()
        self._reported: Set[str] = set()

    def _call(self, event: str, *args: Any) -> None:
        try:
            getattr(self._hook, event)(*args)
        except Exception:
            with self._lock:
                first = event not in self._reported
                self._reported.add(event)
            if first:
                logger.warning(
                    "The metrics hook failed on %s; further failures of it are not logged",
                    event,
                    exc_info=True,
                )

    def fetched(self, topic: str, count: int) -> None:
        self._call("fetched", topic, count)

    def completed(self, topic: str) -> None:
        self._call("completed", topic)

    def failed(self, topic: str) -> None:
        self._call("failed", topic)

    def bpmn_error(self, topic: str) -> None:
        self._call("bpmn_error", topic)

    def lost(self, topic: str) -> None:
        self._call("lost", topic)

    def unlocked(self, topic: str) -> None:
        self._call("unlocked", topic)

    def handler_seconds(self, topic: str, seconds: float) -> None:
        self._call("handler_seconds", topic, seconds)

    def in_flight(self, count: int) -> None:
        self._call("in_flight", count)

    def lock_extended(self, topic: str) -> None:
        self._call("lock_extended", topic)

    def report_retried(self, topic: str, reason: str) -> None:
        self._call("report_retried", topic, reason)

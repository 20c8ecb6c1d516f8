"""Owns a worker's threads and runs the stop sequence."""

from __future__ import annotations

import logging
import threading
from typing import Callable, List, Optional, Protocol, Tuple

from camunda_ext._protocol.backoff import Backoff
from camunda_ext._protocol.clock import Clock, Jitter
from camunda_ext._protocol.dispatch import Dispatcher
from camunda_ext._protocol.flow_control import FlowController
from camunda_ext._protocol.leaser import Leaser
from camunda_ext._protocol.reporter import Reporter
from camunda_ext.client import Client
from camunda_ext.metrics import Metrics
from camunda_ext.models import ExternalTask
from camunda_ext.settings import WorkerSettings

logger = logging.getLogger(__name__)

_SHUTDOWN_THREAD = "camunda-ext-shutdown"


class Source(Protocol):
    """A loop that brings tasks in (the poller, the Sequin puller)."""

    def start(self) -> None:
        """Start its thread."""

    def join(self, timeout: Optional[float] = None) -> bool:
        """Wait for its thread; True if it ended."""


#: A source and the slot budget it fetches for.
SourceAndFlow = Tuple[Source, FlowController]


class Manager:
    """Builds and owns the leaser, reporter, dispatcher and sources of one worker.

    The stop sequence, run once whoever calls it first:

    1. Set the stop event and close every source's slot budget: intake stops,
       and tasks that still arrive are unlocked, never run.
    2. Cancel handlers not yet started (their tasks are unlocked) and wait for
       the running ones within the timeout. The leaser keeps their locks alive
       meanwhile.
    3. Stop the leaser, then unlock what still runs at the deadline.
    4. Close the HTTP session last, and mark the worker stopped; ``join``
       then re-raises a fatal error if one stopped the worker.

    A source parked in a long poll is not waited for: it unlocks whatever its
    poll brings back and ends.

    Thread-safe.
    """

    def __init__(
        self,
        client: Client,
        settings: WorkerSettings,
        metrics: Metrics,
        clock: Clock,
        jitter: Jitter,
    ) -> None:
        self.client = client
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.jitter = jitter
        # Signals every loop to stop; their waits on it are their sleeps.
        self.stop_event = threading.Event()
        self.leaser = Leaser(
            client,
            metrics,
            clock,
            jitter,
            extend=settings.extend_locks,
            max_lock_duration=(
                None if settings.max_lock_duration is None else settings.max_lock_duration / 1000.0
            ),
        )
        self.reporter = Reporter(
            client,
            self.leaser,
            metrics,
            clock,
            jitter,
            attempts=settings.report_attempts,
            backoff=Backoff(settings.report_backoff_base, settings.report_backoff_cap),
        )
        self.dispatcher: Optional[Dispatcher] = None
        self._sources: List[Source] = []
        self._flows: List[FlowController] = []
        # Guards _started and _closed; held only to flip them, never across the sequence.
        self._state_lock = threading.Lock()
        self._started = False
        self._closed = False
        # Set when the stop sequence has finished.
        self._stopped = threading.Event()
        self._fatal: Optional[BaseException] = None

    @property
    def running(self) -> bool:
        """Started and not yet stopped."""
        return self._started and not self._stopped.is_set()

    def open(self, build_sources: Callable[[Manager, Dispatcher], List[SourceAndFlow]]) -> None:
        """Start the threads.

        Args:
            build_sources: Called with this manager and the dispatcher; returns
                ``(source, flow_controller)`` pairs.

        Raises:
            RuntimeError: Already started.
        """
        with self._state_lock:
            if self._started or self._closed:
                # Started after stop(): the stop sequence already ran and could never run again.
                raise RuntimeError("a worker can be started once, and not after stop()")
            self._started = True
        self.dispatcher = Dispatcher(
            self.settings.max_tasks,
            self.reporter,
            self.leaser,
            self.settings.retry_policy,
            self.metrics,
            self.clock,
        )
        for source, flow in build_sources(self, self.dispatcher):
            self._sources.append(source)
            self._flows.append(flow)
        self.leaser.start()
        for source in self._sources:
            source.start()

    def fatal(self, error: BaseException) -> None:
        """Stop the worker because of ``error``, which ``join`` re-raises."""
        if self._fatal is None:
            self._fatal = error
        self.stop_in_background()

    def stop_in_background(self, timeout: Optional[float] = None) -> None:
        """Run the stop sequence on its own thread (safe from our own threads and signal handlers)."""
        threading.Thread(target=self.stop, args=(timeout,), name=_SHUTDOWN_THREAD, daemon=True).start()

    def stop(self, timeout: Optional[float] = None) -> None:
        """Run the stop sequence (once); later calls wait for it to finish.

        The sequence runs on its own thread (``camunda-ext-shutdown``), so that an
        interrupt of the caller's wait (Ctrl-C) cannot cut it short: the handlers
        still drain and what still runs is unlocked.

        Args:
            timeout: Seconds to wait for running handlers; None waits for all.
        """
        name = threading.current_thread().name
        if name.startswith("camunda-ext-") and name != _SHUTDOWN_THREAD:
            # One of our own threads (a handler) must not wait for itself.
            self.stop_in_background(timeout)
            return
        with self._state_lock:
            closed, self._closed = self._closed, True
        if not self._started:
            self._stopped.set()
            return
        if closed:
            self._stopped.wait(timeout)
            return
        if name == _SHUTDOWN_THREAD:
            self._stop_sequence(timeout)
            return
        threading.Thread(
            target=self._stop_sequence, args=(timeout,), name=_SHUTDOWN_THREAD, daemon=True
        ).start()
        self._stopped.wait()

    def _stop_sequence(self, timeout: Optional[float]) -> None:
        try:
            deadline = None if timeout is None else self.clock.monotonic() + timeout
            logger.info("Stopping the worker")
            self.stop_event.set()
            for flow in self._flows:
                flow.close()
            assert self.dispatcher is not None
            self.dispatcher.shutdown(self._remaining(deadline))
            self.leaser.stop(self._remaining(deadline))
            # What is still leased still runs (or was being locked): hand it back, if
            # the lock is still ours. Forgotten first, so that a report its handler
            # sends later is not retried on a lock given away, nor unlocked again.
            for task_id, topic in self.leaser.leased().items():
                held = self.leaser.holds(task_id)
                self.leaser.remove(task_id)
                if held:
                    self.reporter.unlock(
                        ExternalTask(task_id, topic_name=topic),
                        "its handler was still running when the worker stopped",
                    )
                else:
                    logger.info(
                        "Task %s (topic %s) still runs, but its lock is no longer this worker's: "
                        "not unlocked",
                        task_id,
                        topic,
                    )
            for source in self._sources:
                source.join(0)
            self.client.close()
            logger.info("Worker stopped")
        except Exception:
            # Whatever broke, the worker counts as stopped: join() and later stop() calls must not hang.
            logger.exception("The stop sequence failed")
        finally:
            self._stopped.set()

    def _remaining(self, deadline: Optional[float]) -> Optional[float]:
        return None if deadline is None else max(deadline - self.clock.monotonic(), 0.0)

    def join(self, timeout: Optional[float] = None) -> bool:
        """Wait until stopped; re-raise the fatal error if one stopped the worker.

        Returns:
            True if the worker has stopped.
        """
        stopped = self._stopped.wait(timeout)
        if stopped and self._fatal is not None:
            raise self._fatal
        return stopped

"""The thread that the poller and the Sequin puller each run: rounds until stopped."""

from __future__ import annotations

import abc
import logging
import threading
from typing import Optional

from camunda_ext._protocol.backoff import Backoff
from camunda_ext._protocol.clock import Jitter

logger = logging.getLogger(__name__)


class RoundLoop(abc.ABC):
    """Runs ``run_round()`` on one named daemon thread until the stop event or a fatal error.

    A round returns how long to wait before the next; the stop event's wait is
    that sleep, so a stop is noticed at once. A round that raises (a bug) is
    logged and backed off from: intake never ends because of one.

    Thread-safe: ``start``/``join`` from any thread.

    Args:
        name: The thread's name.
        stop_event: Set when the worker stops.
        backoff: Back-off of failed rounds (consecutive errors).
        jitter: Randomness of the back-off.
    """

    def __init__(self, name: str, stop_event: threading.Event, backoff: Backoff, jitter: Jitter) -> None:
        self._name = name
        self._stop_event = stop_event
        self._backoff = backoff
        self._jitter = jitter
        # Guards _thread for start/join.
        self._operational_lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        # Set on a fatal error: the loop ends even before the stop sequence (run on
        # another thread) sets the stop event, so it sends no further request.
        self._failed = threading.Event()

    @abc.abstractmethod
    def run_round(self) -> float:
        """One round; returns seconds to wait before the next."""

    def _ready(self) -> bool:
        """Whether to run a round now (a loop may wait here for a reason to)."""
        return True

    def _next_delay(self) -> float:
        """Count one more consecutive error and return the pause it calls for."""
        self._backoff = self._backoff.increment()
        return self._backoff.delay(self._jitter)

    def _run(self) -> None:
        while not self._stop_event.is_set() and not self._failed.is_set():
            if not self._ready():
                continue
            try:
                delay = self.run_round()
            except Exception:
                # A bug must not end intake for good: log it and keep going.
                logger.exception("A round of %s failed unexpectedly", self._name)
                delay = self._next_delay()
            if delay:
                self._stop_event.wait(delay)

    def start(self) -> None:
        """Start the thread."""
        with self._operational_lock:
            if self._thread is not None:
                raise RuntimeError("%s is already running" % self._name)
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def join(self, timeout: Optional[float] = None) -> bool:
        """Wait for the thread to end; True if it did."""
        with self._operational_lock:
            thread = self._thread
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        return not thread.is_alive()

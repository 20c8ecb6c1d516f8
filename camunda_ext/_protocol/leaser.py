"""Keeps the locks of running handlers alive: one thread, ``camunda-ext-leaser``."""

from __future__ import annotations

import logging
import threading
from typing import Dict, List, Optional, Tuple

import attrs

from camunda_ext._protocol.clock import Clock, Jitter
from camunda_ext.client import Client
from camunda_ext.errors import CamundaError, LockConflictError, TaskNotFoundError
from camunda_ext.metrics import Metrics

logger = logging.getLogger(__name__)

#: Longest sleep of the loop in seconds, so a stop or a clock jump is noticed soon.
_MAX_TICK = 5.0
#: Shortest sleep in seconds, so a failing extension does not spin.
_MIN_TICK = 0.05
#: Shortest wait in seconds for the answer to an extendLock, however little of the lock is left.
_MIN_ANSWER_WAIT = 1.0


@attrs.frozen
class Lease:
    """What the worker knows of one task's lock.

    Attributes:
        topic: The task's topic (for logs and metrics).
        lock_duration: Seconds each lock or extension lasts.
        expires_at: Monotonic time at which the lock expires, measured from a time
            no later than the engine took it (so never later than the engine's expiry).
        started_at: Monotonic time the lease began.
        extending: False once the leaser gave up on it.
    """

    topic: str
    lock_duration: float
    expires_at: float
    started_at: float
    extending: bool = True


class Leaser:
    """Tracks the lock of every task this worker holds and extends them before they expire.

    A lock is extended once less than half of its duration is left, by its full
    duration again, until ``max_lock_duration`` has passed since the lease began;
    then a warning is logged and the lock is left to expire. A task that turns
    out to be gone or locked by someone else is dropped.

    Thread-safe. ``add``/``remove`` are called from the poller and handler threads.

    Args:
        client: Sends ``extendLock``.
        metrics: Receives ``lock_extended``.
        clock: Monotonic time.
        jitter: Randomness for the tick.
        extend: Whether to extend locks at all (tracking happens either way).
        max_lock_duration: Seconds after which a lease is no longer extended, or None.
    """

    def __init__(
        self,
        client: Client,
        metrics: Metrics,
        clock: Clock,
        jitter: Jitter,
        *,
        extend: bool = True,
        max_lock_duration: Optional[float] = None,
    ) -> None:
        self._client = client
        self._metrics = metrics
        self._clock = clock
        self._jitter = jitter
        self._extend = extend
        self._max_lock_duration = max_lock_duration
        # Guards _leases. Never held during HTTP.
        self._leases_lock = threading.Lock()
        self._leases: Dict[str, Lease] = {}
        # Guards _thread for start/stop.
        self._operational_lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        # Set by stop(); its wait(timeout) is also the loop's sleep.
        self._stop_event = threading.Event()
        # Set when a lease is added, so a short lock is looked at before the next tick.
        self._wakeup = threading.Event()

    # ------------------------------------------------------------------ tracking

    def add(self, task_id: str, topic: str, lock_duration_ms: int, locked_at: float) -> None:
        """Start tracking a task locked at monotonic time ``locked_at``."""
        duration = lock_duration_ms / 1000.0
        with self._leases_lock:
            self._leases[task_id] = Lease(topic, duration, locked_at + duration, locked_at)
        self._wakeup.set()

    def remove(self, task_id: str) -> None:
        """Stop tracking a task (its handler ended)."""
        with self._leases_lock:
            self._leases.pop(task_id, None)

    def renewed(self, task_id: str, lock_duration_ms: int, locked_at: float) -> bool:
        """Record a lock set or extended elsewhere (``lock`` or a handler's ``extend_lock``).

        Returns:
            Whether the task is leased (a record was renewed).
        """
        with self._leases_lock:
            lease = self._leases.get(task_id)
            if lease is None:
                return False
            duration = lock_duration_ms / 1000.0
            self._leases[task_id] = attrs.evolve(
                lease, lock_duration=duration, expires_at=locked_at + duration
            )
            return True

    def holds(self, task_id: str) -> bool:
        """Whether this worker still holds the task's lock, as far as it knows."""
        with self._leases_lock:
            lease = self._leases.get(task_id)
        return lease is not None and self._clock.monotonic() < lease.expires_at

    def leased(self) -> Dict[str, str]:
        """Topic by task id of every task tracked now."""
        with self._leases_lock:
            return {task_id: lease.topic for task_id, lease in self._leases.items()}

    def __len__(self) -> int:
        with self._leases_lock:
            return len(self._leases)

    # ------------------------------------------------------------------ extending

    def maybe_extend(self) -> float:
        """Extend every lock that is due; return seconds until the next one is due."""
        now = self._clock.monotonic()
        due: List[Tuple[float, str]] = []
        next_due_at = float("inf")
        with self._leases_lock:
            for task_id, lease in self._leases.items():
                if not lease.extending:
                    continue
                if self._max_lock_duration is not None and now - lease.started_at >= self._max_lock_duration:
                    logger.warning(
                        "Task %s (topic %s) has run for %.0f s, past max_lock_duration: its lock "
                        "is no longer extended and expires in %.1f s",
                        task_id,
                        lease.topic,
                        now - lease.started_at,
                        max(lease.expires_at - now, 0),
                    )
                    self._leases[task_id] = attrs.evolve(lease, extending=False)
                    continue
                due_at = lease.expires_at - lease.lock_duration / 2
                if due_at <= now:
                    due.append((lease.expires_at, task_id))
                else:
                    next_due_at = min(next_due_at, due_at)
        # Tasks from one fetch fall due together, and each extendLock blocks until the
        # engine answers, so a round can outlast a lock: the soonest to expire go first.
        for _, task_id in sorted(due):
            with self._leases_lock:
                # Read again: during the earlier requests its handler may have ended or
                # renewed the lock itself.
                current = self._leases.get(task_id)
            if current is None or not current.extending:
                continue
            now = self._clock.monotonic()
            if now >= current.expires_at:
                # The engine would refuse it (LockExpiredError) and the task may already be
                # fetched by another worker: treat it as lost, as that answer would be.
                self._give_up(
                    task_id, current, "its lock expired %.1f s before its turn" % (now - current.expires_at)
                )
                continue
            if self._extend_one(task_id, current):
                next_due_at = min(next_due_at, self._clock.monotonic() + current.lock_duration / 2)
            else:
                # Try again well before the lock expires, not half a duration later, but
                # without hammering an engine that is down.
                now = self._clock.monotonic()
                remaining = current.expires_at - now
                next_due_at = min(next_due_at, now + max(remaining / 4, current.lock_duration / 20))
        # Counted from the end of the round, which may have taken long: a lease that fell
        # due meanwhile is taken up at once, not a whole delay later.
        return min(max(next_due_at - self._clock.monotonic(), _MIN_TICK), _MAX_TICK)

    def _extend_one(self, task_id: str, lease: Lease) -> bool:
        """Extend one lock; True if extended or given up for good, False to retry soon."""
        requested_at = self._clock.monotonic()
        # round(), not int(): lock_duration is a float of seconds (1.001 * 1000 == 1000.999...).
        duration_ms = round(lease.lock_duration * 1000)
        # An answer after the lock expired is of no use, and a request that hangs must
        # leave time for the locks after it in this round: wait half of what is left.
        answer_within = max((lease.expires_at - requested_at) / 2, _MIN_ANSWER_WAIT)
        try:
            self._client.extend_lock(task_id, duration_ms, read_timeout=answer_within)
        except (TaskNotFoundError, LockConflictError) as exc:
            self._give_up(task_id, lease, str(exc), expires_at=requested_at)
            return True
        except CamundaError:
            logger.warning(
                "Extending the lock of task %s (topic %s) failed; retrying before it expires",
                task_id,
                lease.topic,
                exc_info=True,
            )
            return False
        self._metrics.lock_extended(lease.topic)
        self.renewed(task_id, duration_ms, requested_at)
        return True

    def _give_up(self, task_id: str, lease: Lease, reason: str, expires_at: Optional[float] = None) -> None:
        """Stop extending a lock that is no longer this worker's, from ``expires_at`` on if given."""
        logger.warning(
            "Task %s (topic %s) could not be extended and is no longer this worker's (%s); "
            "its handler's outcome will not be accepted",
            task_id,
            lease.topic,
            reason,
        )
        with self._leases_lock:
            if task_id in self._leases:
                self._leases[task_id] = attrs.evolve(
                    lease, extending=False, expires_at=lease.expires_at if expires_at is None else expires_at
                )

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the leaser thread (no thread when extension is off)."""
        with self._operational_lock:
            if self._thread is not None:
                raise RuntimeError("the leaser is already running")
            if not self._extend:
                return
            self._thread = threading.Thread(target=self._run, name="camunda-ext-leaser", daemon=True)
            self._thread.start()

    def stop(self, timeout: Optional[float] = None) -> None:
        """Stop the thread and wait for it (at most ``timeout`` seconds)."""
        self._stop_event.set()
        self._wakeup.set()
        with self._operational_lock:
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        while not self._stop_event.is_set():
            # Cleared before the round, so a lease added during it wakes the next one.
            self._wakeup.clear()
            if self._stop_event.is_set():
                break  # stop() set _wakeup just before the clear above
            try:
                delay = self.maybe_extend()
            except Exception:
                # A bug here must not end lock extension for every other task.
                logger.exception("Lock extension round failed; trying again")
                delay = 1.0
            # A little jitter spreads the extensions of tasks fetched together.
            self._wakeup.wait(delay * (0.9 + 0.2 * self._jitter.random()))

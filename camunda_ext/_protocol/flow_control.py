"""Slot accounting: a source asks for work only when a handler thread is free for it."""

from __future__ import annotations

import threading
from typing import Optional


class FlowController:
    """A budget of handler slots for one source of work (the poller, the Sequin puller).

    A source reserves free slots before it asks for work, asks for exactly that
    many tasks, gives back what the answer did not use, and each task gives its
    slot back when its handler ends. The budgets of all sources add up to no
    more than the executor's threads, so a fetched task never waits for a thread.

    Thread-safe.

    Args:
        capacity: The number of slots.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        # Guards _free and _closed; signalled when a slot is released or on close.
        self._changed = threading.Condition()
        self._free = capacity
        self._closed = False

    @property
    def free(self) -> int:
        """Slots free right now."""
        with self._changed:
            return self._free

    @property
    def in_use(self) -> int:
        """Slots reserved or held by running handlers."""
        with self._changed:
            return self.capacity - self._free

    def reserve(
        self,
        most: Optional[int] = None,
        timeout: Optional[float] = None,
        *,
        gather: int = 1,
        linger: float = 0.0,
    ) -> int:
        """Reserve every free slot (up to ``most``), waiting until at least one is free.

        Args:
            most: Upper bound of slots to reserve.
            timeout: Seconds to wait for a free slot; None waits until one is
                free or the controller is closed.
            gather: Once one slot is free, wait up to ``linger`` seconds more for
                this many, so that one request serves several slots.
            linger: See ``gather``.

        Returns:
            The number reserved: 0 if closed or the wait timed out.
        """
        with self._changed:
            self._changed.wait_for(lambda: self._free > 0 or self._closed, timeout)
            if linger > 0 and gather > 1:
                wanted = min(gather, self.capacity)
                self._changed.wait_for(lambda: self._free >= wanted or self._closed, linger)
            if self._closed or self._free == 0:
                return 0
            count = self._free if most is None else min(self._free, most)
            self._free -= count
            return count

    def release(self, count: int = 1) -> None:
        """Give back ``count`` slots."""
        if count <= 0:
            return
        with self._changed:
            if self._free + count > self.capacity:
                raise RuntimeError("released more slots than were reserved")
            self._free += count
            self._changed.notify_all()

    def close(self) -> None:
        """Refuse further reservations and wake every waiter."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

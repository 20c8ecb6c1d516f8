"""Time and randomness, injectable so loops can be tested one step at a time."""

from __future__ import annotations

import random
import time
from typing import Protocol


class Clock(Protocol):
    """A monotonic clock in seconds."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back."""


class SystemClock:
    """The process's monotonic clock. Thread-safe."""

    def monotonic(self) -> float:
        return time.monotonic()


class Jitter(Protocol):
    """A source of random floats in ``[0, 1)``."""

    def random(self) -> float:
        """A random float in ``[0, 1)``."""


def system_jitter() -> Jitter:
    """A fresh random source (thread-safe for ``random()`` calls)."""
    return random.Random()

"""Exponential back-off with full jitter, as an immutable value."""

from __future__ import annotations

import attrs

from camunda_ext._protocol.clock import Jitter


@attrs.frozen
class Backoff:
    """How long to wait after consecutive errors.

    The n-th consecutive error waits a random time in ``[d/2, d]`` where
    ``d = min(cap, base * 2**(n-1))``: half fixed so a busy engine gets a real
    pause, half random so a fleet of workers does not retry in step.
    Immutable and thread-safe.

    Attributes:
        base: First delay in seconds.
        cap: Largest delay in seconds.
        errors: Consecutive errors so far.
    """

    base: float = 0.5
    cap: float = 30.0
    errors: int = 0

    def increment(self) -> Backoff:
        """The back-off after one more error."""
        return attrs.evolve(self, errors=self.errors + 1)

    def reset(self) -> Backoff:
        """The back-off after a success."""
        return attrs.evolve(self, errors=0) if self.errors else self

    def delay(self, jitter: Jitter) -> float:
        """Seconds to wait now; 0 when there was no error."""
        if not self.errors:
            return 0.0
        ceiling = min(self.cap, self.base * 2 ** min(self.errors - 1, 62))
        return float(ceiling / 2 + jitter.random() * ceiling / 2)

"""Back-off of the poller and the reporter: exponential, capped, jittered, immutable."""

from __future__ import annotations

import attrs
import pytest

from camunda_ext._protocol.backoff import Backoff
from tests.unit.worker_fixtures import FixedJitter


def delays(backoff: Backoff, jitter: FixedJitter, errors: int) -> list:
    result = []
    for _ in range(errors):
        backoff = backoff.increment()
        result.append(backoff.delay(jitter))
    return result


def test_no_error_means_no_delay() -> None:
    assert Backoff(0.5, 30.0).delay(FixedJitter(0.9)) == 0.0


def test_delays_double_per_consecutive_error_until_the_cap() -> None:
    # Jitter 0 gives the fixed half of each ceiling: 0.5, 1, 2, 4, 8, then the cap of 10.
    assert delays(Backoff(base=1.0, cap=10.0), FixedJitter(0.0), 6) == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_jitter_spreads_each_delay_between_half_and_all_of_its_ceiling() -> None:
    backoff = Backoff(base=2.0, cap=30.0).increment().increment()  # ceiling 4
    assert backoff.delay(FixedJitter(0.0)) == 2.0
    assert backoff.delay(FixedJitter(0.5)) == 3.0
    assert backoff.delay(FixedJitter(0.999)) == pytest.approx(3.998)


def test_reset_after_success_starts_over() -> None:
    backoff = Backoff(base=1.0, cap=10.0).increment().increment().increment()
    assert backoff.reset().increment().delay(FixedJitter(0.0)) == 0.5
    assert backoff.reset().delay(FixedJitter(0.0)) == 0.0


def test_is_an_immutable_value() -> None:
    first = Backoff(1.0, 10.0)
    second = first.increment()
    assert (first.errors, second.errors) == (0, 1)
    assert first.reset() is first
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        first.errors = 3  # type: ignore[misc]


def test_a_long_outage_stays_at_the_cap_without_overflow() -> None:
    backoff = attrs.evolve(Backoff(base=0.5, cap=30.0), errors=10_000)
    assert backoff.delay(FixedJitter(0.0)) == 15.0

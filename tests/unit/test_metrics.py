"""Metrics hooks: counting, and a hook that raises never reaching the worker."""

from __future__ import annotations

import logging

import pytest

from camunda_ext.metrics import CountingMetrics, GuardedMetrics


class Broken:
    def __getattr__(self, name: str) -> object:
        def fail(*args: object) -> None:
            raise RuntimeError("metrics backend down")

        return fail


def test_a_raising_hook_is_contained_and_logged_once_per_event(caplog: pytest.LogCaptureFixture) -> None:
    guarded = GuardedMetrics(Broken())  # type: ignore[arg-type]

    with caplog.at_level(logging.WARNING):
        guarded.completed("t")
        guarded.completed("t")
        guarded.fetched("t", 3)

    warnings = [r for r in caplog.records if "metrics hook failed" in r.getMessage()]
    assert [r.getMessage().split(" on ")[1].split(";")[0] for r in warnings] == ["completed", "fetched"]


def test_a_working_hook_gets_every_event_with_its_arguments() -> None:
    counting = CountingMetrics()
    guarded = GuardedMetrics(counting)

    guarded.fetched("t", 3)
    guarded.completed("t")
    guarded.failed("t")
    guarded.bpmn_error("t")
    guarded.lost("t")
    guarded.unlocked("t")
    guarded.lock_extended("t")
    guarded.report_retried("t", "OptimisticLockingError")
    guarded.handler_seconds("t", 0.25)
    guarded.in_flight(4)

    assert counting.snapshot() == {
        "fetched": 3,
        "completed": 1,
        "failed": 1,
        "bpmn_error": 1,
        "lost": 1,
        "unlocked": 1,
        "lock_extended": 1,
        "report_retried": 1,
    }
    assert counting.handler_durations == [0.25]
    assert counting.peak_in_flight == 4

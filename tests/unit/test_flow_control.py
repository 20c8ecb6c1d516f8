"""Slot accounting of a source: reserve what is free, give back what is unused."""

from __future__ import annotations

import threading
from typing import List

import pytest

from camunda_ext._protocol.flow_control import FlowController
from tests.unit.worker_fixtures import WAIT, tell_when_waiting, wait


def test_reserve_takes_every_free_slot() -> None:
    flow = FlowController(5)
    assert flow.reserve() == 5
    assert (flow.free, flow.in_use) == (0, 5)


def test_reserve_takes_at_most_the_bound() -> None:
    flow = FlowController(5)
    assert flow.reserve(most=2) == 2
    assert flow.reserve() == 3


def test_released_slots_can_be_reserved_again() -> None:
    flow = FlowController(3)
    flow.reserve()
    flow.release(2)
    assert flow.free == 2
    assert flow.reserve() == 2


def test_no_slot_is_reserved_while_all_are_busy() -> None:
    flow = FlowController(2)
    flow.reserve()
    assert flow.reserve(timeout=0) == 0
    assert flow.in_use == 2


def test_a_blocked_reserve_returns_the_slot_a_handler_gives_back() -> None:
    flow = FlowController(2)
    flow.reserve()
    got: List[int] = []
    done = threading.Event()

    def reserve() -> None:
        got.append(flow.reserve())
        done.set()

    thread = threading.Thread(target=reserve)
    thread.start()
    flow.release(1)
    wait(done, "the reserve to return")
    thread.join(WAIT)
    assert got == [1]


def test_close_wakes_a_blocked_reserve_with_nothing() -> None:
    flow = FlowController(1)
    flow.reserve()
    got: List[int] = []
    done = threading.Event()

    def reserve() -> None:
        got.append(flow.reserve())
        done.set()

    thread = threading.Thread(target=reserve)
    thread.start()
    flow.close()
    wait(done, "the reserve to return")
    thread.join(WAIT)
    assert got == [0]


def test_closed_controller_reserves_nothing_but_takes_slots_back() -> None:
    flow = FlowController(2)
    flow.reserve(most=1)
    flow.close()
    assert flow.reserve() == 0
    flow.release(1)
    assert flow.free == 2


def test_releasing_more_than_reserved_is_a_bug() -> None:
    flow = FlowController(2)
    flow.reserve(most=1)
    with pytest.raises(RuntimeError):
        flow.release(2)
    flow.release(0)
    assert flow.free == 1


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError):
        FlowController(0)


def test_gather_waits_a_moment_for_more_slots_to_free_up() -> None:
    flow = FlowController(4)
    assert flow.reserve() == 4
    flow.release(1)
    waiting = tell_when_waiting(flow)

    def free_another() -> None:
        wait(waiting, "the reservation to wait for a second slot")
        flow.release(1)

    releaser = threading.Thread(target=free_another)
    releaser.start()
    try:
        reserved = flow.reserve(gather=2, linger=WAIT)
    finally:
        releaser.join()
    assert reserved == 2


def test_gather_takes_what_is_free_when_the_linger_runs_out() -> None:
    flow = FlowController(4)
    assert flow.reserve() == 4
    flow.release(1)

    assert flow.reserve(gather=3, linger=0.01) == 1

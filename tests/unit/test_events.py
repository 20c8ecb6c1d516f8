"""Which change events of act_ru_ext_task are work: inserts and updates that free a task."""

from __future__ import annotations

from typing import Any, Dict, Optional

import pytest

from camunda_ext._protocol.events import Work, classify
from camunda_ext.sequin import SequinMessage

COMMIT = "2026-12-04T10:00:00.500000Z"
TOPICS = {"charge", "ship"}


def event(
    action: str,
    changes: Optional[Dict[str, Any]] = None,
    table: str = "act_ru_ext_task",
    **record: Any,
) -> SequinMessage:
    row = {
        "id_": "task-1",
        "topic_name_": "charge",
        "retries_": None,
        "worker_id_": None,
        "lock_exp_time_": None,
        "suspension_state_": 1,
    }
    row.update(record)
    metadata = {"table_schema": "public", "table_name": table, "commit_timestamp": COMMIT}
    return SequinMessage("ack-1", action, row, changes, metadata)


def test_an_insert_of_a_registered_topic_is_work() -> None:
    assert classify(event("insert"), TOPICS) == Work("task-1", "charge")
    assert classify(event("read"), TOPICS) == Work("task-1", "charge")


@pytest.mark.parametrize(
    "message",
    [
        event("insert", topic_name_="other"),
        event("insert", table="act_ru_execution"),
        event("delete"),
        event("insert", retries_=0),
        event("insert", suspension_state_=2),
        event("insert", id_=None),
    ],
    ids=["other topic", "other table", "delete", "no retries", "suspended", "no id"],
)
def test_events_that_announce_no_available_task_are_not_work(message: SequinMessage) -> None:
    assert classify(message, TOPICS) is None


def test_an_update_that_locks_a_task_is_not_work() -> None:
    locked = event(
        "update",
        changes={"rev_": 1, "worker_id_": None, "lock_exp_time_": None},
        worker_id_="w",
        lock_exp_time_="2026-12-04T10:05:00.000000",
    )
    assert classify(locked, TOPICS) is None


def test_an_unlock_makes_the_task_work_again() -> None:
    unlocked = event("update", changes={"worker_id_": "w", "lock_exp_time_": "2026-12-04T10:05:00.000000"})
    assert classify(unlocked, TOPICS) == Work("task-1", "charge")


def test_a_failure_without_retry_timeout_is_work_but_one_with_a_timeout_is_not() -> None:
    changes = {"retries_": None, "lock_exp_time_": "2026-12-04T10:05:00.000000", "error_msg_": None}
    now = event(
        "update", changes=changes, retries_=2, worker_id_="w", lock_exp_time_="2026-12-04T10:00:00.400000"
    )
    later = event(
        "update", changes=changes, retries_=2, worker_id_="w", lock_exp_time_="2026-12-04T10:00:05.400000"
    )

    assert classify(now, TOPICS) == Work("task-1", "charge")
    assert classify(later, TOPICS) is None


def test_retries_raised_from_zero_make_the_task_work_again() -> None:
    revived = event("update", changes={"retries_": 0}, retries_=3)
    assert classify(revived, TOPICS) == Work("task-1", "charge")


def test_an_update_of_other_columns_is_not_work() -> None:
    priority = event("update", changes={"priority_": 0}, priority_=5)
    assert classify(priority, TOPICS) is None


@pytest.mark.parametrize(
    "record",
    [{"retries_": "3"}, {"suspension_state_": "1"}, {"lock_exp_time_": 1733306400}],
    ids=["retries as text", "suspension state as text", "lock expiry as a number"],
)
def test_values_of_unexpected_types_leave_the_decision_to_the_engine(record: Dict[str, Any]) -> None:
    # Sequin passes a value through as text when its cast fails: the event is still
    # work, and the fetch or lock that follows asks the engine whether the task is free.
    assert classify(event("insert", **record), TOPICS) == Work("task-1", "charge")


def test_a_table_name_that_is_not_text_is_read_as_missing() -> None:
    message = event("insert")
    message.metadata["table_name"] = 42
    assert message.table == ("public", None)
    assert classify(message, TOPICS) == Work("task-1", "charge")


def test_a_failure_stamped_by_an_engine_clock_slightly_ahead_of_the_database_is_work() -> None:
    # The engine wrote "now" as the lock's expiry 200 ms past the database's commit time.
    changes = {"retries_": None, "lock_exp_time_": "2026-12-04T10:05:00.000000", "error_msg_": None}
    skewed = event(
        "update", changes=changes, retries_=2, worker_id_="w", lock_exp_time_="2026-12-04T10:00:00.700000"
    )

    assert classify(skewed, TOPICS) == Work("task-1", "charge")

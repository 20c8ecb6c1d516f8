"""Which change events of ``act_ru_ext_task`` are work for this worker."""

from __future__ import annotations

import datetime as _dt
from typing import Any, Collection, Mapping, Optional

import attrs

from camunda_ext.sequin import SequinMessage

#: The table whose changes announce external tasks (PostgreSQL folds names to lower case).
TASK_TABLE = "act_ru_ext_task"
#: ``suspension_state_`` of an active task.
_ACTIVE = 1
#: Tolerated skew between the engine's clock and the database's.
_CLOCK_SKEW = _dt.timedelta(seconds=1)
#: Columns whose change can make a task available again.
_AVAILABILITY_COLUMNS = frozenset({"worker_id_", "lock_exp_time_", "retries_", "suspension_state_"})


@attrs.frozen
class Work:
    """A task that an event says may be fetched now."""

    task_id: str
    topic: str


def classify(message: SequinMessage, topics: Collection[str]) -> Optional[Work]:
    """The work a change event announces, or None if it announces none.

    Work is: an insert (or backfill read) of an available task of a registered
    topic, and an update that makes such a task available again (unlocked or
    its lock expired at commit, retries raised from 0, resumed). Deletes, other
    tables, other topics and other updates are not work.
    """
    schema, table = message.table
    if table is not None and table.lower() != TASK_TABLE:
        return None
    if schema is not None and schema != "public":
        return None
    record = message.record
    task_id, topic = record.get("id_"), record.get("topic_name_")
    if not isinstance(task_id, str) or not isinstance(topic, str) or topic not in topics:
        return None
    if message.action in ("insert", "read"):
        return Work(task_id, topic) if _available(record, message.metadata) else None
    if message.action == "update":
        changed = set(message.changes or ()) & _AVAILABILITY_COLUMNS
        return Work(task_id, topic) if changed and _available(record, message.metadata) else None
    return None


def _available(record: Mapping[str, Any], metadata: Mapping[str, Any]) -> bool:
    # A value of an unexpected type (e.g. text where a cast failed) cannot rule the
    # task out: the fetch or the lock that follows asks the engine, which decides.
    retries = record.get("retries_")
    if isinstance(retries, int) and retries <= 0:
        return False
    suspension = record.get("suspension_state_")
    if isinstance(suspension, int) and suspension != _ACTIVE:
        return False
    lock = _naive_utc(record.get("lock_exp_time_"))
    if lock is None:
        return True
    committed = _naive_utc(metadata.get("commit_timestamp"))
    # A lock that had expired when the change committed (a failure without a
    # retry timeout) leaves the task available; a running lock does not. The engine
    # writes the expiry by its own clock, the database stamps the commit by its
    # own: a small skew between them must not turn such a failure into no work.
    return committed is not None and lock <= committed + _CLOCK_SKEW


def _naive_utc(text: Any) -> Optional[_dt.datetime]:
    """Sequin's timestamps: ``2026-12-04T10:11:12.345678`` (engine in UTC) or with ``Z``."""
    if not isinstance(text, str):
        return None
    try:
        return _dt.datetime.fromisoformat(text.rstrip("Z"))
    except ValueError:
        return None

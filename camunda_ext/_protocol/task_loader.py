"""Locks a task by id and reads it with the variables fetchAndLock would have given."""

from __future__ import annotations

import contextlib
import datetime as _dt
from typing import Dict, Iterator, List, Optional

import attrs

from camunda_ext._protocol.clock import Clock
from camunda_ext._protocol.leaser import Leaser
from camunda_ext.client import Client
from camunda_ext.errors import CamundaError, NotFoundError, TaskNotFoundError
from camunda_ext.models import ActivityInstance, ExternalTask, FetchTopic
from camunda_ext.variables import TypedValue


class TaskLoader:
    """Turns a task id from a change event into a locked :class:`ExternalTask`.

    ``fetchAndLock`` hands a task the variables visible from its execution: its
    own scope's and every enclosing scope's, the nearest winning (so a
    multi-instance element variable such as ``score`` is there). Reading the
    process instance's variables would miss those, so the loader walks the
    activity-instance tree from the task's activity instance up to the process
    instance and takes the variables of those scopes.

    Thread-safe: handler threads call it concurrently.
    """

    def __init__(self, client: Client, leaser: Leaser, clock: Clock) -> None:
        self._client = client
        self._leaser = leaser
        self._clock = clock

    def lock_and_load(self, task_id: str, fetch: FetchTopic) -> Optional[ExternalTask]:
        """Read the task, lock it for this worker if fetchAndLock could have, start leasing it,
        and load its variables.

        The engine lets a worker lock again a task it already holds, and a failure's
        retry timeout is such a hold: so availability is checked on the task as read
        first, as fetchAndLock checks it (not locked or lock expired, retries left,
        active), and within the topic's filters (business key, definition, version
        tag, tenant, process variables).

        Returns:
            The locked task, or None if fetchAndLock would not have given it now.

        Raises:
            TaskNotFoundError: The task is gone, or its process instance or execution
                (which end with it).
            LockConflictError: Another worker holds it.
            OptimisticLockingError: A concurrent lock or fetch won it.
            CamundaError: Any other failure; a lock already taken is given back.
        """
        task = self._client.get_task(task_id)
        with _ends_with_its_instance():
            if not _available(task) or not self._matches(task, fetch):
                return None
        locked_at = self._clock.monotonic()
        self._client.lock(task_id, fetch.lock_duration)
        self._leaser.add(task_id, fetch.topic_name, fetch.lock_duration, locked_at)
        try:
            with _ends_with_its_instance():
                variables = self.variables_of(task, fetch)
        except CamundaError:
            # Not run after all: give the lock back so the task is free at once.
            self._give_back(task_id)
            raise
        expiry = _dt.datetime.now(_dt.timezone.utc) + _dt.timedelta(milliseconds=fetch.lock_duration)
        return attrs.evolve(
            task, worker_id=self._client.worker_id, lock_expiration_time=expiry, typed_variables=variables
        )

    def _give_back(self, task_id: str) -> None:
        self._leaser.remove(task_id)
        with contextlib.suppress(CamundaError):  # best effort: the lock expires anyway
            self._client.unlock(task_id)

    def _matches(self, task: ExternalTask, fetch: FetchTopic) -> bool:
        """Whether fetchAndLock with ``fetch``'s filters could have returned ``task``."""
        checks = (
            (fetch.business_key, lambda wanted: task.business_key == wanted),
            (fetch.process_definition_id, lambda wanted: task.process_definition_id == wanted),
            (fetch.process_definition_id_in, lambda wanted: task.process_definition_id in wanted),
            (fetch.process_definition_key, lambda wanted: task.process_definition_key == wanted),
            (fetch.process_definition_key_in, lambda wanted: task.process_definition_key in wanted),
            (
                fetch.process_definition_version_tag,
                lambda wanted: task.process_definition_version_tag == wanted,
            ),
            (fetch.tenant_id_in, lambda wanted: task.tenant_id in wanted),
            (fetch.without_tenant_id, lambda wanted: not wanted or task.tenant_id is None),
        )
        if not all(check(wanted) for wanted, check in checks if wanted is not None):
            return False
        if not fetch.process_variables:
            return True
        found = self._client.get_process_variables(task.process_instance_id or "")
        return all(
            name in found and found[name].value == value for name, value in fetch.process_variables.items()
        )

    def variables_of(self, task: ExternalTask, fetch: FetchTopic) -> Dict[str, TypedValue]:
        """The variables fetchAndLock would give ``task`` under ``fetch``'s options."""
        wanted = None if fetch.variables is None else set(fetch.variables)
        if wanted is not None and not wanted:
            return {}
        deserialize = bool(fetch.deserialize_values)
        if fetch.local_variables:
            found = self._client.get_local_variables(task.execution_id or "", deserialize_values=deserialize)
        else:
            found = self._scoped(task, deserialize)
        if wanted is None:
            return found
        return {name: value for name, value in found.items() if name in wanted}

    def _scoped(self, task: ExternalTask, deserialize: bool) -> Dict[str, TypedValue]:
        tree = self._client.get_activity_instance_tree(task.process_instance_id or "")
        chain = _ancestry(tree, task.activity_instance_id or "") or [tree.id]
        rank = {scope: depth for depth, scope in enumerate(chain)}
        rows = self._client.get_variable_instances(
            activity_instance_id_in=chain, deserialize_values=deserialize
        )
        rows.sort(key=lambda row: rank.get(row.activity_instance_id or "", len(chain)), reverse=True)
        # Outermost first, so nearer scopes overwrite the names they shadow.
        return {row.name: row.typed_value for row in rows}


@contextlib.contextmanager
def _ends_with_its_instance() -> Iterator[None]:
    """Turn the engine's 404 for a task's process instance or execution into TaskNotFoundError.

    The instance ended (completed, cancelled, interrupted) between the reads, and
    the task with it: its event is done, not a reason to stop the worker. A 404
    without Camunda's body is not the engine's answer (a wrong base URL) and stays.
    """
    try:
        yield
    except NotFoundError as error:
        if error.type is None or isinstance(error, TaskNotFoundError):
            raise
        raise TaskNotFoundError(error.status_code, error.type, error.message, error.code) from error


def _available(task: ExternalTask) -> bool:
    """What fetchAndLock selects: unlocked or expired, retries left (or never failed), active."""
    if task.suspended or (task.retries is not None and task.retries <= 0):
        return False
    expiry = task.lock_expiration_time
    return expiry is None or expiry <= _dt.datetime.now(_dt.timezone.utc)


def _ancestry(node: ActivityInstance, target: str) -> Optional[List[str]]:
    """Activity-instance ids from ``target`` up to ``node`` (nearest first), or None."""
    if node.id == target:
        return [node.id]
    for child in node.child_activity_instances:
        below = _ancestry(child, target)
        if below is not None:
            return [*below, node.id]
    return None

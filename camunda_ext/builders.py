"""Fluent builders for a task's outcome: complete, failure, BPMN error, lock extension.

Each step returns a new builder (the old one is unchanged); only ``execute()``
sends anything. Builders send through a :class:`Reporter`: a
:class:`~camunda_ext.client.Client` when used directly, or the worker's
reporter, which retries and tracks the task, inside handlers::

    from camunda_ext import builders
    builders.complete(client, task).variable("score", 750).execute()
    builders.fail(client, task, message="bureau down").retry_timeout(5000).execute()

Builders are immutable and thread-safe; ``execute()`` is as thread-safe as the reporter.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Protocol, Tuple, Union

import attrs

from camunda_ext.errors import ConfigurationError
from camunda_ext.variables import TypedValue, to_typed

__all__ = [
    "DEFAULT_RETRIES",
    "BpmnErrorBuilder",
    "CompleteBuilder",
    "ExtendLockBuilder",
    "FailureBuilder",
    "Reporter",
    "bpmn_error",
    "complete",
    "extend_lock",
    "fail",
]

#: Retries sent on a task's first failure unless configured otherwise.
DEFAULT_RETRIES = 3

_Variables = Tuple[Tuple[str, TypedValue], ...]


class Reporter(Protocol):
    """Where builders send outcomes: the same signatures as :class:`~camunda_ext.client.Client`."""

    def complete(
        self,
        task_id: str,
        variables: Optional[Mapping[str, Any]] = None,
        local_variables: Optional[Mapping[str, Any]] = None,
    ) -> None: ...

    def handle_failure(
        self,
        task_id: str,
        error_message: Optional[str],
        *,
        retries: int,
        retry_timeout: int = 0,
        error_details: Optional[str] = None,
        variables: Optional[Mapping[str, Any]] = None,
        local_variables: Optional[Mapping[str, Any]] = None,
    ) -> None: ...

    def handle_bpmn_error(
        self,
        task_id: str,
        error_code: str,
        *,
        error_message: Optional[str] = None,
        variables: Optional[Mapping[str, Any]] = None,
    ) -> None: ...

    def extend_lock(self, task_id: str, new_duration: int) -> None: ...


def _add(existing: _Variables, name: str, value: Any, type: Optional[str]) -> _Variables:
    # Typing here, not at execute(), makes a bad value fail at the line that set it.
    return (*existing, (name, to_typed(value, type)))


def _add_all(existing: _Variables, mapping: Mapping[str, Any]) -> _Variables:
    return existing + tuple((name, to_typed(value)) for name, value in mapping.items())


def _as_dict(variables: _Variables) -> Optional[Mapping[str, TypedValue]]:
    return dict(variables) if variables else None


@attrs.frozen
class CompleteBuilder:
    """Completes a task, optionally with variables."""

    _reporter: Reporter
    _task_id: str
    _variables: _Variables = ()
    _local_variables: _Variables = ()

    def variable(self, name: str, value: Any, type: Optional[str] = None) -> CompleteBuilder:
        """Set a process variable; ``type`` names a Camunda type instead of inferring one."""
        return attrs.evolve(self, variables=_add(self._variables, name, value, type))

    def variables(self, mapping: Mapping[str, Any]) -> CompleteBuilder:
        """Set several process variables (plain or typed values)."""
        return attrs.evolve(self, variables=_add_all(self._variables, mapping))

    def local_variable(self, name: str, value: Any, type: Optional[str] = None) -> CompleteBuilder:
        """Set a variable local to the task's execution."""
        return attrs.evolve(self, local_variables=_add(self._local_variables, name, value, type))

    def local_variables(self, mapping: Mapping[str, Any]) -> CompleteBuilder:
        """Set several variables local to the task's execution."""
        return attrs.evolve(self, local_variables=_add_all(self._local_variables, mapping))

    def execute(self) -> None:
        """Send ``POST /external-task/{id}/complete``."""
        self._reporter.complete(self._task_id, _as_dict(self._variables), _as_dict(self._local_variables))


@attrs.frozen
class FailureBuilder:
    """Reports a technical failure.

    Unless set, ``retries`` and ``retry_timeout`` take the defaults bound with the
    builder (for a worker: its retry policy applied to the task).
    """

    _reporter: Reporter
    _task_id: str
    _default_retries: int
    _default_retry_timeout: int = 0
    _message: Optional[str] = None
    _details: Optional[str] = None
    _retries: Optional[int] = None
    _retry_timeout: Optional[int] = None
    _variables: _Variables = ()
    _local_variables: _Variables = ()

    def message(self, message: str) -> FailureBuilder:
        """Set the error message (the engine keeps 666 characters)."""
        return attrs.evolve(self, message=message)

    def details(self, details: str) -> FailureBuilder:
        """Set the error details (e.g. a traceback)."""
        return attrs.evolve(self, details=details)

    def retries(self, retries: int) -> FailureBuilder:
        """Set the retries left; 0 raises an incident."""
        return attrs.evolve(self, retries=retries)

    def retry_timeout(self, retry_timeout: int) -> FailureBuilder:
        """Set the milliseconds before the task may be fetched again."""
        return attrs.evolve(self, retry_timeout=retry_timeout)

    def variable(self, name: str, value: Any, type: Optional[str] = None) -> FailureBuilder:
        """Set a process variable with the failure."""
        return attrs.evolve(self, variables=_add(self._variables, name, value, type))

    def local_variable(self, name: str, value: Any, type: Optional[str] = None) -> FailureBuilder:
        """Set a variable local to the task's execution with the failure."""
        return attrs.evolve(self, local_variables=_add(self._local_variables, name, value, type))

    def execute(self) -> None:
        """Send ``POST /external-task/{id}/failure``."""
        self._reporter.handle_failure(
            self._task_id,
            self._message,
            retries=self._default_retries if self._retries is None else self._retries,
            retry_timeout=(
                self._default_retry_timeout if self._retry_timeout is None else self._retry_timeout
            ),
            error_details=self._details,
            variables=_as_dict(self._variables),
            local_variables=_as_dict(self._local_variables),
        )


@attrs.frozen
class BpmnErrorBuilder:
    """Reports a BPMN error."""

    _reporter: Reporter
    _task_id: str
    _code: str
    _message: Optional[str] = None
    _variables: _Variables = ()

    def message(self, message: str) -> BpmnErrorBuilder:
        """Set the error message."""
        return attrs.evolve(self, message=message)

    def variable(self, name: str, value: Any, type: Optional[str] = None) -> BpmnErrorBuilder:
        """Set a variable with the error."""
        return attrs.evolve(self, variables=_add(self._variables, name, value, type))

    def variables(self, mapping: Mapping[str, Any]) -> BpmnErrorBuilder:
        """Set several variables with the error."""
        return attrs.evolve(self, variables=_add_all(self._variables, mapping))

    def execute(self) -> None:
        """Send ``POST /external-task/{id}/bpmnError``."""
        self._reporter.handle_bpmn_error(
            self._task_id,
            self._code,
            error_message=self._message,
            variables=_as_dict(self._variables),
        )


@attrs.frozen
class ExtendLockBuilder:
    """Extends a task's lock."""

    _reporter: Reporter
    _task_id: str
    _new_duration: Optional[int] = None

    def new_duration(self, new_duration: int) -> ExtendLockBuilder:
        """Set the new lock duration in milliseconds, counted from now."""
        return attrs.evolve(self, new_duration=new_duration)

    def execute(self) -> None:
        """Send ``POST /external-task/{id}/extendLock``."""
        if self._new_duration is None:
            raise ConfigurationError("call new_duration(ms) before execute()")
        self._reporter.extend_lock(self._task_id, self._new_duration)


TaskRef = Union[str, Any]


def _task_id(task: TaskRef) -> str:
    return task if isinstance(task, str) else str(task.id)


def next_retries(task: TaskRef, default_retries: int) -> int:
    """Retries to send on failure: the default on a first failure, else one fewer, never below 0."""
    current = None if isinstance(task, str) else task.retries
    return default_retries if current is None else max(current - 1, 0)


def complete(reporter: Reporter, task: TaskRef) -> CompleteBuilder:
    """A complete builder for ``task`` (an ExternalTask or a task id)."""
    return CompleteBuilder(reporter, _task_id(task))


def fail(
    reporter: Reporter,
    task: TaskRef,
    *,
    message: Optional[str] = None,
    details: Optional[str] = None,
    retries: Optional[int] = None,
    retry_timeout: Optional[int] = None,
    default_retries: int = DEFAULT_RETRIES,
    default_retry_timeout: int = 0,
) -> FailureBuilder:
    """A failure builder for ``task``, optionally preset.

    Args:
        reporter: A client or the worker's reporter.
        task: An ExternalTask (its ``retries`` counts down) or a task id.
        message: Preset error message.
        details: Preset error details.
        retries: Preset retries; otherwise counted down from ``task.retries``,
            or ``default_retries`` on the first failure.
        retry_timeout: Preset retry timeout in milliseconds.
        default_retries: Retries on a first failure.
        default_retry_timeout: Retry timeout in milliseconds unless set.
    """
    return FailureBuilder(
        reporter,
        _task_id(task),
        next_retries(task, default_retries),
        default_retry_timeout,
        message,
        details,
        retries,
        retry_timeout,
    )


def bpmn_error(
    reporter: Reporter, task: TaskRef, code: str, message: Optional[str] = None
) -> BpmnErrorBuilder:
    """A BPMN error builder for ``task`` with the given error code."""
    return BpmnErrorBuilder(reporter, _task_id(task), code, message)


def extend_lock(reporter: Reporter, task: TaskRef, new_duration: Optional[int] = None) -> ExtendLockBuilder:
    """A lock-extension builder for ``task``; ``new_duration`` in milliseconds."""
    return ExtendLockBuilder(reporter, _task_id(task), new_duration)

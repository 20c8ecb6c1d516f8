"""The exception hierarchy of camunda_ext.

Everything the library raises derives from :class:`CamundaError`, except
:class:`BpmnError`, which handlers raise to signal a business error and which
is therefore not a failure of the library.

::

    CamundaError
    +-- CamundaConnectionError      transport: refused, reset, timed out
    +-- DecodeError                 an answer that does not parse
    +-- VariableError               a Python value that has no Camunda type
    +-- ConfigurationError          a worker or client set up wrongly
    +-- EngineError                 a REST error answer (non-2xx)
        +-- AuthenticationError     401
        +-- AuthorizationError      403
        +-- BadRequestError         400 not covered below
        |   +-- LockConflictError   the lock belongs to another worker
        |       +-- LockExpiredError
        +-- NotFoundError           404
        |   +-- TaskNotFoundError   the external task no longer exists
        +-- OptimisticLockingError  concurrent update; safe to retry
"""

from __future__ import annotations

from typing import Any, Mapping, Optional


class CamundaError(Exception):
    """Root of every error raised by camunda_ext."""


class CamundaConnectionError(CamundaError):
    """The request did not get an answer: refused, reset or timed out.

    The original transport exception is kept as ``__cause__``.
    """


class DecodeError(CamundaError):
    """An answer that does not parse as what the API promises."""


class VariableError(CamundaError, ValueError):
    """A value that cannot be sent as a Camunda variable, or a type name it does not fit."""


class ConfigurationError(CamundaError, ValueError):
    """Wrong settings given to a client or worker, found before any request is made."""


class EngineError(CamundaError):
    """An error answer of the Camunda REST API.

    Attributes:
        status_code: The HTTP status.
        type: Camunda's exception type name (e.g. ``"RestException"``), or None when
            the body carried none.
        message: Camunda's message, or the reason phrase when the body carried none.
        code: Camunda's engine error code (``1`` = optimistic locking), or None.
    """

    def __init__(
        self,
        status_code: int,
        type: Optional[str] = None,
        message: str = "",
        code: Optional[int] = None,
    ) -> None:
        self.status_code = status_code
        self.type = type
        self.message = message
        self.code = code
        super().__init__(status_code, type, message, code)

    def __str__(self) -> str:
        kind = " %s" % self.type if self.type else ""
        return "HTTP %d%s: %s" % (self.status_code, kind, self.message)

    def __repr__(self) -> str:
        return "%s(status_code=%d, type=%r, message=%r, code=%r)" % (
            type(self).__name__,
            self.status_code,
            self.type,
            self.message,
            self.code,
        )

    def __reduce__(self) -> Any:
        return (type(self), (self.status_code, self.type, self.message, self.code))


class AuthenticationError(EngineError):
    """401: no or wrong credentials."""


class AuthorizationError(EngineError):
    """403: authenticated but not authorized."""


class BadRequestError(EngineError):
    """400: the engine refused the request as invalid."""


class LockConflictError(BadRequestError):
    """The task is locked by another worker (or not locked at all): this worker lost it."""


class LockExpiredError(LockConflictError):
    """``extendLock`` on a lock that already expired."""


class NotFoundError(EngineError):
    """404: the addressed resource does not exist."""


class TaskNotFoundError(NotFoundError):
    """The external task does not exist (completed, cancelled or never existed)."""


class OptimisticLockingError(EngineError):
    """The engine rolled back a concurrent update; the same request may succeed if retried."""


class BpmnError(Exception):
    """Raised by a handler to report a BPMN error instead of a technical failure.

    The variables are typed when the error is reported, not here. If the report
    cannot be made (a value has no Camunda type, e.g. a naive ``datetime``, or
    the engine refuses the error, e.g. an uncaught code on an engine with
    ``enableExceptionsAfterUnhandledBpmnError``), the worker reports a failure
    of the task instead, whose message names the cause; retries count down as
    for any handler exception.

    Args:
        code: The BPMN error code a boundary or event subprocess catches.
        message: An optional error message.
        variables: Optional variables to set (plain Python or typed values).
    """

    def __init__(
        self,
        code: str,
        message: Optional[str] = None,
        variables: Optional[Mapping[str, Any]] = None,
    ) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.variables = dict(variables) if variables else {}

    def __str__(self) -> str:
        return self.code if self.message is None else "%s: %s" % (self.code, self.message)

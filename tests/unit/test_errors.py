"""Tests of camunda_ext.errors: the hierarchy callers branch on and what errors show."""

from __future__ import annotations

import pickle

import pytest

import camunda_ext
from camunda_ext.errors import (
    AuthenticationError,
    AuthorizationError,
    BadRequestError,
    BpmnError,
    CamundaConnectionError,
    CamundaError,
    ConfigurationError,
    DecodeError,
    EngineError,
    LockConflictError,
    LockExpiredError,
    NotFoundError,
    OptimisticLockingError,
    TaskNotFoundError,
    VariableError,
)

ENGINE_ERRORS = [
    AuthenticationError,
    AuthorizationError,
    BadRequestError,
    LockConflictError,
    LockExpiredError,
    NotFoundError,
    TaskNotFoundError,
    OptimisticLockingError,
]


@pytest.mark.parametrize(
    ("cls", "parents"),
    [
        (CamundaConnectionError, (CamundaError,)),
        (DecodeError, (CamundaError,)),
        (VariableError, (CamundaError, ValueError)),
        (ConfigurationError, (CamundaError, ValueError)),
        (EngineError, (CamundaError,)),
        (AuthenticationError, (EngineError,)),
        (AuthorizationError, (EngineError,)),
        (BadRequestError, (EngineError,)),
        (LockConflictError, (BadRequestError,)),
        (LockExpiredError, (LockConflictError,)),
        (NotFoundError, (EngineError,)),
        (TaskNotFoundError, (NotFoundError,)),
        (OptimisticLockingError, (EngineError,)),
    ],
)
def test_the_hierarchy_lets_callers_branch(cls: type, parents: tuple) -> None:
    for parent in parents:
        assert issubclass(cls, parent)
    assert issubclass(cls, CamundaError)


def test_siblings_do_not_catch_each_other() -> None:
    assert not issubclass(OptimisticLockingError, BadRequestError)
    assert not issubclass(TaskNotFoundError, LockConflictError)
    assert not issubclass(LockConflictError, NotFoundError)
    assert not issubclass(CamundaConnectionError, EngineError)
    assert not issubclass(DecodeError, EngineError)


def test_bpmn_error_is_not_a_library_failure() -> None:
    assert not issubclass(BpmnError, CamundaError)


def test_every_error_is_exported_from_the_package_root() -> None:
    for cls in [
        CamundaError,
        CamundaConnectionError,
        DecodeError,
        VariableError,
        ConfigurationError,
        EngineError,
        BpmnError,
        *ENGINE_ERRORS,
    ]:
        assert getattr(camunda_ext, cls.__name__) is cls


def test_an_engine_error_exposes_camundas_fields() -> None:
    error = EngineError(500, "OptimisticLockingException", "ENGINE-03005 Execution failed", 1)

    assert error.status_code == 500
    assert error.type == "OptimisticLockingException"
    assert error.message == "ENGINE-03005 Execution failed"
    assert error.code == 1


def test_an_engine_error_reads_well() -> None:
    error = TaskNotFoundError(404, "RestException", "External task with id x does not exist", 0)

    assert str(error) == "HTTP 404 RestException: External task with id x does not exist"
    assert repr(error) == (
        "TaskNotFoundError(status_code=404, type='RestException', "
        "message='External task with id x does not exist', code=0)"
    )


def test_an_engine_error_without_a_type_says_only_the_status() -> None:
    error = EngineError(502, None, "Bad Gateway")

    assert str(error) == "HTTP 502: Bad Gateway"
    assert error.type is None
    assert error.code is None


@pytest.mark.parametrize("cls", [EngineError, *ENGINE_ERRORS])
def test_engine_errors_survive_pickling(cls: type) -> None:
    error = cls(409, "SomeException", "text", 7)

    copy = pickle.loads(pickle.dumps(error))

    assert type(copy) is cls
    assert (copy.status_code, copy.type, copy.message, copy.code) == (409, "SomeException", "text", 7)
    assert str(copy) == str(error)


def test_bpmn_error_carries_code_message_and_a_copy_of_the_variables() -> None:
    given = {"reason": "score too low"}

    error = BpmnError("LOW_SCORE", "below 500", given)
    given["reason"] = "changed"

    assert error.code == "LOW_SCORE"
    assert error.message == "below 500"
    assert error.variables == {"reason": "score too low"}
    assert str(error) == "LOW_SCORE: below 500"


def test_bpmn_error_without_message_or_variables() -> None:
    error = BpmnError("NO_LOAN")

    assert str(error) == "NO_LOAN"
    assert error.message is None
    assert error.variables == {}

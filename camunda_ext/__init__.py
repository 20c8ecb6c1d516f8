"""camunda_ext: Camunda 7 external-task workers for synchronous Python.

::

    from camunda_ext import Client, Worker

    client = Client("http://localhost:8080/engine-rest", "classic-worker")
    worker = Worker(client, max_tasks=20, poll_interval=0.1)

    def credit_score_checker(task, complete, fail):
        return complete().variable("score", 750).execute()

    worker.register_handler("creditScoreChecker", credit_score_checker, lock_duration=60000)
    worker.run()
"""

from __future__ import annotations

from camunda_ext.client import Client
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
from camunda_ext.metrics import CountingMetrics, Metrics, NullMetrics
from camunda_ext.models import ExternalTask, FetchTopic
from camunda_ext.sequin_worker import SequinWorker
from camunda_ext.variables import (
    Boolean,
    Bytes,
    Date,
    Double,
    File,
    Integer,
    Json,
    Long,
    Null,
    Object,
    Short,
    String,
    TypedValue,
    Xml,
)
from camunda_ext.worker import Worker

__version__ = "0.1.0"

__all__ = [
    "AuthenticationError",
    "AuthorizationError",
    "BadRequestError",
    "Boolean",
    "BpmnError",
    "Bytes",
    "CamundaConnectionError",
    "CamundaError",
    "Client",
    "ConfigurationError",
    "CountingMetrics",
    "Date",
    "DecodeError",
    "Double",
    "EngineError",
    "ExternalTask",
    "FetchTopic",
    "File",
    "Integer",
    "Json",
    "LockConflictError",
    "LockExpiredError",
    "Long",
    "Metrics",
    "NotFoundError",
    "Null",
    "NullMetrics",
    "Object",
    "OptimisticLockingError",
    "SequinWorker",
    "Short",
    "String",
    "TaskNotFoundError",
    "TypedValue",
    "VariableError",
    "Worker",
    "Xml",
]

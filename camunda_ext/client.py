"""The Camunda 7 REST client: one method per call, each performing its request at once.

Error answers become :class:`~camunda_ext.errors.EngineError` subclasses,
transport faults :class:`~camunda_ext.errors.CamundaConnectionError`, answers
that do not parse :class:`~camunda_ext.errors.DecodeError`. Nothing from
requests leaks out.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Type, TypeVar, Union
from urllib.parse import quote

import attrs
import requests

from camunda_ext import _converter
from camunda_ext._http import Auth, Endpoint, Timeout, build_session, redact_url
from camunda_ext.errors import (
    AuthenticationError,
    AuthorizationError,
    BadRequestError,
    ConfigurationError,
    DecodeError,
    EngineError,
    LockConflictError,
    LockExpiredError,
    NotFoundError,
    OptimisticLockingError,
    TaskNotFoundError,
)
from camunda_ext.models import (
    ActivityInstance,
    Deployment,
    ExternalTask,
    FetchTopic,
    HistoricProcessInstance,
    ProcessInstance,
    VariableInstance,
)
from camunda_ext.variables import TypedValue, decode_variables, encode_variables, format_date

__all__ = ["Client", "DeploymentFile", "UndecodableTask", "UndecodableTasksError"]

T = TypeVar("T")

#: A resource to deploy: a path, or ``(filename, content)``.
DeploymentFile = Union[str, "os.PathLike[str]", Tuple[str, Union[str, bytes]]]

#: Added to the long-poll timeout to make the HTTP read timeout: the engine answers
#: at the poll timeout, so the read timeout must not fire first. Seconds.
LONG_POLL_MARGIN = 5.0

#: Engine error code of an optimistic-locking rollback (Camunda's built-in error code 1).
_OPTIMISTIC_LOCKING_CODE = 1

#: Message fragments of a 400 RestException that mean "this worker does not hold the lock".
_LOCK_CONFLICT_FRAGMENTS = ("is locked by worker", "cannot be locked by worker", "locked by worker")
_LOCK_EXPIRED_FRAGMENT = "lock that expired"


@attrs.frozen
class UndecodableTask:
    """A task of a fetchAndLock answer that did not decode. The engine locked it all the same.

    Thread-safe (immutable).

    Attributes:
        id: Its id, or None when the answer's item has no readable one.
        topic_name: Its topic, if readable.
        retries: Its retries left, if readable (None before its first failure).
        error: Why it did not decode; names the variable when one was at fault.
    """

    id: Optional[str]
    topic_name: Optional[str]
    retries: Optional[int]
    error: DecodeError


class UndecodableTasksError(DecodeError):
    """Some tasks of a fetchAndLock answer did not decode; the others did.

    The engine locked every task of the answer, so the caller should run
    :attr:`tasks` and report the :attr:`undecodable` ones (e.g. as failures),
    or they stay locked, unrun, until their locks expire.

    Attributes:
        tasks: The tasks that decoded.
        undecodable: The tasks that did not.
    """

    def __init__(self, tasks: List[ExternalTask], undecodable: List[UndecodableTask]) -> None:
        self.tasks = tasks
        self.undecodable = undecodable
        reasons = "; ".join("task %s: %s" % (item.id, item.error) for item in undecodable)
        super().__init__(
            "%d of %d tasks locked by fetchAndLock did not decode (%s)"
            % (len(undecodable), len(tasks) + len(undecodable), reasons)
        )

    def __reduce__(self) -> Any:
        return (type(self), (self.tasks, self.undecodable))


class Client:
    """A Camunda 7 REST client for one worker id.

    Thread-safe: every method may be called from any thread; they share one
    connection pool.

    Args:
        base_url: REST root, e.g. ``http://localhost:8080/engine-rest``.
        worker_id: The worker id tasks are locked for.
        auth: ``(user, password)`` for Basic auth, or any ``requests.auth.AuthBase``.
        headers: Extra headers sent with every request.
        timeout: Timeout in seconds, or a ``(connect, read)`` pair. Long polls add
            their poll time to the read timeout.
        pool_maxsize: Connections kept open to the engine; at least the number of
            requests that may run at once (handlers plus poller plus leaser).
        verify: TLS verification: True (default), False or a CA bundle path.
        cert: Client certificate: a path or a ``(cert, key)`` pair.
        connect_retries: Times a failed connection set-up is retried.
        trust_env: Take proxies, CA bundle and netrc credentials from the
            environment, as requests does (read once, here).
    """

    def __init__(
        self,
        base_url: str,
        worker_id: str,
        *,
        auth: Auth = None,
        headers: Optional[Mapping[str, str]] = None,
        timeout: Timeout = (5.0, 30.0),
        pool_maxsize: int = 100,
        verify: Union[bool, str] = True,
        cert: Union[str, Tuple[str, str], None] = None,
        connect_retries: int = 3,
        trust_env: bool = True,
    ) -> None:
        if not worker_id:
            raise ConfigurationError("worker_id must be a non-empty string")
        if pool_maxsize < 1:
            raise ConfigurationError("pool_maxsize must be at least 1")
        self.worker_id = worker_id
        self.pool_maxsize = pool_maxsize
        # Two pools: the engine and, when a SequinWorker shares this session, Sequin.
        self.session = build_session(
            pool_maxsize=pool_maxsize, pool_connections=2, connect_retries=connect_retries
        )
        self._endpoint = Endpoint(
            self.session,
            base_url,
            auth=auth,
            headers=headers,
            timeout=timeout,
            verify=verify,
            cert=cert,
            trust_env=trust_env,
        )
        self.base_url = self._endpoint.base_url

    def __repr__(self) -> str:
        return "Client(%r, %r)" % (redact_url(self.base_url), self.worker_id)

    def close(self) -> None:
        """Close the connection pool. The client must not be used afterwards."""
        self.session.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing

    def _call(
        self,
        method: str,
        path: str,
        *,
        not_found: Type[NotFoundError] = NotFoundError,
        **kwargs: Any,
    ) -> Any:
        """Send a request; return its decoded JSON (None for an empty answer)."""
        response = self._endpoint.request(method, path, **kwargs)
        if response.status_code >= 300:
            raise engine_error(response, not_found=not_found)
        if response.status_code == 204 or not response.content:
            return None
        return _json(response)

    def _task_call(self, path: str, body: Optional[Dict[str, Any]] = None) -> None:
        self._call("POST", path, body=body, not_found=TaskNotFoundError)

    # ------------------------------------------------------------------ external tasks

    def fetch_and_lock(
        self,
        topics: Iterable[FetchTopic],
        *,
        max_tasks: int,
        use_priority: Optional[bool] = None,
        sorting: Optional[Sequence[Tuple[str, str]]] = None,
        async_response_timeout: Optional[float] = None,
        include_extension_properties: Optional[bool] = None,
    ) -> List[ExternalTask]:
        """Fetch and lock up to ``max_tasks`` tasks of the given topics.

        Args:
            topics: The topics with their lock durations and filters.
            max_tasks: The most tasks to lock.
            use_priority: Order by priority first.
            sorting: ``(sort_by, sort_order)`` pairs, e.g. ``[("createTime", "asc")]``
                (engine 7.21+).
            async_response_timeout: Long-poll time in seconds; None answers at once.
            include_extension_properties: The top-level flag of the request.

        Returns:
            The locked tasks, possibly fewer than asked for.

        Raises:
            UndecodableTasksError: Some tasks did not decode (e.g. a variable whose
                stored JSON is broken); it carries the tasks that did.
            DecodeError: The answer is not a list of tasks at all.
        """
        body: Dict[str, Any] = {
            "workerId": self.worker_id,
            "maxTasks": max_tasks,
            "topics": [_converter.unstructure(topic) for topic in topics],
        }
        read_timeout = None
        if use_priority is not None:
            body["usePriority"] = use_priority
        if sorting is not None:
            body["sorting"] = [{"sortBy": by, "sortOrder": order} for by, order in sorting]
        if include_extension_properties is not None:
            body["includeExtensionProperties"] = include_extension_properties
        if async_response_timeout is not None:
            body["asyncResponseTimeout"] = round(async_response_timeout * 1000)
            read_timeout = self._endpoint.timeout[1] + async_response_timeout + LONG_POLL_MARGIN
        data = self._call("POST", "/external-task/fetchAndLock", body=body, read_timeout=read_timeout)
        return _structure_tasks(data)

    def lock(self, task_id: str, lock_duration: int) -> None:
        """Lock one task by id for this worker (engine 7.15+).

        Args:
            task_id: The external task id.
            lock_duration: Lock duration in milliseconds.

        Raises:
            TaskNotFoundError: The task does not exist.
            LockConflictError: Another worker holds an unexpired lock.
            OptimisticLockingError: A concurrent lock or fetch won the row.
        """
        self._task_call(
            "/external-task/%s/lock" % _segment(task_id),
            {"workerId": self.worker_id, "lockDuration": lock_duration},
        )

    def complete(
        self,
        task_id: str,
        variables: Optional[Mapping[str, Any]] = None,
        local_variables: Optional[Mapping[str, Any]] = None,
    ) -> None:
        """Complete a task locked by this worker.

        Args:
            task_id: The external task id.
            variables: Variables for the process scope (plain or typed values).
            local_variables: Variables local to the task's execution.

        Raises:
            TaskNotFoundError: The task no longer exists.
            LockConflictError: The task is not locked by this worker.
            OptimisticLockingError: A concurrent transaction won; safe to retry.
        """
        body: Dict[str, Any] = {"workerId": self.worker_id}
        _put_variables(body, variables, local_variables)
        self._task_call("/external-task/%s/complete" % _segment(task_id), body)

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
    ) -> None:
        """Report a technical failure.

        Args:
            task_id: The external task id.
            error_message: Short message (the engine keeps 666 characters).
            retries: Retries left; 0 raises an incident.
            retry_timeout: Milliseconds before the task may be fetched again.
            error_details: Long details, e.g. a traceback.
            variables: Variables for the process scope.
            local_variables: Variables local to the task's execution.
        """
        body: Dict[str, Any] = {
            "workerId": self.worker_id,
            "errorMessage": error_message,
            "retries": retries,
            "retryTimeout": retry_timeout,
        }
        if error_details is not None:
            body["errorDetails"] = error_details
        _put_variables(body, variables, local_variables)
        self._task_call("/external-task/%s/failure" % _segment(task_id), body)

    def handle_bpmn_error(
        self,
        task_id: str,
        error_code: str,
        *,
        error_message: Optional[str] = None,
        variables: Optional[Mapping[str, Any]] = None,
    ) -> None:
        """Report a BPMN error that a boundary or event subprocess may catch.

        Args:
            task_id: The external task id.
            error_code: The BPMN error code.
            error_message: Optional message.
            variables: Variables to set.
        """
        body: Dict[str, Any] = {"workerId": self.worker_id, "errorCode": error_code}
        if error_message is not None:
            body["errorMessage"] = error_message
        _put_variables(body, variables, None)
        self._task_call("/external-task/%s/bpmnError" % _segment(task_id), body)

    def extend_lock(self, task_id: str, new_duration: int, *, read_timeout: Optional[float] = None) -> None:
        """Set the lock to expire ``new_duration`` milliseconds from now.

        Args:
            task_id: The task.
            new_duration: Milliseconds from now.
            read_timeout: Seconds to wait for the answer, instead of the client's read timeout.

        Raises:
            LockExpiredError: The lock already expired.
            LockConflictError: Another worker holds the lock.
            TaskNotFoundError: The task no longer exists.
        """
        self._call(
            "POST",
            "/external-task/%s/extendLock" % _segment(task_id),
            body={"workerId": self.worker_id, "newDuration": new_duration},
            not_found=TaskNotFoundError,
            read_timeout=read_timeout,
        )

    def unlock(self, task_id: str) -> None:
        """Release the lock so the task can be fetched again at once."""
        self._task_call("/external-task/%s/unlock" % _segment(task_id))

    def set_retries(self, task_id: str, retries: int) -> None:
        """Set a task's retries; 0 raises an incident, more resolves it."""
        self._call(
            "PUT",
            "/external-task/%s/retries" % _segment(task_id),
            body={"retries": retries},
            not_found=TaskNotFoundError,
        )

    def get_task(self, task_id: str) -> ExternalTask:
        """Read one task (without variables).

        Raises:
            TaskNotFoundError: The task does not exist.
        """
        data = self._call("GET", "/external-task/%s" % _segment(task_id), not_found=TaskNotFoundError)
        return _converter.structure(data, ExternalTask)

    def get_tasks(
        self,
        *,
        first_result: Optional[int] = None,
        max_results: Optional[int] = None,
        **filters: Any,
    ) -> List[ExternalTask]:
        """Query tasks, e.g. ``get_tasks(topic_name="x", not_locked=True)``.

        Args:
            first_result: Paging offset.
            max_results: Page size.
            **filters: Query fields of ``POST /external-task`` in snake_case
                (``topic_name``, ``process_instance_id``, ``worker_id``, ``locked``,
                ``with_retries_left``, ``external_task_id_in``, ...).
        """
        params = _paging(first_result, max_results)
        data = self._call("POST", "/external-task", body=_query(filters), params=params)
        return _structure_list(data, ExternalTask)

    def count_tasks(self, **filters: Any) -> int:
        """Count the tasks matching the same filters as :meth:`get_tasks`."""
        return _count(self._call("POST", "/external-task/count", body=_query(filters)))

    def get_error_details(self, task_id: str) -> Optional[str]:
        """The error details of a task's last failure, or None.

        Raises:
            TaskNotFoundError: The task does not exist.
        """
        # The details are text/plain; the engine answers 406 to an Accept of JSON only.
        response = self._endpoint.request(
            "GET", "/external-task/%s/errorDetails" % _segment(task_id), accept="text/plain, application/json"
        )
        if response.status_code == 500 and _body_type(response) == "NullValueException":
            # The engine answers an unknown id here with 500 NullValueException.
            kind, message, code = _error_body(response)
            raise TaskNotFoundError(response.status_code, kind, message, code)
        if response.status_code >= 300:
            raise engine_error(response, not_found=TaskNotFoundError)
        if response.status_code == 204:
            return None
        return response.text

    # ------------------------------------------------------------------ variables

    def get_process_variables(
        self, process_instance_id: str, *, deserialize_values: bool = False
    ) -> Dict[str, TypedValue]:
        """The variables of a process instance's own scope, typed.

        Returns:
            ``{name: TypedValue}``; ``.value`` of each is the Python value.
        """
        data = self._call(
            "GET",
            "/process-instance/%s/variables" % _segment(process_instance_id),
            params={"deserializeValues": _flag(deserialize_values)},
        )
        return _variable_map(data)

    def get_local_variables(
        self, execution_id: str, *, deserialize_values: bool = False
    ) -> Dict[str, TypedValue]:
        """The variables local to one execution, typed (``{name: TypedValue}``)."""
        data = self._call(
            "GET",
            "/execution/%s/localVariables" % _segment(execution_id),
            params={"deserializeValues": _flag(deserialize_values)},
        )
        return _variable_map(data)

    def get_variable_instances(
        self, *, deserialize_values: bool = False, **filters: Any
    ) -> List[VariableInstance]:
        """Query variable instances with the scope each lives in.

        Args:
            deserialize_values: Ask the engine to deserialize Object values.
            **filters: Query fields of ``POST /variable-instance`` in snake_case
                (``process_instance_id_in``, ``activity_instance_id_in``,
                ``variable_name``, ...).
        """
        data = self._call(
            "POST",
            "/variable-instance",
            body=_query(filters),
            params={"deserializeValues": _flag(deserialize_values)},
        )
        return _structure_list(data, VariableInstance)

    def get_activity_instance_tree(self, process_instance_id: str) -> ActivityInstance:
        """The activity-instance tree of a running process instance."""
        data = self._call("GET", "/process-instance/%s/activity-instances" % _segment(process_instance_id))
        return _converter.structure(data, ActivityInstance)

    # ------------------------------------------------------------------ deployments and instances

    def deploy(
        self,
        name: str,
        files: Iterable[DeploymentFile],
        *,
        enable_duplicate_filtering: bool = False,
        deploy_changed_only: bool = False,
        source: Optional[str] = None,
        tenant_id: Optional[str] = None,
    ) -> Deployment:
        """Deploy BPMN/DMN and other resources in one deployment.

        Args:
            name: Deployment name.
            files: Paths, or ``(filename, content)`` pairs.
            enable_duplicate_filtering: Skip the deployment if nothing changed.
            deploy_changed_only: Deploy only the changed resources.
            source: Deployment source label.
            tenant_id: Tenant of the deployment.
        """
        form: Dict[str, str] = {
            "deployment-name": name,
            "enable-duplicate-filtering": _flag(enable_duplicate_filtering),
            "deploy-changed-only": _flag(deploy_changed_only),
        }
        if source is not None:
            form["deployment-source"] = source
        if tenant_id is not None:
            form["tenant-id"] = tenant_id
        parts = []
        for index, item in enumerate(files):
            filename, content = _read_resource(item)
            parts.append(("resource-%d" % index, (filename, content, "application/octet-stream")))
        if not parts:
            raise ConfigurationError("a deployment needs at least one file")
        data = self._call("POST", "/deployment/create", data=form, files=parts)
        return _converter.structure(data, Deployment)

    def delete_deployment(
        self,
        deployment_id: str,
        *,
        cascade: bool = False,
        skip_custom_listeners: bool = False,
        skip_io_mappings: bool = False,
    ) -> None:
        """Delete a deployment; ``cascade`` also removes its instances and history."""
        params = {
            "cascade": _flag(cascade),
            "skipCustomListeners": _flag(skip_custom_listeners),
            "skipIoMappings": _flag(skip_io_mappings),
        }
        self._call("DELETE", "/deployment/%s" % _segment(deployment_id), params=params)

    def start_process_instance(
        self,
        key: str,
        *,
        business_key: Optional[str] = None,
        variables: Optional[Mapping[str, Any]] = None,
        tenant_id: Optional[str] = None,
        with_variables_in_return: bool = False,
    ) -> ProcessInstance:
        """Start the latest version of a process definition by key.

        Raises:
            NotFoundError: No definition with that key.
        """
        path = "/process-definition/key/%s" % _segment(key)
        if tenant_id is not None:
            path += "/tenant-id/%s" % _segment(tenant_id)
        body: Dict[str, Any] = {}
        if business_key is not None:
            body["businessKey"] = business_key
        _put_variables(body, variables, None)
        if with_variables_in_return:
            body["withVariablesInReturn"] = True
        data = self._call("POST", path + "/start", body=body)
        return _converter.structure(data, ProcessInstance)

    def count_history_process_instances(self, **filters: Any) -> int:
        """Count historic process instances, e.g. ``finished=True, process_definition_key="k"``."""
        return _count(self._call("POST", "/history/process-instance/count", body=_query(filters)))

    def get_history_process_instances(
        self,
        *,
        first_result: Optional[int] = None,
        max_results: Optional[int] = None,
        **filters: Any,
    ) -> List[HistoricProcessInstance]:
        """Query historic process instances, e.g. ``process_instance_ids=[...], finished=True``."""
        params = _paging(first_result, max_results)
        data = self._call("POST", "/history/process-instance", body=_query(filters), params=params)
        return _structure_list(data, HistoricProcessInstance)

    def count_history_activity_instances(self, **filters: Any) -> int:
        """Count historic activity instances, e.g. ``process_instance_id=..., activity_id="end"``."""
        return _count(self._call("POST", "/history/activity-instance/count", body=_query(filters)))

    def version(self) -> str:
        """The engine's REST API version, e.g. ``"7.24.0"``."""
        data = self._call("GET", "/version")
        if not isinstance(data, dict) or not isinstance(data.get("version"), str):
            raise DecodeError("unexpected /version answer: %r" % (data,))
        return str(data["version"])


# ---------------------------------------------------------------------- helpers


def engine_error(
    response: requests.Response,
    *,
    not_found: Type[NotFoundError] = NotFoundError,
) -> EngineError:
    """Turn an error answer into the narrowest :class:`EngineError` subclass."""
    status = response.status_code
    kind, message, code = _error_body(response)
    cls: Type[EngineError] = EngineError
    if status == 401:
        cls = AuthenticationError
        message = message or "authentication required: check the client's auth"
    elif status == 403:
        cls = AuthorizationError
    elif status == 404:
        # Without Camunda's error body the path itself is unknown (a wrong base URL),
        # whatever resource was asked for.
        cls = not_found if kind is not None else NotFoundError
    elif status == 400:
        cls = BadRequestError
        if kind == "RestException" and _LOCK_EXPIRED_FRAGMENT in message:
            cls = LockExpiredError
        elif kind == "RestException" and any(f in message for f in _LOCK_CONFLICT_FRAGMENTS):
            cls = LockConflictError
    elif kind == "OptimisticLockingException" or code == _OPTIMISTIC_LOCKING_CODE:
        cls = OptimisticLockingError
    return cls(status, kind, message or response.reason or "", code)


def _error_body(response: requests.Response) -> Tuple[Optional[str], str, Optional[int]]:
    """``(type, message, code)`` of an error body; a body that is not Camunda's JSON
    (an HTML page of a proxy) yields no type and a short excerpt as message."""
    if not response.content:
        return None, "", None
    try:
        data = json.loads(response.content)
    except (ValueError, RecursionError):
        data = None
    if not isinstance(data, dict):
        excerpt = response.text[:200].strip()
        return None, "non-JSON error answer: %s" % excerpt, None
    kind = data.get("type")
    message = data.get("message")
    code = data.get("code")
    return (
        kind if isinstance(kind, str) else None,
        message if isinstance(message, str) else "",
        code if isinstance(code, int) and not isinstance(code, bool) else None,
    )


def _body_type(response: requests.Response) -> Optional[str]:
    return _error_body(response)[0]


def _segment(value: str) -> str:
    """An id as one URL path segment: a ``/`` or ``?`` in it cannot address another resource."""
    return quote(str(value), safe="")


def _json(response: requests.Response) -> Any:
    try:
        return json.loads(response.content)
    except (ValueError, RecursionError) as exc:
        raise DecodeError(
            "answer of %s %s is not JSON: %s" % (response.request.method, redact_url(response.url), exc)
        ) from None


def _structure_list(data: Any, cls: Type[T]) -> List[T]:
    if not isinstance(data, list):
        raise DecodeError("expected a JSON array of %s, got %s" % (cls.__name__, type(data).__name__))
    return [_converter.structure(item, cls) for item in data]


def _structure_tasks(data: Any) -> List[ExternalTask]:
    """Decode a fetchAndLock answer task by task: one bad task must not take its batch down."""
    if not isinstance(data, list):
        raise DecodeError("expected a JSON array of ExternalTask, got %s" % type(data).__name__)
    tasks: List[ExternalTask] = []
    undecodable: List[UndecodableTask] = []
    for item in data:
        try:
            tasks.append(_converter.structure(item, ExternalTask))
        except DecodeError as error:
            fields = item if isinstance(item, dict) else {}
            undecodable.append(
                UndecodableTask(
                    _field(fields, "id", str),
                    _field(fields, "topicName", str),
                    _field(fields, "retries", int),
                    error,
                )
            )
    if undecodable:
        raise UndecodableTasksError(tasks, undecodable)
    return tasks


def _field(data: Mapping[str, Any], key: str, kind: Type[T]) -> Optional[T]:
    value = data.get(key)
    return value if isinstance(value, kind) and not isinstance(value, bool) else None


def _variable_map(data: Any) -> Dict[str, TypedValue]:
    # An empty or null answer is no variable map: the engine always sends an object here.
    if not isinstance(data, dict):
        raise DecodeError("expected a JSON object of variables, got %s" % type(data).__name__)
    return decode_variables(data)


def _count(data: Any) -> int:
    if not isinstance(data, dict) or not isinstance(data.get("count"), int):
        raise DecodeError('expected {"count": n}, got %r' % (data,))
    return int(data["count"])


def _put_variables(
    body: Dict[str, Any],
    variables: Optional[Mapping[str, Any]],
    local_variables: Optional[Mapping[str, Any]],
) -> None:
    if variables:
        body["variables"] = encode_variables(variables)
    if local_variables:
        body["localVariables"] = encode_variables(local_variables)


def _query(filters: Mapping[str, Any]) -> Dict[str, Any]:
    """snake_case keyword filters -> camelCase JSON query, dates in the engine format."""
    query = {}
    for name, value in filters.items():
        if isinstance(value, _dt.datetime):
            value = format_date(value)
        query[_converter.camel_case(name)] = value
    return query


def _paging(first_result: Optional[int], max_results: Optional[int]) -> Dict[str, int]:
    params = {}
    if first_result is not None:
        params["firstResult"] = first_result
    if max_results is not None:
        params["maxResults"] = max_results
    return params


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _read_resource(item: DeploymentFile) -> Tuple[str, bytes]:
    if isinstance(item, tuple):
        filename, content = item
        return filename, content.encode("utf-8") if isinstance(content, str) else content
    path = os.fspath(item)
    with open(path, "rb") as resource:
        return os.path.basename(path), resource.read()

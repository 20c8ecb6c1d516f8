"""Tests of camunda_ext.client: what each call sends, what it returns, and how it fails.

Answers come from tests/fixtures/engine, captured from a Camunda 7.24.0 engine;
requests are checked to the exact camelCase body. Every failure surfaces as a
CamundaError subclass: nothing from requests escapes, and no credential shows in
reprs, error texts or logs.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.parser
import email.policy
import inspect
import json
import logging
import re
import socket
from typing import Any, Callable, Dict, List, Tuple

import pytest
import requests
import requests.auth
import responses
from responses import matchers

from camunda_ext import Client
from camunda_ext.client import UndecodableTasksError
from camunda_ext.errors import (
    AuthenticationError,
    AuthorizationError,
    BadRequestError,
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
from camunda_ext.models import (
    ActivityInstance,
    Deployment,
    ExternalTask,
    FetchTopic,
    HistoricProcessInstance,
    ProcessInstance,
    VariableInstance,
)
from camunda_ext.variables import Json, Long, TypedValue, decode_variables, parse_date
from tests.unit.conftest import BASE_URL, WORKER_ID, load_fixture

UTC = dt.timezone.utc
TASK_URL = BASE_URL + "/external-task/task-1"
OPTIMISTIC_LOCKING = {
    "type": "OptimisticLockingException",
    "message": "ENGINE-03005 Execution of 'UPDATE ExecutionEntity[x]' failed. Entity was updated by another "
    "transaction concurrently.",
    "code": 1,
}
HTML_502 = (
    "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center>"
    "<hr><center>nginx</center></body></html>"
)


def body_of(call: Any) -> Any:
    return json.loads(call.request.body)


def add_fixture_answer(engine: responses.RequestsMock, method: str, url: str, name: str) -> None:
    """Answer ``method url`` with a captured error answer (status, headers, body)."""
    answer = load_fixture(name)
    body = answer["body"]
    headers = {
        k: v for k, v in answer.get("headers", {}).items() if k not in ("Content-Length", "Content-Type")
    }
    content_type = answer.get("headers", {}).get("Content-Type", "application/json")
    engine.add(
        method,
        url,
        status=answer["status"],
        body=body if isinstance(body, str) else json.dumps(body),
        headers=headers,
        content_type=content_type,
    )


# --------------------------------------------------------------------------- construction


def test_repr_names_the_engine_and_the_worker() -> None:
    assert repr(Client(BASE_URL, WORKER_ID, trust_env=False)) == "Client('%s', '%s')" % (BASE_URL, WORKER_ID)


def test_a_trailing_slash_of_the_base_url_is_dropped(engine: responses.RequestsMock) -> None:
    engine.get(BASE_URL + "/version", json={"version": "7.24.0"})

    assert Client(BASE_URL + "/", WORKER_ID, trust_env=False).version() == "7.24.0"


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((BASE_URL, ""), {}),
        ((BASE_URL, WORKER_ID), {"pool_maxsize": 0}),
        (("engine.test/engine-rest", WORKER_ID), {}),
        (("ftp://engine.test/engine-rest", WORKER_ID), {}),
        (("http:///engine-rest", WORKER_ID), {}),
    ],
)
def test_wrong_settings_fail_at_construction(args: tuple, kwargs: dict) -> None:
    with pytest.raises(ConfigurationError):
        Client(*args, **kwargs)


def test_close_closes_the_session(monkeypatch: pytest.MonkeyPatch) -> None:
    client = Client(BASE_URL, WORKER_ID, trust_env=False)
    closed: List[bool] = []
    monkeypatch.setattr(client.session, "close", lambda: closed.append(True))

    with client:
        pass

    assert closed == [True]


# --------------------------------------------------------------------------- fetchAndLock


def test_fetch_and_lock_sends_the_minimal_body_and_no_long_poll_timeout(
    client: Client, engine: responses.RequestsMock
) -> None:
    engine.post(
        BASE_URL + "/external-task/fetchAndLock",
        json=[],
        match=[
            matchers.json_params_matcher(
                {
                    "workerId": WORKER_ID,
                    "maxTasks": 2,
                    "topics": [{"topicName": "score", "lockDuration": 60000}],
                }
            ),
            matchers.header_matcher({"Content-Type": "application/json"}),
        ],
    )

    assert client.fetch_and_lock([FetchTopic(topic_name="score", lock_duration=60000)], max_tasks=2) == []
    assert engine.calls[0].request.req_kwargs["timeout"] == (5.0, 30.0)


def test_fetch_and_lock_sends_every_field_in_camel_case(
    client: Client, engine: responses.RequestsMock
) -> None:
    engine.post(
        BASE_URL + "/external-task/fetchAndLock",
        json=[],
        match=[
            matchers.json_params_matcher(
                {
                    "workerId": WORKER_ID,
                    "maxTasks": 5,
                    "usePriority": True,
                    "sorting": [
                        {"sortBy": "createTime", "sortOrder": "asc"},
                        {"sortBy": "createTime", "sortOrder": "desc"},
                    ],
                    "asyncResponseTimeout": 20000,
                    "includeExtensionProperties": True,
                    "topics": [
                        {
                            "topicName": "score-credit",
                            "lockDuration": 30000,
                            "variables": ["applicantId", "creditScores"],
                            "localVariables": True,
                            "businessKey": "app-77",
                            "processDefinitionId": "loan:1:a",
                            "processDefinitionIdIn": ["loan:1:a", "loan:2:b"],
                            "processDefinitionKey": "loan",
                            "processDefinitionKeyIn": ["loan-check"],
                            "processDefinitionVersionTag": "v1",
                            "tenantIdIn": ["t1", "t2"],
                            "withoutTenantId": False,
                            "processVariables": {"region": "EU"},
                            "deserializeValues": False,
                            "includeExtensionProperties": True,
                        },
                        {"topicName": "other", "lockDuration": 1000, "variables": []},
                    ],
                }
            )
        ],
    )
    topics = [
        FetchTopic(
            topic_name="score-credit",
            lock_duration=30000,
            variables=["applicantId", "creditScores"],
            local_variables=True,
            business_key="app-77",
            process_definition_id="loan:1:a",
            process_definition_id_in=["loan:1:a", "loan:2:b"],
            process_definition_key="loan",
            process_definition_key_in=["loan-check"],
            process_definition_version_tag="v1",
            tenant_id_in=["t1", "t2"],
            without_tenant_id=False,
            process_variables={"region": "EU"},
            deserialize_values=False,
            include_extension_properties=True,
        ),
        FetchTopic(topic_name="other", lock_duration=1000, variables=[]),
    ]

    client.fetch_and_lock(
        topics,
        max_tasks=5,
        use_priority=True,
        sorting=[("createTime", "asc"), ("createTime", "desc")],
        async_response_timeout=20.0,
        include_extension_properties=True,
    )


def test_a_long_poll_reads_for_the_poll_time_plus_a_margin(
    client: Client, engine: responses.RequestsMock
) -> None:
    engine.post(BASE_URL + "/external-task/fetchAndLock", json=[])

    client.fetch_and_lock(
        [FetchTopic(topic_name="t", lock_duration=1000)], max_tasks=1, async_response_timeout=20
    )

    connect, read = engine.calls[0].request.req_kwargs["timeout"]
    assert connect == 5.0
    assert read == 30.0 + 20.0 + 5.0


def test_extend_lock_can_wait_less_than_the_read_timeout(
    client: Client, engine: responses.RequestsMock
) -> None:
    engine.post(TASK_URL + "/extendLock", status=204)

    client.extend_lock("task-1", 30_000, read_timeout=7.0)

    assert engine.calls[0].request.req_kwargs["timeout"] == (5.0, 7.0)


def test_a_long_poll_adds_to_the_configured_read_timeout(engine: responses.RequestsMock) -> None:
    engine.post(BASE_URL + "/external-task/fetchAndLock", json=[])
    client = Client(BASE_URL, WORKER_ID, timeout=(2, 10), trust_env=False)

    client.fetch_and_lock(
        [FetchTopic(topic_name="t", lock_duration=1000)], max_tasks=1, async_response_timeout=60
    )

    assert engine.calls[0].request.req_kwargs["timeout"] == (2.0, 75.0)
    assert body_of(engine.calls[0])["asyncResponseTimeout"] == 60000


@pytest.mark.parametrize(
    ("seconds", "ms"), [(0.1, 100), (1.005, 1005), (4.35, 4350), (0, 0), (1800, 1800000)]
)
def test_the_long_poll_time_is_sent_in_whole_milliseconds(
    client: Client, engine: responses.RequestsMock, seconds: float, ms: int
) -> None:
    engine.post(BASE_URL + "/external-task/fetchAndLock", json=[])

    client.fetch_and_lock(
        [FetchTopic(topic_name="t", lock_duration=1000)], max_tasks=1, async_response_timeout=seconds
    )

    assert body_of(engine.calls[0])["asyncResponseTimeout"] == ms


def test_fetch_and_lock_decodes_every_type(
    client: Client, engine: responses.RequestsMock, fixture: Any
) -> None:
    wire = fixture("fetch_and_lock_all_types")
    engine.post(BASE_URL + "/external-task/fetchAndLock", json=wire)

    (task,) = client.fetch_and_lock([FetchTopic(topic_name="mayThrow", lock_duration=1000)], max_tasks=1)

    assert isinstance(task, ExternalTask)
    assert task.id == wire[0]["id"]
    assert task.topic_name == "mayThrow"
    assert task.business_key == "all-types"
    assert task.process_instance_id == wire[0]["processInstanceId"]
    assert task.lock_expiration_time == parse_date(wire[0]["lockExpirationTime"])
    assert task.retries is None
    assert task.variables["aList"] == [7, 3, 9]
    assert task.variables["aMap"] == {"limit": 1000, "currency": "EUR", "approved": True}
    assert task.variables["aDate"] == dt.datetime(2025, 11, 3, 9, 15, 30, 123000, tzinfo=UTC)
    assert task.variables["someBytes"] == b"\x00\x01\x02binary\xff"
    assert task.variables["someJson"] == {"name": "Ann", "tags": ["a", "b"], "nested": {"n": 1}}
    assert task.variables["aLong"] == 9007199254740993
    assert task.typed_variables["aFile"].is_opaque


def test_fetch_and_lock_returns_every_task(
    client: Client, engine: responses.RequestsMock, fixture: Any
) -> None:
    wire = fixture("fetch_and_lock_multi_instance")
    engine.post(BASE_URL + "/external-task/fetchAndLock", json=wire)

    tasks = client.fetch_and_lock([FetchTopic(topic_name="loanGranter", lock_duration=1000)], max_tasks=5)

    assert [task.id for task in tasks] == [item["id"] for item in wire]


@pytest.mark.parametrize("stored", ["{not json", "[" * 100_000 + "]" * 100_000])
def test_a_task_that_does_not_decode_leaves_the_others_of_its_answer_to_run(
    client: Client, engine: responses.RequestsMock, stored: str
) -> None:
    # The engine stores serialized values unchecked and locks the task all the same.
    order = {"type": "Object", "value": stored, "valueInfo": {"serializationDataFormat": "application/json"}}
    wire = [
        {"id": "a", "topicName": "t"},
        {"id": "b", "topicName": "t", "retries": 2, "variables": {"order": order}},
        {"id": "c", "topicName": "t"},
        {"topicName": "t", "retries": "?"},
    ]
    engine.post(BASE_URL + "/external-task/fetchAndLock", json=wire)

    with pytest.raises(UndecodableTasksError) as caught:
        client.fetch_and_lock([FetchTopic(topic_name="t", lock_duration=1000)], max_tasks=4)

    assert isinstance(caught.value, DecodeError)  # what a caller that knows no better still catches
    assert [task.id for task in caught.value.tasks] == ["a", "c"]
    bad, no_id = caught.value.undecodable
    assert (bad.id, bad.topic_name, bad.retries) == ("b", "t", 2)
    assert str(bad.error).startswith("variable 'order': Object variable does not hold JSON")
    assert (no_id.id, no_id.topic_name, no_id.retries) == (None, "t", None)
    assert "task b: variable 'order'" in str(caught.value)


# --------------------------------------------------------------------------- per-task calls


def test_lock(client: Client, engine: responses.RequestsMock) -> None:
    engine.post(
        TASK_URL + "/lock",
        status=204,
        match=[matchers.json_params_matcher({"workerId": WORKER_ID, "lockDuration": 30000})],
    )

    assert client.lock("task-1", 30000) is None


def test_complete_without_variables_sends_only_the_worker(
    client: Client, engine: responses.RequestsMock
) -> None:
    engine.post(
        TASK_URL + "/complete", status=204, match=[matchers.json_params_matcher({"workerId": WORKER_ID})]
    )

    assert client.complete("task-1") is None


def test_complete_sends_typed_variables_and_local_variables(
    client: Client, engine: responses.RequestsMock
) -> None:
    engine.post(
        TASK_URL + "/complete",
        status=204,
        match=[
            matchers.json_params_matcher(
                {
                    "workerId": WORKER_ID,
                    "variables": {
                        "score": {"type": "Integer", "value": 712},
                        "big": {"type": "Long", "value": 5},
                        "doc": {"type": "Json", "value": '{"a":1}'},
                        "scores": {
                            "type": "Object",
                            "value": "[700,645]",
                            "valueInfo": {
                                "objectTypeName": "java.util.ArrayList",
                                "serializationDataFormat": "application/json",
                            },
                        },
                    },
                    "localVariables": {"scoredAt": {"type": "Date", "value": "2025-11-03T10:15:30.000+0100"}},
                }
            )
        ],
    )

    client.complete(
        "task-1",
        variables={"score": 712, "big": Long(5), "doc": Json({"a": 1}), "scores": [700, 645]},
        local_variables={
            "scoredAt": dt.datetime(2025, 11, 3, 10, 15, 30, tzinfo=dt.timezone(dt.timedelta(hours=1)))
        },
    )


def test_complete_sends_typed_variables_read_from_the_engine_back_unchanged(
    client: Client, engine: responses.RequestsMock, fixture: Any
) -> None:
    wire = fixture("fetch_and_lock_all_types")[0]["variables"]
    task = ExternalTask("task-1", typed_variables=decode_variables(wire))
    expected = {name: {k: v for k, v in item.items() if k != "valueInfo" or v} for name, item in wire.items()}
    engine.post(
        TASK_URL + "/complete",
        status=204,
        match=[matchers.json_params_matcher({"workerId": WORKER_ID, "variables": expected})],
    )

    client.complete(task.id, variables=task.typed_variables)


def test_a_bad_variable_fails_before_anything_is_sent(client: Client, engine: responses.RequestsMock) -> None:
    with pytest.raises(VariableError):
        client.complete("task-1", variables={"when": dt.datetime(2026, 1, 1)})
    with pytest.raises(VariableError):
        client.complete("task-1", local_variables={"x": float("nan")})

    assert len(engine.calls) == 0


def test_handle_failure_sends_every_field(client: Client, engine: responses.RequestsMock) -> None:
    engine.post(
        TASK_URL + "/failure",
        status=204,
        match=[
            matchers.json_params_matcher(
                {
                    "workerId": WORKER_ID,
                    "errorMessage": "bureau timeout",
                    "errorDetails": "Traceback ...",
                    "retries": 2,
                    "retryTimeout": 5000,
                    "variables": {"attempt": {"type": "Integer", "value": 1}},
                    "localVariables": {"lastError": {"type": "String", "value": "timeout"}},
                }
            )
        ],
    )

    client.handle_failure(
        "task-1",
        "bureau timeout",
        retries=2,
        retry_timeout=5000,
        error_details="Traceback ...",
        variables={"attempt": 1},
        local_variables={"lastError": "timeout"},
    )


def test_handle_failure_minimal(client: Client, engine: responses.RequestsMock) -> None:
    engine.post(
        TASK_URL + "/failure",
        status=204,
        match=[
            matchers.json_params_matcher(
                {"workerId": WORKER_ID, "errorMessage": "boom", "retries": 0, "retryTimeout": 0}
            )
        ],
    )

    client.handle_failure("task-1", "boom", retries=0)


def test_handle_bpmn_error_sends_code_message_and_variables(
    client: Client, engine: responses.RequestsMock
) -> None:
    engine.post(
        TASK_URL + "/bpmnError",
        status=204,
        match=[
            matchers.json_params_matcher(
                {
                    "workerId": WORKER_ID,
                    "errorCode": "LOW_SCORE",
                    "errorMessage": "below 500",
                    "variables": {"score": {"type": "Integer", "value": 420}},
                }
            )
        ],
    )

    client.handle_bpmn_error("task-1", "LOW_SCORE", error_message="below 500", variables={"score": 420})


def test_handle_bpmn_error_minimal(client: Client, engine: responses.RequestsMock) -> None:
    engine.post(
        TASK_URL + "/bpmnError",
        status=204,
        match=[matchers.json_params_matcher({"workerId": WORKER_ID, "errorCode": "NO_LOAN"})],
    )

    client.handle_bpmn_error("task-1", "NO_LOAN")


def test_extend_lock(client: Client, engine: responses.RequestsMock) -> None:
    engine.post(
        TASK_URL + "/extendLock",
        status=204,
        match=[matchers.json_params_matcher({"workerId": WORKER_ID, "newDuration": 45000})],
    )

    client.extend_lock("task-1", 45000)


def test_unlock_sends_no_body(client: Client, engine: responses.RequestsMock) -> None:
    engine.post(TASK_URL + "/unlock", status=204)

    client.unlock("task-1")

    assert engine.calls[0].request.body is None
    assert "Content-Type" not in engine.calls[0].request.headers


def test_set_retries(client: Client, engine: responses.RequestsMock) -> None:
    engine.put(TASK_URL + "/retries", status=204, match=[matchers.json_params_matcher({"retries": 3})])

    client.set_retries("task-1", 3)


def test_get_task(client: Client, engine: responses.RequestsMock, fixture: Any) -> None:
    wire = fixture("external_task")
    engine.get(BASE_URL + "/external-task/" + wire["id"], json=wire)

    task = client.get_task(wire["id"])

    assert task.id == wire["id"]
    assert task.worker_id == wire["workerId"]
    assert task.activity_id == "mayThrow"
    assert task.business_key == "all-types"
    assert task.lock_expiration_time == parse_date(wire["lockExpirationTime"])
    assert task.variables == {}


def test_get_tasks_sends_camel_case_filters_and_paging(
    client: Client, engine: responses.RequestsMock, fixture: Any
) -> None:
    wire = fixture("external_task_list")
    engine.post(
        BASE_URL + "/external-task",
        json=wire,
        match=[
            matchers.json_params_matcher(
                {
                    "topicName": "mayThrow",
                    "notLocked": True,
                    "processInstanceIdIn": ["p1", "p2"],
                    "lockExpirationBefore": "2026-12-04T10:11:12.345+0000",
                }
            ),
            matchers.query_param_matcher({"firstResult": "10", "maxResults": "5"}),
        ],
    )

    tasks = client.get_tasks(
        first_result=10,
        max_results=5,
        topic_name="mayThrow",
        not_locked=True,
        process_instance_id_in=["p1", "p2"],
        lock_expiration_before=dt.datetime(2026, 12, 4, 10, 11, 12, 345000, tzinfo=UTC),
    )

    assert [task.id for task in tasks] == [item["id"] for item in wire]


def test_get_tasks_without_paging_sends_no_query(client: Client, engine: responses.RequestsMock) -> None:
    engine.post(
        BASE_URL + "/external-task",
        json=[],
        match=[matchers.json_params_matcher({}), matchers.query_param_matcher({})],
    )

    assert client.get_tasks() == []


def test_count_tasks(client: Client, engine: responses.RequestsMock) -> None:
    engine.post(
        BASE_URL + "/external-task/count",
        json={"count": 3},
        match=[matchers.json_params_matcher({"topicName": "t", "withRetriesLeft": True})],
    )

    assert client.count_tasks(topic_name="t", with_retries_left=True) == 3


def test_get_error_details_returns_the_text(client: Client, engine: responses.RequestsMock) -> None:
    engine.get(
        TASK_URL + "/errorDetails",
        body="Traceback (most recent call last):\n  ...",
        content_type="text/plain",
        match=[matchers.header_matcher({"Accept": "text/plain, application/json"})],
    )

    assert client.get_error_details("task-1") == "Traceback (most recent call last):\n  ..."


def test_get_error_details_of_a_task_without_failure_is_none(
    client: Client, engine: responses.RequestsMock
) -> None:
    engine.get(TASK_URL + "/errorDetails", status=204)

    assert client.get_error_details("task-1") is None


# --------------------------------------------------------------------------- variables


@pytest.mark.parametrize(("deserialize", "flag"), [(False, "false"), (True, "true")])
def test_get_process_variables(
    client: Client, engine: responses.RequestsMock, fixture: Any, deserialize: bool, flag: str
) -> None:
    name = "process_instance_variables_deserialized" if deserialize else "process_instance_variables"
    engine.get(
        BASE_URL + "/process-instance/p1/variables",
        json=fixture(name),
        match=[matchers.query_param_matcher({"deserializeValues": flag})],
    )

    variables = client.get_process_variables("p1", deserialize_values=deserialize)

    assert set(variables) == set(fixture(name))
    assert all(isinstance(value, TypedValue) for value in variables.values())
    assert variables["aList"].value == [7, 3, 9]
    assert variables["aMap"].value == {"limit": 1000, "currency": "EUR", "approved": True}
    assert variables["aDate"].value == dt.datetime(2025, 11, 3, 9, 15, 30, 123000, tzinfo=UTC)
    assert variables["aLong"] == TypedValue("Long", 9007199254740993, {})


def test_get_local_variables(client: Client, engine: responses.RequestsMock, fixture: Any) -> None:
    engine.get(
        BASE_URL + "/execution/e1/localVariables",
        json=fixture("execution_local_variables"),
        match=[matchers.query_param_matcher({"deserializeValues": "false"})],
    )

    variables = client.get_local_variables("e1")

    assert {name: value.value for name, value in variables.items()} == {"score": 7, "loopCounter": 0}


def test_get_local_variables_of_an_execution_without_any(
    client: Client, engine: responses.RequestsMock, fixture: Any
) -> None:
    engine.get(
        BASE_URL + "/execution/e1/localVariables", json=fixture("execution_local_variables_of_task_execution")
    )

    assert client.get_local_variables("e1") == {}


def test_get_variable_instances(client: Client, engine: responses.RequestsMock, fixture: Any) -> None:
    rows = fixture("variable_instances_of_execution")
    engine.post(
        BASE_URL + "/variable-instance",
        json=rows,
        match=[
            matchers.json_params_matcher({"executionIdIn": ["e1"], "variableName": "score"}),
            matchers.query_param_matcher({"deserializeValues": "false"}),
        ],
    )

    instances = client.get_variable_instances(execution_id_in=["e1"], variable_name="score")

    assert all(isinstance(instance, VariableInstance) for instance in instances)
    assert [(i.name, i.typed_value.value, i.execution_id) for i in instances] == [
        (row["name"], row["value"], row["executionId"]) for row in rows
    ]


def test_get_activity_instance_tree(client: Client, engine: responses.RequestsMock) -> None:
    engine.get(
        BASE_URL + "/process-instance/p1/activity-instances",
        json={
            "id": "p1",
            "activityId": "loan",
            "childActivityInstances": [{"id": "a1", "activityId": "grant"}],
        },
    )

    tree = client.get_activity_instance_tree("p1")

    assert isinstance(tree, ActivityInstance)
    assert [child.activity_id for child in tree.child_activity_instances] == ["grant"]


# --------------------------------------------------------------------------- deployments and instances


def multipart_parts(request: Any) -> Dict[str, Tuple[Any, bytes]]:
    """``{part name: (filename or None, content)}`` of a multipart request."""
    raw = b"Content-Type: " + request.headers["Content-Type"].encode("ascii") + b"\r\n\r\n" + request.body
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
    assert message.is_multipart()
    return {
        part.get_param("name", header="content-disposition"): (
            part.get_filename(),
            part.get_payload(decode=True),
        )
        for part in message.iter_parts()
    }


def test_deploy_sends_a_multipart_form_with_named_files(
    client: Client, engine: responses.RequestsMock, fixture: Any, tmp_path: Any
) -> None:
    bpmn = tmp_path / "loan-granting.bpmn"
    bpmn.write_bytes(b"<definitions id='loan'/>")
    wire = fixture("deployment_create")
    engine.post(BASE_URL + "/deployment/create", json=wire)

    deployment = client.deploy(
        "loan-granting",
        [bpmn, ("rules.dmn", "<definitions id='rules'/>"), ("logo.png", b"\x89PNG")],
        enable_duplicate_filtering=True,
        source="camunda_ext fixtures",
        tenant_id="t1",
    )

    request = engine.calls[0].request
    assert request.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    parts = multipart_parts(request)
    assert parts["deployment-name"] == (None, b"loan-granting")
    assert parts["enable-duplicate-filtering"] == (None, b"true")
    assert parts["deploy-changed-only"] == (None, b"false")
    assert parts["deployment-source"] == (None, b"camunda_ext fixtures")
    assert parts["tenant-id"] == (None, b"t1")
    files = sorted(value for value in parts.values() if value[0] is not None)
    assert files == [
        ("loan-granting.bpmn", b"<definitions id='loan'/>"),
        ("logo.png", b"\x89PNG"),
        ("rules.dmn", b"<definitions id='rules'/>"),
    ]
    assert isinstance(deployment, Deployment)
    assert deployment.id == wire["id"]
    assert deployment.name == "loan-granting"
    assert [d.key for d in deployment.deployed_process_definitions.values()] == ["loan-granting"]


def test_deploy_leaves_out_unset_optional_parts(
    client: Client, engine: responses.RequestsMock, fixture: Any
) -> None:
    engine.post(BASE_URL + "/deployment/create", json=fixture("deployment_create"))

    client.deploy("d", [("a.bpmn", "<x/>")])

    parts = multipart_parts(engine.calls[0].request)
    assert set(parts) == {
        "deployment-name",
        "enable-duplicate-filtering",
        "deploy-changed-only",
        "resource-0",
    }
    assert parts["resource-0"] == ("a.bpmn", b"<x/>")


def test_deploy_needs_a_file(client: Client, engine: responses.RequestsMock) -> None:
    with pytest.raises(ConfigurationError):
        client.deploy("empty", [])

    assert len(engine.calls) == 0


def test_delete_deployment(client: Client, engine: responses.RequestsMock) -> None:
    engine.delete(
        BASE_URL + "/deployment/d1",
        status=204,
        match=[
            matchers.query_param_matcher(
                {"cascade": "true", "skipCustomListeners": "false", "skipIoMappings": "true"}
            )
        ],
    )

    client.delete_deployment("d1", cascade=True, skip_io_mappings=True)


def test_start_process_instance(client: Client, engine: responses.RequestsMock, fixture: Any) -> None:
    wire = fixture("start_process_instance")
    engine.post(
        BASE_URL + "/process-definition/key/loan-granting/start",
        json=wire,
        match=[
            matchers.json_params_matcher(
                {
                    "businessKey": "loan-1",
                    "variables": {
                        "creditScores": {
                            "type": "Object",
                            "value": "[7,3,9]",
                            "valueInfo": {
                                "objectTypeName": "java.util.ArrayList",
                                "serializationDataFormat": "application/json",
                            },
                        }
                    },
                }
            )
        ],
    )

    instance = client.start_process_instance(
        "loan-granting", business_key="loan-1", variables={"creditScores": [7, 3, 9]}
    )

    assert isinstance(instance, ProcessInstance)
    assert instance.id == wire["id"]
    assert instance.definition_id == wire["definitionId"]
    assert instance.business_key == "loan-1"
    assert instance.ended is False


def test_start_process_instance_minimal_sends_an_empty_object(
    client: Client, engine: responses.RequestsMock, fixture: Any
) -> None:
    engine.post(
        BASE_URL + "/process-definition/key/k/start",
        json=fixture("start_process_instance"),
        match=[matchers.json_params_matcher({})],
    )

    client.start_process_instance("k")


def test_start_process_instance_of_a_tenant_with_variables_in_return(
    client: Client, engine: responses.RequestsMock, fixture: Any
) -> None:
    engine.post(
        BASE_URL + "/process-definition/key/k/tenant-id/t1/start",
        json={**fixture("start_process_instance"), "variables": fixture("process_instance_variables")},
        match=[matchers.json_params_matcher({"withVariablesInReturn": True})],
    )

    instance = client.start_process_instance("k", tenant_id="t1", with_variables_in_return=True)

    assert instance.typed_variables["aList"].value == [7, 3, 9]


def test_count_history_process_instances(client: Client, engine: responses.RequestsMock) -> None:
    engine.post(
        BASE_URL + "/history/process-instance/count",
        json={"count": 2},
        match=[matchers.json_params_matcher({"finished": True, "processDefinitionKey": "k"})],
    )

    assert client.count_history_process_instances(finished=True, process_definition_key="k") == 2


def test_get_history_process_instances(client: Client, engine: responses.RequestsMock) -> None:
    engine.post(
        BASE_URL + "/history/process-instance",
        json=[{"id": "p1", "state": "COMPLETED", "startTime": "2026-12-04T16:48:51.396+0000", "extra": 1}],
        match=[
            matchers.json_params_matcher({"processInstanceIds": ["p1"], "finished": True}),
            matchers.query_param_matcher({"maxResults": "1"}),
        ],
    )

    (instance,) = client.get_history_process_instances(
        max_results=1, process_instance_ids=["p1"], finished=True
    )

    assert isinstance(instance, HistoricProcessInstance)
    assert instance.state == "COMPLETED"
    assert instance.start_time == parse_date("2026-12-04T16:48:51.396+0000")


def test_count_history_activity_instances(client: Client, engine: responses.RequestsMock) -> None:
    engine.post(
        BASE_URL + "/history/activity-instance/count",
        json={"count": 1},
        match=[matchers.json_params_matcher({"processInstanceId": "p1", "activityId": "end"})],
    )

    assert client.count_history_activity_instances(process_instance_id="p1", activity_id="end") == 1


def test_version(client: Client, engine: responses.RequestsMock, fixture: Any) -> None:
    engine.get(BASE_URL + "/version", json=fixture("version"))

    assert client.version() == "7.24.0"


def test_requests_ask_for_json(client: Client, engine: responses.RequestsMock) -> None:
    engine.get(
        BASE_URL + "/version",
        json={"version": "7.24.0"},
        match=[matchers.header_matcher({"Accept": "application/json"})],
    )

    client.version()


# --------------------------------------------------------------------------- error answers


@pytest.mark.parametrize(
    ("call", "method", "path"),
    [
        (lambda c: c.lock("task-1", 1000), "POST", "/lock"),
        (lambda c: c.complete("task-1"), "POST", "/complete"),
        (lambda c: c.handle_failure("task-1", "m", retries=1), "POST", "/failure"),
        (lambda c: c.handle_bpmn_error("task-1", "E"), "POST", "/bpmnError"),
        (lambda c: c.extend_lock("task-1", 1000), "POST", "/extendLock"),
        (lambda c: c.unlock("task-1"), "POST", "/unlock"),
        (lambda c: c.set_retries("task-1", 1), "PUT", "/retries"),
    ],
    ids=["lock", "complete", "failure", "bpmnError", "extendLock", "unlock", "retries"],
)
def test_an_unknown_task_is_task_not_found(
    client: Client, engine: responses.RequestsMock, call: Callable[[Client], Any], method: str, path: str
) -> None:
    add_fixture_answer(engine, method, TASK_URL + path, "error_complete_unknown_task")

    with pytest.raises(TaskNotFoundError) as caught:
        call(client)

    error = caught.value
    assert error.status_code == 404
    assert error.type == "RestException"
    assert error.message == load_fixture("error_complete_unknown_task")["body"]["message"]
    assert error.code == 0


def test_get_of_an_unknown_task_is_task_not_found(client: Client, engine: responses.RequestsMock) -> None:
    add_fixture_answer(engine, "GET", TASK_URL, "error_get_unknown_external_task")

    with pytest.raises(TaskNotFoundError) as caught:
        client.get_task("task-1")

    assert caught.value.status_code == 404
    assert caught.value.code is None


def test_error_details_of_an_unknown_task_is_task_not_found(
    client: Client, engine: responses.RequestsMock
) -> None:
    engine.get(
        TASK_URL + "/errorDetails",
        status=500,
        json={
            "type": "NullValueException",
            "message": "External task with id task-1 does not exist",
            "code": 0,
        },
    )

    with pytest.raises(TaskNotFoundError) as caught:
        client.get_error_details("task-1")

    assert caught.value.type == "NullValueException"
    assert caught.value.message == "External task with id task-1 does not exist"
    assert caught.value.status_code == 500  # the engine's status, kept


def test_error_details_other_server_errors_stay_engine_errors(
    client: Client, engine: responses.RequestsMock
) -> None:
    engine.get(
        TASK_URL + "/errorDetails",
        status=500,
        json={"type": "ProcessEngineException", "message": "x", "code": 0},
    )

    with pytest.raises(EngineError) as caught:
        client.get_error_details("task-1")

    assert not isinstance(caught.value, NotFoundError)
    assert caught.value.status_code == 500


def test_starting_an_unknown_key_is_not_found_but_no_task_error(
    client: Client, engine: responses.RequestsMock
) -> None:
    add_fixture_answer(
        engine, "POST", BASE_URL + "/process-definition/key/no-such-process/start", "error_start_unknown_key"
    )

    with pytest.raises(NotFoundError) as caught:
        client.start_process_instance("no-such-process")

    assert not isinstance(caught.value, TaskNotFoundError)
    assert caught.value.status_code == 404
    assert "no-such-process" in caught.value.message


@pytest.mark.parametrize(
    ("call", "path", "name"),
    [
        (lambda c: c.complete("task-1"), "/complete", "error_complete_wrong_worker"),
        (lambda c: c.lock("task-1", 1000), "/lock", "error_lock_held_by_other_worker"),
        (lambda c: c.extend_lock("task-1", 1000), "/extendLock", "error_extend_lock_unlocked"),
    ],
    ids=["complete-wrong-worker", "lock-held-by-other", "extend-unlocked"],
)
def test_a_lock_held_by_another_worker_is_a_lock_conflict(
    client: Client, engine: responses.RequestsMock, call: Callable[[Client], Any], path: str, name: str
) -> None:
    add_fixture_answer(engine, "POST", TASK_URL + path, name)

    with pytest.raises(LockConflictError) as caught:
        call(client)

    assert not isinstance(caught.value, LockExpiredError)
    assert caught.value.status_code == 400
    assert caught.value.type == "RestException"
    assert caught.value.message == load_fixture(name)["body"]["message"]


def test_extending_an_expired_lock_is_lock_expired(client: Client, engine: responses.RequestsMock) -> None:
    add_fixture_answer(engine, "POST", TASK_URL + "/extendLock", "error_extend_lock_expired")

    with pytest.raises(LockExpiredError) as caught:
        client.extend_lock("task-1", 1000)

    assert isinstance(caught.value, LockConflictError)
    assert caught.value.message.startswith("Cannot extend a lock that expired")


def test_a_suspended_instance_is_a_bad_request_not_a_lock_conflict(
    client: Client, engine: responses.RequestsMock
) -> None:
    engine.post(
        TASK_URL + "/complete",
        status=400,
        json={"type": "RestException", "message": "ExternalTask with id 'task-1' is suspended", "code": 0},
    )

    with pytest.raises(BadRequestError) as caught:
        client.complete("task-1")

    assert not isinstance(caught.value, LockConflictError)


@pytest.mark.parametrize(
    "body",
    [OPTIMISTIC_LOCKING, {"type": "ProcessEngineException", "message": "wrapped", "code": 1}],
    ids=["by-type", "by-code"],
)
def test_an_optimistic_locking_rollback_is_retryable(
    client: Client, engine: responses.RequestsMock, body: dict
) -> None:
    engine.post(TASK_URL + "/complete", status=500, json=body)

    with pytest.raises(OptimisticLockingError) as caught:
        client.complete("task-1")

    assert caught.value.status_code == 500
    assert caught.value.type == body["type"]
    assert caught.value.code == 1


def test_other_server_errors_are_plain_engine_errors(client: Client, engine: responses.RequestsMock) -> None:
    add_fixture_answer(engine, "POST", TASK_URL + "/failure", "error_failure_negative_retries")

    with pytest.raises(EngineError) as caught:
        client.handle_failure("task-1", "m", retries=-1)

    assert type(caught.value) is EngineError
    assert (caught.value.status_code, caught.value.type, caught.value.code) == (
        500,
        "ProcessEngineException",
        0,
    )


def test_no_credentials_is_an_authentication_error(client: Client, engine: responses.RequestsMock) -> None:
    add_fixture_answer(engine, "GET", BASE_URL + "/version", "error_unauthorized")

    with pytest.raises(AuthenticationError) as caught:
        client.version()

    assert caught.value.status_code == 401
    assert caught.value.type is None
    assert "auth" in caught.value.message


def test_missing_permissions_is_an_authorization_error(
    client: Client, engine: responses.RequestsMock
) -> None:
    engine.post(
        BASE_URL + "/external-task/fetchAndLock",
        status=403,
        json={
            "type": "AuthorizationException",
            "message": "The user with id 'demo' does not have 'READ' permission on resource 'loan'.",
            "code": 0,
            "userId": "demo",
            "missingAuthorizations": [],
        },
    )

    with pytest.raises(AuthorizationError) as caught:
        client.fetch_and_lock([FetchTopic(topic_name="t", lock_duration=1000)], max_tasks=1)

    assert caught.value.type == "AuthorizationException"
    assert caught.value.status_code == 403


def test_malformed_request_is_a_bad_request(client: Client, engine: responses.RequestsMock) -> None:
    add_fixture_answer(engine, "POST", BASE_URL + "/external-task/fetchAndLock", "error_malformed_json")

    with pytest.raises(BadRequestError) as caught:
        client.fetch_and_lock([FetchTopic(topic_name="t", lock_duration=1000)], max_tasks=1)

    assert caught.value.type == "InvalidRequestException"
    assert caught.value.message


def test_a_plain_text_error_keeps_its_text(client: Client, engine: responses.RequestsMock) -> None:
    add_fixture_answer(engine, "POST", TASK_URL + "/complete", "error_malformed_json_text_plain")

    with pytest.raises(BadRequestError) as caught:
        client.complete("task-1")

    assert caught.value.type is None
    assert "Unexpected end-of-input" in caught.value.message


@pytest.mark.parametrize(
    ("name", "status"),
    [("error_fetch_and_lock_engine_shutdown", 500), ("error_fetch_and_lock_replaced_by_same_worker", 503)],
)
def test_html_error_pages_of_the_server_are_engine_errors(
    client: Client, engine: responses.RequestsMock, name: str, status: int
) -> None:
    add_fixture_answer(engine, "POST", BASE_URL + "/external-task/fetchAndLock", name)

    with pytest.raises(EngineError) as caught:
        client.fetch_and_lock([FetchTopic(topic_name="t", lock_duration=1000)], max_tasks=1)

    assert type(caught.value) is EngineError
    assert caught.value.status_code == status
    assert caught.value.type is None


def test_a_proxy_502_page_is_an_engine_error(client: Client, engine: responses.RequestsMock) -> None:
    engine.post(TASK_URL + "/complete", status=502, body=HTML_502, content_type="text/html")

    with pytest.raises(EngineError) as caught:
        client.complete("task-1")

    assert not isinstance(caught.value, requests.RequestException)
    assert caught.value.status_code == 502
    assert caught.value.type is None
    assert "502 Bad Gateway" in caught.value.message


def test_a_redirect_is_not_followed(client: Client, engine: responses.RequestsMock) -> None:
    engine.get(BASE_URL + "/version", status=302, headers={"Location": "http://elsewhere.test/login"})

    with pytest.raises(EngineError) as caught:
        client.version()

    assert caught.value.status_code == 302
    assert len(engine.calls) == 1


# --------------------------------------------------------------------------- every method, every fault

#: Every public Client call: (HTTP method, path, a call with valid arguments, a JSON answer that decodes).
CALLS: Dict[str, Tuple[str, str, Callable[[Client], Any], Any]] = {
    "fetch_and_lock": (
        "POST",
        "/external-task/fetchAndLock",
        lambda c: c.fetch_and_lock([FetchTopic(topic_name="t", lock_duration=1000)], max_tasks=1),
        [],
    ),
    "lock": ("POST", "/external-task/task-1/lock", lambda c: c.lock("task-1", 1000), None),
    "complete": ("POST", "/external-task/task-1/complete", lambda c: c.complete("task-1"), None),
    "handle_failure": (
        "POST",
        "/external-task/task-1/failure",
        lambda c: c.handle_failure("task-1", "m", retries=1),
        None,
    ),
    "handle_bpmn_error": (
        "POST",
        "/external-task/task-1/bpmnError",
        lambda c: c.handle_bpmn_error("task-1", "E"),
        None,
    ),
    "extend_lock": (
        "POST",
        "/external-task/task-1/extendLock",
        lambda c: c.extend_lock("task-1", 1000),
        None,
    ),
    "unlock": ("POST", "/external-task/task-1/unlock", lambda c: c.unlock("task-1"), None),
    "set_retries": ("PUT", "/external-task/task-1/retries", lambda c: c.set_retries("task-1", 1), None),
    "get_task": ("GET", "/external-task/task-1", lambda c: c.get_task("task-1"), {"id": "task-1"}),
    "get_tasks": ("POST", "/external-task", lambda c: c.get_tasks(), []),
    "count_tasks": ("POST", "/external-task/count", lambda c: c.count_tasks(), {"count": 0}),
    "get_error_details": (
        "GET",
        "/external-task/task-1/errorDetails",
        lambda c: c.get_error_details("task-1"),
        None,
    ),
    "get_process_variables": (
        "GET",
        "/process-instance/p1/variables",
        lambda c: c.get_process_variables("p1"),
        {},
    ),
    "get_local_variables": ("GET", "/execution/e1/localVariables", lambda c: c.get_local_variables("e1"), {}),
    "get_variable_instances": ("POST", "/variable-instance", lambda c: c.get_variable_instances(), []),
    "get_activity_instance_tree": (
        "GET",
        "/process-instance/p1/activity-instances",
        lambda c: c.get_activity_instance_tree("p1"),
        {"id": "p1"},
    ),
    "deploy": ("POST", "/deployment/create", lambda c: c.deploy("d", [("a.bpmn", "<x/>")]), {"id": "d1"}),
    "delete_deployment": ("DELETE", "/deployment/d1", lambda c: c.delete_deployment("d1"), None),
    "start_process_instance": (
        "POST",
        "/process-definition/key/k/start",
        lambda c: c.start_process_instance("k"),
        {"id": "p1"},
    ),
    "count_history_process_instances": (
        "POST",
        "/history/process-instance/count",
        lambda c: c.count_history_process_instances(),
        {"count": 0},
    ),
    "get_history_process_instances": (
        "POST",
        "/history/process-instance",
        lambda c: c.get_history_process_instances(),
        [],
    ),
    "count_history_activity_instances": (
        "POST",
        "/history/activity-instance/count",
        lambda c: c.count_history_activity_instances(),
        {"count": 0},
    ),
    "version": ("GET", "/version", lambda c: c.version(), {"version": "7.24.0"}),
}
DECODING_CALLS = [name for name, (_, _, _, answer) in CALLS.items() if answer is not None]


def test_the_fault_table_covers_every_client_call() -> None:
    public = {
        name
        for name, member in inspect.getmembers(Client, inspect.isfunction)
        if not name.startswith("_") and name != "close"
    }

    assert public == set(CALLS)


@pytest.mark.parametrize("name", sorted(CALLS))
def test_every_call_succeeds_against_its_endpoint(
    client: Client, engine: responses.RequestsMock, name: str
) -> None:
    method, path, call, answer = CALLS[name]
    if answer is None:
        engine.add(method, BASE_URL + path, status=204)
    else:
        engine.add(method, BASE_URL + path, json=answer)

    call(client)


@pytest.mark.parametrize(
    "fault",
    [
        requests.exceptions.ConnectionError("Connection refused"),
        requests.exceptions.ConnectTimeout("connect timed out"),
        requests.exceptions.ReadTimeout("read timed out"),
        requests.exceptions.ChunkedEncodingError("connection reset mid-body"),
        requests.exceptions.SSLError("certificate verify failed"),
        requests.exceptions.ProxyError("proxy refused"),
        requests.exceptions.ContentDecodingError("bad gzip"),
    ],
    ids=lambda fault: type(fault).__name__,
)
@pytest.mark.parametrize("name", sorted(CALLS))
def test_transport_faults_become_connection_errors_with_the_cause_kept(
    client: Client, engine: responses.RequestsMock, name: str, fault: Exception
) -> None:
    method, path, call, _ = CALLS[name]
    engine.add(method, BASE_URL + path, body=fault)

    with pytest.raises(CamundaConnectionError) as caught:
        call(client)

    assert caught.value.__cause__ is fault
    assert not isinstance(caught.value, requests.RequestException)
    assert path in str(caught.value)
    assert type(fault).__name__ in str(caught.value)


@pytest.mark.parametrize("name", sorted(CALLS))
def test_a_502_page_of_a_proxy_is_an_engine_error_for_every_call(
    client: Client, engine: responses.RequestsMock, name: str
) -> None:
    method, path, call, _ = CALLS[name]
    engine.add(method, BASE_URL + path, status=502, body=HTML_502, content_type="text/html")

    with pytest.raises(EngineError) as caught:
        call(client)

    assert caught.value.status_code == 502
    assert not isinstance(caught.value, requests.RequestException)


def _wrong_shape(answer: Any) -> str:
    return "{}" if isinstance(answer, list) else "[]"


@pytest.mark.parametrize(
    "body",
    [HTML_502, '[{"id": "a", "topicName": ', "", "\xff\xfe garbage", "wrong-shape"],
    ids=["html", "truncated-json", "empty", "not-utf8", "wrong-shape"],
)
@pytest.mark.parametrize("name", DECODING_CALLS)
def test_answers_that_do_not_parse_are_decode_errors(
    client: Client, engine: responses.RequestsMock, name: str, body: str
) -> None:
    method, path, call, answer = CALLS[name]
    if body == "wrong-shape":
        body = _wrong_shape(answer)
    engine.add(
        method, BASE_URL + path, status=200, body=body.encode("latin-1"), content_type="application/json"
    )

    with pytest.raises(DecodeError):
        call(client)


@pytest.mark.parametrize(
    ("name", "answer"),
    [
        ("fetch_and_lock", [{"topicName": "no id"}]),
        ("fetch_and_lock", [{"id": "t", "variables": {"x": {"type": "Date", "value": "yesterday"}}}]),
        ("fetch_and_lock", [{"id": "t", "lockExpirationTime": "2026-12-04T16:49:33+0000"}]),
        ("get_tasks", [{"id": "a"}, {"priority": 1}]),
        ("get_task", {"topicName": "no id"}),
        ("count_tasks", {"count": "3"}),
        ("count_history_process_instances", {"total": 3}),
        ("get_process_variables", {"x": {"value": 1}}),
        ("get_variable_instances", [{"id": "v1", "name": "x"}]),
        ("deploy", {"name": "no id"}),
        ("start_process_instance", {"definitionId": "no id"}),
        ("version", {"version": 7}),
    ],
)
def test_json_answers_of_the_wrong_shape_are_decode_errors(
    client: Client, engine: responses.RequestsMock, name: str, answer: Any
) -> None:
    method, path, call, _ = CALLS[name]
    engine.add(method, BASE_URL + path, json=answer)

    with pytest.raises(DecodeError):
        call(client)


@pytest.mark.parametrize("name", sorted(CALLS))
def test_no_requests_exception_escapes(client: Client, engine: responses.RequestsMock, name: str) -> None:
    method, path, call, _ = CALLS[name]
    faults: List[Any] = [
        requests.exceptions.ConnectionError("reset"),
        requests.exceptions.ReadTimeout("slow"),
        requests.exceptions.InvalidHeader("bad header"),
        requests.exceptions.TooManyRedirects("loop"),
    ]
    for fault in faults:
        engine.add(method, BASE_URL + path, body=fault)

    for fault in faults:
        with pytest.raises(CamundaError) as caught:
            call(client)
        assert not isinstance(caught.value, requests.RequestException)
        if isinstance(fault, requests.exceptions.InvalidHeader):
            # Its text quotes the header value, which may be a secret: not chained.
            assert isinstance(caught.value, ConfigurationError)
            assert caught.value.__cause__ is None and caught.value.__suppress_context__
        else:
            assert isinstance(caught.value.__cause__, requests.RequestException)


# --------------------------------------------------------------------------- sequences


def test_answers_are_matched_in_order(fixture: Any) -> None:
    with responses.RequestsMock(
        assert_all_requests_are_fired=True, registry=responses.registries.OrderedRegistry
    ) as engine:
        engine.post(TASK_URL + "/complete", status=500, json=OPTIMISTIC_LOCKING)
        engine.post(TASK_URL + "/complete", status=204)
        add_fixture_answer(engine, "POST", TASK_URL + "/complete", "error_complete_unknown_task")
        client = Client(BASE_URL, WORKER_ID, trust_env=False)

        with pytest.raises(OptimisticLockingError):
            client.complete("task-1")
        client.complete("task-1")
        with pytest.raises(TaskNotFoundError):
            client.complete("task-1")


# --------------------------------------------------------------------------- credentials

SECRETS = ("basic-secret-pw", "bearer-secret-token", "url-secret-pw")


class BearerAuth(requests.auth.AuthBase):
    """A bearer-token auth as users write it."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = "Bearer " + self._token
        return request


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


def test_basic_auth_reaches_the_engine(engine: responses.RequestsMock) -> None:
    expected = "Basic " + base64.b64encode(b"demo:basic-secret-pw").decode("ascii")
    engine.get(
        BASE_URL + "/version",
        json={"version": "7.24.0"},
        match=[matchers.header_matcher({"Authorization": expected})],
    )
    client = Client(BASE_URL, WORKER_ID, auth=("demo", "basic-secret-pw"), trust_env=False)

    client.version()

    assert_no_secret(repr(client))


def test_a_bearer_auth_reaches_the_engine(engine: responses.RequestsMock) -> None:
    engine.post(
        TASK_URL + "/unlock",
        status=204,
        match=[matchers.header_matcher({"Authorization": "Bearer bearer-secret-token"})],
    )
    client = Client(BASE_URL, WORKER_ID, auth=BearerAuth("bearer-secret-token"), trust_env=False)

    client.unlock("task-1")

    assert_no_secret(repr(client))


def test_extra_headers_are_sent_with_every_call(engine: responses.RequestsMock) -> None:
    headers = {"X-Tenant": "acme", "X-Request-Source": "worker"}
    engine.get(BASE_URL + "/version", json={"version": "7.24.0"}, match=[matchers.header_matcher(headers)])
    engine.post(
        TASK_URL + "/complete",
        status=204,
        match=[matchers.header_matcher({**headers, "Content-Type": "application/json"})],
    )
    client = Client(BASE_URL, WORKER_ID, headers=headers, trust_env=False)

    client.version()
    client.complete("task-1")


def test_credentials_in_the_base_url_are_redacted_but_used(engine: responses.RequestsMock) -> None:
    url = "http://demo:url-secret-pw@engine.test:8080/engine-rest"
    expected = "Basic " + base64.b64encode(b"demo:url-secret-pw").decode("ascii")
    engine.get(
        url + "/version",
        json={"version": "7.24.0"},
        match=[matchers.header_matcher({"Authorization": expected})],
    )
    client = Client(url, WORKER_ID, trust_env=False)

    client.version()

    assert repr(client) == "Client('http://engine.test:8080/engine-rest', '%s')" % WORKER_ID
    assert_no_secret(repr(client._endpoint))


def _failing_answers(engine: responses.RequestsMock, url: str) -> List[Callable[[Client], Any]]:
    engine.get(url + "/version", status=401, headers={"WWW-Authenticate": 'Basic realm="default"'})
    engine.post(url + "/external-task/t1/complete", status=500, json=OPTIMISTIC_LOCKING)
    engine.post(url + "/external-task/t1/unlock", body=requests.exceptions.ConnectionError("refused"))
    engine.get(url + "/external-task/t1", body="<html>oops", content_type="text/html")
    engine.post(url + "/external-task/fetchAndLock", status=502, body=HTML_502)
    return [
        lambda c: c.version(),
        lambda c: c.complete("t1"),
        lambda c: c.unlock("t1"),
        lambda c: c.get_task("t1"),
        lambda c: c.fetch_and_lock([FetchTopic(topic_name="t", lock_duration=1)], max_tasks=1),
    ]


@pytest.mark.parametrize(
    ("url", "auth"),
    [
        ("http://engine.test/engine-rest", ("demo", "basic-secret-pw")),
        ("http://engine.test/engine-rest", BearerAuth("bearer-secret-token")),
        ("http://demo:url-secret-pw@engine.test/engine-rest", None),
    ],
    ids=["basic", "bearer", "url"],
)
def test_credentials_never_show_in_errors_or_logs(
    engine: responses.RequestsMock, caplog: pytest.LogCaptureFixture, url: str, auth: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    client = Client(url, WORKER_ID, auth=auth, trust_env=False)
    errors = []

    for call in _failing_answers(engine, url):
        with pytest.raises(CamundaError) as caught:
            call(client)
        errors.append(caught.value)

    assert [type(e) for e in errors] == [
        AuthenticationError,
        OptimisticLockingError,
        CamundaConnectionError,
        DecodeError,
        EngineError,
    ]
    for error in errors:
        assert_no_secret(str(error), repr(error))
    assert_no_secret(repr(client), *(record.getMessage() for record in caplog.records))


def test_a_refused_connection_shows_no_credentials(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    caplog.set_level(logging.DEBUG)
    client = Client(
        "http://demo:url-secret-pw@127.0.0.1:%d/engine-rest" % port,
        WORKER_ID,
        auth=("demo", "basic-secret-pw"),
        connect_retries=1,
        trust_env=False,
    )

    with pytest.raises(CamundaConnectionError) as caught:
        client.complete("task-1", variables={"x": 1})

    error = caught.value
    assert isinstance(error.__cause__, requests.exceptions.ConnectionError)
    assert re.search(r"POST http://127\.0\.0\.1:\d+/engine-rest/external-task/task-1/complete", str(error))
    assert_no_secret(str(error), repr(error), str(error.__cause__), repr(error.__cause__))
    assert_no_secret(*(record.getMessage() for record in caplog.records))


def test_ids_are_escaped_into_one_path_segment(client: Client, engine: responses.RequestsMock) -> None:
    engine.post(BASE_URL + "/external-task/a%2Fb%3Fc/unlock", status=204)

    client.unlock("a/b?c")


def test_a_deeply_nested_answer_is_a_decode_error(client: Client, engine: responses.RequestsMock) -> None:
    engine.get(BASE_URL + "/version", body="[" * 100_000 + "]" * 100_000)

    with pytest.raises(DecodeError):
        client.version()


def test_an_answer_nested_deeper_than_the_converter_can_follow_is_a_decode_error(
    client: Client, engine: responses.RequestsMock
) -> None:
    # Shallow enough for the JSON parser, too deep for building the models.
    depth = 350
    body = '{"id": "n", "childActivityInstances": [' * depth + '{"id": "leaf"}' + "]}" * depth
    engine.get(BASE_URL + "/process-instance/p1/activity-instances", body=body)

    with pytest.raises(DecodeError, match="malformed ActivityInstance"):
        client.get_activity_instance_tree("p1")


def test_an_error_answer_nested_deeper_than_the_stack_is_still_an_engine_error(
    client: Client, engine: responses.RequestsMock
) -> None:
    engine.post(TASK_URL + "/complete", status=500, body="[" * 100_000 + "]" * 100_000)

    with pytest.raises(EngineError) as caught:
        client.complete("task-1")

    assert (caught.value.status_code, caught.value.type) == (500, None)


def test_a_404_without_camundas_error_body_means_a_wrong_url_not_a_gone_task(
    client: Client, engine: responses.RequestsMock
) -> None:
    engine.post(TASK_URL + "/complete", status=404, body="<html>Not Found</html>")

    with pytest.raises(NotFoundError) as caught:
        client.complete("task-1")

    assert not isinstance(caught.value, TaskNotFoundError)

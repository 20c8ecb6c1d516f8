"""Tests of camunda_ext.models and camunda_ext._converter, driven by real engine payloads.

Answers become frozen snake_case models (unknown keys ignored, malformed ones a
DecodeError); request models become camelCase JSON without the fields left unset.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from camunda_ext import _converter
from camunda_ext.errors import DecodeError
from camunda_ext.models import (
    ActivityInstance,
    Deployment,
    ExternalTask,
    FetchTopic,
    HistoricProcessInstance,
    ProcessDefinition,
    ProcessInstance,
    VariableInstance,
)
from camunda_ext.variables import TypedValue, parse_date

UTC = dt.timezone.utc

#: ExternalTask field -> wire key, for the fields an engine task carries.
TASK_FIELDS = {
    "id": "id",
    "topic_name": "topicName",
    "worker_id": "workerId",
    "retries": "retries",
    "error_message": "errorMessage",
    "process_instance_id": "processInstanceId",
    "execution_id": "executionId",
    "activity_id": "activityId",
    "activity_instance_id": "activityInstanceId",
    "process_definition_id": "processDefinitionId",
    "process_definition_key": "processDefinitionKey",
    "process_definition_version_tag": "processDefinitionVersionTag",
    "tenant_id": "tenantId",
    "priority": "priority",
    "business_key": "businessKey",
    "suspended": "suspended",
}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("id", "id"),
        ("topic_name", "topicName"),
        ("process_definition_key_in", "processDefinitionKeyIn"),
        ("include_extension_properties", "includeExtensionProperties"),
    ],
)
def test_camel_case(name: str, expected: str) -> None:
    assert _converter.camel_case(name) == expected


# --------------------------------------------------------------------------- external tasks


@pytest.mark.parametrize("name", ["external_task", "fetch_and_lock_all_types"])
def test_an_engine_task_maps_every_field(fixture: Any, name: str) -> None:
    wire = fixture(name)
    if isinstance(wire, list):
        wire = wire[0]

    task = _converter.structure(wire, ExternalTask)

    for field, key in TASK_FIELDS.items():
        assert getattr(task, field) == wire[key], field
    assert task.lock_expiration_time == parse_date(wire["lockExpirationTime"])
    assert task.lock_expiration_time.tzinfo is not None
    assert task.create_time == parse_date(wire["createTime"])


def test_a_fetched_task_carries_decoded_variables_and_extension_properties(fixture: Any) -> None:
    wire = fixture("fetch_and_lock_all_types")[0]
    wire = {**wire, "extensionProperties": {"team": "risk"}}

    task = _converter.structure(wire, ExternalTask)

    assert task.extension_properties == {"team": "risk"}
    assert set(task.variables) == set(wire["variables"])
    assert task.variables["aList"] == [7, 3, 9]
    assert task.variables["aDate"] == dt.datetime(2025, 11, 3, 9, 15, 30, 123000, tzinfo=UTC)
    assert task.variables["someBytes"] == b"\x00\x01\x02binary\xff"
    assert task.typed_variables["aLong"] == TypedValue("Long", 9007199254740993, {})
    assert isinstance(task.variables["aFile"], TypedValue)


def test_a_task_without_variables_has_empty_maps(fixture: Any) -> None:
    task = _converter.structure(fixture("external_task"), ExternalTask)

    assert task.variables == {}
    assert task.typed_variables == {}
    assert task.extension_properties == {}


def test_a_task_with_only_an_id_takes_the_defaults() -> None:
    task = _converter.structure({"id": "t1"}, ExternalTask)

    assert task == ExternalTask("t1")
    assert task.retries is None
    assert task.priority == 0
    assert task.suspended is False


def test_unknown_keys_of_newer_engines_are_ignored(fixture: Any) -> None:
    wire = {**fixture("external_task"), "futureField": {"x": 1}, "links": []}

    assert _converter.structure(wire, ExternalTask) == _converter.structure(
        fixture("external_task"), ExternalTask
    )


def test_tasks_are_frozen(fixture: Any) -> None:
    task = _converter.structure(fixture("external_task"), ExternalTask)

    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        task.retries = 3  # type: ignore[misc]


def test_multi_instance_tasks_each_see_their_element(fixture: Any) -> None:
    tasks = [_converter.structure(item, ExternalTask) for item in fixture("fetch_and_lock_multi_instance")]

    assert len({task.execution_id for task in tasks}) == len(tasks)
    assert all(task.variables["creditScores"] == [7, 3, 9] for task in tasks)
    assert [task.variables["loopCounter"] for task in tasks] == [
        item["variables"]["loopCounter"]["value"] for item in fixture("fetch_and_lock_multi_instance")
    ]


@pytest.mark.parametrize(
    "change",
    [
        {"id": None},
        {"priority": "high"},
        {"priority": float("inf")},
        {"retries": [1]},
        {"lockExpirationTime": "tomorrow"},
        {"lockExpirationTime": 1700000000000},
        {"variables": ["not", "a", "map"]},
        {"variables": {"x": {"type": "Integer", "value": "seven"}}},
        {"extensionProperties": ["team"]},
    ],
)
def test_malformed_tasks_raise_decode_error(fixture: Any, change: dict) -> None:
    wire = {**fixture("fetch_and_lock_all_types")[0], **change}
    wire = {key: value for key, value in wire.items() if value is not None}

    with pytest.raises(DecodeError):
        _converter.structure(wire, ExternalTask)


@pytest.mark.parametrize("wire", [None, [], "task", 3, {"topicName": "no id"}])
def test_an_answer_that_is_no_task_raises_decode_error(wire: Any) -> None:
    with pytest.raises(DecodeError):
        _converter.structure(wire, ExternalTask)


json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=15,
)
task_like = st.fixed_dictionaries(
    {"id": json_like | st.text(max_size=8)},
    optional={
        key: json_like for key in [*TASK_FIELDS.values(), "lockExpirationTime", "variables"] if key != "id"
    },
)


@given(json_like | task_like)
@example({"id": "t", "priority": 1e400})
@example({"id": "t", "retries": float("nan")})
@settings(max_examples=300, deadline=None)
def test_structuring_garbage_raises_only_decode_error(wire: Any) -> None:
    for cls in (ExternalTask, Deployment, ProcessInstance, VariableInstance, ActivityInstance):
        try:
            _converter.structure(wire, cls)
        except DecodeError:
            pass


# --------------------------------------------------------------------------- other answers


def test_a_deployment_maps_its_process_definitions(fixture: Any) -> None:
    wire = fixture("deployment_create")

    deployment = _converter.structure(wire, Deployment)

    assert deployment.id == wire["id"]
    assert deployment.name == "loan-granting"
    assert deployment.source == wire["source"]
    assert deployment.deployment_time == parse_date(wire["deploymentTime"])
    assert deployment.tenant_id is None
    ((definition_id, definition_wire),) = wire["deployedProcessDefinitions"].items()
    definition = deployment.deployed_process_definitions[definition_id]
    assert definition == ProcessDefinition(
        id=definition_id,
        key="loan-granting",
        name="Loan granting",
        version=1,
        version_tag=None,
        deployment_id=wire["id"],
        resource="loan-granting.bpmn",
        tenant_id=None,
        suspended=False,
    )
    assert definition.deployment_id == definition_wire["deploymentId"]


def test_a_started_instance_maps_its_fields(fixture: Any) -> None:
    wire = fixture("start_process_instance")

    instance = _converter.structure(wire, ProcessInstance)

    assert instance == ProcessInstance(
        id=wire["id"],
        definition_id=wire["definitionId"],
        business_key="loan-1",
        ended=False,
        suspended=False,
        tenant_id=None,
    )


def test_a_started_instance_with_variables_in_return_decodes_them(fixture: Any) -> None:
    wire = {**fixture("start_process_instance"), "variables": fixture("process_instance_variables")}

    instance = _converter.structure(wire, ProcessInstance)

    assert instance.typed_variables["aMap"].value == {"limit": 1000, "currency": "EUR", "approved": True}
    assert instance.typed_variables["aDate"].value.tzinfo is not None


def test_a_variable_instance_carries_its_value_and_scope(fixture: Any) -> None:
    rows = fixture("variable_instances_of_execution")

    instances = [_converter.structure(row, VariableInstance) for row in rows]

    for row, instance in zip(rows, instances):
        assert instance.id == row["id"]
        assert instance.name == row["name"]
        assert instance.typed_value == TypedValue(row["type"], row["value"], {})
        assert instance.execution_id == row["executionId"]
        assert instance.process_instance_id == row["processInstanceId"]
        assert instance.activity_instance_id == row["activityInstanceId"]
        assert instance.task_id is None


def test_a_variable_instance_with_a_malformed_value_raises_decode_error(fixture: Any) -> None:
    row = {**fixture("variable_instances_of_execution")[0], "value": "zero"}

    with pytest.raises(DecodeError):
        _converter.structure(row, VariableInstance)


def test_an_activity_instance_tree_nests() -> None:
    wire = {
        "id": "root",
        "activityId": "loan-granting",
        "childActivityInstances": [
            {
                "id": "body",
                "activityId": "grantLoan#multiInstanceBody",
                "parentActivityInstanceId": "root",
                "childActivityInstances": [
                    {"id": "grant:1", "activityId": "grantLoan", "executionIds": ["e1"]},
                    {"id": "grant:2", "activityId": "grantLoan", "executionIds": ["e2"]},
                ],
                "executionIds": ["body-e"],
            }
        ],
        "childTransitionInstances": [],
        "executionIds": ["root-e"],
    }

    tree = _converter.structure(wire, ActivityInstance)

    (body,) = tree.child_activity_instances
    assert body.parent_activity_instance_id == "root"
    assert [child.execution_ids for child in body.child_activity_instances] == [["e1"], ["e2"]]
    assert tree.execution_ids == ["root-e"]


def test_a_tree_nested_deeper_than_the_stack_raises_decode_error() -> None:
    wire: Any = {"id": "leaf"}
    for depth in range(5_000):
        wire = {"id": "n%d" % depth, "childActivityInstances": [wire]}

    with pytest.raises(DecodeError, match="malformed ActivityInstance"):
        _converter.structure(wire, ActivityInstance)


def test_a_historic_process_instance_maps_times_and_state() -> None:
    wire = {
        "id": "p1",
        "businessKey": "loan-1",
        "processDefinitionKey": "loan-granting",
        "startTime": "2026-12-04T16:48:51.396+0000",
        "endTime": "2026-12-04T16:48:52.000+0000",
        "durationInMillis": 604,
        "state": "COMPLETED",
    }

    instance = _converter.structure(wire, HistoricProcessInstance)

    assert instance.end_time - instance.start_time == dt.timedelta(milliseconds=604)
    assert instance.duration_in_millis == 604
    assert instance.state == "COMPLETED"


# --------------------------------------------------------------------------- requests


def test_a_topic_sends_every_field_in_camel_case() -> None:
    topic = FetchTopic(
        topic_name="score-credit",
        lock_duration=30000,
        variables=["applicantId", "creditScores"],
        local_variables=True,
        business_key="app-77",
        process_definition_id="loan:1:x",
        process_definition_id_in=["loan:1:x", "loan:2:y"],
        process_definition_key="loan",
        process_definition_key_in=["loan", "lease"],
        process_definition_version_tag="v2",
        tenant_id_in=["t1"],
        without_tenant_id=True,
        process_variables={"region": "EU", "amount": 10},
        deserialize_values=False,
        include_extension_properties=True,
    )

    assert _converter.unstructure(topic) == {
        "topicName": "score-credit",
        "lockDuration": 30000,
        "variables": ["applicantId", "creditScores"],
        "localVariables": True,
        "businessKey": "app-77",
        "processDefinitionId": "loan:1:x",
        "processDefinitionIdIn": ["loan:1:x", "loan:2:y"],
        "processDefinitionKey": "loan",
        "processDefinitionKeyIn": ["loan", "lease"],
        "processDefinitionVersionTag": "v2",
        "tenantIdIn": ["t1"],
        "withoutTenantId": True,
        "processVariables": {"region": "EU", "amount": 10},
        "deserializeValues": False,
        "includeExtensionProperties": True,
    }


def test_a_topic_sends_only_the_fields_given() -> None:
    assert _converter.unstructure(FetchTopic(topic_name="t", lock_duration=1000)) == {
        "topicName": "t",
        "lockDuration": 1000,
    }


def test_a_topic_keeps_falsy_values_that_were_given() -> None:
    topic = FetchTopic(topic_name="t", lock_duration=1000, variables=[], without_tenant_id=False)

    assert _converter.unstructure(topic) == {
        "topicName": "t",
        "lockDuration": 1000,
        "variables": [],
        "withoutTenantId": False,
    }


def test_topics_are_keyword_only_and_frozen() -> None:
    with pytest.raises(TypeError):
        FetchTopic("t", 1000)  # type: ignore[misc]
    topic = FetchTopic(topic_name="t", lock_duration=1000)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        topic.lock_duration = 5  # type: ignore[misc]


def test_dates_unstructure_in_the_engine_pattern() -> None:
    instance = HistoricProcessInstance(
        id="p1", start_time=dt.datetime(2026, 12, 4, 10, 11, 12, 345000, tzinfo=UTC)
    )

    assert _converter.unstructure(instance) == {"id": "p1", "startTime": "2026-12-04T10:11:12.345+0000"}


def test_make_converter_builds_an_independent_converter(fixture: Any) -> None:
    converter = _converter.make_converter()

    assert converter is not _converter._converter
    assert converter.structure(fixture("external_task"), ExternalTask) == _converter.structure(
        fixture("external_task"), ExternalTask
    )


@pytest.mark.parametrize("bad_id", [None, 12, ["x"]])
def test_an_id_that_is_not_text_is_a_decode_error(bad_id: Any) -> None:
    with pytest.raises(DecodeError):
        _converter.structure({"id": bad_id}, ExternalTask)

"""Every Client call against the real Camunda 7.24 engine."""

from __future__ import annotations

import datetime as dt
from typing import Any, Dict

import pytest

from camunda_ext import (
    AuthenticationError,
    Client,
    File,
    Json,
    LockConflictError,
    LockExpiredError,
    Long,
    NotFoundError,
    Short,
    TaskNotFoundError,
    TypedValue,
)
from camunda_ext.models import FetchTopic
from tests.integration.conftest import new_client

UTC = dt.timezone.utc
INDIA = dt.timezone(dt.timedelta(hours=5, minutes=30))

#: A value of every type the library types automatically, plus explicit ones.
ALL_TYPES: Dict[str, Any] = {
    "aString": "héllo ✓",
    "aBoolean": True,
    "anInteger": 42,
    "aLongByRange": 2**40,
    "aLong": Long(5),
    "aShort": Short(7),
    "aDouble": 3.25,
    "aNull": None,
    "aDate": dt.datetime(2026, 12, 4, 10, 11, 12, 345000, tzinfo=INDIA),
    "someBytes": b"\x00\x01binary\xff",
    "aList": [7, 3, 9],
    "aMap": {"name": "Ann", "nested": {"n": 1}, "tags": ["a", "b"]},
    "someJson": Json({"k": [1, 2]}),
    "aFile": File(b"a,b\n1,2\n", "report.csv", mime_type="text/csv", encoding="UTF-8"),
}


def fetch_one(client: Client, topic: str, **options: Any) -> Any:
    tasks = client.fetch_and_lock(
        [FetchTopic(topic_name=topic, lock_duration=60_000, **options)], max_tasks=1
    )
    assert len(tasks) == 1, "no %s task was fetchable" % topic
    return tasks[0]


def test_version_is_the_engine_built_for_the_tests(client: Client) -> None:
    assert client.version().startswith("7.24")


def test_every_variable_type_round_trips_through_the_engine(client: Client, deploy: Any) -> None:
    deploy("bpmn-error.bpmn")
    instance = client.start_process_instance("bpmn-error-test", variables=ALL_TYPES)

    stored = client.get_process_variables(instance.id)
    task = fetch_one(client, "mayThrow")

    for read in (stored, task.typed_variables):
        assert {name: read[name].value for name in ALL_TYPES if name != "aFile"} == {
            "aString": "héllo ✓",
            "aBoolean": True,
            "anInteger": 42,
            "aLongByRange": 2**40,
            "aLong": 5,
            "aShort": 7,
            "aDouble": 3.25,
            "aNull": None,
            "aDate": ALL_TYPES["aDate"],
            "someBytes": b"\x00\x01binary\xff",
            "aList": [7, 3, 9],
            "aMap": {"name": "Ann", "nested": {"n": 1}, "tags": ["a", "b"]},
            "someJson": {"k": [1, 2]},
        }
        assert read["anInteger"].type == "Integer"
        assert read["aLongByRange"].type == "Long"
        assert read["aList"].value_info["objectTypeName"] == "java.util.ArrayList"
        assert read["aMap"].value_info["objectTypeName"] == "java.util.LinkedHashMap"
        assert read["aFile"].value_info["filename"] == "report.csv"
    assert isinstance(task.variables["aFile"], TypedValue)
    assert task.variables["aDate"].utcoffset() is not None


def test_fetch_honours_the_variables_filter_and_reports_lock_details(client: Client, deploy: Any) -> None:
    deploy("bpmn-error.bpmn")
    instance = client.start_process_instance(
        "bpmn-error-test", business_key="bk-1", variables={"wanted": 1, "unwanted": 2}
    )

    task = fetch_one(client, "mayThrow", variables=["wanted"])

    assert task.variables == {"wanted": 1}
    assert task.process_instance_id == instance.id
    assert task.business_key == "bk-1"
    assert task.worker_id == client.worker_id
    assert task.lock_expiration_time > dt.datetime.now(UTC)
    assert task.retries is None


def test_a_list_drives_the_multi_instance_and_each_task_sees_its_element(client: Client, deploy: Any) -> None:
    deploy("loan-granting.bpmn")
    instance = client.start_process_instance("loan-granting")
    checker = fetch_one(client, "creditScoreChecker")

    client.complete(checker.id, variables={"creditScores": [7, 3, 9]})

    granted = client.fetch_and_lock([FetchTopic(topic_name="loanGranter", lock_duration=60_000)], max_tasks=5)
    rejected = client.fetch_and_lock(
        [FetchTopic(topic_name="requestRejecter", lock_duration=60_000)], max_tasks=5
    )
    assert sorted(t.variables["score"] for t in granted) == [7, 9]
    assert [t.variables["score"] for t in rejected] == [3]
    tree = client.get_activity_instance_tree(instance.id)
    assert tree.id == instance.id
    scoped = client.get_variable_instances(process_instance_id_in=[instance.id], variable_name="score")
    assert sorted(v.typed_value.value for v in scoped) == [3, 7, 9]
    assert {v.execution_id for v in scoped}.isdisjoint({instance.id})


def test_failures_count_retries_down_to_an_incident_and_retries_revive_it(
    client: Client, deploy: Any
) -> None:
    deploy("bpmn-error.bpmn")
    instance = client.start_process_instance("bpmn-error-test")
    task = fetch_one(client, "mayThrow")

    client.handle_failure(
        task.id, "bureau down", retries=1, retry_timeout=0, error_details="Traceback: details"
    )
    again = fetch_one(client, "mayThrow")
    assert (again.id, again.retries, again.error_message) == (task.id, 1, "bureau down")
    assert client.get_error_details(task.id) == "Traceback: details"

    client.handle_failure(task.id, "still down", retries=0)
    assert client.fetch_and_lock([FetchTopic(topic_name="mayThrow", lock_duration=1000)], max_tasks=1) == []
    assert client.count_tasks(process_instance_id=instance.id, no_retries_left=True) == 1

    client.set_retries(task.id, 2)
    assert fetch_one(client, "mayThrow").retries == 2


def test_a_bpmn_error_is_caught_by_the_boundary_event(client: Client, deploy: Any) -> None:
    deploy("bpmn-error.bpmn")
    instance = client.start_process_instance("bpmn-error-test")
    task = fetch_one(client, "mayThrow")

    client.handle_bpmn_error(task.id, "LOAN_REJECTED", error_message="too risky")

    assert client.count_history_process_instances(process_instance_id=instance.id, finished=True) == 1
    assert (
        client.count_history_activity_instances(process_instance_id=instance.id, activity_id="caughtEnd") == 1
    )


def test_complete_ends_the_instance_on_the_normal_path(client: Client, deploy: Any) -> None:
    deploy("bpmn-error.bpmn")
    instance = client.start_process_instance("bpmn-error-test")
    task = fetch_one(client, "mayThrow")

    client.complete(task.id, variables={"result": "ok"}, local_variables={"note": "local"})

    assert (
        client.count_history_activity_instances(process_instance_id=instance.id, activity_id="normalEnd") == 1
    )
    with pytest.raises(TaskNotFoundError) as raised:
        client.complete(task.id)
    assert raised.value.status_code == 404


def test_extend_lock_moves_the_expiry_and_only_the_owner_may(
    client: Client, deploy: Any, engine: Any
) -> None:
    deploy("bpmn-error.bpmn")
    client.start_process_instance("bpmn-error-test")
    task = fetch_one(client, "mayThrow")
    other = new_client(engine)

    client.extend_lock(task.id, 600_000)

    extended = client.get_task(task.id).lock_expiration_time
    assert extended - task.lock_expiration_time > dt.timedelta(seconds=500)
    with pytest.raises(LockConflictError):
        other.extend_lock(task.id, 1000)
    with pytest.raises(LockConflictError):
        other.complete(task.id)


def test_extending_an_expired_lock_is_refused(client: Client, deploy: Any) -> None:
    deploy("bpmn-error.bpmn")
    client.start_process_instance("bpmn-error-test")
    task = client.fetch_and_lock([FetchTopic(topic_name="mayThrow", lock_duration=1)], max_tasks=1)[0]
    # The 1 ms lock has expired by the time the next request reaches the engine.
    with pytest.raises(LockExpiredError):
        client.extend_lock(task.id, 1000)


def test_unlock_and_lock_by_id_hand_a_task_between_workers(client: Client, deploy: Any, engine: Any) -> None:
    deploy("bpmn-error.bpmn")
    client.start_process_instance("bpmn-error-test")
    task = fetch_one(client, "mayThrow")
    other = new_client(engine)

    with pytest.raises(LockConflictError):
        other.lock(task.id, 60_000)
    client.unlock(task.id)
    other.lock(task.id, 60_000)

    assert client.get_task(task.id).worker_id == other.worker_id
    other.complete(task.id)
    with pytest.raises(TaskNotFoundError):
        other.lock(task.id, 1000)


def test_queries_find_tasks_by_topic_and_instance(client: Client, deploy: Any) -> None:
    deploy("bpmn-error.bpmn")
    instance = client.start_process_instance("bpmn-error-test")

    found = client.get_tasks(process_instance_id=instance.id, topic_name="mayThrow")

    assert [t.activity_id for t in found] == ["mayThrow"]
    assert client.count_tasks(process_instance_id=instance.id, not_locked=True) == 1
    assert client.get_task(found[0].id).process_instance_id == instance.id


def test_unknown_definitions_and_tasks_are_typed_errors(client: Client) -> None:
    with pytest.raises(NotFoundError) as raised:
        client.start_process_instance("no-such-process")
    assert not isinstance(raised.value, TaskNotFoundError)
    with pytest.raises(TaskNotFoundError):
        client.get_task("no-such-task")
    with pytest.raises(TaskNotFoundError):
        client.get_error_details("no-such-task")


def test_history_reports_start_and_end_of_instances(client: Client, deploy: Any) -> None:
    deploy("bpmn-error.bpmn")
    instance = client.start_process_instance("bpmn-error-test")
    client.complete(fetch_one(client, "mayThrow").id)

    (historic,) = client.get_history_process_instances(process_instance_ids=[instance.id])

    assert historic.state == "COMPLETED"
    assert historic.end_time >= historic.start_time


def test_basic_auth_is_sent_and_required(auth_engine: Any) -> None:
    with new_client(auth_engine) as authed:
        assert authed.version().startswith("7.24")
    with Client(auth_engine.url, "anonymous") as anonymous, pytest.raises(AuthenticationError) as raised:
        anonymous.version()
    assert raised.value.status_code == 401
    wrong = Client(auth_engine.url, "wrong", auth=("demo", "not-the-password"))
    with wrong, pytest.raises(AuthenticationError) as refused:
        wrong.fetch_and_lock([FetchTopic(topic_name="x", lock_duration=1000)], max_tasks=1)
    assert "not-the-password" not in repr(refused.value) + str(refused.value) + repr(wrong)

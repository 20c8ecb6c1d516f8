"""TaskLoader: lock by id, read back, and the variables fetchAndLock would give, scope by scope."""

from __future__ import annotations

import datetime as dt
from typing import Any
from unittest import mock

import attrs
import pytest

from camunda_ext import Client, EngineError, LockConflictError, NotFoundError, TaskNotFoundError
from camunda_ext._protocol.leaser import Leaser
from camunda_ext._protocol.task_loader import TaskLoader
from camunda_ext.models import ActivityInstance, ExternalTask, FetchTopic, VariableInstance
from camunda_ext.variables import TypedValue
from tests.unit.worker_fixtures import FakeClock

TREE = ActivityInstance(
    "pi",
    child_activity_instances=[
        ActivityInstance(
            "mi-body",
            child_activity_instances=[
                ActivityInstance("inner-1", child_activity_instances=[ActivityInstance("task-act-1")]),
                ActivityInstance("inner-2", child_activity_instances=[ActivityInstance("task-act-2")]),
            ],
        )
    ],
)
TASK = ExternalTask(
    "task-1",
    topic_name="loanGranter",
    process_instance_id="pi",
    execution_id="exec-1",
    activity_instance_id="task-act-1",
    retries=2,
)


def row(name: str, value: Any, scope: str) -> VariableInstance:
    return VariableInstance(
        "v-%s-%s" % (name, scope), name, TypedValue("Integer", value), activity_instance_id=scope
    )


@pytest.fixture
def client() -> Any:
    made = mock.create_autospec(Client, instance=True)
    made.worker_id = "cdc-worker"
    made.get_task.return_value = TASK
    made.get_activity_instance_tree.return_value = TREE
    made.get_variable_instances.return_value = [
        row("score", 3, "inner-1"),
        row("top", 1, "pi"),
        row("score", 99, "pi"),
        row("nrOfInstances", 2, "mi-body"),
    ]
    return made


@pytest.fixture
def leaser() -> Any:
    return mock.create_autospec(Leaser, instance=True)


def loader(client: Any, leaser: Any) -> TaskLoader:
    return TaskLoader(client, leaser, FakeClock(500.0))


def test_the_nearest_scope_wins_and_only_the_tasks_ancestry_is_read(client: Any, leaser: Any) -> None:
    task = loader(client, leaser).lock_and_load(
        "task-1", FetchTopic(topic_name="loanGranter", lock_duration=9000)
    )

    assert task.variables == {"score": 3, "top": 1, "nrOfInstances": 2}
    assert task.retries == 2
    client.lock.assert_called_once_with("task-1", 9000)
    leaser.add.assert_called_once_with("task-1", "loanGranter", 9000, 500.0)
    client.get_variable_instances.assert_called_once_with(
        activity_instance_id_in=["task-act-1", "inner-1", "mi-body", "pi"], deserialize_values=False
    )


def test_the_variables_option_filters_and_an_empty_list_reads_nothing(client: Any, leaser: Any) -> None:
    only_score = loader(client, leaser).variables_of(
        TASK, FetchTopic(topic_name="t", lock_duration=1, variables=["score"])
    )
    assert {name: typed.value for name, typed in only_score.items()} == {"score": 3}

    client.reset_mock()
    assert (
        loader(client, leaser).variables_of(TASK, FetchTopic(topic_name="t", lock_duration=1, variables=[]))
        == {}
    )
    assert client.mock_calls == []


def test_local_variables_read_only_the_tasks_execution(client: Any, leaser: Any) -> None:
    client.get_local_variables.return_value = {"note": TypedValue("String", "x")}

    found = loader(client, leaser).variables_of(
        TASK, FetchTopic(topic_name="t", lock_duration=1, local_variables=True)
    )

    assert list(found) == ["note"]
    client.get_local_variables.assert_called_once_with("exec-1", deserialize_values=False)
    client.get_activity_instance_tree.assert_not_called()


def test_a_lock_held_elsewhere_is_raised_before_anything_is_leased(client: Any, leaser: Any) -> None:
    client.lock.side_effect = LockConflictError(400, "RestException", "locked by worker 'b'")

    with pytest.raises(LockConflictError):
        loader(client, leaser).lock_and_load("task-1", FetchTopic(topic_name="t", lock_duration=1000))

    leaser.add.assert_not_called()


def test_a_failed_read_of_the_variables_gives_the_lock_back(client: Any, leaser: Any) -> None:
    client.get_activity_instance_tree.side_effect = EngineError(503, None, "unavailable")

    with pytest.raises(EngineError):
        loader(client, leaser).lock_and_load("task-1", FetchTopic(topic_name="t", lock_duration=1000))

    leaser.remove.assert_called_once_with("task-1")
    client.unlock.assert_called_once_with("task-1")


#: The engine's answer for a process instance that ended (Camunda 7.24.0).
INSTANCE_GONE = NotFoundError(404, "InvalidRequestException", "Process instance with id pi does not exist")


def test_an_instance_that_ended_after_the_lock_means_the_task_is_gone(client: Any, leaser: Any) -> None:
    client.get_activity_instance_tree.side_effect = INSTANCE_GONE

    with pytest.raises(TaskNotFoundError):
        loader(client, leaser).lock_and_load("task-1", FetchTopic(topic_name="t", lock_duration=1000))

    leaser.remove.assert_called_once_with("task-1")
    client.unlock.assert_called_once_with("task-1")


def test_an_instance_that_ended_before_the_filter_check_means_the_task_is_gone(
    client: Any, leaser: Any
) -> None:
    client.get_process_variables.side_effect = INSTANCE_GONE

    with pytest.raises(TaskNotFoundError):
        loader(client, leaser).lock_and_load(
            "task-1", FetchTopic(topic_name="t", lock_duration=1000, process_variables={"region": "eu"})
        )

    client.lock.assert_not_called()


def test_a_404_that_is_not_the_engines_answer_stays_not_found(client: Any, leaser: Any) -> None:
    client.get_activity_instance_tree.side_effect = NotFoundError(404, None, "Not Found")  # a wrong base URL

    with pytest.raises(NotFoundError) as raised:
        loader(client, leaser).lock_and_load("task-1", FetchTopic(topic_name="t", lock_duration=1000))

    assert not isinstance(raised.value, TaskNotFoundError)


def test_a_failed_read_of_the_task_takes_no_lock(client: Any, leaser: Any) -> None:
    client.get_task.side_effect = EngineError(503, None, "unavailable")

    with pytest.raises(EngineError):
        loader(client, leaser).lock_and_load("task-1", FetchTopic(topic_name="t", lock_duration=1000))

    client.lock.assert_not_called()
    leaser.add.assert_not_called()


@pytest.mark.parametrize(
    "state",
    [
        {"lock_expiration_time": dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)},
        {"retries": 0},
        {"suspended": True},
    ],
    ids=["held for its retry timeout", "no retries left", "suspended"],
)
def test_a_task_fetch_and_lock_would_not_give_now_is_not_locked(client: Any, leaser: Any, state: Any) -> None:
    client.get_task.return_value = attrs.evolve(TASK, worker_id=client.worker_id, **state)

    assert (
        loader(client, leaser).lock_and_load("task-1", FetchTopic(topic_name="t", lock_duration=1000)) is None
    )

    client.lock.assert_not_called()


def test_a_task_whose_lock_expired_is_locked(client: Any, leaser: Any) -> None:
    expired = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=5)
    client.get_task.return_value = attrs.evolve(TASK, worker_id="crashed", lock_expiration_time=expired)

    task = loader(client, leaser).lock_and_load("task-1", FetchTopic(topic_name="t", lock_duration=60_000))

    assert task is not None and task.lock_expiration_time > dt.datetime.now(dt.timezone.utc)
    client.lock.assert_called_once_with("task-1", 60_000)


@pytest.mark.parametrize(
    "filters",
    [
        {"business_key": "other"},
        {"process_definition_key": "other"},
        {"process_definition_key_in": ["a", "b"]},
        {"process_definition_id_in": ["x"]},
        {"tenant_id_in": ["t1"]},
        {"process_definition_version_tag": "v2"},
        {"process_variables": {"region": "EU"}},
    ],
)
def test_a_task_outside_the_topics_filters_is_given_back_not_run(
    client: Any, leaser: Any, filters: Any
) -> None:
    client.get_process_variables.return_value = {"region": TypedValue("String", "US")}
    fetch = FetchTopic(topic_name="loanGranter", lock_duration=9000, **filters)

    assert loader(client, leaser).lock_and_load("task-1", fetch) is None

    client.lock.assert_not_called()
    leaser.add.assert_not_called()


def test_a_task_inside_every_filter_is_loaded(client: Any, leaser: Any) -> None:
    client.get_task.return_value = attrs.evolve(
        TASK, business_key="bk", process_definition_key="loan", tenant_id=None
    )
    client.get_process_variables.return_value = {"region": TypedValue("String", "EU")}
    fetch = FetchTopic(
        topic_name="loanGranter",
        lock_duration=9000,
        business_key="bk",
        process_definition_key_in=["loan"],
        without_tenant_id=True,
        process_variables={"region": "EU"},
    )

    assert loader(client, leaser).lock_and_load("task-1", fetch) is not None
    client.unlock.assert_not_called()

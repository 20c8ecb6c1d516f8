"""Tests of camunda_ext.builders: immutable outcome builders where only execute() reports."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any, Optional
from unittest import mock

import pytest

from camunda_ext import builders
from camunda_ext.client import Client
from camunda_ext.errors import ConfigurationError, VariableError
from camunda_ext.models import ExternalTask
from camunda_ext.variables import Json, Long, TypedValue

UTC = dt.timezone.utc


@pytest.fixture
def reporter() -> mock.NonCallableMagicMock:
    return mock.create_autospec(Client, instance=True)


def task(retries: Optional[int] = None) -> ExternalTask:
    return ExternalTask("task-1", topic_name="score", retries=retries)


# --------------------------------------------------------------------------- complete


def test_complete_without_variables(reporter: Any) -> None:
    builders.complete(reporter, task()).execute()

    reporter.complete.assert_called_once_with("task-1", None, None)


def test_complete_sends_typed_variables_and_local_variables(reporter: Any) -> None:
    (
        builders.complete(reporter, task())
        .variable("score", 750)
        .variable("big", 5, type="Long")
        .variables({"approved": True, "limits": [1, 2]})
        .local_variable("scoredAt", dt.datetime(2026, 1, 1, tzinfo=UTC))
        .local_variables({"note": "ok"})
        .execute()
    )

    reporter.complete.assert_called_once_with(
        "task-1",
        {
            "score": TypedValue("Integer", 750),
            "big": TypedValue("Long", 5),
            "approved": TypedValue("Boolean", True),
            "limits": TypedValue(
                "Object",
                [1, 2],
                {"objectTypeName": "java.util.ArrayList", "serializationDataFormat": "application/json"},
            ),
        },
        {
            "scoredAt": TypedValue("Date", dt.datetime(2026, 1, 1, tzinfo=UTC)),
            "note": TypedValue("String", "ok"),
        },
    )


def test_a_later_variable_of_the_same_name_wins(reporter: Any) -> None:
    builders.complete(reporter, task()).variable("x", 1).variable("x", 2).execute()

    reporter.complete.assert_called_once_with("task-1", {"x": TypedValue("Integer", 2)}, None)


def test_typed_values_are_passed_through(reporter: Any) -> None:
    builders.complete(reporter, "task-1").variables({"doc": Json({"a": 1}), "n": Long(3)}).execute()

    reporter.complete.assert_called_once_with(
        "task-1", {"doc": TypedValue("Json", {"a": 1}), "n": TypedValue("Long", 3)}, None
    )


def test_a_task_id_string_works_like_a_task(reporter: Any) -> None:
    builders.complete(reporter, "task-9").execute()

    reporter.complete.assert_called_once_with("task-9", None, None)


def test_every_complete_step_returns_a_new_builder(reporter: Any) -> None:
    base = builders.complete(reporter, task())
    one = base.variable("a", 1)
    two = one.variable("b", 2)
    local = one.local_variable("c", 3)

    assert len({id(base), id(one), id(two), id(local)}) == 4
    base.execute()
    one.execute()
    two.execute()
    local.execute()

    assert reporter.complete.call_args_list == [
        mock.call("task-1", None, None),
        mock.call("task-1", {"a": TypedValue("Integer", 1)}, None),
        mock.call("task-1", {"a": TypedValue("Integer", 1), "b": TypedValue("Integer", 2)}, None),
        mock.call("task-1", {"a": TypedValue("Integer", 1)}, {"c": TypedValue("Integer", 3)}),
    ]


def test_a_builder_keeps_no_reference_to_a_mapping_it_was_given(reporter: Any) -> None:
    given = {"a": 1}
    builder = builders.complete(reporter, task()).variables(given)
    given["a"] = 2
    given["b"] = 3

    builder.execute()

    reporter.complete.assert_called_once_with("task-1", {"a": TypedValue("Integer", 1)}, None)


def test_only_execute_performs_io(reporter: Any) -> None:
    builders.complete(reporter, task()).variable("a", 1).local_variables({"b": 2})
    builders.fail(reporter, task(), message="m").details("d").retries(1).retry_timeout(5).variable("x", 1)
    builders.bpmn_error(reporter, task(), "CODE").message("m").variables({"x": 1})
    builders.extend_lock(reporter, task()).new_duration(1000)

    assert reporter.mock_calls == []


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        ({1, 2}, None),
        (object(), None),
        (math.nan, None),
        (2**63, None),
        (dt.datetime(2026, 1, 1), None),
        ("twelve", "Long"),
        (2**15, "Short"),
        (b"x", "File"),
        (TypedValue("Long", "12"), None),
    ],
    ids=[
        "set",
        "object",
        "nan",
        "beyond-long",
        "naive-datetime",
        "str-as-Long",
        "short-overflow",
        "file-without-name",
        "bad-typed-value",
    ],
)
def test_a_bad_value_fails_where_it_is_set(reporter: Any, value: Any, type_name: Optional[str]) -> None:
    builder = builders.complete(reporter, task())

    with pytest.raises(VariableError):
        builder.variable("v", value, type=type_name)
    with pytest.raises(VariableError):
        builder.local_variable("v", value, type=type_name)
    with pytest.raises(VariableError):
        builders.fail(reporter, task()).variable("v", value, type=type_name)
    with pytest.raises(VariableError):
        builders.bpmn_error(reporter, task(), "CODE").variable("v", value, type=type_name)
    if type_name is None:
        with pytest.raises(VariableError):
            builder.variables({"v": value})
    assert reporter.mock_calls == []


# --------------------------------------------------------------------------- fail


@pytest.mark.parametrize(("retries", "sent"), [(None, 3), (5, 4), (2, 1), (1, 0), (0, 0)])
def test_fail_counts_retries_down_from_the_task(reporter: Any, retries: Optional[int], sent: int) -> None:
    builders.fail(reporter, task(retries)).message("boom").execute()

    reporter.handle_failure.assert_called_once_with(
        "task-1",
        "boom",
        retries=sent,
        retry_timeout=0,
        error_details=None,
        variables=None,
        local_variables=None,
    )


def test_the_first_failure_sends_the_configured_default(reporter: Any) -> None:
    builders.fail(reporter, task(None), default_retries=7).execute()

    assert reporter.handle_failure.call_args.kwargs["retries"] == 7


def test_a_failure_by_task_id_sends_the_default(reporter: Any) -> None:
    builders.fail(reporter, "task-1").execute()

    assert reporter.handle_failure.call_args.kwargs["retries"] == builders.DEFAULT_RETRIES == 3


def test_the_retry_timeout_defaults_to_the_bound_default(reporter: Any) -> None:
    builders.fail(reporter, task(2)).execute()
    builders.fail(reporter, task(2), default_retry_timeout=5000).execute()

    assert [c.kwargs["retry_timeout"] for c in reporter.handle_failure.call_args_list] == [0, 5000]


def test_fail_presets(reporter: Any) -> None:
    builders.fail(
        reporter,
        task(2),
        message="bureau down",
        details="Traceback ...",
        retries=9,
        retry_timeout=60000,
        default_retry_timeout=5000,
    ).execute()

    reporter.handle_failure.assert_called_once_with(
        "task-1",
        "bureau down",
        retries=9,
        retry_timeout=60000,
        error_details="Traceback ...",
        variables=None,
        local_variables=None,
    )


def test_fail_steps_override_presets(reporter: Any) -> None:
    (
        builders.fail(reporter, task(2), message="first", retries=9, retry_timeout=1)
        .message("second")
        .details("details")
        .retries(0)
        .retry_timeout(2500)
        .variable("attempt", 3)
        .local_variable("lastError", "timeout")
        .execute()
    )

    reporter.handle_failure.assert_called_once_with(
        "task-1",
        "second",
        retries=0,
        retry_timeout=2500,
        error_details="details",
        variables={"attempt": TypedValue("Integer", 3)},
        local_variables={"lastError": TypedValue("String", "timeout")},
    )


def test_every_fail_step_returns_a_new_builder(reporter: Any) -> None:
    base = builders.fail(reporter, task(2))
    changed = base.message("m").details("d").retries(0).retry_timeout(10).variable("a", 1)

    base.execute()
    changed.execute()

    first, second = reporter.handle_failure.call_args_list
    assert first == mock.call(
        "task-1", None, retries=1, retry_timeout=0, error_details=None, variables=None, local_variables=None
    )
    assert second == mock.call(
        "task-1",
        "m",
        retries=0,
        retry_timeout=10,
        error_details="d",
        variables={"a": TypedValue("Integer", 1)},
        local_variables=None,
    )


@pytest.mark.parametrize(("retries", "expected"), [(None, 4), (3, 2), (1, 0), (0, 0)])
def test_next_retries(retries: Optional[int], expected: int) -> None:
    assert builders.next_retries(task(retries), 4) == expected


# --------------------------------------------------------------------------- bpmn error


def test_bpmn_error_with_message_and_variables(reporter: Any) -> None:
    (
        builders.bpmn_error(reporter, task(), "LOW_SCORE", "below 500")
        .variable("score", 420)
        .variables({"reason": "history"})
        .execute()
    )

    reporter.handle_bpmn_error.assert_called_once_with(
        "task-1",
        "LOW_SCORE",
        error_message="below 500",
        variables={"score": TypedValue("Integer", 420), "reason": TypedValue("String", "history")},
    )


def test_bpmn_error_without_extras(reporter: Any) -> None:
    builders.bpmn_error(reporter, task(), "NO_LOAN").execute()

    reporter.handle_bpmn_error.assert_called_once_with(
        "task-1", "NO_LOAN", error_message=None, variables=None
    )


def test_every_bpmn_error_step_returns_a_new_builder(reporter: Any) -> None:
    base = builders.bpmn_error(reporter, task(), "CODE")
    base.message("m").variable("a", 1)

    base.execute()

    reporter.handle_bpmn_error.assert_called_once_with("task-1", "CODE", error_message=None, variables=None)


# --------------------------------------------------------------------------- extend lock


def test_extend_lock(reporter: Any) -> None:
    builders.extend_lock(reporter, task(), 30000).execute()
    builders.extend_lock(reporter, task()).new_duration(45000).execute()

    assert reporter.extend_lock.call_args_list == [mock.call("task-1", 30000), mock.call("task-1", 45000)]


def test_extend_lock_requires_a_new_duration(reporter: Any) -> None:
    base = builders.extend_lock(reporter, task())
    base.new_duration(1000)

    with pytest.raises(ConfigurationError, match="new_duration"):
        base.execute()
    assert reporter.mock_calls == []


# --------------------------------------------------------------------------- through a real client


def test_builders_reach_the_engine_through_a_client(client: Client, engine: Any) -> None:
    from responses import matchers

    engine.post(
        "http://engine.test/engine-rest/external-task/task-1/complete",
        status=204,
        match=[
            matchers.json_params_matcher(
                {
                    "workerId": "unit-worker",
                    "variables": {"score": {"type": "Integer", "value": 750}},
                    "localVariables": {"at": {"type": "Date", "value": "2026-01-01T00:00:00.000+0000"}},
                }
            )
        ],
    )

    (
        builders.complete(client, task())
        .variable("score", 750)
        .local_variable("at", dt.datetime(2026, 1, 1, tzinfo=UTC))
        .execute()
    )

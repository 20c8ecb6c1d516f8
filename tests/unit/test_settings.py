"""Settings validation and the retry policy of failures."""

from __future__ import annotations

from typing import Any, Optional

import attrs
import pytest

from camunda_ext import ConfigurationError, Worker
from camunda_ext.settings import RetryPolicy, WorkerSettings
from tests.unit.worker_fixtures import make_task


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_tasks", 0),
        ("max_tasks", -1),
        ("poll_interval", -0.1),
        ("async_response_timeout", -1.0),
        ("async_response_timeout", 1801.0),  # the engine's limit
        ("backoff_base", 0.0),
        ("backoff_base", -1.0),
        ("backoff_cap", 0.0),
        ("report_attempts", 0),
        ("report_backoff_base", 0.0),
        ("report_backoff_cap", -2.0),
        ("max_lock_duration", 0),
        ("max_lock_duration", -1),
    ],
)
def test_worker_settings_refuse_values_out_of_range(field: str, value: Any) -> None:
    with pytest.raises(ConfigurationError, match=field):
        WorkerSettings(**{field: value})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("poll_interval", 0.0),
        ("async_response_timeout", None),
        ("async_response_timeout", 0.0),
        ("max_lock_duration", None),
        ("async_response_timeout", 1800.0),
    ],
)
def test_worker_settings_accept_zero_and_none_where_they_mean_something(field: str, value: Any) -> None:
    assert getattr(WorkerSettings(**{field: value}), field) == value


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("retries", -1),
        ("retry_timeout", -1),
        ("backoff_factor", 0.0),
        ("backoff_factor", -2.0),
        ("max_retry_timeout", -1),
    ],
)
def test_retry_policy_refuses_values_out_of_range(field: str, value: Any) -> None:
    with pytest.raises(ConfigurationError, match=field):
        RetryPolicy(**{field: value})


def test_settings_are_frozen_and_keyword_only() -> None:
    settings = WorkerSettings()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        settings.max_tasks = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        WorkerSettings(3)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"max_tasks": 0}, "max_tasks"),
        ({"retries": -1}, "retries"),
        ({"retry_backoff_factor": 0}, "backoff_factor"),
        ({"backoff_cap": -1}, "backoff_cap"),
    ],
)
def test_worker_refuses_bad_settings_before_anything_starts(rest_client, arguments, field) -> None:
    with pytest.raises(ConfigurationError, match=field):
        Worker(rest_client, **arguments)


@pytest.mark.parametrize(
    ("task_retries", "expected"),
    [
        (None, 1000),  # first failure: the base timeout
        (5, 2000),  # second failure (the first left 5 retries)
        (4, 4000),
        (3, 8000),
        (2, 10_000),  # capped
        (0, 10_000),
    ],
)
def test_retry_timeout_grows_by_the_factor_with_each_failure(
    task_retries: Optional[int], expected: int
) -> None:
    policy = RetryPolicy(retries=5, retry_timeout=1000, backoff_factor=2.0, max_retry_timeout=10_000)
    assert policy.retry_timeout_for(make_task(retries=task_retries)) == expected


@pytest.mark.parametrize("task_retries", [None, 3, 1])
def test_retry_timeout_is_fixed_with_factor_one(task_retries: Optional[int]) -> None:
    policy = RetryPolicy(retries=3, retry_timeout=5000)
    assert policy.retry_timeout_for(make_task(retries=task_retries)) == 5000


def test_retries_raised_above_the_policy_by_an_operator_start_over_at_the_base() -> None:
    policy = RetryPolicy(retries=3, retry_timeout=1000, backoff_factor=3.0)
    assert policy.retry_timeout_for(make_task(retries=10)) == 1000


def test_retry_policy_defaults() -> None:
    policy = RetryPolicy()
    assert (policy.retries, policy.retry_timeout, policy.backoff_factor) == (3, 0, 1.0)
    assert policy.retry_timeout_for(make_task(retries=1)) == 0


def test_a_huge_backoff_factor_is_capped_not_an_overflow() -> None:
    policy = RetryPolicy(retries=50, retry_timeout=1000, backoff_factor=1e10, max_retry_timeout=60_000)
    assert policy.retry_timeout_for(make_task("t", retries=1)) == 60_000

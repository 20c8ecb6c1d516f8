"""Frozen attrs models of what the Camunda REST API sends and receives.

Fields are snake_case; :mod:`camunda_ext._converter` maps them to the camelCase
wire names (a field's ``metadata["wire"]`` names a wire key that differs from
the camelCase of its name). Unknown keys in answers are ignored, so newer
engines that add fields keep working.

Every model here is immutable and thread-safe.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, Dict, List, Mapping, Optional, Sequence

import attrs

from camunda_ext.variables import TypedValue, python_value

__all__ = [
    "ActivityInstance",
    "Deployment",
    "ExternalTask",
    "FetchTopic",
    "HistoricProcessInstance",
    "ProcessDefinition",
    "ProcessInstance",
    "VariableInstance",
    "VariableMap",
]

#: Decoded variables by name, as the engine typed them.
VariableMap = Mapping[str, TypedValue]


def _plain_values(typed: VariableMap) -> Dict[str, Any]:
    return {name: python_value(value) for name, value in typed.items()}


@attrs.frozen
class ExternalTask:
    """An external task as fetchAndLock or ``GET /external-task/{id}`` returns it.

    Attributes:
        variables: The task's variables as Python values (see
            :mod:`camunda_ext.variables` for the mapping of types).
        typed_variables: The same variables with their Camunda types.
        lock_expiration_time: When the lock expires (aware datetime), or None.
        retries: Retries left, or None before the first failure.
    """

    id: str
    topic_name: Optional[str] = None
    worker_id: Optional[str] = None
    lock_expiration_time: Optional[_dt.datetime] = None
    create_time: Optional[_dt.datetime] = None
    retries: Optional[int] = None
    error_message: Optional[str] = None
    error_details: Optional[str] = None
    process_instance_id: Optional[str] = None
    execution_id: Optional[str] = None
    activity_id: Optional[str] = None
    activity_instance_id: Optional[str] = None
    process_definition_id: Optional[str] = None
    process_definition_key: Optional[str] = None
    process_definition_version_tag: Optional[str] = None
    tenant_id: Optional[str] = None
    priority: int = 0
    business_key: Optional[str] = None
    suspended: bool = False
    extension_properties: Mapping[str, str] = attrs.field(factory=dict)
    typed_variables: VariableMap = attrs.field(factory=dict, metadata={"wire": "variables"})
    variables: Mapping[str, Any] = attrs.field(init=False, eq=False, repr=False)

    @variables.default
    def _variables_from_typed(self) -> Mapping[str, Any]:
        return _plain_values(self.typed_variables)


@attrs.frozen(kw_only=True)
class FetchTopic:
    """One topic of a fetchAndLock request. Fields left None are not sent.

    Attributes:
        topic_name: The topic.
        lock_duration: Lock duration in milliseconds (> 0).
        variables: Names of the variables to fetch; None fetches all, ``[]`` none.
        process_variables: Equality filter on process variables (plain JSON values).
    """

    topic_name: str
    lock_duration: int
    variables: Optional[Sequence[str]] = None
    local_variables: Optional[bool] = None
    business_key: Optional[str] = None
    process_definition_id: Optional[str] = None
    process_definition_id_in: Optional[Sequence[str]] = None
    process_definition_key: Optional[str] = None
    process_definition_key_in: Optional[Sequence[str]] = None
    process_definition_version_tag: Optional[str] = None
    tenant_id_in: Optional[Sequence[str]] = None
    without_tenant_id: Optional[bool] = None
    process_variables: Optional[Mapping[str, Any]] = None
    deserialize_values: Optional[bool] = None
    include_extension_properties: Optional[bool] = None


@attrs.frozen
class ProcessDefinition:
    """A deployed process definition."""

    id: str
    key: Optional[str] = None
    name: Optional[str] = None
    version: Optional[int] = None
    version_tag: Optional[str] = None
    deployment_id: Optional[str] = None
    resource: Optional[str] = None
    tenant_id: Optional[str] = None
    suspended: bool = False


@attrs.frozen
class Deployment:
    """The result of ``POST /deployment/create``."""

    id: str
    name: Optional[str] = None
    source: Optional[str] = None
    deployment_time: Optional[_dt.datetime] = None
    tenant_id: Optional[str] = None
    deployed_process_definitions: Mapping[str, ProcessDefinition] = attrs.field(factory=dict)


@attrs.frozen
class ProcessInstance:
    """A started process instance."""

    id: str
    definition_id: Optional[str] = None
    business_key: Optional[str] = None
    ended: bool = False
    suspended: bool = False
    tenant_id: Optional[str] = None
    typed_variables: VariableMap = attrs.field(factory=dict, metadata={"wire": "variables"})


@attrs.frozen
class HistoricProcessInstance:
    """A row of ``/history/process-instance``: when an instance started and ended."""

    id: str
    business_key: Optional[str] = None
    process_definition_key: Optional[str] = None
    start_time: Optional[_dt.datetime] = None
    end_time: Optional[_dt.datetime] = None
    duration_in_millis: Optional[int] = None
    state: Optional[str] = None


@attrs.frozen
class VariableInstance:
    """One row of ``GET /variable-instance``: a variable and the scope that holds it."""

    id: str
    name: str
    typed_value: TypedValue = attrs.field(metadata={"wire": None})
    process_instance_id: Optional[str] = None
    execution_id: Optional[str] = None
    activity_instance_id: Optional[str] = None
    task_id: Optional[str] = None


@attrs.frozen
class ActivityInstance:
    """A node of a process instance's activity-instance tree."""

    id: str
    activity_id: Optional[str] = None
    parent_activity_instance_id: Optional[str] = None
    child_activity_instances: List[ActivityInstance] = attrs.field(factory=list)
    execution_ids: List[str] = attrs.field(factory=list)

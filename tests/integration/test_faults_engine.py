"""Faults the Worker must turn into failures the engine shows, against the real engine.

A task whose variable does not decode, a BPMN error that cannot be reported and a
handler calling ``sys.exit()`` each end as a reported failure (an incident with
``retries=0``), and the worker goes on with the other tasks.
"""

from __future__ import annotations

import datetime as dt
import sys
import threading
import uuid
from typing import Any, Dict, Iterator, List, Tuple

import pytest
import requests

from camunda_ext import BpmnError, Client, Object, Worker
from harness import Engine
from tests.integration.conftest import new_client
from tests.integration.test_worker_engine import wait_finished, wait_until

#: One external task (the test's own topic) with a boundary event catching LOAN_REJECTED.
PROCESS = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
                  xmlns:camunda="http://camunda.org/schema/1.0/bpmn"
                  id="faultDefinitions" targetNamespace="http://camunda.org/examples">
  <bpmn:error id="rejected" name="Rejected" errorCode="LOAN_REJECTED" />
  <bpmn:process id="{key}" isExecutable="true" camunda:historyTimeToLive="P1D">
    <bpmn:startEvent id="started" />
    <bpmn:sequenceFlow id="toWork" sourceRef="started" targetRef="work" />
    <bpmn:serviceTask id="work" camunda:type="external" camunda:topic="{topic}" />
    <bpmn:boundaryEvent id="caught" attachedToRef="work">
      <bpmn:errorEventDefinition id="caughtDefinition" errorRef="rejected" />
    </bpmn:boundaryEvent>
    <bpmn:sequenceFlow id="toDone" sourceRef="work" targetRef="done" />
    <bpmn:sequenceFlow id="toCaughtEnd" sourceRef="caught" targetRef="caughtEnd" />
    <bpmn:endEvent id="done" />
    <bpmn:endEvent id="caughtEnd" />
  </bpmn:process>
</bpmn:definitions>
"""

WAIT = 15


class Process:
    """A freshly deployed process whose external task has a topic no other test polls."""

    def __init__(self, key: str, topic: str) -> None:
        self.key = key
        self.topic = topic


@pytest.fixture
def process(client: Client) -> Iterator[Process]:
    suffix = uuid.uuid4().hex[:8]
    made = Process("fault-%s" % suffix, "fault-%s" % suffix)
    bpmn = PROCESS.format(key=made.key, topic=made.topic)
    deployment = client.deploy(made.key, [("%s.bpmn" % made.key, bpmn)])
    yield made
    client.delete_deployment(deployment.id, cascade=True)


def fast_worker(engine: Engine, **options: Any) -> Worker:
    """A worker that fails tasks straight to an incident (``retries=0``)."""
    return Worker(new_client(engine), poll_interval=0.05, async_response_timeout=1, retries=0, **options)


def incidents(engine: Engine, process_instance_id: str) -> List[Dict[str, Any]]:
    """The engine's incidents of one process instance (``GET /incident``)."""
    response = requests.get(
        engine.url + "/incident",
        params={"processInstanceId": process_instance_id},
        auth=engine.auth,
        timeout=10,
    )
    response.raise_for_status()
    return response.json()


def wait_incident(engine: Engine, process_instance_id: str, what: str) -> Dict[str, Any]:
    """Poll until the instance has exactly one incident and return it."""
    wait_until(lambda: len(incidents(engine, process_instance_id)) == 1, WAIT, what)
    (incident,) = incidents(engine, process_instance_id)
    return incident


def incident_then_one_more(
    engine: Engine, client: Client, process: Process, handler: Any, bad_instance: str, *, max_tasks: int
) -> Tuple[Dict[str, Any], str]:
    """Run a worker until ``bad_instance`` has its incident, then until one more instance ends.

    The later instance shows that the worker keeps fetching: a bad task unlocked
    instead of failed would have come back by then. Returns the incident and the
    later instance's id.
    """
    worker = fast_worker(engine, max_tasks=max_tasks)
    worker.register_handler(process.topic, handler, lock_duration=10_000)
    worker.start()
    try:
        incident = wait_incident(engine, bad_instance, "the incident of instance %s" % bad_instance)
        later = client.start_process_instance(process.key).id
        wait_finished(client, [later], WAIT, "an instance started after the incident")
    finally:
        worker.stop(5)
    return incident, later


def test_a_task_whose_object_variable_is_not_json_fails_to_an_incident_and_its_batch_completes(
    client: Client, engine: Engine, process: Process
) -> None:
    bad = client.start_process_instance(
        process.key, variables={"order": Object("{not json", "java.util.HashMap")}
    )
    good = [client.start_process_instance(process.key).id for _ in range(2)]
    ran: List[str] = []

    def finish(task: Any, complete: Any, fail: Any) -> None:
        ran.append(task.process_instance_id)
        complete().execute()

    worker = fast_worker(engine, max_tasks=3)
    worker.register_handler(process.topic, finish, lock_duration=10_000)
    worker.start()
    try:
        wait_finished(client, good, WAIT, "the two good instances to finish")
        incident = wait_incident(engine, bad.id, "the incident of the undecodable task")
    finally:
        worker.stop(5)

    assert sorted(ran) == sorted(good)
    (task,) = client.get_tasks(process_instance_id=bad.id)
    assert task.retries == 0
    assert task.worker_id is not None  # failed by the worker, not released by a lock expiry
    assert "could not decode" in task.error_message
    assert "'order'" in task.error_message
    assert "does not hold JSON" in task.error_message
    assert incident["incidentType"] == "failedExternalTask"
    assert incident["configuration"] == task.id
    assert incident["incidentMessage"] == task.error_message
    assert client.count_history_process_instances(process_instance_id=bad.id, finished=True) == 0


def test_a_bpmn_error_with_a_naive_datetime_is_reported_as_a_failure_once(
    client: Client, engine: Engine, process: Process
) -> None:
    bad = client.start_process_instance(process.key)
    runs: List[str] = []
    runs_lock = threading.Lock()  # guards runs

    def handler(task: Any, complete: Any, fail: Any) -> None:
        with runs_lock:
            runs.append(task.process_instance_id)
        if task.process_instance_id == bad.id:
            raise BpmnError("LOAN_REJECTED", "score too low", variables={"decidedAt": dt.datetime.now()})
        complete().execute()

    incident, later = incident_then_one_more(engine, client, process, handler, bad.id, max_tasks=2)

    assert runs.count(bad.id) == 1
    assert runs.count(later) == 1
    (task,) = client.get_tasks(process_instance_id=bad.id)
    assert task.retries == 0
    assert "BPMN error LOAN_REJECTED could not be reported" in task.error_message
    assert incident["configuration"] == task.id
    assert incident["incidentMessage"] == task.error_message
    # The BPMN error never reached the boundary event.
    assert client.count_history_activity_instances(process_instance_id=bad.id, activity_id="caughtEnd") == 0
    assert client.count_history_process_instances(process_instance_id=bad.id, finished=True) == 0


def test_a_handler_calling_sys_exit_fails_its_task_and_the_worker_goes_on(
    client: Client, engine: Engine, process: Process
) -> None:
    first = client.start_process_instance(process.key)
    runs: List[str] = []

    def handler(task: Any, complete: Any, fail: Any) -> None:
        runs.append(task.process_instance_id)
        if task.process_instance_id == first.id:
            sys.exit(3)
        complete().execute()

    incident, second = incident_then_one_more(engine, client, process, handler, first.id, max_tasks=1)

    assert runs == [first.id, second]
    (task,) = client.get_tasks(process_instance_id=first.id)
    assert task.retries == 0
    assert task.error_message == "SystemExit: 3"
    details = client.get_error_details(task.id)
    assert details is not None and "SystemExit" in details and "sys.exit(3)" in details
    assert incident["configuration"] == task.id
    assert client.count_history_process_instances(process_instance_id=first.id, finished=True) == 0

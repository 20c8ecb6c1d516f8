"""The README's quick-start example, run as written against the real engine.

Only the engine's address changes (the test engine listens on a free port);
``worker.run()`` blocks, so the example runs on a thread of its own and the
test stops the worker it made.
"""

from __future__ import annotations

import re
import threading
from typing import Any, Dict

from camunda_ext import Client
from harness import Engine
from tests.integration.conftest import ROOT
from tests.integration.test_worker_engine import wait_until

README_URL = "http://localhost:8080/engine-rest"

#: creditScoreChecker, then a task nobody works on, so the instance waits with its variables.
PROCESS = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="readme" targetNamespace="http://camunda-ext/readme">
  <bpmn:process id="readme-example" isExecutable="true" camunda:historyTimeToLive="P1D">
    <bpmn:startEvent id="start" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="score" />
    <bpmn:serviceTask id="score" camunda:type="external" camunda:topic="creditScoreChecker" />
    <bpmn:sequenceFlow id="f2" sourceRef="score" targetRef="after" />
    <bpmn:serviceTask id="after" camunda:type="external" camunda:topic="afterScore" />
    <bpmn:sequenceFlow id="f3" sourceRef="after" targetRef="end" />
    <bpmn:endEvent id="end" />
  </bpmn:process>
</bpmn:definitions>
"""


def quick_start_code() -> str:
    text = (ROOT / "README.rst").read_text(encoding="utf-8")
    section = text.split("Quick start\n-----------", 1)[1]
    blocks = re.findall(r"\.\. code-block:: python\n\n((?:   .*\n|\n)+)", section)
    return "\n".join(line[3:] for line in blocks[0].splitlines())


def test_the_quick_start_example_completes_a_task_with_its_score(engine: Engine, client: Client) -> None:
    code = quick_start_code()
    assert README_URL in code and "worker.run()" in code
    deployment = client.deploy("readme-example", [("readme-example.bpmn", PROCESS)])
    instance = client.start_process_instance("readme-example")
    namespace: Dict[str, Any] = {}
    failures = []

    def run_example() -> None:
        try:
            exec(code.replace(README_URL, engine.url), namespace)
        except BaseException as error:  # surfaced by the assertions below
            failures.append(error)

    runner = threading.Thread(target=run_example, name="readme-example")
    runner.start()
    try:
        # The handler completed creditScoreChecker: the multi-instance now waits on its tasks.
        wait_until(
            lambda: (
                client.count_tasks(process_instance_id=instance.id, topic_name="afterScore") == 1
                or bool(failures)
            ),
            60,
            "the example's handler to complete creditScoreChecker",
        )
    finally:
        wait_until(lambda: "worker" in namespace or bool(failures), 60, "the example to make its worker")
        if "worker" in namespace:
            namespace["worker"].stop()
        runner.join(60)
    assert failures == []
    assert not runner.is_alive()
    assert client.get_process_variables(instance.id)["score"].value == 750
    client.delete_deployment(deployment.id, cascade=True)

#!/usr/bin/env python3
"""Record REST payloads of the real test engine as JSON fixtures.

Starts the test engine (H2) twice, once plain and once with basic auth and
``unique-worker-request`` on, drives the BPMN files in ``scripts/bpmn/`` and writes
one pretty-printed JSON file per payload to ``tests/fixtures/engine/``. Successful
responses are stored as returned; error responses as ``{"status": N, "body": ...}``
(plus ``"headers"`` where the headers are the point).

Usage:
    scripts/capture_engine_fixtures.py [--out DIR]
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Mapping

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "scripts"))

from harness import Engine, HarnessError, build_jar, start_engine

_LOGGER = logging.getLogger("capture_engine_fixtures")

BPMN_DIR = REPO_ROOT / "scripts" / "bpmn"
WORKER = "fixture-worker"
OTHER_WORKER = "other-worker"
UNKNOWN_ID = "00000000-0000-0000-0000-000000000000"


class Response:
    """An HTTP response: status, headers and the decoded body (JSON, text or None)."""

    def __init__(self, status: int, headers: Mapping[str, str], raw: bytes) -> None:
        self.status = status
        self.headers = dict(headers)
        self.raw = raw
        text = raw.decode("utf-8", errors="replace")
        try:
            self.body: Any = json.loads(text) if text else None
        except ValueError:
            self.body = text

    def error_fixture(self, *, with_headers: bool = False) -> dict[str, Any]:
        fixture: dict[str, Any] = {"status": self.status}
        if with_headers:
            fixture["headers"] = {k: v for k, v in self.headers.items() if k.lower() != "date"}
        fixture["body"] = self.body if self.raw else ""
        return fixture


class Rest:
    """Minimal JSON client for the engine's REST API (urllib only)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        auth: bool = True,
        timeout: float = 30.0,
    ) -> Response:
        all_headers = dict(self.engine.basic_auth_header()) if auth else {}
        data = raw
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            all_headers["Content-Type"] = "application/json"
        elif raw is not None:
            all_headers.setdefault("Content-Type", "application/json")
        all_headers.update(headers or {})
        request = urllib.request.Request(
            self.engine.url + path, data=data, method=method, headers=all_headers
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return Response(response.status, dict(response.headers.items()), response.read())
        except urllib.error.HTTPError as exc:
            return Response(exc.code, dict(exc.headers.items()), exc.read())

    def ok(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        response = self.call(method, path, body, **kwargs)
        if response.status >= 300:
            raise HarnessError("%s %s -> %d %s" % (method, path, response.status, response.body))
        return response.body

    def deploy(self, bpmn: Path, name: str) -> Any:
        boundary = uuid.uuid4().hex
        parts = [
            ("deployment-name", None, name.encode("utf-8")),
            ("enable-duplicate-filtering", None, b"true"),
            ("deployment-source", None, b"camunda_ext fixtures"),
            ("data", bpmn.name, bpmn.read_bytes()),
        ]
        chunks = []
        for field, filename, content in parts:
            disposition = 'form-data; name="%s"' % field
            if filename:
                disposition += '; filename="%s"' % filename
            chunks.append(
                b"--%s\r\nContent-Disposition: %s\r\n\r\n%s\r\n"
                % (boundary.encode(), disposition.encode(), content)
            )
        chunks.append(b"--%s--\r\n" % boundary.encode())
        return self.ok(
            "POST",
            "/deployment/create",
            raw=b"".join(chunks),
            headers={"Content-Type": "multipart/form-data; boundary=" + boundary},
        )

    def fetch(self, topic: str, *, worker: str = WORKER, **topic_options: Any) -> Any:
        return self.ok(
            "POST",
            "/external-task/fetchAndLock",
            {
                "workerId": worker,
                "maxTasks": 10,
                "asyncResponseTimeout": 10000,
                "topics": [dict({"topicName": topic, "lockDuration": 60000}, **topic_options)],
            },
        )


def all_types_variables() -> dict[str, Any]:
    """One process variable of every type the library maps."""
    return {
        "aString": {"type": "String", "value": "h\u00e9llo \u2713"},
        "aBoolean": {"type": "Boolean", "value": True},
        "anInteger": {"type": "Integer", "value": 42},
        "aLong": {"type": "Long", "value": 9007199254740993},
        "aShort": {"type": "Short", "value": 7},
        "aDouble": {"type": "Double", "value": 3.25},
        "aDate": {"type": "Date", "value": "2025-11-03T10:15:30.123+0100"},
        "aNull": {"type": "Null", "value": None},
        "someBytes": {"type": "Bytes", "value": base64.b64encode(b"\x00\x01\x02binary\xff").decode("ascii")},
        "aFile": {
            "type": "File",
            "value": base64.b64encode("id,name\n1,\u00e4\n".encode("utf-8")).decode("ascii"),
            "valueInfo": {"filename": "report.csv", "mimeType": "text/csv", "encoding": "UTF-8"},
        },
        "someJson": {"type": "Json", "value": '{"name":"Ann","tags":["a","b"],"nested":{"n":1}}'},
        "aList": {
            "type": "Object",
            "value": "[7,3,9]",
            "valueInfo": {
                "objectTypeName": "java.util.ArrayList",
                "serializationDataFormat": "application/json",
            },
        },
        "aMap": {
            "type": "Object",
            "value": '{"limit":1000,"currency":"EUR","approved":true}',
            "valueInfo": {
                "objectTypeName": "java.util.LinkedHashMap",
                "serializationDataFormat": "application/json",
            },
        },
    }


def credit_scores(values: str = "[7,3,9]") -> dict[str, Any]:
    return {
        "creditScores": {
            "type": "Object",
            "value": values,
            "valueInfo": {
                "objectTypeName": "java.util.ArrayList",
                "serializationDataFormat": "application/json",
            },
        }
    }


class Recorder:
    """Writes fixtures to one directory."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        out_dir.mkdir(parents=True, exist_ok=True)

    def write(self, name: str, payload: Any) -> None:
        path = self.out_dir / ("%s.json" % name)
        path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        _LOGGER.info("wrote %s", path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path)

    def error(self, name: str, response: Response, expected: int, **kwargs: Any) -> None:
        if response.status != expected:
            raise HarnessError(
                "%s: expected HTTP %d, got %d %s" % (name, expected, response.status, response.body)
            )
        self.write(name, response.error_fixture(**kwargs))


def capture_plain(rest: Rest, rec: Recorder) -> None:
    """Payloads from an engine without authentication."""
    rec.write("version", rest.ok("GET", "/version"))

    # All variable types on one external task.
    rest.deploy(BPMN_DIR / "bpmn-error.bpmn", "bpmn-error")
    instance = rest.ok(
        "POST",
        "/process-definition/key/bpmn-error-test/start",
        {"businessKey": "all-types", "variables": all_types_variables()},
    )
    tasks = rest.fetch("mayThrow")
    rec.write("fetch_and_lock_all_types", tasks)
    task = tasks[0]
    task_id = task["id"]
    rest.ok("POST", "/external-task/%s/unlock" % task_id)
    rec.write("fetch_and_lock_all_types_deserialized", rest.fetch("mayThrow", deserializeValues=True))
    rec.write("external_task", rest.ok("GET", "/external-task/" + task_id))
    rec.write(
        "external_task_list",
        rest.ok(
            "GET", "/external-task?processInstanceId=%s&sortBy=createTime&sortOrder=asc" % instance["id"]
        ),
    )
    rec.write(
        "process_instance_variables",
        rest.ok("GET", "/process-instance/%s/variables?deserializeValues=false" % instance["id"]),
    )
    rec.write(
        "process_instance_variables_deserialized",
        rest.ok("GET", "/process-instance/%s/variables" % instance["id"]),
    )

    # Errors on that task (it is locked by WORKER now).
    rec.error(
        "error_complete_unknown_task",
        rest.call("POST", "/external-task/%s/complete" % UNKNOWN_ID, {"workerId": WORKER}),
        404,
    )
    rec.error("error_get_unknown_external_task", rest.call("GET", "/external-task/" + UNKNOWN_ID), 404)
    rec.error(
        "error_complete_wrong_worker",
        rest.call("POST", "/external-task/%s/complete" % task_id, {"workerId": OTHER_WORKER}),
        400,
    )
    rec.error(
        "error_failure_negative_retries",
        rest.call(
            "POST",
            "/external-task/%s/failure" % task_id,
            {"workerId": WORKER, "errorMessage": "boom", "retries": -1, "retryTimeout": 0},
        ),
        500,
    )
    rec.error(
        "error_lock_held_by_other_worker",
        rest.call(
            "POST", "/external-task/%s/lock" % task_id, {"workerId": OTHER_WORKER, "lockDuration": 60000}
        ),
        400,
    )
    rest.ok("POST", "/external-task/%s/unlock" % task_id)
    rec.error(
        "error_extend_lock_unlocked",
        rest.call(
            "POST", "/external-task/%s/extendLock" % task_id, {"workerId": WORKER, "newDuration": 60000}
        ),
        400,
    )
    rest.ok("POST", "/external-task/%s/lock" % task_id, {"workerId": WORKER, "lockDuration": 1})
    time.sleep(0.2)
    rec.error(
        "error_extend_lock_expired",
        rest.call(
            "POST", "/external-task/%s/extendLock" % task_id, {"workerId": WORKER, "newDuration": 60000}
        ),
        400,
    )
    rec.error(
        "error_start_unknown_key", rest.call("POST", "/process-definition/key/no-such-process/start", {}), 404
    )
    # Two exception mappers (Camunda's and Jersey's Jackson feature) compete for the
    # parse error; which one answers is decided per engine start.
    malformed = rest.call("POST", "/external-task/fetchAndLock", raw=b'{"workerId": "w",')
    json_body = malformed.headers.get("Content-Type", "").startswith("application/json")
    rec.error(
        "error_malformed_json" if json_body else "error_malformed_json_text_plain",
        malformed,
        400,
        with_headers=True,
    )

    # Multi-instance: the inner executions carry the element variable "score".
    deployment = rest.deploy(BPMN_DIR / "loan-granting.bpmn", "loan-granting")
    rec.write("deployment_create", deployment)
    instance = rest.ok(
        "POST",
        "/process-definition/key/loan-granting/start",
        {"businessKey": "loan-1", "variables": credit_scores()},
    )
    rec.write("start_process_instance", instance)
    first = rest.fetch("creditScoreChecker")
    rest.ok("POST", "/external-task/%s/complete" % first[0]["id"], {"workerId": WORKER})
    granted = rest.fetch("loanGranter", processDefinitionKey="loan-granting")
    rec.write("fetch_and_lock_multi_instance", granted)
    scores = rest.ok(
        "GET",
        "/variable-instance?processInstanceIdIn=%s&variableName=score"
        "&deserializeValues=false" % instance["id"],
    )
    # The inner instance execution of the first fetched task: the one holding its score.
    # The task itself runs in a child execution without local variables.
    score = granted[0]["variables"]["score"]["value"]
    inner = next(v["executionId"] for v in scores if v["value"] == score)
    rec.write(
        "execution_local_variables",
        rest.ok("GET", "/execution/%s/localVariables?deserializeValues=false" % inner),
    )
    rec.write(
        "variable_instances_of_execution",
        rest.ok("GET", "/variable-instance?executionIdIn=%s&deserializeValues=false" % inner),
    )
    task_execution = granted[0]["executionId"]
    rec.write(
        "execution_local_variables_of_task_execution",
        rest.ok("GET", "/execution/%s/localVariables?deserializeValues=false" % task_execution),
    )


def capture_auth_and_long_poll(rest: Rest, rec: Recorder) -> None:
    """Payloads from an engine with basic auth and unique-worker-request on."""
    unauthorized = rest.call("GET", "/version", auth=False)
    rec.error("error_unauthorized", unauthorized, 401, with_headers=True)

    # A newer long poll of the same worker cancels the parked one.
    results: dict[str, Response] = {}

    failures: dict[str, str] = {}

    def poll(key: str, worker: str) -> None:
        try:
            results[key] = rest.call(
                "POST",
                "/external-task/fetchAndLock",
                {
                    "workerId": worker,
                    "maxTasks": 1,
                    "asyncResponseTimeout": 60000,
                    "topics": [{"topicName": "nothing-here", "lockDuration": 1000}],
                },
                timeout=90,
            )
        except OSError as exc:  # includes http.client.RemoteDisconnected
            failures[key] = "%s: %s" % (type(exc).__name__, exc)

    first = threading.Thread(target=poll, args=("first", WORKER))
    first.start()
    time.sleep(1.0)
    second = threading.Thread(target=poll, args=("second", WORKER))
    second.start()
    first.join(30)
    if first.is_alive():
        raise HarnessError("the older parked fetchAndLock was not cancelled")
    rec.error("error_fetch_and_lock_replaced_by_same_worker", results["first"], 503, with_headers=True)

    # Engine shutdown (server.shutdown=immediate) answers the still-parked request.
    rest.engine.stop()
    second.join(60)
    if "second" not in results:
        raise HarnessError("parked fetchAndLock at shutdown got no response: %s" % failures.get("second"))
    rec.error("error_fetch_and_lock_engine_shutdown", results["second"], 500, with_headers=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "tests" / "fixtures" / "engine")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    rec = Recorder(args.out)
    try:
        jar = build_jar()
        with start_engine(jar=jar) as engine:
            capture_plain(Rest(engine), rec)
        with start_engine(
            jar=jar,
            basic_auth=True,
            env={"CAMUNDA_BPM_REST_API_FETCH_AND_LOCK_UNIQUE_WORKER_REQUEST": "true"},
        ) as engine:
            capture_auth_and_long_poll(Rest(engine), rec)
    except HarnessError as exc:
        _LOGGER.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

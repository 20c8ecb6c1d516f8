"""The PyPI client ``camunda-external-task-client-python3`` as a measured child process.

Runs in the throw-away virtualenv that :func:`benchkit.pypi_python` makes (the
client never becomes a dependency of camunda_ext), and speaks the
:mod:`benchkit` child protocol. Two workloads:

- ``noop``: complete every task of the fake engine's topic.
- ``loan``: the loan-granting handlers of ``loan_granting.py``, written for this
  client (one worker per topic in a thread pool, as its examples do).

Two configurations: ``readme`` (the configuration of its README, one worker per
topic) and ``tuned`` (options read from its source for throughput, ``--threads``
workers per topic)::

    python scripts/pypi_worker.py noop --url URL --config readme
    python scripts/pypi_worker.py loan --url URL --config tuned --threads 7
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchkit

#: The configuration of the client's README, verbatim.
README_CONFIG: Dict[str, Any] = {
    "maxTasks": 1,
    "lockDuration": 10000,
    "asyncResponseTimeout": 5000,
    "retries": 3,
    "retryTimeout": 5000,
    "sleepSeconds": 30,
}

#: Tuned for throughput from its source (external_task_client.py, external_task_worker.py):
#: larger batches, long polls as long as ours, no extension properties or Java
#: deserialization, and a short pause after an error (the pause only happens on errors).
TUNED_CONFIG: Dict[str, Any] = {
    "maxTasks": 20,
    "lockDuration": 30000,
    "asyncResponseTimeout": 30000,
    "retries": 3,
    "retryTimeout": 5000,
    "sleepSeconds": 1,
    "includeExtensionProperties": False,
    "deserializeValues": False,
    "httpTimeoutMillis": 30000,
}

#: The object-typed list that loan_granting.credit_score_checker sends through our library.
CREDIT_SCORES = {
    "value": json.dumps([7, 3, 9]),
    "type": "Object",
    "valueInfo": {"objectTypeName": "java.util.ArrayList", "serializationDataFormat": "application/json"},
}


class Recorder:
    """:class:`benchkit.TaskStats` fed from this client: at handler start and around its completes.

    Thread-safe.
    """

    def __init__(self) -> None:
        self.stats = benchkit.TaskStats()
        self._lock = threading.Lock()  # guards _expiry
        self._expiry: Dict[str, str] = {}

    def fetched(self, task: Any) -> None:
        """Called as a handler starts on ``task``."""
        # The client has no accessors for the lock expiry and the creation time; it
        # keeps the engine's JSON in _context.
        created = task._context.get("createTime")
        self.stats.picked_up(_engine_time(created) if created else None)
        with self._lock:
            self._expiry[task.get_task_id()] = task._context.get("lockExpirationTime") or ""

    def wrap(self, client: Any) -> None:
        """Record around ``client.complete``, which the client calls after the handler returns."""
        original: Callable[..., bool] = client.complete

        def complete(task_id: str, *args: Any, **kwargs: Any) -> bool:
            try:
                done = original(task_id, *args, **kwargs)
            except Exception:
                self.stats.report_error()
                raise
            with self._lock:
                expiry = self._expiry.pop(task_id, "")
            self.stats.record(_engine_time(expiry) if expiry else None)
            return done

        client.complete = complete

    def figures(self) -> Dict[str, Any]:
        return {**self.stats.figures(), "report_retries": 0}  # the client never retries a report


def _engine_time(text: str) -> _dt.datetime:
    """A date of the engine's JSON, e.g. ``2026-12-04T19:20:21.400+0000``."""
    return _dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z")


def noop_handlers(recorder: Recorder) -> Dict[str, Any]:
    def noop(task: Any) -> Any:
        recorder.fetched(task)
        return task.complete()

    return {"noop": (noop, None)}


def loan_handlers(recorder: Recorder) -> Dict[str, Any]:
    def credit_score_checker(task: Any) -> Any:
        recorder.fetched(task)
        return task.complete({"creditScores": CREDIT_SCORES})

    def loan_granter(task: Any) -> Any:
        recorder.fetched(task)
        return task.complete({}, {"granted": task.get_variable("score") > 5})

    def request_rejecter(task: Any) -> Any:
        recorder.fetched(task)
        return task.complete({}, {"rejected": task.get_variable("score")})

    return {
        "creditScoreChecker": (credit_score_checker, None),
        "loanGranter": (loan_granter, ["score"]),
        "requestRejecter": (request_rejecter, ["score"]),
    }


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workload", choices=["noop", "loan"])
    parser.add_argument("--url", required=True, help="engine REST root")
    parser.add_argument("--config", choices=["readme", "tuned"], default="readme")
    parser.add_argument("--threads", type=int, default=1, help="workers per topic (tuned)")
    parser.add_argument("--max-tasks", type=int, help="override maxTasks")
    parser.add_argument("--time-limit", type=float, default=900.0, help="stop after this many seconds")
    args = parser.parse_args(argv)

    from camunda.external_task.external_task_worker import ExternalTaskWorker

    stop = benchkit.stop_event()
    config = dict(README_CONFIG if args.config == "readme" else TUNED_CONFIG)
    if args.max_tasks:
        config["maxTasks"] = args.max_tasks
    user = os.environ.get("CAMUNDA_USER")
    if user:
        config["auth_basic"] = {"username": user, "password": os.environ.get("CAMUNDA_PASSWORD", "")}
    recorder = Recorder()
    handlers = noop_handlers(recorder) if args.workload == "noop" else loan_handlers(recorder)
    threads_per_topic = 1 if args.config == "readme" else args.threads
    threads = []
    for topic, (handler, variables) in handlers.items():
        for n in range(threads_per_topic):
            worker = ExternalTaskWorker(worker_id="pypi-%s-%d" % (topic, n), base_url=args.url, config=config)
            recorder.wrap(worker.client)
            threads.append(
                threading.Thread(
                    target=worker.subscribe,
                    args=(topic, handler),
                    kwargs={"variables": variables},
                    name="pypi-%s-%d" % (topic, n),
                    daemon=True,
                )
            )
    shown = {k: v for k, v in config.items() if k != "auth_basic"}  # never print credentials
    ready_cpu = benchkit.announce(threads=len(threads), config=shown)
    for thread in threads:
        thread.start()
    benchkit.wait_until(stop, args.time_limit)
    benchkit.finish(ready_cpu, recorder.figures())
    sys.stdout.flush()
    os._exit(0)  # the client's loops never end: leave without waiting for them


if __name__ == "__main__":
    sys.exit(main())

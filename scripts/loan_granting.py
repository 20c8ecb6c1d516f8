"""The loan-granting workload shared by the demo and the load test.

Each instance runs ``creditScoreChecker`` (which sets ``creditScores``), then a
parallel multi-instance over the scores: ``loanGranter`` for a score above 5,
``requestRejecter`` otherwise. With the default scores an instance has four
external tasks.
"""

from __future__ import annotations

import concurrent.futures
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from camunda_ext import Client

BPMN = Path(__file__).resolve().parent / "bpmn" / "loan-granting.bpmn"
PROCESS_KEY = "loan-granting"
SCORES = [7, 3, 9]
TASKS_PER_INSTANCE = 1 + len(SCORES)
#: Handlers registered by every worker of the workload, with the variables they fetch.
TOPICS = {
    "creditScoreChecker": [],
    "loanGranter": ["score"],
    "requestRejecter": ["score"],
}


def credit_score_checker(task: Any, complete: Any, fail: Any) -> None:
    """Score the applicant: a list becomes the multi-instance collection."""
    complete().variable("creditScores", SCORES).execute()


def loan_granter(task: Any, complete: Any, fail: Any) -> None:
    """Grant the loan for one score (the multi-instance element variable)."""
    complete().local_variable("granted", task.variables["score"] > 5).execute()


def request_rejecter(task: Any, complete: Any, fail: Any) -> None:
    """Reject the request for one score."""
    complete().local_variable("rejected", task.variables["score"]).execute()


HANDLERS: Dict[str, Callable[..., None]] = {
    "creditScoreChecker": credit_score_checker,
    "loanGranter": loan_granter,
    "requestRejecter": request_rejecter,
}


def deploy(client: Client) -> str:
    """Deploy loan-granting (unchanged definitions are not deployed again); return the deployment id."""
    return client.deploy("loan-granting", [BPMN], enable_duplicate_filtering=True).id


def start_instances(
    client: Client, count: int, *, concurrency: int = 8, rate: Optional[float] = None
) -> List[str]:
    """Start ``count`` instances with at most ``concurrency`` requests at a time.

    With ``rate``, instance ``n`` is started no earlier than ``n / rate`` seconds
    after the first: a steady load instead of all at once.
    """
    began = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(concurrency, thread_name_prefix="starter") as pool:
        futures = []
        for n in range(count):
            if rate:
                time.sleep(max(0.0, began + n / rate - time.monotonic()))
            futures.append(
                pool.submit(
                    lambda n: client.start_process_instance(PROCESS_KEY, business_key="loan-%d" % n).id, n
                )
            )
        return [future.result() for future in futures]


class Progress:
    """A one-line progress bar on stderr. Thread-safe."""

    def __init__(self, total: int, width: int = 40) -> None:
        self.total = total
        self.width = width
        self._lock = threading.Lock()  # guards writes to stderr
        self._tty = sys.stderr.isatty()
        self._last = -1

    def show(self, done: int) -> None:
        with self._lock:
            if done == self._last:
                return
            self._last = done
            filled = self.width * done // max(self.total, 1)
            line = "[%s%s] %d/%d instances" % ("#" * filled, "." * (self.width - filled), done, self.total)
            if self._tty:
                sys.stderr.write("\r" + line)
            elif done == self.total or done % max(self.total // 10, 1) == 0:
                sys.stderr.write(line + "\n")
            sys.stderr.flush()

    def close(self) -> None:
        if self._tty:
            sys.stderr.write("\n")


def wait_for_instances(
    client: Client, ids: Sequence[str], *, timeout: float, progress: Optional[Progress] = None
) -> bool:
    """Poll history until every instance in ``ids`` has finished; False on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        done = client.count_history_process_instances(process_instance_ids=list(ids), finished=True)
        if progress is not None:
            progress.show(done)
        if done == len(ids):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.25)


def latencies(client: Client, ids: Sequence[str]) -> List[float]:
    """Each finished instance's duration in seconds (start to end, by the engine's clock)."""
    found: List[float] = []
    page = 500
    for offset in range(0, len(ids), page):
        chunk = list(ids[offset : offset + page])
        for row in client.get_history_process_instances(process_instance_ids=chunk, finished=True):
            if row.duration_in_millis is not None:
                found.append(row.duration_in_millis / 1000.0)
    return found


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile (nearest rank); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(round(fraction * len(ordered) + 0.5) - 1, 0)
    return ordered[min(rank, len(ordered) - 1)]


def summary(
    *,
    instances: int,
    finished: int,
    wall_seconds: float,
    counts: Dict[str, int],
    durations: Sequence[float],
) -> Dict[str, Any]:
    """The figures the demo and the load test report."""
    tasks = counts.get("completed", 0)
    return {
        "instances": instances,
        "finished": finished,
        "tasks": tasks,
        "wall_seconds": round(wall_seconds, 3),
        "instances_per_second": round(finished / wall_seconds, 2) if wall_seconds else 0.0,
        "tasks_per_second": round(tasks / wall_seconds, 2) if wall_seconds else 0.0,
        "latency_p50": round(percentile(durations, 0.50), 3),
        "latency_p90": round(percentile(durations, 0.90), 3),
        "latency_p95": round(percentile(durations, 0.95), 3),
        "latency_p99": round(percentile(durations, 0.99), 3),
        "latency_mean": round(statistics.mean(durations), 3) if durations else 0.0,
        "failures": counts.get("failed", 0),
        "report_retries": counts.get("report_retried", 0),
        "lost": counts.get("lost", 0),
        "unlocked": counts.get("unlocked", 0),
    }


def format_summary(figures: Dict[str, Any]) -> str:
    """Human-readable lines of a summary."""
    return "\n".join(
        [
            "instances   %(finished)d of %(instances)d finished" % figures,
            "tasks       %(tasks)d completed" % figures,
            "wall time   %(wall_seconds).2f s" % figures,
            "throughput  %(tasks_per_second).1f tasks/s, %(instances_per_second).1f instances/s" % figures,
            "latency     p50 %(latency_p50).3f s  p95 %(latency_p95).3f s  p99 %(latency_p99).3f s" % figures,
            "failures    %(failures)d   report retries %(report_retries)d   lost %(lost)d   unlocked %(unlocked)d"
            % figures,
        ]
    )

"""The measured clients built on requests and camunda_ext, each run in its own process.

``bench_overhead.py`` and ``loadtest.py`` start this script once per measured run
and speak the :mod:`benchkit` child protocol with it (``ready`` line, SIGTERM,
``final`` line with the client's CPU seconds and figures)::

    python scripts/bench_clients.py handloop --url URL --concurrency 20
    python scripts/bench_clients.py worker --url URL --concurrency 20 [--profile out.pstats]
    python scripts/bench_clients.py loan --url URL --client rest|cdc-lock|cdc-wake --max-tasks 20

The PyPI client's counterpart is ``pypi_worker.py`` (it runs in another virtualenv).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import cProfile
import os
import pstats
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchkit

#: The fake engine's topic (see fake_engine.py).
NOOP_TOPIC = "noop"
#: Lock duration every measured client asks for, in milliseconds.
LOCK_MS = 30_000
#: Long-poll time of every measured client, in milliseconds.
LONG_POLL_MS = 30_000


# ---------------------------------------------------------------------- the hand-written loop


def run_handloop(args: argparse.Namespace, stop: threading.Event) -> Dict[str, Any]:
    """fetchAndLock for the free slots, completes on a thread pool: the practical limit of requests."""
    import requests
    import requests.adapters

    session = requests.Session()
    session.trust_env = False
    session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=args.concurrency + 2))
    base = args.url.rstrip("/") + "/external-task"
    slots = threading.Semaphore(args.concurrency)  # signals: free handler slots
    completed = [0]
    count_lock = threading.Lock()  # guards completed

    def complete(task_id: str) -> None:
        try:
            response = session.post(
                "%s/%s/complete" % (base, task_id), json={"workerId": "handloop"}, timeout=(5, 30)
            )
            if response.status_code == 204:
                with count_lock:
                    completed[0] += 1
        finally:
            slots.release()

    def loop() -> None:
        with concurrent.futures.ThreadPoolExecutor(args.concurrency) as pool:
            while not stop.is_set():
                if not slots.acquire(timeout=0.2):
                    continue
                wanted = 1
                while wanted < args.concurrency and slots.acquire(blocking=False):
                    wanted += 1
                try:
                    tasks = session.post(
                        base + "/fetchAndLock",
                        json={
                            "workerId": "handloop",
                            "maxTasks": wanted,
                            "asyncResponseTimeout": LONG_POLL_MS,
                            "topics": [{"topicName": NOOP_TOPIC, "lockDuration": LOCK_MS}],
                        },
                        timeout=(5, LONG_POLL_MS / 1000 + 5),
                    ).json()
                except (requests.RequestException, ValueError):
                    tasks = []
                    stop.wait(0.5)
                for _ in range(wanted - len(tasks)):
                    slots.release()
                for task in tasks:
                    pool.submit(complete, task["id"])

    thread = threading.Thread(target=loop, name="handloop", daemon=True)
    profiler = ThreadProfiler() if args.profile else None
    ready_cpu = benchkit.announce()
    if profiler is not None:
        profiler.install()
    thread.start()
    benchkit.wait_until(stop, args.time_limit)
    if profiler is not None:
        profiler.dump(args.profile)
    return {"ready_cpu": ready_cpu, "stats": {"completed": completed[0]}}


# ---------------------------------------------------------------------- our Worker on no-op tasks


def run_worker(args: argparse.Namespace, stop: threading.Event) -> Dict[str, Any]:
    """Our Worker with a no-op handler, as a user would configure it."""
    from camunda_ext import Client, CountingMetrics, Worker

    metrics = CountingMetrics()
    worker = Worker(
        Client(args.url, "bench-worker", pool_maxsize=args.concurrency + 4),
        max_tasks=args.concurrency,
        poll_interval=0.05,
        async_response_timeout=LONG_POLL_MS / 1000,
        metrics=metrics,
    )

    def noop(task: Any, complete: Any, fail: Any) -> None:
        complete().execute()

    worker.register_handler(NOOP_TOPIC, noop, lock_duration=LOCK_MS)
    profiler = ThreadProfiler() if args.profile else None
    ready_cpu = benchkit.announce()
    if profiler is not None:
        profiler.install()
    worker.start()
    benchkit.wait_until(stop, args.time_limit)
    worker.stop(timeout=5)
    if profiler is not None:
        profiler.dump(args.profile)
    counts = metrics.snapshot()
    return {"ready_cpu": ready_cpu, "stats": {"completed": counts.get("completed", 0), "counts": counts}}


class ThreadProfiler:
    """cProfile on CPU time for every thread started after :meth:`install`, merged into one file.

    cProfile sees only the thread that enables it, and the Worker's work runs on its
    poller and handler threads; so each new thread's ``run`` gets its own profiler.
    Thread-safe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards _profiles
        self._profiles: List[cProfile.Profile] = []

    def install(self) -> None:
        original: Callable[[threading.Thread], None] = threading.Thread.run
        profiles, lock = self._profiles, self._lock

        def run(thread: threading.Thread) -> None:
            # Per-thread CPU clock: time spent waiting for the GIL or the network is not counted.
            profile = cProfile.Profile(time.thread_time)
            with lock:
                profiles.append(profile)
            profile.enable()
            try:
                original(thread)
            finally:
                profile.disable()

        threading.Thread.run = run  # type: ignore[method-assign]

    def dump(self, path: str) -> None:
        with self._lock:
            profiles = list(self._profiles)
        for profile in profiles:
            profile.disable()  # threads still parked (daemon pools) stop counting here
        stats = pstats.Stats(profiles[0])
        for profile in profiles[1:]:
            stats.add(profile)
        stats.dump_stats(path)


# ---------------------------------------------------------------------- loan granting


def run_loan(args: argparse.Namespace, stop: threading.Event) -> Dict[str, Any]:
    """The loan-granting handlers on our Worker (``rest``) or SequinWorker (``cdc-lock``/``cdc-wake``)."""
    import loan_granting

    from camunda_ext import Client, CountingMetrics

    user = os.environ.get("CAMUNDA_USER")
    auth = (user, os.environ.get("CAMUNDA_PASSWORD", "")) if user else None
    client = Client(args.url, "loadtest-%s" % args.client, auth=auth, pool_maxsize=args.max_tasks + 4)
    metrics = CountingMetrics()
    options: Dict[str, Any] = {"max_tasks": args.max_tasks, "poll_interval": 0.05, "metrics": metrics}
    worker: Any
    if args.client == "rest":
        from camunda_ext import Worker

        worker = Worker(client, async_response_timeout=args.long_poll, **options)
    else:
        from camunda_ext import SequinWorker

        worker = SequinWorker(
            client,
            args.sequin_url,
            args.consumer,
            token=os.environ["SEQUIN_API_TOKEN"],
            mode=args.client.split("-", 1)[1],
            wait_for=args.wait_for,
            sweep_interval=args.sweep_interval,
            **options,
        )
    handler_stats = benchkit.TaskStats()
    for topic, variables in loan_granting.TOPICS.items():
        worker.register_handler(
            topic,
            _recording(loan_granting.HANDLERS[topic], handler_stats),
            lock_duration=args.lock_duration,
            variables=variables or None,
        )
    ready_cpu = benchkit.announce()
    worker.start()
    benchkit.wait_until(stop, args.time_limit)
    worker.stop(timeout=10)
    counts = metrics.snapshot()
    return {
        "ready_cpu": ready_cpu,
        "stats": {
            **handler_stats.figures(),
            "counts": counts,
            "report_retries": counts.get("report_retried", 0),
        },
    }


def _recording(handler: Callable[..., None], stats: benchkit.TaskStats) -> Callable[..., None]:
    def recorded(task: Any, complete: Any, fail: Any) -> None:
        stats.picked_up(task.create_time)
        try:
            handler(task, complete, fail)
        except Exception:
            stats.report_error()
            raise
        stats.record(task.lock_expiration_time)

    return recorded


# ---------------------------------------------------------------------- entry point


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["handloop", "worker", "loan"])
    parser.add_argument("--url", required=True, help="engine REST root")
    parser.add_argument("--concurrency", type=int, default=20, help="handler slots (handloop, worker)")
    parser.add_argument("--profile", help="write a merged CPU profile of all threads here (handloop, worker)")
    parser.add_argument("--time-limit", type=float, default=900.0, help="stop after this many seconds")
    parser.add_argument("--client", default="rest", choices=["rest", "cdc-lock", "cdc-wake"], help="(loan)")
    parser.add_argument("--max-tasks", type=int, default=20, help="handler threads (loan)")
    parser.add_argument("--lock-duration", type=int, default=LOCK_MS, help="ms (loan)")
    parser.add_argument("--long-poll", type=float, default=LONG_POLL_MS / 1000, help="seconds (loan, rest)")
    parser.add_argument("--sequin-url", help="Sequin root (loan, cdc-*); token in SEQUIN_API_TOKEN")
    parser.add_argument("--consumer", help="Sequin consumer (loan, cdc-*)")
    parser.add_argument("--wait-for", type=float, default=5.0, help="Sequin long poll, s (loan, cdc-*)")
    parser.add_argument("--sweep-interval", type=float, default=30.0, help="s (loan, cdc-*)")
    args = parser.parse_args(argv)
    stop = benchkit.stop_event()
    runner = {"handloop": run_handloop, "worker": run_worker, "loan": run_loan}[args.kind]
    result = runner(args, stop)
    benchkit.finish(result["ready_cpu"], result["stats"])
    sys.stdout.flush()
    os._exit(0)  # daemon threads may sit in a long poll: do not wait for them


if __name__ == "__main__":
    sys.exit(main())
